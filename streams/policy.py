"""A Kafka message + an agent's step -> the step's outputs published, or a dead letter with a reason: the
one error policy of every agent (parse, dead-letter, retry, publish, ack), as in quix-streams'
error callbacks and bytewax's ok/err streams. Also the one error policy of the agents' periodic
re-drive rounds (`redrive_round`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import faust
from pydantic import BaseModel, ValidationError

from imgdup.store.transient import TRANSIENT_ERRORS
from schemas import DeadLetterV1
from schemas.wire import encode, encode_key
from streams.deadletter import dead_letter

log = logging.getLogger(__name__)
In = TypeVar("In")
M = TypeVar("M", bound=BaseModel)


class MessageRejected(Exception):
    """The message itself is bad (not the world): it is dead-lettered and never retried."""

    def __init__(
        self,
        reason: str,
        detail: str | None = None,
        *,
        error: BaseException | None = None,
        event_id: str | None = None,
        ad_id: int | None = None,
    ) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail
        self.error = error
        self.event_id = event_id
        self.ad_id = ad_id


def model_decoder(model: type[M], reason: str) -> Callable[[bytes | None], M]:
    """A message value -> `model`, or MessageRejected(reason) carrying the validation error."""

    def decode(value: bytes | None) -> M:
        try:
            return model.model_validate_json(value or b"")
        except ValidationError as exc:
            raise MessageRejected(reason, error=exc) from exc

    return decode


@dataclass(frozen=True)
class Outgoing:
    topic: faust.TopicT
    key: str
    value: BaseModel
    headers: dict[str, bytes] | None = None


@dataclass(frozen=True)
class Rejection:
    """A part of a message that failed on its own (one image of an ad): dead-lettered with its reason
    while the rest of the message is processed."""

    reason: str
    detail: str
    event_id: str | None = None
    ad_id: int | None = None
    image_url: str | None = None


@dataclass
class StepOutput:
    """What a step hands back: records to publish, partial failures to dead-letter, and what to do
    once every record is acknowledged by the broker (e.g. mark the event done)."""

    send: Sequence[Outgoing] = ()
    rejections: Sequence[Rejection] = ()
    then: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Identity:
    event_id: str | None = None
    ad_id: int | None = None


@dataclass(frozen=True)
class MessagePolicy(Generic[In]):
    """How one agent treats a message.

    decode: raises MessageRejected for a bad message (dead-lettered, never retried).
    run: the step; transient database errors are retried inside it (imgdup.store.transient), so
        any exception out of it is a processing failure, dead-lettered as `failure_reason`.
    identify: event and ad ids that a dead letter carries for a decoded message.
    on_dead: told of every dead-lettered message (decoded or not), e.g. to record the event dead.
    Publishing errors are not the message's fault: they propagate, the message stays un-acked and
    is delivered again (streams.runtime.for_each_message).
    """

    dead_letters: faust.TopicT
    decode: Callable[[bytes | None], In]
    run: Callable[[In], Awaitable[StepOutput]]
    failure_reason: str
    identify: Callable[[In], Identity] = field(default=lambda _item: Identity())
    on_dead: Callable[[DeadLetterV1, In | None], Awaitable[None]] | None = None


async def handle(policy: MessagePolicy[In], message: Any) -> None:
    """One message in, never a bad message's exception out."""
    try:
        item = policy.decode(message.value)
    except MessageRejected as rejected:
        record = await dead_letter(
            policy.dead_letters,
            message,
            reason=rejected.reason,
            error=rejected.error,
            detail=rejected.detail,
            event_id=rejected.event_id,
            ad_id=rejected.ad_id,
        )
        if policy.on_dead is not None:
            await policy.on_dead(record, None)
        return
    try:
        output = await policy.run(item)
    except Exception as exc:
        who = policy.identify(item)
        log.exception(
            "%s: %s failed (event %s, ad %s)", message.topic, policy.failure_reason, who.event_id, who.ad_id
        )
        record = await dead_letter(
            policy.dead_letters,
            message,
            reason=policy.failure_reason,
            error=exc,
            event_id=who.event_id,
            ad_id=who.ad_id,
        )
        if policy.on_dead is not None:
            await policy.on_dead(record, item)
        return
    for part in output.rejections:
        await dead_letter(
            policy.dead_letters,
            message,
            reason=part.reason,
            detail=part.detail,
            event_id=part.event_id,
            ad_id=part.ad_id,
            image_url=part.image_url,
        )
    # Every delivery confirmed before `then`; one round trip for all of them, not one each.
    sent = [
        await out.topic.send(key=encode_key(out.key), value=encode(out.value), headers=out.headers)
        for out in output.send
    ]
    await asyncio.gather(*sent)
    if output.then is not None:
        await output.then()


async def for_each_message(stream: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
    """Run `handle` on each message and ack it only once `handle` returned.

    Faust's default iteration acks the current event in a `finally` block, so a step cancelled
    half-way (SIGTERM, rebalance) would have its offset committed and its work lost. With acks
    taken over here, a cancelled step leaves its message un-acked and it is delivered again.
    """
    acking = stream.noack()
    async for event in acking.events():
        await handle(event.message)
        await acking.ack(event)


async def redrive_round(what: str, done: str, body: Callable[[], Awaitable[int]]) -> int:
    """One round of a periodic re-drive timer: `body` re-publishes and says how many. Never raises:
    a failed round is logged and tried again next period, and the worker's own processing goes on."""
    try:
        count = await body()
    except TRANSIENT_ERRORS as exc:
        log.warning("re-drive of %s skipped this round: %s", what, exc)
        return 0
    except Exception:
        log.exception("re-drive of %s failed this round", what)
        return 0
    if count:
        log.warning("re-drove %d %s", count, done)
    return count
