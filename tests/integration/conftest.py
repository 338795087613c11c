"""Integration fixtures: a broker per module, a Stack factory, the module's running stack, its photos."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers.photos import REPOSTED, Make, write_jpegs
from pydantic import SecretStr

from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.embedded import free_port
from imgdup.ops.supervisor import Stack
from imgdup.settings import Settings

MakeStack = Callable[..., Stack]


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh tansu broker per test module, so no module sees another's messages."""
    from imgdup.ops.embedded import start_broker

    broker = start_broker(Path(tmp_path_factory.mktemp("tansu")))
    yield broker.bootstrap
    broker.stop()


@pytest.fixture(scope="session")
def make_stack() -> MakeStack:
    """Stack factory: (data dir, Postgres DSN, broker) -> an unstarted Stack, its API on a free port.

    Its processes run under a fresh Faust app id (so their own consumer groups) and may fetch
    images from 127.0.0.1, where the tests serve them; `env` adds to or overrides that
    environment, `worker_groups` replaces the one worker process running every role, `extra_settings`
    adds to the supervisor's own settings (it hands Kafka security on to its children itself)."""

    def make(
        data_dir: Path,
        dsn: str,
        kafka: str,
        *,
        env: Mapping[str, str] | None = None,
        worker_groups: list[list[str]] | None = None,
        extra_settings: Mapping[str, Any] | None = None,
    ) -> Stack:
        settings = Settings(
            data_dir=data_dir,
            database_url=SecretStr(dsn),
            kafka_bootstrap_servers=kafka,
            api_port=free_port(),
            app_id=f"imgdup-test-{uuid.uuid4().hex[:8]}",
            **(extra_settings or {}),
        )
        stack = Stack(
            settings,
            say=lambda _line: None,
            extra_env={
                "IMGDUP_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
                "IMGDUP_APP_ID": settings.app_id,
                "IMGDUP_API_PORT": str(settings.api_port),
                **(env or {}),
            },
        )
        if worker_groups is not None:
            stack.worker_groups = worker_groups
        return stack

    return make


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """What a module adds to its stack's environment: override this fixture in the module."""
    return {}


@pytest.fixture(scope="module")
def stack(
    make_stack: MakeStack,
    pg_dsn: str,
    kafka: str,
    truncate_db: Callable[[], None],
    stack_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The module's running stack: the session's Postgres, emptied first, and the module's broker."""
    truncate_db()
    running = make_stack(tmp_path_factory.mktemp("stack"), pg_dsn, kafka, env=stack_env)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def photo_files() -> Mapping[str, Make]:
    """File name -> photo the module's image server serves: override this fixture in the module."""
    return REPOSTED


@pytest.fixture(scope="module")
def image_server(
    photo_files: Mapping[str, Make], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoopbackImageServer]:
    root = tmp_path_factory.mktemp("images")
    write_jpegs(root, photo_files)
    with LoopbackImageServer(root) as server:
        yield server
