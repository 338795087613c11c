"""Events -> Kafka messages via confluent-kafka, acknowledged by the broker before returning."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from imgdup.kafka.security import LOGIN_HINT, TLS_HINT

log = logging.getLogger(__name__)

# The broker's refusals: trying again cannot help until the settings (or the broker) change.
REFUSALS = {
    KafkaError._AUTHENTICATION: ("login refused", LOGIN_HINT),
    KafkaError._SSL: ("TLS handshake failed", TLS_HINT),
}
# librdkafka reconnects at least every reconnect.backoff.max.ms (10 s) and reports each refusal:
# one this recent still holds, so publishing fails at once with it instead of after 15 s.
REFUSAL_HOLDS_S = 15.0
# The same error is logged at most once per this long (librdkafka reports one per reconnect).
LOG_EVERY_S = 60.0


class PublishError(RuntimeError):
    pass


class EventPublisher:
    """A thread-safe confluent-kafka producer with an asyncio-friendly `publish`.

    `partitioner=murmur2_random` hashes keys the way Java clients and aiokafka (Faust) do, so
    an ad's events land on the same partition whoever produced them. `security` is
    `imgdup.kafka.security.confluent_config(settings)`: required, so that no caller forgets it.
    """

    def __init__(self, bootstrap: str, *, security: Mapping[str, str], client_id: str = "imgdup-api") -> None:
        self._bootstrap = bootstrap
        self._refusal: tuple[float, str] | None = None  # when and why the broker last refused us
        self._logged: dict[int, float] = {}
        config: dict[str, Any] = {
            **security,
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "partitioner": "murmur2_random",
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 15000,
            # librdkafka's own log prints a line per reconnect (every ~50 ms while a login is
            # refused); its errors come to _on_error instead, and are logged once a minute.
            "log_level": 0,
            "error_cb": self._on_error,
        }
        self._producer: Producer | None = Producer(config)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _on_error(self, err: KafkaError) -> None:
        """On the poll thread: remember a refusal, log each kind of error at most once a minute."""
        refused = REFUSALS.get(err.code())
        if refused is not None:
            what, hint = refused
            self._refusal = (
                time.monotonic(),
                f"Kafka broker at {self._bootstrap}: {what}: {err.str()}; {hint}",
            )
            message = self._refusal[1]
        else:
            message = f"Kafka producer: {err.str()}"
        now = time.monotonic()
        if now - self._logged.get(err.code(), -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[err.code()] = now
            log.warning("%s", message)

    def _refused(self) -> str | None:
        refusal = self._refusal
        if refusal is not None and time.monotonic() - refusal[0] < REFUSAL_HOLDS_S:
            return refusal[1]
        return None

    def _poll(self) -> None:
        producer = self._producer
        while producer is not None and not self._stop.is_set():
            producer.poll(0.1)

    def _open(self) -> Producer:
        if self._producer is None:
            raise PublishError("publisher is closed")
        return self._producer

    async def publish(
        self, topic: str, *, key: bytes, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is not None:
                    done.set_exception(PublishError(self._refused() or str(err)))
                else:
                    done.set_result(None)

            loop.call_soon_threadsafe(settle)

        producer = self._open()
        refused = self._refused()
        if refused is not None:
            raise PublishError(refused)
        try:
            producer.produce(
                topic,
                key=key,
                value=value,
                headers=list((headers or {}).items()),
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            raise PublishError(f"producer queue full: {exc}") from exc
        await done

    def publish_sync(self, topic: str, *, key: bytes, value: bytes, timeout: float = 15.0) -> None:
        errors: list[Any] = []
        producer = self._open()
        producer.produce(topic, key=key, value=value, on_delivery=lambda err, _m: errors.append(err))
        remaining = producer.flush(timeout)
        if remaining or any(e is not None for e in errors):
            raise PublishError(self._refused() or f"not delivered: {errors or remaining}")

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._poller.join(timeout)
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(timeout)
        # The last reference goes now, so librdkafka's handle and its threads are destroyed
        # here (no reconnect attempts logged later), not whenever the collector gets to it.
        del producer
