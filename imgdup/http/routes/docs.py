"""GET /openapi.json and /docs -> the API's description, for authenticated callers only (FastAPI's own
public ones are switched off in create_api)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from imgdup.http.auth import Access
from imgdup.http.deps import allow

router = APIRouter(dependencies=[allow(Access.ANY)])


@router.get("/openapi.json", include_in_schema=False, response_model=None)
async def openapi(request: Request) -> dict[str, Any]:
    document: dict[str, Any] = request.app.openapi()
    return document


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
async def docs() -> HTMLResponse:
    # Swagger UI fetches /openapi.json itself, without the caller's Authorization header: in a
    # browser it works in open mode or behind an authenticating proxy; elsewhere use
    # `curl -H 'Authorization: Bearer ...' /openapi.json`.
    return get_swagger_ui_html(openapi_url="/openapi.json", title="imgdup API")
