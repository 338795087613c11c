"""Settings -> the FastAPI app: its lifespan (Postgres pool, Kafka publisher), guards and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from imgdup import metrics
from imgdup.http.limits import BodySizeLimit, RateLimiter
from imgdup.http.routes import ROUTERS
from imgdup.kafka.publisher import EventPublisher
from imgdup.kafka.security import confluent_config
from imgdup.settings import Settings
from imgdup.store.db import open_pool


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


def create_api(settings: Settings) -> FastAPI:
    settings.check_production_ready()

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
    )
    app.state.settings = settings
    app.state.ingest_limiter = RateLimiter(
        rate_per_s=settings.api_ingest_rate_per_s, burst=settings.api_ingest_burst
    )
    app.exception_handler(RequestValidationError)(invalid_request)
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    for router in ROUTERS:
        app.include_router(router)
    return app
