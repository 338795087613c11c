"""Events -> Kafka messages via confluent-kafka, acknowledged by the broker before returning."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, Message, Producer


class PublishError(RuntimeError):
    pass


class EventPublisher:
    """A thread-safe confluent-kafka producer with an asyncio-friendly `publish`.

    `partitioner=murmur2_random` hashes keys the way Java clients and aiokafka (Faust) do, so
    an ad's events land on the same partition whoever produced them.
    """

    def __init__(self, bootstrap: str, *, client_id: str = "imgdup-api") -> None:
        self._producer = Producer(
            {
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
        while not self._stop.is_set():
            self._producer.poll(0.1)

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

        try:
            self._producer.produce(
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
        self._producer.produce(topic, key=key, value=value, on_delivery=lambda err, _m: errors.append(err))
        remaining = self._producer.flush(timeout)
        if remaining or any(e is not None for e in errors):
            raise PublishError(f"not delivered: {errors or remaining}")

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._poller.join(timeout)
        self._producer.flush(timeout)
