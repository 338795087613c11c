"""Requests -> what a route needs (the pool, the settings, the publisher) and the guards that refuse
them early: the bearer token on writes (401) and the per-client ingest rate (429)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from psycopg_pool import AsyncConnectionPool

from imgdup import metrics
from imgdup.http.limits import RateLimiter, retry_after_header
from imgdup.kafka.publisher import EventPublisher
from imgdup.settings import Settings

# create_api puts the settings and the limiter on app.state; the lifespan adds the pool and publisher.


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


def get_publisher(request: Request) -> EventPublisher:
    publisher: EventPublisher = request.app.state.publisher
    return publisher


def get_ingest_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.ingest_limiter
    return limiter


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
IngestLimiterDep = Annotated[RateLimiter, Depends(get_ingest_limiter)]


def require_token(request: Request, settings: SettingsDep) -> None:
    """With IMGDUP_API_TOKEN set, writes need `Authorization: Bearer <token>`."""
    expected = settings.api_token
    if expected is None:
        return
    supplied = request.headers.get("authorization", "")
    scheme, _, token = supplied.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    ):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong API token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def ingest_client(request: Request) -> str:
    """The rate limiter's key: the token when there is one, else the peer address."""
    token = request.headers.get("authorization")
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    return request.client.host if request.client else "?"


def limit_ingest_rate(request: Request, limiter: IngestLimiterDep) -> None:
    """A dependency rather than a check in the route, so it runs before the body is validated:
    bad requests count too."""
    wait = limiter.acquire(ingest_client(request))
    if wait > 0:
        metrics.API_INGEST_REQUESTS.labels("429").inc()
        raise HTTPException(
            status_code=429,
            detail="ingest rate limit exceeded",
            headers={"Retry-After": retry_after_header(wait)},
        )


# For a route's `dependencies=[...]`, in this order: the token first, then the rate.
Authorized = Depends(require_token)
IngestRateLimited = Depends(limit_ingest_rate)
