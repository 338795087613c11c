"""A store call -> the same call, retried with backoff while the database is briefly unavailable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import psycopg
import psycopg_pool

from imgdup import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

# Errors that say "the database or network is briefly unavailable", never "this message is bad".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    ConnectionError,
)


async def retry_transient(stage: str, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """`await fn(*args, **kwargs)`, again and again while it fails with a transient error.

    Nothing is dead-lettered for an outage: the message being processed stays un-acked meanwhile,
    and when the database comes back the work goes on. `stage` labels the retry counter and logs.
    """
    delay = 0.5
    while True:
        try:
            return await fn(*args, **kwargs)
        except TRANSIENT_ERRORS as exc:
            metrics.TRANSIENT_RETRIES.labels(stage).inc()
            log.warning("%s: transient error, retrying in %.1fs: %s", stage, delay, exc)
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)
