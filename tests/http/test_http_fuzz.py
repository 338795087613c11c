"""The API's own OpenAPI document -> schemathesis requests (valid and invalid, boundary values first)
through the ASGI app on a real Postgres: no 5xx, every 4xx with a readable message, every response
as the document describes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers.api import AUTH, TOKEN, api_with_recording_publisher, seed
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance

from imgdup.http.app import create_api
from imgdup.settings import Settings

pytestmark = pytest.mark.slow

# Per operation and generation mode (valid, invalid). derandomize: the same requests on every run,
# so what fails in CI fails the same way here.
MAX_EXAMPLES = 25


def _served_document() -> dict[str, Any]:
    """/openapi.json as the app serves it. Fetched at import, when no database exists yet, so the
    lifespan (pool, producer) does not run: TestClient runs it only inside `with`. The pytest
    integration that would load it from a fixture instead (`schemathesis.pytest.from_fixture`)
    fails on pytest 9.2 (it sets `Function._nodeid`, which pytest no longer has)."""
    app = create_api(Settings(api_token=SecretStr(TOKEN)))
    response = TestClient(app).get("/openapi.json", headers=AUTH)  # the document is not public either
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


# Invalid requests must be refused with one of these; 413 is the body cap's answer to an oversized one.
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
# Values that broke the API before (issue 12), mixed into a fifth of the generated ones: the plain
# generators rarely draw a NUL or a number past 64 bits within a few dozen examples. Positive runs
# draw those the document allows (an integer without a maximum), negative runs those it does not.
HOSTILE_TEXT = ["\x00", "olx\x00pt", "\x00" * 3]
HOSTILE_INTEGERS = [2**63, -(2**63) - 1, 2**64, 2**63 - 1, -(2**63)]
FREE_TEXT_FIELDS = ("source", "category", "seller_id", "moderator", "note")
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}},
        "dictionaries": {"text": {"values": HOSTILE_TEXT}, "integers": {"values": HOSTILE_INTEGERS}},
        # Every string and integer parameter (path, query); body fields are named one by one.
        "generation": {
            "dictionaries": {
                "string": {"dictionary": "text", "probability": 0.2},
                "integer": {"dictionary": "integers", "probability": 0.2},
            }
        },
        "parameters": {
            f"body.{name}": {"dictionary": "text", "probability": 0.2} for name in FREE_TEXT_FIELDS
        },
    }
)

schema = schemathesis.openapi.from_dict(_served_document(), config=CONFIG)


@pytest.fixture
def app_on_postgres(clean_db: str) -> Iterator[FastAPI]:
    seed(clean_db)  # rows to find, so handlers run their queries to the end, not only to a 404
    app, _ = api_with_recording_publisher(clean_db)
    yield app
    # schemathesis runs the app's lifespan (pool, producer) on its own event-loop thread, started
    # with the first request and kept for the process; close it while Postgres is still up.
    asgi.shutdown_lifespans()


def readable_4xx(ctx: Any, response: Any, case: Any) -> bool | None:
    """A client error says what is wrong: a non-empty `message` (ours) or `detail` (FastAPI's)."""
    if not 400 <= response.status_code < 500:
        return None
    body = response.json()
    text = body.get("message") or body.get("detail")
    assert isinstance(text, str) and text.strip(), f"{response.status_code} without a message: {body}"
    return True


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_never_answers_5xx(case: Any, app_on_postgres: FastAPI) -> None:
    case.call_and_validate(
        app=app_on_postgres,
        headers=AUTH,  # the full-access token: auth must not hide the handlers
        checks=[not_a_server_error, response_schema_conformance, negative_data_rejection],
        additional_checks=[readable_4xx],
    )
