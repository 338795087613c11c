"""Pydantic event models -> committed JSON Schema files under schemas/ (run as a module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from schemas.events import AdImagesCreatedV1, ClusterChangeV1, DeadLetterV1, DuplicateEventV1

SCHEMA_DIR = Path(__file__).parent
# Inputs are documented as what we accept, outputs as what we emit.
PUBLISHED: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "ad.images.created.v1.json": (AdImagesCreatedV1, "validation"),
    "imgdup.duplicates.v1.json": (DuplicateEventV1, "serialization"),
    "imgdup.cluster-changes.v1.json": (ClusterChangeV1, "serialization"),
    "imgdup.dead-letters.v1.json": (DeadLetterV1, "serialization"),
}


def render(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> str:
    schema: dict[str, Any] = model.model_json_schema(mode=mode)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    for file_name, (model, mode) in PUBLISHED.items():
        (SCHEMA_DIR / file_name).write_text(render(model, mode))
        print(f"wrote schemas/{file_name}")


if __name__ == "__main__":
    main()
