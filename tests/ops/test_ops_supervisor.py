"""imgdup.ops.supervisor.Stack: worker groups -> named worker processes, settings -> the children's
environment (no process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from imgdup.ops.embedded import StackError, free_port
from imgdup.ops.supervisor import Stack
from imgdup.settings import Settings


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
