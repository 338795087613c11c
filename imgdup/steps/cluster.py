"""A verified pair (VerifiedPairV1) -> the clusters grown, created or merged in Postgres, and the public
duplicate event (DuplicateEventV1) to publish, or None when the pair is not one to cluster. No Kafka."""

from __future__ import annotations

import time
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from imgdup import metrics
from imgdup.store import clusters
from imgdup.store.transient import retry_transient
from schemas import DuplicateEventV1, VerifiedPairV1


@dataclass(frozen=True)
class ClusterContext:
    pool: AsyncConnectionPool


async def cluster_verified(ctx: ClusterContext, pair: VerifiedPairV1) -> DuplicateEventV1 | None:
    """One transaction per pair; a pair clustered before yields the same event (same event_id),
    so a crash between commit and publish is repaired by the redelivery."""
    started = time.perf_counter()
    event = await retry_transient("clusterer", clusters.cluster_pair, ctx.pool, pair)
    metrics.STAGE_SECONDS.labels("cluster").observe(time.perf_counter() - started)
    return event
