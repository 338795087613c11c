"""Consumes imgdup.vectors.qdrant_server.QdrantServerStore: creating, checking and reusing a collection."""

from __future__ import annotations

import pytest
from qdrant_client import QdrantClient
from vector_points import DIM

from imgdup.vectors.qdrant_server import QdrantServerStore


def test_server_store_rejects_mismatched_collection() -> None:
    client = QdrantClient(location=":memory:")
    QdrantServerStore(client, collection="images", dim=DIM)  # creates it
    with pytest.raises(ValueError, match="size=32"):
        QdrantServerStore(client, collection="images", dim=DIM + 1)
    again = QdrantServerStore(client, collection="images", dim=DIM)  # reuses it
    assert again.count() == 0
    again.close()
