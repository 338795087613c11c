"""Settings -> a Faust app and its topic handles (StreamsApp), built by a function: importing this module
builds nothing and reads no settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from imgdup.kafka.security import faust_credentials
from imgdup.settings import ALL_ROLES, Settings
from schemas import topics
from streams.transport import FAUST_FETCH_MAX_WAIT_MS, Transport


def consumer_group(settings: Settings) -> str:
    """One consumer group per set of roles: restarting or scaling the verifiers never makes the
    image workers rebalance. All roles in one process share the base id."""
    roles = sorted(settings.worker_roles)
    if roles == sorted(ALL_ROLES):
        return settings.app_id
    return f"{settings.app_id}.{'+'.join(roles)}"


class App(faust.App):
    """faust.App whose Kafka consumer waits at most `fetch_max_wait_ms` per fetch
    (streams.transport)."""

    fetch_max_wait_ms: int = FAUST_FETCH_MAX_WAIT_MS

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


def create_app(settings: Settings) -> faust.App:
    app = App(
        consumer_group(settings),
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers().split(",")],
        # TLS and SASL for every consumer and producer Faust makes (imgdup.kafka.security).
        broker_credentials=faust_credentials(settings),
        # The local broker (tansu) supports neither idempotent producers nor transactions, so
        # delivery is at-least-once and every sink is idempotent (see README "Guarantees").
        processing_guarantee="at_least_once",
        # Group joins wait half the session timeout; short values keep restarts and tests quick.
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=False,  # topics are created by `imgdup topics` with their counts
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        # Faust's own JSON would add "__faust" metadata; payloads are our pydantic models.
        value_serializer="raw",
        key_serializer="raw",
        stream_wait_empty=False,
        # Faust's own state folder (it keeps none we use): under the data dir, not the cwd.
        datadir=str(settings.data_dir / "faust"),
    )
    app.fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
    return app


@dataclass(frozen=True)
class Topics:
    """The Faust handles of every topic a worker reads or writes (names from schemas.topics)."""

    ad_images_in: faust.TopicT  # live and replayed ad events, read through one channel
    ad_images_created: faust.TopicT  # each of the two, to publish to (re-drive)
    ad_images_replay: faust.TopicT
    image_candidates: faust.TopicT
    pairs_verified: faust.TopicT
    duplicates: faust.TopicT
    cluster_changes: faust.TopicT
    dead_letters: faust.TopicT


@dataclass(frozen=True)
class StreamsApp:
    settings: Settings
    faust: faust.App
    topics: Topics


def build_app(settings: Settings) -> StreamsApp:
    app = create_app(settings)

    def topic(*specs: topics.TopicSpec) -> faust.TopicT:
        names = [spec.name for spec in specs]
        if len(specs) > 1:  # a channel over several topics has no partition count of its own
            return app.topic(*names, key_serializer="raw", value_serializer="raw")
        partitions = topics.partitions_of(specs[0], settings.topic_partitions)
        return app.topic(*names, partitions=partitions, key_serializer="raw", value_serializer="raw")

    return StreamsApp(
        settings=settings,
        faust=app,
        topics=Topics(
            ad_images_in=topic(topics.AD_IMAGES_CREATED, topics.AD_IMAGES_REPLAY),
            ad_images_created=topic(topics.AD_IMAGES_CREATED),
            ad_images_replay=topic(topics.AD_IMAGES_REPLAY),
            image_candidates=topic(topics.IMAGE_CANDIDATES),
            pairs_verified=topic(topics.PAIRS_VERIFIED),
            duplicates=topic(topics.DUPLICATES),
            cluster_changes=topic(topics.CLUSTER_CHANGES),
            dead_letters=topic(topics.DEAD_LETTERS),
        ),
    )
