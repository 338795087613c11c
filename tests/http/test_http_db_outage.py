"""The API while Postgres is unreachable: 503 with a readable message, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from imgdup.http.app import create_api
from imgdup.settings import Settings

TOKEN = "s3cret-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A Unix socket directory that does not exist: every connection attempt fails at once.
UNREACHABLE = "postgresql://imgdup@/imgdup?host=/nonexistent-imgdup-socket-dir&connect_timeout=1"


@pytest.fixture
def client(clean_db: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=SecretStr(clean_db), kafka_bootstrap_servers="127.0.0.1:9", api_token=SecretStr(TOKEN)
    )
    app = create_api(settings)
    # raise_server_exceptions=False: an unhandled error is answered as the server would (500).
    with TestClient(app, raise_server_exceptions=False) as test_client:
        # Postgres goes away after start-up: the pool can no longer hand out a connection.
        # timeout=1: PoolTimeout after one second instead of the default 30.
        pool = AsyncConnectionPool(UNREACHABLE, min_size=0, max_size=1, open=False, timeout=1)
        test_client.portal.call(pool.open)  # type: ignore[union-attr]  # set inside the context
        app.state.pool = pool
        try:
            yield test_client
        finally:
            test_client.portal.call(pool.close)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/duplicates/1", None),
        ("GET", "/healthz", None),
        (
            "POST",
            "/api/v1/image/ingest",
            {"ad_id": 1, "source": "olx.pt", "images": ["https://x.example/a.jpg"]},
        ),
    ],
)
def test_unreachable_database_is_503(client: TestClient, method: str, path: str, body: object) -> None:
    response = client.request(method, path, json=body, headers=AUTH)
    assert response.status_code == 503, response.text
    answer = response.json()
    assert answer["error"] == "database_unavailable"
    assert "database" in answer["message"]
    assert response.headers["Retry-After"]


def test_livez_does_not_need_the_database(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
