"""The HTTP layer's shape, without a database: typed responses, one duplicates endpoint, no app built
at import time, and store modules that know nothing of HTTP."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import SecretStr

import imgdup.http
from imgdup.http.app import create_api
from imgdup.http.routes import ROUTERS
from imgdup.settings import Settings

STORE = Path(__file__).resolve().parents[2] / "imgdup" / "store"


def _app() -> FastAPI:
    return create_api(Settings(api_token=SecretStr("s3cret-token-for-tests-0123")))


def _api_routes() -> list[APIRoute]:
    return [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def test_every_documented_operation_answers_a_named_model() -> None:
    document = _app().openapi()
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 10
    for path, method, op in operations:
        ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert len(ok) == 1, (path, method)
        schema: dict[str, Any] = next(iter(ok.values()))["content"]["application/json"]["schema"]
        assert schema.get("$ref", "").startswith("#/components/schemas/"), (path, method, schema)


def test_every_route_declares_its_response() -> None:
    for route in _api_routes():
        if route.response_model is None:
            # Only the non-JSON answers: the page, its thumbnails and pair overlays, the Prometheus
            # scrape, the docs page and the OpenAPI document itself.
            assert route.path in {
                "/admin",
                "/api/v1/images/{image_id}/thumbnail",
                "/api/v1/pairs/{pair_id}/overlay",
                "/metrics",
                "/docs",
                "/openapi.json",
            }, route.path
        else:
            assert route.response_model is not dict, route.path


def test_both_duplicates_urls_are_one_implementation() -> None:
    routes = {route.path: route for route in _api_routes()}
    public = routes["/api/v1/duplicates/{ad_id}"]
    admin = routes["/api/v1/admin/duplicates/{ad_id}"]
    assert public.endpoint is admin.endpoint
    assert public.response_model is admin.response_model


def test_operation_ids_stay_as_they_were() -> None:
    ids = {op["operationId"] for ops in _app().openapi()["paths"].values() for op in ops.values()}
    assert {
        "duplicates_api_v1_duplicates__ad_id__get",
        "get_moderated_duplicates_api_v1_admin_duplicates__ad_id__get",
        "get_admin_clusters_api_v1_admin_clusters_get",
        "post_verdict_api_v1_pairs__pair_id__verdict_post",
        "stats_api_v1_stats_get",
    } <= ids


def test_no_app_is_built_at_import_time() -> None:
    for module in pkgutil.walk_packages(imgdup.http.__path__, "imgdup.http."):
        loaded = importlib.import_module(module.name)
        assert not any(isinstance(value, FastAPI) for value in vars(loaded).values()), module.name


def test_each_call_builds_its_own_app() -> None:
    assert _app() is not _app()


@pytest.mark.parametrize("path", sorted(STORE.glob("*.py")), ids=lambda p: p.name)
def test_store_modules_import_nothing_of_http(path: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = {name for name in imported if name.split(".")[0] in ("fastapi", "starlette")}
    forbidden |= {name for name in imported if name.startswith("imgdup.http")}
    assert not forbidden, (path.name, forbidden)
