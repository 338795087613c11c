"""Fixtures for the deployment checks: docker-compose.yml parsed once per module, a Helm engine."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_files import COMPOSE_FILE
from helm_render import Lint, Render, helm_binary, helm_library


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def helm() -> tuple[Render, Lint]:
    engine = helm_binary() or helm_library()
    if engine is None:
        pytest.skip("no Helm engine: install `helm`, or helm-python-sdk (Helm's Go SDK) in the venv")
    return engine
