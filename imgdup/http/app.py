"""HTTP requests -> ingest events on Kafka and read models from Postgres (FastAPI app factory)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from imgdup import ids, metrics
from imgdup.http import moderation as admin
from imgdup.http.auth import token_guard
from imgdup.http.limits import BodySizeLimit, RateLimiter, retry_after_header
from imgdup.kafka.publisher import EventPublisher, PublishError
from imgdup.settings import Settings
from imgdup.store import queries, repository, stats
from imgdup.store.db import open_pool
from schemas import AdImagesCreatedV1, topics
from schemas.events import MAX_IMAGES_PER_AD, AdId, ImageUrl

log = logging.getLogger(__name__)

PROGRESS = Gauge(
    "imgdup_work_items",
    "Ingest events and pairs by processing state (from Postgres)",
    ["kind", "state"],
    registry=metrics.REGISTRY,
)


class IngestRequest(BaseModel):
    """The seed's payload: one ad and the URLs of its images."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "ad_id": 12345,
                    "source": "olx.pt",
                    "category": "real_estate",
                    "images": ["https://cdn.example.com/house1.jpg"],
                }
            ]
        },
    )

    ad_id: AdId
    source: Annotated[str, Field(min_length=1, max_length=200)]
    images: Annotated[list[ImageUrl], Field(min_length=1, max_length=MAX_IMAGES_PER_AD)]
    category: Annotated[str | None, Field(max_length=200)] = None
    seller_id: Annotated[str | None, Field(max_length=200)] = None
    created_at: AwareDatetime | None = None


class IngestAccepted(BaseModel):
    event_id: str
    status: str = "accepted"
    already_accepted: bool = Field(
        False, description="The same payload was accepted before; it was not published again"
    )


def create_api(settings: Settings) -> FastAPI:
    settings.check_production_ready()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(settings.database_dsn(), max_size=10)
        app.state.publisher = EventPublisher(settings.bootstrap_servers())
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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
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

    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    ingest_limiter = RateLimiter(rate_per_s=settings.api_ingest_rate_per_s, burst=settings.api_ingest_burst)
    require_token = token_guard(settings)

    def ingest_rate_limit(request: Request) -> None:
        """A dependency, so it runs before the body is validated: bad requests count too."""
        # Per client: the token when there is one, else the peer address.
        token = request.headers.get("authorization")
        client = (
            "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
            if token
            else (request.client.host if request.client else "?")
        )
        wait = ingest_limiter.acquire(client)
        if wait > 0:
            metrics.API_INGEST_REQUESTS.labels("429").inc()
            raise HTTPException(
                status_code=429,
                detail="ingest rate limit exceeded",
                headers={"Retry-After": retry_after_header(wait)},
            )

    app.state.settings = settings
    app.state.require_token = require_token

    @app.post(
        "/api/v1/image/ingest",
        status_code=202,
        response_model=IngestAccepted,
        dependencies=[Depends(require_token), Depends(ingest_rate_limit)],
        summary="Publish an ad.images.created event for an ad",
    )
    async def ingest(body: IngestRequest, request: Request) -> IngestAccepted:
        identity = body.model_dump(mode="json", exclude_none=True)
        event = AdImagesCreatedV1(
            schema_version=1,
            event_id=ids.ingest_event_id(identity),
            ad_id=body.ad_id,
            source=body.source,
            category=body.category,
            seller_id=body.seller_id,
            images=body.images,
            created_at=body.created_at or datetime.now(UTC),
        )
        pool = request.app.state.pool
        if not await repository.accept_event(pool, event):
            metrics.API_INGEST_REQUESTS.labels("202").inc()
            return IngestAccepted(event_id=event.event_id, already_accepted=True)
        try:
            await request.app.state.publisher.publish(
                topics.AD_IMAGES_CREATED.name,
                key=str(event.ad_id).encode(),
                value=event.model_dump_json().encode(),
            )
        except PublishError as exc:
            await repository.forget_accepted_event(pool, event.event_id)
            metrics.API_INGEST_REQUESTS.labels("503").inc()
            raise HTTPException(status_code=503, detail=f"event bus unavailable: {exc}") from exc
        metrics.API_INGEST_REQUESTS.labels("202").inc()
        return IngestAccepted(event_id=event.event_id)

    @app.get("/api/v1/duplicates/{ad_id}", summary="Ads sharing duplicate images with this ad")
    async def duplicates(ad_id: int, request: Request) -> dict[str, Any]:
        # Moderators' verdicts apply: a pair marked "not a duplicate" is not presented as one.
        others = await admin.moderated_duplicates_of_ad(request.app.state.pool, ad_id)
        return {"ad_id": ad_id, "duplicates": others}

    @app.get("/api/v1/clusters", summary="Duplicate clusters, most recently changed first")
    async def clusters(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        total, page = await queries.clusters_page(request.app.state.pool, limit=limit, offset=offset)
        return {"total": total, "limit": limit, "offset": offset, "clusters": page}

    @app.get("/api/v1/ads/{ad_id}", summary="Processing state of an ad's images")
    async def ad(ad_id: int, request: Request) -> dict[str, Any]:
        state = await queries.ad_state(request.app.state.pool, ad_id)
        if state is None:
            raise HTTPException(status_code=404, detail=f"ad {ad_id} is unknown")
        return state

    @app.get("/api/v1/progress", summary="Work in flight, from Postgres's processing state")
    async def progress(request: Request) -> dict[str, Any]:
        p = await repository.progress(request.app.state.pool)
        return {**p.__dict__, "unfinished": p.unfinished}

    @app.get("/api/v1/images/{image_id}/thumbnail", include_in_schema=False)
    async def thumbnail(image_id: str, request: Request) -> Response:
        try:
            jpeg = await queries.image_jpeg(request.app.state.pool, image_id)
        except Exception as exc:
            raise HTTPException(status_code=404, detail="unknown image") from exc
        if jpeg is None:
            raise HTTPException(status_code=404, detail="unknown image")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        p = await repository.progress(request.app.state.pool)
        for state in ("accepted", "processing", "indexed", "dead"):
            PROGRESS.labels("event", state).set(getattr(p, f"events_{state}"))
        for state in ("candidate", "verified", "rejected", "clustered"):
            PROGRESS.labels("pair", state).set(getattr(p, f"pairs_{state}"))
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        """Liveness: the process answers. Unlike /healthz it does not depend on Postgres, so a
        database outage does not make Kubernetes restart every API pod."""
        return {"status": "ok"}

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> dict[str, str]:
        async with request.app.state.pool.connection() as conn:
            await conn.execute("SELECT 1")
        return {"status": "ok"}

    # Routers of later features are included here.
    app.include_router(stats.router)  # GET /api/v1/stats
    app.include_router(admin.router)  # verdicts, pair detail, admin clusters, /admin page
    return app
