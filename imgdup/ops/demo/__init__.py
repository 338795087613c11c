"""Consumes bundled real photos and produces a demo ad feed, a loopback server, pair scores."""

from imgdup.ops.demo.evaluate import PairScore, pairs_from_clusters, score_pairs
from imgdup.ops.demo.feed import DemoAd, DemoFeed, DemoImage, build_demo_feed, load_demo_feed
from imgdup.ops.demo.image_server import LoopbackImageServer

__all__ = [
    "DemoAd",
    "DemoFeed",
    "DemoImage",
    "LoopbackImageServer",
    "PairScore",
    "build_demo_feed",
    "load_demo_feed",
    "pairs_from_clusters",
    "score_pairs",
]
