"""Worker roles -> their Faust agents registered on a StreamsApp: one agent per pipeline step, each only
decoding a message, calling its step (imgdup.steps) and publishing the result (streams.policy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agents import clusterer, images, verifier
from imgdup.settings import WorkerRole
from streams.app import StreamsApp
from streams.runtime import SharedRuntime

REGISTER: dict[WorkerRole, Callable[[StreamsApp, SharedRuntime], None]] = {
    "images": images.register,
    "verifier": verifier.register,
    "clusterer": clusterer.register,
}


def register_roles(app: StreamsApp, roles: Sequence[WorkerRole]) -> SharedRuntime:
    """Adds the agents of `roles` to the app; they share one runtime (pool, model, vector store)."""
    shared = SharedRuntime(app.settings)
    for role in roles:
        REGISTER[role](app, shared)
    return shared
