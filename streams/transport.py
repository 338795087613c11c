"""Faust's aiokafka transport with the consumer's fetch wait taken from settings (Faust fixes it at 1,500 ms).

A fetch asks the broker to hold the request until data arrives or the wait runs out. Apache Kafka
answers as soon as a record lands, so the wait only bounds idle polling; tansu (the embedded
broker) answers only when the wait runs out, which made every topic hop cost up to 1.5 s
(measured: produce -> aiokafka consume median 484 ms at 1,500 ms, 14 ms at 100 ms). A short
wait costs an idle consumer a few empty fetches a second on either broker."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers import aiokafka as driver

# What faust.transport.drivers.aiokafka passes to every worker consumer.
FAUST_FETCH_MAX_WAIT_MS = 1500


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_consumer(self, loop: asyncio.AbstractEventLoop) -> Any:
        consumer = super()._create_consumer(loop)
        # aiokafka reads it when the consumer starts (AIOKafkaConsumer.start -> Fetcher).
        consumer._fetch_max_wait_ms = int(getattr(self.app, "fetch_max_wait_ms", FAUST_FETCH_MAX_WAIT_MS))
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer
