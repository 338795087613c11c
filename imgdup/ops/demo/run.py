"""Settings -> `imgdup demo`: the stack fed with the sample feed through the API, then a scored summary."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx

from imgdup.ops.demo.evaluate import PairScore, pairs_from_clusters, score_pairs
from imgdup.ops.demo.feed import DemoFeed, build_demo_feed
from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.embedded import StackError, port_open
from imgdup.settings import Settings


class StatusLine:
    """One updating line on a terminal; on a pipe or a log, a new line only when it changes."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = ""

    def show(self, text: str) -> None:
        if text == self.last:
            return
        self.last = text
        if self.tty:
            print(f"\r{text}   ", end="", flush=True)
        else:
            print(text, flush=True)

    def done(self) -> None:
        if self.tty:
            print()


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / max(1, total))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def post_feed(client: httpx.Client, api_url: str, feed: DemoFeed, server: LoopbackImageServer) -> list[str]:
    event_ids: list[str] = []
    line = StatusLine()
    for number, ad in enumerate(feed.ads, start=1):
        body: dict[str, Any] = {
            "ad_id": ad.ad_id,
            "source": ad.source,
            "category": ad.category,
            "seller_id": ad.seller_id,
            "images": [server.url_for(f"images/{image.name}") for image in ad.images],
        }
        response = client.post(f"{api_url}/api/v1/image/ingest", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"ingest of ad {ad.ad_id} failed: {response.status_code} {response.text}")
        event_ids.append(response.json()["event_id"])
        if line.tty or number == len(feed.ads):
            line.show(f"  posting ads {_bar(number, len(feed.ads))}")
    line.done()
    return event_ids


def wait_until_processed(client: httpx.Client, api_url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    line = StatusLine()
    while True:
        progress: dict[str, Any] = client.get(f"{api_url}/api/v1/progress").json()
        total = sum(
            progress[k] for k in ("events_accepted", "events_processing", "events_indexed", "events_dead")
        )
        finished = progress["events_indexed"] + progress["events_dead"]
        pairs_open = progress["pairs_candidate"] + progress["pairs_verified"]
        line.show(f"  processing  {_bar(finished, total)} events, {pairs_open} pairs in verification")
        if progress["unfinished"] == 0:
            line.done()
            return progress
        if time.monotonic() > deadline:
            line.done()
            raise TimeoutError(f"not processed within {timeout}s: {progress}")
        time.sleep(0.5)


def score_demo(client: httpx.Client, api_url: str, feed: DemoFeed) -> tuple[PairScore, list[list[str]]]:
    clusters: list[list[str]] = []
    offset = 0
    while True:
        page = client.get(f"{api_url}/api/v1/clusters", params={"limit": 200, "offset": offset}).json()
        for cluster in page["clusters"]:
            clusters.append([image["url"].rsplit("/", 1)[-1] for image in cluster["images"]])
        offset += len(page["clusters"])
        if offset >= page["total"] or not page["clusters"]:
            break
    return score_pairs(feed.truth_pairs(), pairs_from_clusters(clusters)), clusters


# The image URLs include the server's port; a stable port keeps them the same from one run to the
# next, so re-running the demo on the same data dir finds its events already accepted.
DEMO_IMAGE_PORT = 8765


def _image_server(root: Path) -> LoopbackImageServer:
    port = DEMO_IMAGE_PORT if not port_open("127.0.0.1", DEMO_IMAGE_PORT) else 0
    if port == 0:
        print(f"  port {DEMO_IMAGE_PORT} is busy: serving the photos on another port (new URLs)")
    return LoopbackImageServer(root, port=port)


def run_demo(settings: Settings, *, exit_when_done: bool, timeout: float) -> int:
    from imgdup.ops.supervisor import Stack

    demo_dir = settings.data_dir / "demo"
    print(f"building the sample feed in {demo_dir} ...")
    feed = build_demo_feed(demo_dir)
    images = feed.images()
    print(f"  {len(feed.ads)} ads, {len(images)} images, {len(feed.truth_pairs())} true duplicate pairs")
    # The demo's image server is on loopback, which the SSRF guard refuses unless allowed.
    stack = Stack(settings, extra_env={"IMGDUP_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32"})
    try:
        with _image_server(demo_dir) as server:
            stack.start()
            # The demo runs open unless credentials are configured; then it uses the API token.
            token = settings.api_token.get_secret_value() if settings.api_token else None
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            with httpx.Client(timeout=30, headers=headers) as client:
                started = time.monotonic()
                post_feed(client, stack.api_url, feed, server)
                progress = wait_until_processed(client, stack.api_url, timeout)
                elapsed = time.monotonic() - started
                score, clusters = score_demo(client, stack.api_url, feed)
            print_summary(feed, progress, score, clusters, elapsed)
            if not exit_when_done:
                print(f"API running at {stack.api_url} (docs: {stack.api_url}/docs). Ctrl-C to stop.")
                stack.serve_forever()
    except (StackError, TimeoutError, RuntimeError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping ...")
        stack.stop()
    return 0


def print_summary(
    feed: DemoFeed,
    progress: dict[str, Any],
    score: PairScore,
    clusters: list[list[str]],
    elapsed: float,
) -> None:
    print()
    print("demo summary")
    print(f"  ads             {len(feed.ads)}")
    print(f"  images          {len(feed.images())}")
    print(
        f"  events          {progress['events_indexed']} processed, {progress['events_dead']} dead-lettered"
    )
    print(
        f"  pairs           {progress['pairs_clustered']} duplicates, {progress['pairs_rejected']} rejected"
        " by verification"
    )
    print(f"  clusters        {len(clusters)}")
    print(
        f"  vs truth        precision {score.precision:.3f}  recall {score.recall:.3f}"
        f"  (TP {score.true_positives}, FP {score.false_positives}, FN {score.false_negatives})"
    )
    print(f"  time            {elapsed:.1f}s from first post to all processed")
