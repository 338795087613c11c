"""Request + settings -> allowed or 401: the bearer token that guards every write endpoint."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from imgdup.settings import Settings


def token_guard(settings: Settings):  # type: ignore[no-untyped-def]
    """A FastAPI dependency: with IMGDUP_API_TOKEN set, writes need `Authorization: Bearer <token>`."""

    def require_token(request: Request) -> None:
        expected = settings.api_token
        if expected is None:
            return
        supplied = request.headers.get("authorization", "")
        scheme, _, token = supplied.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.get_secret_value().encode()
        ):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong API token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_token
