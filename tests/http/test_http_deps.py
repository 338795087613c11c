"""imgdup.http.deps on hand-built requests: what each getter reads, the access guard (401, 403, 429) and
the rate guard's key."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from pydantic import SecretStr

from imgdup.http import deps
from imgdup.http.app import create_api
from imgdup.http.auth import Access, new_credential
from imgdup.http.limits import RateLimiter
from imgdup.settings import Settings

TOKEN = "s3cret-token-for-tests-0123"
VIEWER, VIEWER_ENTRY = new_credential("vera", "viewer")


def _app(**settings: Any) -> FastAPI:
    return create_api(Settings(kafka_bootstrap_servers="127.0.0.1:9", **settings))


def _request(
    app: FastAPI,
    authorization: str | None = None,
    client: tuple[str, int] | None = ("198.51.100.1", 1),
    headers: dict[str, str] | None = None,
) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if authorization is not None:
        raw.append((b"authorization", authorization.encode()))
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": raw, "app": app}
    if client is not None:
        scope["client"] = client
    return Request(scope)


def test_getters_read_what_the_app_holds() -> None:
    app = _app()
    app.state.pool = pool = object()
    app.state.publisher = publisher = object()
    request = _request(app)
    assert deps.get_settings(request) is app.state.settings
    assert deps.get_pool(request) is pool
    assert deps.get_publisher(request) is publisher
    assert deps.get_ingest_limiter(request) is app.state.ingest_limiter
    assert deps.get_authenticator(request) is app.state.authenticator


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [
        (None, False),
        ("", False),
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN} ", True),
        (f"Bearer     {TOKEN}", True),
        (f"Basic {TOKEN}", False),
        ("Bearer nope", False),
        (TOKEN, False),
        (f"Bearer {VIEWER}", True),
        (f"Bearer {VIEWER}x", False),
    ],
)
def test_the_guard_admits_the_token_and_credentials(authorization: str | None, allowed: bool) -> None:
    app = _app(api_token=SecretStr(TOKEN), api_credentials=SecretStr(VIEWER_ENTRY))
    request = _request(app, authorization)
    guard = deps.Allow(Access.READ)
    if allowed:
        assert guard(request) is request.state.principal
        return
    with pytest.raises(HTTPException) as refused:
        guard(request)
    assert refused.value.status_code == 401
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}


def test_a_role_without_the_access_gets_403() -> None:
    app = _app(api_credentials=SecretStr(VIEWER_ENTRY))
    with pytest.raises(HTTPException) as refused:
        deps.Allow(Access.MODERATE)(_request(app, f"Bearer {VIEWER}"))
    assert refused.value.status_code == 403 and "viewer" in str(refused.value.detail)


def test_public_routes_ask_nothing() -> None:
    assert deps.Allow(Access.PUBLIC)(_request(_app(api_token=SecretStr(TOKEN)), None)) is None


def test_without_any_credential_configured_everyone_is_let_in() -> None:
    app = _app()
    principal = deps.Allow(Access.MODERATE)(_request(app, "Bearer anything"))
    assert principal is not None and principal.via == "open"


def test_the_page_guard_raises_login_required() -> None:
    with pytest.raises(deps.LoginRequired):
        deps.Allow(Access.READ, page=True)(_request(_app(api_token=SecretStr(TOKEN))))


def test_ingest_client_is_the_caller_else_the_address() -> None:
    app = _app(api_token=SecretStr(TOKEN), api_credentials=SecretStr(VIEWER_ENTRY))
    keys = set()
    for header, client in (
        (f"Bearer {TOKEN}", ("198.51.100.1", 1)),
        (f"Bearer   {TOKEN}", ("198.51.100.2", 2)),
    ):
        request = _request(app, header, client)
        deps.Allow(Access.READ)(request)
        keys.add(deps.ingest_client(request))
    assert len(keys) == 1 and TOKEN not in next(iter(keys))
    viewer = _request(app, f"Bearer {VIEWER}")
    deps.Allow(Access.READ)(viewer)
    assert deps.ingest_client(viewer) not in keys and VIEWER.split(":")[1] not in deps.ingest_client(viewer)
    assert deps.ingest_client(_request(app, None)) == "address:198.51.100.1"
    assert deps.ingest_client(_request(app, None, client=None)) == "address:?"


def test_limit_ingest_rate_refuses_with_retry_after_once_the_burst_is_spent() -> None:
    app = _app()
    limiter = RateLimiter(rate_per_s=0.5, burst=1)
    deps.limit_ingest_rate(_request(app, None, ("198.51.100.1", 1)), limiter)
    with pytest.raises(HTTPException) as limited:
        deps.limit_ingest_rate(_request(app, None, ("198.51.100.1", 1)), limiter)
    assert limited.value.status_code == 429
    assert limited.value.headers is not None and int(limited.value.headers["Retry-After"]) >= 1
    deps.limit_ingest_rate(_request(app, None, ("198.51.100.2", 1)), limiter)  # another client
