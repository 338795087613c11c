"""streams.policy.handle with a fake message and fake topics (no Kafka): a bad message, a failing step, a
partly failed message and a publish error each end the way the one error policy says."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from schemas import DeadLetterV1, ImageRef
from streams.policy import (
    Identity,
    MessagePolicy,
    MessageRejected,
    Outgoing,
    Rejection,
    StepOutput,
    handle,
    model_decoder,
)


@dataclass
class Message:
    value: bytes | None
    key: bytes | None = b"42"
    topic: str = "in.topic"
    partition: int = 3
    offset: int = 17


@dataclass
class Topic:
    """Records every send; a send's future resolves at once, or fails when told to."""

    sent: list[tuple[bytes | None, bytes, dict[str, bytes] | None]] = field(default_factory=list)
    fail: bool = False

    async def send(self, *, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(ConnectionError("broker gone"))
        else:
            self.sent.append((key, value, headers))
            future.set_result(None)
        return future


def _letters(topic: Topic) -> list[DeadLetterV1]:
    return [DeadLetterV1.model_validate_json(value) for _, value, _ in topic.sent]


def _policy(dead: Topic, run: Any, **options: Any) -> MessagePolicy[ImageRef]:
    return MessagePolicy(
        dead_letters=dead,  # type: ignore[arg-type]
        decode=model_decoder(ImageRef, "invalid_ref"),
        run=run,
        failure_reason="step_error",
        **options,
    )


async def test_a_bad_message_is_dead_lettered_with_its_reason_and_the_step_never_runs() -> None:
    dead, ran, told = Topic(), [], []

    async def run(_: ImageRef) -> StepOutput:
        ran.append(1)
        return StepOutput()

    async def on_dead(record: DeadLetterV1, item: ImageRef | None) -> None:
        told.append((record.reason, item))

    await handle(_policy(dead, run, on_dead=on_dead), Message(b"{not json"))

    [letter] = _letters(dead)
    assert (letter.reason, letter.error_class) == ("invalid_ref", "ValidationError")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("in.topic", 3, 17)
    assert letter.original_value == "{not json"
    assert dead.sent[0][0] == b"42"  # the original key
    assert dead.sent[0][2] is not None and dead.sent[0][2]["imgdup-reason"] == b"invalid_ref"
    assert ran == [] and told == [("invalid_ref", None)]


async def test_a_rejection_raised_by_the_decoder_keeps_its_ids() -> None:
    dead = Topic()

    def decode(_: bytes | None) -> ImageRef:
        raise MessageRejected("too_many_images", "51 images > 50", event_id="evt-1", ad_id=7)

    policy: MessagePolicy[ImageRef] = MessagePolicy(
        dead_letters=dead,  # type: ignore[arg-type]
        decode=decode,
        run=lambda _: asyncio.sleep(0, StepOutput()),
        failure_reason="step_error",
    )
    await handle(policy, Message(b"{}"))
    [letter] = _letters(dead)
    assert (letter.reason, letter.message, letter.error_class) == (
        "too_many_images",
        "51 images > 50",
        "Rejected",
    )
    assert (letter.event_id, letter.ad_id) == ("evt-1", 7)


async def test_a_failing_step_is_dead_lettered_as_the_steps_failure_and_reported() -> None:
    dead, told = Topic(), []

    async def run(_: ImageRef) -> StepOutput:
        raise LookupError("image not indexed")

    async def on_dead(record: DeadLetterV1, item: ImageRef | None) -> None:
        told.append((record.reason, item))

    policy = _policy(dead, run, on_dead=on_dead, identify=lambda ref: Identity("evt-9", ref.ad_id))
    await handle(policy, Message(json.dumps({"image_id": "i", "ad_id": 5}).encode()))

    [letter] = _letters(dead)
    assert (letter.reason, letter.error_class, letter.message) == (
        "step_error",
        "LookupError",
        "image not indexed",
    )
    assert (letter.event_id, letter.ad_id) == ("evt-9", 5)
    assert told == [("step_error", ImageRef(image_id="i", ad_id=5))]


async def test_partial_failures_go_first_then_every_record_then_the_final_write() -> None:
    dead, out, order = Topic(), Topic(), []

    async def then() -> None:
        order.append(("then", len(out.sent), len(dead.sent)))

    async def run(ref: ImageRef) -> StepOutput:
        return StepOutput(
            send=[Outgoing(out, "5", ref), Outgoing(out, "5", ref, headers={"h": b"1"})],  # type: ignore[arg-type]
            rejections=[
                Rejection("http_404", "gone", event_id="evt-1", ad_id=5, image_url="https://x/1.jpg")
            ],
            then=then,
        )

    await handle(_policy(dead, run), Message(json.dumps({"image_id": "i", "ad_id": 5}).encode()))

    [letter] = _letters(dead)
    assert (letter.reason, letter.image_url, letter.event_id) == ("http_404", "https://x/1.jpg", "evt-1")
    assert [ImageRef.model_validate_json(value) for _, value, _ in out.sent] == [
        ImageRef(image_id="i", ad_id=5)
    ] * 2
    assert out.sent[0][0] == b"5" and out.sent[1][2] == {"h": b"1"}
    assert order == [("then", 2, 1)]  # after every record was acknowledged


async def test_a_publish_error_is_not_the_messages_fault_it_propagates_and_nothing_is_dead_lettered() -> None:
    dead, out, finished = Topic(), Topic(fail=True), []

    async def then() -> None:
        finished.append(1)

    async def run(ref: ImageRef) -> StepOutput:
        return StepOutput(send=[Outgoing(out, "5", ref)], then=then)  # type: ignore[arg-type]

    with pytest.raises(ConnectionError):
        await handle(_policy(dead, run), Message(json.dumps({"image_id": "i", "ad_id": 5}).encode()))
    assert dead.sent == [] and finished == []
