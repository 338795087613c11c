"""Consumes imgdup.ops.demo (feed builder, loopback server, pair scoring); checks its contract."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imgdup.ops.demo.evaluate import PairScore, pairs_from_clusters, score_pairs
from imgdup.ops.demo.feed import DemoFeed, build_demo_feed, load_demo_feed
from imgdup.ops.demo.image_server import LoopbackImageServer


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoFeed]:
    out = tmp_path_factory.mktemp("demo")
    return out, build_demo_feed(out)


def test_feed_shape(built: tuple[Path, DemoFeed]) -> None:
    out, feed = built
    images = feed.images()
    names = [im.name for im in images]
    assert len(names) == len(set(names)), "image names must be unique"
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(names)
    assert (out / "feed.json").is_file()

    ad_ids = [ad.ad_id for ad in feed.ads]
    assert len(ad_ids) == len(set(ad_ids))
    assert all(0 < ad_id < 2**63 for ad_id in ad_ids)
    assert {ad.source for ad in feed.ads} == {"olx.pt", "olx.pl"}
    assert any(len(ad.images) > 1 for ad in feed.ads)

    groups = Counter(im.group for im in images)
    originals = [im for im in images if im.edit == "original"]
    assert len(originals) == len(groups), "every group has exactly one original"
    duplicated = [g for g, n in groups.items() if n > 1]
    negatives = [g for g, n in groups.items() if n == 1]
    assert len(duplicated) >= 10
    assert all(3 <= groups[g] <= 4 for g in duplicated)  # original + 2-3 copies
    assert len(negatives) >= 5
    assert {"motorcycle_left", "motorcycle_right"} <= set(negatives)
    edits = {im.edit for im in images}
    expected = {"resize", "flip", "crop10", "watermark", "brightness", "contrast", "jpeg"}
    assert expected | {"original", "flip_resize"} <= edits

    for name in names:
        with Image.open(out / "images" / name) as img:
            assert img.format == "JPEG"
            assert img.mode == "RGB"
            assert max(img.size) <= 800


def test_truth_pairs_consistent(built: tuple[Path, DemoFeed]) -> None:
    _, feed = built
    group_of = {im.name: im.group for im in feed.images()}
    ad_of = {im.name: ad.ad_id for ad in feed.ads for im in ad.images}
    truth = feed.truth_pairs()
    assert truth
    for pair in truth:
        a, b = sorted(pair)
        assert group_of[a] == group_of[b]
        assert ad_of[a] != ad_of[b]
    # Completeness: every same-group, different-ad pair is in the truth.
    expected = pairs_from_clusters([n for n in group_of if group_of[n] == g] for g in set(group_of.values()))
    assert truth == expected
    # No ad carries two images of one group.
    for ad in feed.ads:
        ad_groups = [im.group for im in ad.images]
        assert len(ad_groups) == len(set(ad_groups))
    # Copies are posted by other sellers than the original.
    seller_of_original = {
        im.group: ad.seller_id for ad in feed.ads for im in ad.images if im.edit == "original"
    }
    for ad in feed.ads:
        for im in ad.images:
            if im.edit != "original":
                assert ad.seller_id != seller_of_original[im.group]


def test_build_is_deterministic_and_idempotent(built: tuple[Path, DemoFeed], tmp_path: Path) -> None:
    out, feed = built
    first = _tree_bytes(out)
    again = build_demo_feed(tmp_path)
    assert again == feed
    assert _tree_bytes(tmp_path) == first
    (tmp_path / "images" / "left_over.jpg").write_bytes(b"stale")
    build_demo_feed(tmp_path)  # rebuild in place: same bytes, stale JPEGs removed
    assert _tree_bytes(tmp_path) == first
    assert load_demo_feed(tmp_path) == feed


def test_seed_changes_sellers_not_truth(built: tuple[Path, DemoFeed], tmp_path: Path) -> None:
    _, feed = built
    other = build_demo_feed(tmp_path, seed=8)
    assert other.truth_pairs() == feed.truth_pairs()
    assert [ad.seller_id for ad in other.ads] != [ad.seller_id for ad in feed.ads]


def test_loopback_server_serves_and_404s(built: tuple[Path, DemoFeed]) -> None:
    out, feed = built
    name = feed.ads[0].images[0].name
    with LoopbackImageServer(out / "images") as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        with httpx.Client(timeout=5.0) as client:
            ok = client.get(server.url_for(name))
            assert ok.status_code == 200
            assert ok.headers["content-type"] == "image/jpeg"
            assert ok.content == (out / "images" / name).read_bytes()
            missing = client.get(server.url_for("no_such_photo.jpg"))
            assert missing.status_code == 404
            listing = client.get(server.base_url + "/")
            assert listing.status_code == 404
            escape = client.get(server.base_url + "/../feed.json")
            assert escape.status_code == 404


def test_server_is_quiet(built: tuple[Path, DemoFeed], capfd: pytest.CaptureFixture[str]) -> None:
    out, feed = built
    with LoopbackImageServer(out / "images") as server:
        httpx.get(server.url_for(feed.images()[0].name), timeout=5.0)
        httpx.get(server.url_for("missing.jpg"), timeout=5.0)
    captured = capfd.readouterr()
    assert captured.err == ""


def test_score_pairs_arithmetic() -> None:
    truth = {frozenset(("a", "b")), frozenset(("a", "c")), frozenset(("b", "c"))}
    predicted = {frozenset(("a", "b")), frozenset(("c", "d"))}
    assert score_pairs(truth, predicted) == PairScore(
        true_positives=1, false_positives=1, false_negatives=2, precision=0.5, recall=1 / 3
    )
    empty = score_pairs(truth, set())
    assert (empty.precision, empty.recall, empty.false_negatives) == (1.0, 0.0, 3)
    perfect = score_pairs(truth, set(truth))
    assert (perfect.precision, perfect.recall) == (1.0, 1.0)
    assert score_pairs(set(), set()).recall == 1.0


def test_pairs_from_clusters() -> None:
    pairs = pairs_from_clusters([["a", "b", "c"], ["d"], ("e", "f", "e"), []])
    assert pairs == {
        frozenset(("a", "b")),
        frozenset(("a", "c")),
        frozenset(("b", "c")),
        frozenset(("e", "f")),
    }
