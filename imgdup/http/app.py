"""Settings -> the FastAPI app: its lifespan (Postgres pool, Kafka publisher), guards and routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg_pool import PoolTimeout

from imgdup import metrics
from imgdup.blobs.factory import open_blob_store
from imgdup.http.auth import Authenticator
from imgdup.http.deps import LoginRequired
from imgdup.http.limits import BodySizeLimit, RateLimiter
from imgdup.http.routes import ROUTERS
from imgdup.http.routes.admin import login_page
from imgdup.kafka.publisher import EventPublisher
from imgdup.kafka.security import confluent_config
from imgdup.settings import Settings
from imgdup.store.db import open_pool

log = logging.getLogger(__name__)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one readable message and the problems field by field."""
    problems = [
        {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "problem": err["msg"]}
        for err in exc.errors()
    ]
    message = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems)
    if request.url.path.endswith("/image/ingest"):
        metrics.API_INGEST_REQUESTS.labels("422").inc()
    return JSONResponse(
        status_code=422,
        content=jsonable_encoder({"error": "invalid_request", "message": message, "problems": problems}),
    )


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 while Postgres is unreachable (restarting, failing over): the client retries later.
    The pool reconnects on its own once the database is back."""
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    if request.url.path.endswith("/image/ingest"):
        metrics.API_INGEST_REQUESTS.labels("503").inc()
    return JSONResponse(
        status_code=503,
        headers={"Retry-After": "5"},
        content={
            "error": "database_unavailable",
            "message": "the database is unreachable right now; retry in a few seconds",
        },
    )


def _authenticator(settings: Settings) -> Authenticator:
    """Parsed once: a malformed credential entry or proxy range stops the start (ValueError)."""
    authenticator = Authenticator(
        settings.api_token.get_secret_value() if settings.api_token else None,
        settings.api_credentials_text(),
        settings.trusted_proxies,
        open_access=settings.api_is_open(),
    )
    if authenticator.open:
        log.warning(
            "the API is OPEN: no IMGDUP_API_TOKEN, IMGDUP_API_CREDENTIALS or IMGDUP_TRUSTED_PROXIES is"
            " set, so every route answers anyone (development only; production refuses to start so)"
        )
    return authenticator


def create_api(settings: Settings) -> FastAPI:
    settings.check_production_ready()
    authenticator = _authenticator(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(settings.database_dsn(), max_size=10)
        app.state.publisher = EventPublisher(
            settings.bootstrap_servers(), security=confluent_config(settings)
        )
        try:
            yield
        finally:
            app.state.publisher.close()
            await app.state.pool.close()

    app = FastAPI(
        title="imgdup",
        version="0.1.0",
        description="Duplicate and near-duplicate photo detection for classified-ad listings.",
        lifespan=lifespan,
        # Served by routes.docs behind the access guard instead of FastAPI's public ones.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.authenticator = authenticator
    # Opening one connects to nothing (files, or an S3 client that connects on first use).
    app.state.blobs = open_blob_store(settings)
    app.state.ingest_limiter = RateLimiter(
        rate_per_s=settings.api_ingest_rate_per_s, burst=settings.api_ingest_burst
    )
    # Wrong credentials per address: a bucket of api_auth_failures refilled over the window.
    app.state.auth_failures = RateLimiter(
        rate_per_s=settings.api_auth_failures / settings.api_auth_failure_window_s,
        burst=settings.api_auth_failures,
    )
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(LoginRequired)(login_page)
    app.exception_handler(OperationalError)(database_unavailable)
    app.exception_handler(PoolTimeout)(database_unavailable)
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    for router in ROUTERS:
        app.include_router(router)
    return app
