"""A StreamsApp with its agents registered -> a running Faust worker with a heartbeat file and metrics
(the `imgdup worker` process)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from imgdup.metrics import REGISTRY
from streams.app import StreamsApp
from streams.liveness import CommitProgress, health_file, write_health

if TYPE_CHECKING:
    import faust

HEARTBEAT_INTERVAL_S = 5.0


def run_worker(app: StreamsApp, *, loglevel: str = "warning") -> None:
    """Runs until the process is told to stop; `app` carries the roles' agents already."""
    from prometheus_client import start_http_server

    settings = app.settings
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, registry=REGISTRY)

    # Nothing is closed in on_before_shutdown: Faust sends it while agents may still be inside a
    # step, and a closed pool would turn a clean stop into retries. Un-acked messages are handed
    # back (redelivered); the process exit closes sockets; the vector store's WAL makes it safe.

    progress = CommitProgress()
    app.faust.sensors.add(progress)
    heartbeat = health_file(settings.data_dir, list(settings.worker_roles))

    @app.faust.timer(HEARTBEAT_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def _heartbeat() -> None:
        write_health(heartbeat, progress.snapshot(settings.worker_stall_after_s))

    logging.getLogger("imgdup").setLevel(logging.INFO)
    build_worker(app.faust, loglevel=loglevel).execute_from_commandline()


def build_worker(app: faust.App, *, loglevel: str) -> faust.Worker:
    """The Faust worker for `app`, its logging set up when it starts."""
    import faust

    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    # Faust's terminal spinner (at loglevel warning and above) sets the root logger to DEBUG and
    # adds a handler that turns every record into a spinner tick, and stops ticking once started:
    # from then on aiokafka, httpcore and psycopg built a debug record per message and request
    # that no handler printed (3.6 % of the worker's busy samples, bench/results/cpu-profile.md). The
    # root logger stays at the loglevel; what is printed is the same.
    worker.spinner = None
    return worker
