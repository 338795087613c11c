"""Who may call what: every route declares the roles it admits; a caller without credentials gets 401
on every route of the API (its OpenAPI document, the docs, the admin page, the metrics) but the two
probes (no database: the guard answers before any route touches the pool); each role reaches its
routes and gets 403 elsewhere, and an authenticating proxy's headers count from its address only
(on a real Postgres)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.routing import BaseRoute

from imgdup.http.app import create_api
from imgdup.http.auth import new_credential
from imgdup.settings import Settings

TOKEN = "s3cret-token-for-tests-0123"
OPEN_ROUTES = {"/livez", "/healthz"}
# Outside the OpenAPI document, and still never public.
EXTRA_PATHS = {"/docs", "/openapi.json", "/admin", "/metrics"}
INGEST = "/api/v1/image/ingest"
PATH_VALUES = {"ad_id": "1", "pair_id": str(uuid.UUID(int=7)), "image_id": str(uuid.UUID(int=8))}


def _app() -> FastAPI:
    return create_api(Settings(api_token=SecretStr(TOKEN), kafka_bootstrap_servers="127.0.0.1:9"))


def _fill(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)


def _routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """Every route of the app, through included routers (FastAPI keeps them as routers)."""
    found: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found.extend(_routes(included.routes) if included is not None else [route])
    return found


def _api_routes(app: FastAPI) -> list[APIRoute]:
    return [route for route in _routes(app.routes) if isinstance(route, APIRoute)]


def _operations(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of the OpenAPI document, of every route of the app, and the extra paths."""
    document: dict[str, Any] = app.openapi()
    operations = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    for route in _api_routes(app):
        operations |= {(method, route.path) for method in route.methods or ()}
    return operations | {("GET", path) for path in EXTRA_PATHS}


def _access_of(route: APIRoute) -> list[object]:
    """The access declarations among the route's dependencies (router-level ones included)."""
    declared = [getattr(d.call, "access", None) for d in route.dependant.dependencies]
    return [access for access in declared if access is not None]


def test_every_route_declares_who_may_call_it() -> None:
    app = _app()
    routes = _api_routes(app)
    documented = set(app.openapi()["paths"])
    assert documented <= {route.path for route in routes}
    assert {route.path for route in routes} >= EXTRA_PATHS, "docs and metrics are declared like the rest"
    for route in routes:
        assert len(_access_of(route)) == 1, (route.path, route.methods)
    # Besides the routes, only the admin page's script and styles (code, no data) are mounted.
    others = [
        getattr(route, "path", route) for route in _routes(app.routes) if not isinstance(route, APIRoute)
    ]
    assert others == ["/admin/static"], others


def test_unauthenticated_requests_get_401_everywhere_but_the_probes() -> None:
    # No lifespan, no pool: a route that got past the guard answers 500.
    client = TestClient(_app(), raise_server_exceptions=False)
    operations = _operations(client.app)  # type: ignore[arg-type]
    walked: list[tuple[str, str, int]] = []
    for method, path in sorted(operations):
        if path in OPEN_ROUTES:
            continue
        response = client.request(method, _fill(path))
        walked.append((method, path, response.status_code))
    refused = [w for w in walked if w[2] != 401]
    assert refused == [], refused
    assert len(walked) >= 16, walked  # 12 documented operations, the thumbnail and the extra paths
    assert client.get("/livez").status_code == 200


@pytest.mark.parametrize("header", ["Bearer nope", "Basic " + TOKEN, TOKEN, "Bearer"])
def test_wrong_credentials_get_401_on_reads(header: str) -> None:
    client = TestClient(_app())
    for path in ("/api/v1/clusters", "/api/v1/duplicates/1", "/metrics", "/openapi.json"):
        response = client.get(path, headers={"Authorization": header})
        assert response.status_code == 401, (path, header)
        assert response.headers["www-authenticate"] == "Bearer"


# --------------------------------------------------------------------------- roles, on a real Postgres

ROLE_TOKENS = {
    role: new_credential(f"{role}-user", role) for role in ("ingest", "viewer", "moderator", "metrics")
}
# Which role reaches which route; everything else answers 403 to that role.
READS = {
    "/api/v1/admin/clusters",
    "/api/v1/admin/duplicates/{ad_id}",
    "/api/v1/ads/{ad_id}",
    "/api/v1/clusters",
    "/api/v1/duplicates/{ad_id}",
    "/api/v1/images/{image_id}/thumbnail",
    "/api/v1/pairs/{pair_id}",
    "/api/v1/pairs/{pair_id}/explanation",
    "/api/v1/pairs/{pair_id}/overlay",
    "/api/v1/progress",
    "/api/v1/stats",
    "/admin",
}
ANYONE = {"/api/v1/whoami", "/docs", "/openapi.json"}
REACHES = {
    "ingest": ANYONE | {"/api/v1/image/ingest"},
    "viewer": ANYONE | READS,
    "moderator": ANYONE | READS | {"/api/v1/pairs/{pair_id}/verdict"},
    "metrics": ANYONE | {"/metrics"},
}


