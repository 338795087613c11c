"""Routers, one per resource -> the list create_api includes, in order (the OpenAPI document follows it)."""

from __future__ import annotations

from fastapi import APIRouter

from imgdup.http.routes import (
    admin,
    ads,
    clusters,
    docs,
    duplicates,
    explain,
    images,
    ingest,
    ops,
    pairs,
    progress,
    stats,
    whoami,
)

ROUTERS: tuple[APIRouter, ...] = (
    ingest.router,
    duplicates.router,
    clusters.router,
    ads.router,
    progress.router,
    images.router,
    ops.router,
    stats.router,
    pairs.router,
    explain.router,
    admin.router,
    whoami.router,
    docs.router,
)
