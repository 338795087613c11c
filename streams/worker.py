"""Settings (roles) -> a running Faust worker with the agents of those roles (the `imgdup worker` process)."""

from __future__ import annotations

import importlib
import logging

from imgdup.metrics import REGISTRY
from imgdup.settings import WorkerRole
from streams.liveness import CommitProgress, health_file, write_health

HEARTBEAT_INTERVAL_S = 5.0

ROLE_MODULES: dict[WorkerRole, str] = {
    "images": "agents.images",
    "verifier": "agents.verifier",
    "clusterer": "agents.clusterer",
}


def run_worker(roles: list[WorkerRole], *, loglevel: str = "warning") -> None:
    import faust
    from prometheus_client import start_http_server

    from streams import app as streams_app

    for role in roles:
        importlib.import_module(ROLE_MODULES[role])
    if streams_app.settings.worker_metrics_port:
        start_http_server(streams_app.settings.worker_metrics_port, registry=REGISTRY)

    # Nothing is closed in on_before_shutdown: Faust sends it while agents may still be inside a
    # step, and a closed pool would turn a clean stop into retries. Un-acked messages are handed
    # back (redelivered); the process exit closes sockets; the vector store's WAL makes it safe.

    progress = CommitProgress()
    streams_app.app.sensors.add(progress)
    heartbeat = health_file(streams_app.settings.data_dir, list(roles))

    @streams_app.app.timer(HEARTBEAT_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def _heartbeat() -> None:
        write_health(heartbeat, progress.snapshot(streams_app.settings.worker_stall_after_s))

    logging.getLogger("imgdup").setLevel(logging.INFO)
    worker = faust.Worker(streams_app.app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()