@pytest.fixture
def role_client(clean_db: str) -> Iterator[TestClient]:
    entries = "\n".join(entry for _token, entry in ROLE_TOKENS.values())
    settings = Settings(
        database_url=SecretStr(clean_db),
        kafka_bootstrap_servers="127.0.0.1:9",
        api_token=SecretStr(TOKEN),
        api_credentials=SecretStr(entries),
    )
    with TestClient(create_api(settings), raise_server_exceptions=False) as client:
        yield client


def test_each_role_reaches_its_routes_and_gets_403_elsewhere(role_client: TestClient) -> None:
    operations = sorted(_operations(role_client.app))  # type: ignore[arg-type]
    assert {path for _m, path in operations} - OPEN_ROUTES == set().union(*REACHES.values())
    wrong: list[tuple[str, str, str, int]] = []
    for role, (token, _entry) in ROLE_TOKENS.items():
        headers = {"Authorization": f"Bearer {token}"}
        for method, path in operations:
            status = role_client.request(method, _fill(path), headers=headers).status_code
            allowed = path in REACHES[role] or path in OPEN_ROUTES
            # Allowed: whatever the route answers (200, 404 unknown id, 422 empty body), never a refusal.
            if (status in (401, 403, 500)) if allowed else (status != 403):
                wrong.append((role, method, path, status))
    assert wrong == []
    # The API token reaches everything.
    full = {"Authorization": f"Bearer {TOKEN}"}
    refused = [
        (m, p)
        for m, p in operations
        if role_client.request(m, _fill(p), headers=full).status_code in (401, 403)
    ]
    assert refused == []


def test_whoami_names_the_caller(role_client: TestClient) -> None:
    token, _entry = ROLE_TOKENS["moderator"]
    caller = role_client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()
    assert caller == {
        "name": "moderator-user",
        "roles": ["moderator"],
        "via": "credential",
        "access": ["any", "moderate", "read"],
    }
    full = role_client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert full["via"] == "token" and full["roles"] == ["admin"]
    assert set(full["access"]) == {"any", "ingest", "read", "moderate", "metrics"}


def test_the_admin_page_answers_401_with_its_login_form_and_no_data(role_client: TestClient) -> None:
    page = role_client.get("/admin", headers={"Accept": "text/html"})
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert 'id="login"' in page.text and "default-src 'self'" in page.headers["content-security-policy"]
    token, _entry = ROLE_TOKENS["viewer"]
    assert role_client.get("/admin", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # Its script and styles are code, not data: a browser loads them before anyone logs in.
    assert role_client.get("/admin/static/admin.js").status_code == 200


# --------------------------------------------------------------------------- trusted proxies


def _proxied_app(clean_db: str) -> FastAPI:
    return create_api(
        Settings(
            database_url=SecretStr(clean_db),
            kafka_bootstrap_servers="127.0.0.1:9",
            trusted_proxies=["10.0.0.0/8"],
            api_ingest_rate_per_s=0.01,
            api_ingest_burst=1,
        )
    )


def test_identity_headers_count_from_a_trusted_proxy_only(clean_db: str) -> None:
    app = _proxied_app(clean_db)
    identity = {"X-Imgdup-Role": "moderator", "X-Auth-Request-User": "ana@example.com"}
    with TestClient(app, client=("10.1.2.3", 1)) as proxy:
        caller = proxy.get("/api/v1/whoami", headers=identity).json()
        assert caller["name"] == "ana@example.com" and caller["via"] == "proxy"
        assert proxy.get("/api/v1/progress", headers=identity).status_code == 200
        assert proxy.get("/metrics", headers=identity).status_code == 403
        assert proxy.get("/api/v1/progress", headers={"X-Imgdup-Role": "admin"}).status_code == 401
        assert proxy.get("/api/v1/progress").status_code == 401  # the proxy named nobody
        outsider = TestClient(app, client=("203.0.113.5", 1))
        assert outsider.get("/api/v1/progress", headers=identity).status_code == 401


def test_rate_limits_follow_the_forwarded_client_behind_a_trusted_proxy(clean_db: str) -> None:
    app = _proxied_app(clean_db)
    identity = {"X-Imgdup-Role": "ingest", "X-Auth-Request-User": "portal"}
    with TestClient(app, client=("10.1.2.3", 1)) as proxy:
        first = proxy.post(INGEST, json={"ad_id": 1}, headers=identity)
        again = proxy.post(INGEST, json={"ad_id": 1}, headers={**identity, "X-Forwarded-For": "198.51.100.7"})
        # One caller (the proxy's user), one bucket, whatever address it comes from.
        assert (first.status_code, again.status_code) == (422, 429)
