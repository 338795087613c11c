"""Faust sensor events -> a liveness verdict that follows commit progress, written to a heartbeat
file and a gauge (`imgdup health` reads the file for container liveness probes)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust
from prometheus_client import Gauge

from imgdup.metrics import REGISTRY

LAST_COMMIT = Gauge(
    "imgdup_worker_last_commit_timestamp_seconds",
    "When this worker last committed consumer offsets",
    registry=REGISTRY,
)
LAST_MESSAGE_IN = Gauge(
    "imgdup_worker_last_message_timestamp_seconds",
    "When this worker last received a message",
    registry=REGISTRY,
)


class CommitProgress(faust.Sensor):
    """A worker is live while it commits what it receives: alive-but-stuck is not live."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = time.time()
        self.created_at = now
        self.last_commit = now
        self.last_message_in = 0.0
        # Messages received per topic: which of the processes sharing a consumer group got what.
        self.messages_in: dict[str, int] = {}

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self.last_message_in = time.time()
        self.messages_in[tp.topic] = self.messages_in.get(tp.topic, 0) + 1
        LAST_MESSAGE_IN.set(self.last_message_in)

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.last_commit = time.time()
        LAST_COMMIT.set(self.last_commit)

    def snapshot(self, stall_after_s: float) -> dict[str, Any]:
        now = time.time()
        waiting = self.last_message_in > self.last_commit
        healthy = not waiting or now - self.last_commit < stall_after_s
        return {
            "pid": os.getpid(),
            "at": now,
            "last_commit": self.last_commit,
            "last_message_in": self.last_message_in,
            "healthy": healthy,
            "messages_in": dict(self.messages_in),
        }


def health_file(data_dir: Path, roles: list[str]) -> Path:
    return data_dir / "health" / f"worker-{'-'.join(roles)}.json"


def write_health(path: Path, snapshot: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot))
    tmp.replace(path)


def check_health(path: Path, *, max_age_s: float) -> tuple[bool, str]:
    """For probes: the file must be fresh (the event loop runs) and say healthy (commits move)."""
    try:
        snapshot = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return False, f"no heartbeat at {path}: {exc}"
    age = time.time() - float(snapshot["at"])
    if age > max_age_s:
        return False, f"heartbeat is {age:.0f}s old: the worker's event loop is stuck or gone"
    if not snapshot["healthy"]:
        return False, f"no commit since {time.time() - snapshot['last_commit']:.0f}s while messages arrive"
    return True, "ok"
