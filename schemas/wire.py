"""Event models and keys -> the bytes on the wire (JSON, UTF-8; keys as text): the one encoding every
producer uses, Faust agents and the confluent-kafka publisher alike."""

from __future__ import annotations

from pydantic import BaseModel


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()


def encode_key(key: int | str) -> bytes:
    """Ad ids and pair ids as their text, so any consumer can read the key without a schema."""
    return str(key).encode()
