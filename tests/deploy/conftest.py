"""Fixtures for the deployment checks: docker-compose.yml parsed once per module."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_files import COMPOSE_FILE


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]
