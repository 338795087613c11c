"""Probes and scrapes -> liveness, readiness (Postgres answers), open to probes; Prometheus metrics with
work counts, for the metrics role."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from imgdup import metrics
from imgdup.http.auth import Access
from imgdup.http.deps import PoolDep, allow
from imgdup.http.models import Status
from imgdup.store.progress import backlog

router = APIRouter()

PROGRESS = Gauge(
    "imgdup_work_items",
    "Ingest events and pairs by processing state (from Postgres): exact for work in flight"
    " (accepted, processing, candidate, verified), estimated from table statistics for the rest",
    ["kind", "state"],
    registry=metrics.REGISTRY,
)


@router.get(
    "/metrics", response_class=Response, include_in_schema=False, dependencies=[allow(Access.METRICS)]
)
async def prometheus_metrics(pool: PoolDep) -> Response:
    # Not the exact GROUP BY of `progress`: that reads both tables in full on every scrape.
    p = await backlog(pool)
    for state in ("accepted", "processing", "indexed", "dead"):
        PROGRESS.labels("event", state).set(getattr(p, f"events_{state}"))
    for state in ("candidate", "verified", "rejected", "clustered"):
        PROGRESS.labels("pair", state).set(getattr(p, f"pairs_{state}"))
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


# The only two routes without credentials: Kubernetes and compose probe them as they are.
@router.get("/livez", response_model=Status, include_in_schema=False, dependencies=[allow(Access.PUBLIC)])
async def livez() -> Status:
    """Liveness: the process answers. Unlike /healthz it does not depend on Postgres, so a
    database outage does not make Kubernetes restart every API pod."""
    return Status()


@router.get("/healthz", response_model=Status, include_in_schema=False, dependencies=[allow(Access.PUBLIC)])
async def healthz(pool: PoolDep) -> Status:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")
    return Status()
