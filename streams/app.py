"""Settings -> the Faust app and its topic handles (agents import both from here)."""

from __future__ import annotations

from typing import Any

import faust

from imgdup.settings import ALL_ROLES, Settings, get_settings
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
    )
    app.fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
    return app


settings = get_settings()
app = create_app(settings)


def _topic(spec: topics.TopicSpec) -> faust.TopicT:
    return app.topic(
        spec.name,
        partitions=topics.partitions_of(spec, settings.topic_partitions),
        key_serializer="raw",
        value_serializer="raw",
    )


ad_images_created = _topic(topics.AD_IMAGES_CREATED)
ad_images_replay = _topic(topics.AD_IMAGES_REPLAY)
image_candidates = _topic(topics.IMAGE_CANDIDATES)
pairs_verified = _topic(topics.PAIRS_VERIFIED)
duplicates = _topic(topics.DUPLICATES)
dead_letters = _topic(topics.DEAD_LETTERS)
# The images agent reads live and replayed events through one channel.
ad_images_in = app.topic(
    topics.AD_IMAGES_CREATED.name,
    topics.AD_IMAGES_REPLAY.name,
    key_serializer="raw",
    value_serializer="raw",
)
