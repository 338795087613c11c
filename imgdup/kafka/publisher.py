"""Events -> Kafka messages via confluent-kafka, acknowledged by the broker before returning."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer


class PublishError(RuntimeError):
    pass


class EventPublisher:
    """A thread-safe confluent-kafka producer with an asyncio-friendly `publish`.

    `partitioner=murmur2_random` hashes keys the way Java clients and aiokafka (Faust) do, so
    an ad's events land on the same partition whoever produced them. `security` is
    `imgdup.kafka.security.confluent_config(settings)`: required, so that no caller forgets it.
    """

    def __init__(self, bootstrap: str, *, security: Mapping[str, str], client_id: str = "imgdup-api") -> None:
        self._producer: Producer | None = Producer(
            {
                **security,
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "partitioner": "murmur2_random",
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 15000,
            }
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

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
                    done.set_exception(PublishError(str(err)))
                else:
                    done.set_result(None)

            loop.call_soon_threadsafe(settle)

        producer = self._open()
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
            raise PublishError(f"not delivered: {errors or remaining}")

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._poller.join(timeout)
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(timeout)
        # The last reference goes now, so librdkafka's handle and its threads are destroyed
        # here (no reconnect attempts logged later), not whenever the collector gets to it.
        del producer
