"""imgdup.ops.supervisor.Stack: worker groups -> named worker processes, settings -> the children's
environment (no process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from imgdup.ops.embedded import StackError, free_port
from imgdup.ops.supervisor import Stack, worker_groups
from imgdup.settings import Settings
from streams.app import consumer_group


def _stack(groups: list[list[str]], tmp_path: Path) -> Stack:
    return Stack(Settings(data_dir=tmp_path), say=lambda _: None, worker_groups=groups)


def test_one_group_is_one_worker(tmp_path: Path) -> None:
    assert _stack([["images", "verifier", "clusterer"]], tmp_path).workers() == {
        "worker": ["images", "verifier", "clusterer"]
    }


def test_a_group_listed_twice_is_two_processes_of_those_roles(tmp_path: Path) -> None:
    workers = _stack([["images", "clusterer"], ["verifier"], ["verifier"]], tmp_path).workers()
    assert workers == {
        "worker-images-clusterer": ["images", "clusterer"],
        "worker-verifier": ["verifier"],
        "worker-verifier-2": ["verifier"],
    }


def test_children_get_the_supervisors_kafka_security(tmp_path: Path) -> None:
    """However the supervisor got its settings, its workers and API connect the same way."""
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap_servers="kafka.internal:9093",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="imgdup",
        kafka_sasl_password=SecretStr("pw-4711"),
    )
    env = Stack(settings, say=lambda _: None).env()
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-256"
    assert (env["KAFKA_SASL_USERNAME"], env["KAFKA_SASL_PASSWORD"]) == ("imgdup", "pw-4711")


def test_secured_kafka_needs_an_external_broker(tmp_path: Path, pg_dsn: str) -> None:
    """The embedded broker speaks PLAINTEXT only: asking for TLS without a broker is an error."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=SecretStr(pg_dsn),
        api_port=free_port(),
        kafka_bootstrap_servers=None,  # tests/conftest.py sets one in the environment
        kafka_security_protocol="SSL",
    )
    stack = Stack(settings, say=lambda _: None)
    try:
        with pytest.raises(StackError, match="KAFKA_SECURITY_PROTOCOL=SSL needs KAFKA_BOOTSTRAP_SERVERS"):
            stack.start()
        assert stack.broker is None
    finally:
        stack.stop()  # whatever a failing run started


def test_two_images_workers_need_a_shared_vector_store(tmp_path: Path) -> None:
    """The edge and numpy stores are folders one process locks: a second images process would
    fail on its first event, so the stack refuses to start it, before starting anything."""
    for index in ("edge", "numpy"):
        stack = Stack(
            Settings(data_dir=tmp_path, vector_index=index),
            say=lambda _: None,
            worker_groups=[["images", "verifier", "clusterer"], ["images"]],
        )
        with pytest.raises(StackError, match="IMGDUP_VECTOR_STORE=pgvector or QDRANT_URL"):
            stack.start()
        assert stack.processes == {} and stack.postgres is None
    for shared in (
        Settings(data_dir=tmp_path, vector_index="pgvector"),
        Settings(data_dir=tmp_path, qdrant_url="http://q:6333"),
    ):
        Stack(shared, say=lambda _: None, worker_groups=[["images"], ["images"]]).check_workers()


def test_images_workers_setting_is_checked_and_gives_the_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGDUP_IMAGES_WORKERS", "2")
    with pytest.raises(ValueError, match="IMGDUP_IMAGES_WORKERS=2 needs a vector store"):
        Settings(data_dir=tmp_path, vector_index="edge")
    monkeypatch.setenv("IMGDUP_VECTOR_STORE", "pgvector")
    settings = Settings(data_dir=tmp_path)
    assert settings.vector_index == "pgvector" and settings.images_workers == 2
    # The images processes have the same roles, hence one consumer group (a process with other
    # roles too would be in another group and index every ad a second time).
    assert worker_groups(settings, process_per_role=False) == [
        ["images"],
        ["images"],
        ["verifier", "clusterer"],
    ]
    groups = worker_groups(settings, process_per_role=False)
    assert len({consumer_group(settings.model_copy(update={"worker_roles": g})) for g in groups}) == 2
    assert worker_groups(settings, process_per_role=True) == [
        ["images"],
        ["images"],
        ["verifier"],
        ["clusterer"],
    ]
    stack = Stack(settings, say=lambda _: None, worker_groups=worker_groups(settings, process_per_role=False))
    assert list(stack.workers()) == ["worker-images", "worker-images-2", "worker-verifier-clusterer"]
    assert stack.env()["IMGDUP_VECTOR_STORE"] == "pgvector"
