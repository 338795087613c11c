"""Consumes streams.liveness.CommitProgress: the heartbeat snapshot counts messages per topic."""

from __future__ import annotations

from faust.types import TP

from streams.liveness import CommitProgress


def test_the_snapshot_counts_messages_per_topic() -> None:
    progress = CommitProgress()
    assert progress.snapshot(60.0)["messages_in"] == {}
    for tp in (TP("ad.images.created", 0), TP("ad.images.created", 3), TP("imgdup.pairs", 1)):
        progress.on_message_in(tp, 7, None)
    snapshot = progress.snapshot(60.0)
    assert snapshot["messages_in"] == {"ad.images.created": 2, "imgdup.pairs": 1}
    assert snapshot["last_message_in"] > 0
