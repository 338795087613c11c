"""imgdup.http.deps on hand-built requests: what each getter reads, the token guard and the rate guard."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from pydantic import SecretStr

from imgdup.http import deps
from imgdup.http.limits import RateLimiter
from imgdup.settings import Settings

TOKEN = "s3cret-token-for-tests-0123"


def _request(
    app: FastAPI, authorization: str | None = None, client: tuple[str, int] | None = None
) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/", "headers": headers, "app": app}
    if client is not None:
        scope["client"] = client
    return Request(scope)


def test_getters_read_what_the_app_holds() -> None:
    app = FastAPI()
    settings = Settings()
    app.state.settings = settings
    app.state.pool = pool = object()
    app.state.publisher = publisher = object()
    app.state.ingest_limiter = limiter = RateLimiter(rate_per_s=1.0, burst=1)
    request = _request(app)
    assert deps.get_settings(request) is settings
    assert deps.get_pool(request) is pool
    assert deps.get_publisher(request) is publisher
    assert deps.get_ingest_limiter(request) is limiter


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [
        (None, False),
        ("", False),
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN} ", True),
        (f"Basic {TOKEN}", False),
        ("Bearer nope", False),
        (TOKEN, False),
    ],
)
def test_require_token(authorization: str | None, allowed: bool) -> None:
    settings = Settings(api_token=SecretStr(TOKEN))
    request = _request(FastAPI(), authorization)
    if allowed:
        deps.require_token(request, settings)
        return
    with pytest.raises(HTTPException) as refused:
        deps.require_token(request, settings)
    assert refused.value.status_code == 401
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}


def test_without_a_configured_token_everyone_may_write() -> None:
    deps.require_token(_request(FastAPI()), Settings(api_token=None))


def test_ingest_client_is_the_token_else_the_address() -> None:
    app = FastAPI()
    by_token = deps.ingest_client(_request(app, f"Bearer {TOKEN}", ("198.51.100.1", 1)))
    assert by_token.startswith("token:") and TOKEN not in by_token
    assert by_token == deps.ingest_client(_request(app, f"Bearer {TOKEN}", ("198.51.100.2", 2)))
    assert deps.ingest_client(_request(app, None, ("198.51.100.1", 1))) == "198.51.100.1"
    assert deps.ingest_client(_request(app)) == "?"


def test_limit_ingest_rate_refuses_with_retry_after_once_the_burst_is_spent() -> None:
    app = FastAPI()
    limiter = RateLimiter(rate_per_s=0.5, burst=1)
    deps.limit_ingest_rate(_request(app, None, ("198.51.100.1", 1)), limiter)
    with pytest.raises(HTTPException) as limited:
        deps.limit_ingest_rate(_request(app, None, ("198.51.100.1", 1)), limiter)
    assert limited.value.status_code == 429
    assert limited.value.headers is not None and int(limited.value.headers["Retry-After"]) >= 1
    deps.limit_ingest_rate(_request(app, None, ("198.51.100.2", 1)), limiter)  # another client
