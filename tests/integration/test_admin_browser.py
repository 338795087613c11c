"""The admin side on the real stack: statistics, moderator verdicts, access control over the real
server (uvicorn), and the admin page in a real browser (Debian's chromium driven by Playwright): it
logs in, as a viewer (read-only) and as a moderator, over real photos clustered by the real pipeline."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from helpers.pipeline import wait_idle
from PIL import Image

from imgdup.http.auth import new_credential
from imgdup.ops.demo.image_server import LoopbackImageServer
from imgdup.ops.supervisor import Stack
from imgdup.store.db import open_pool
from imgdup.store.moderation import moderated_truth

if TYPE_CHECKING:
    from playwright.sync_api import Route

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "admin-e2e-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
VIEWER, VIEWER_ENTRY = new_credential("vera", "viewer")
MODERATOR, MODERATOR_ENTRY = new_credential("mia", "moderator")
# Reads need credentials too: every read here goes with the full-access token.
_get = functools.partial(httpx.get, headers=AUTH)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every <img> on the page decoded (a broken or missing thumbnail has naturalWidth 0).
IMAGES_LOADED = (
    "() => { const imgs = [...document.querySelectorAll('img')];"
    " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }"
)
# The admin page's own reload of the clusters (not a thumbnail, not the statistics).
ADMIN_CLUSTERS = re.compile(r"/api/v1/admin/clusters\?")
# A verdict's POST answers once the broker acked the review: seconds on a loaded 2-core CI box.
VERDICT_TIMEOUT_MS = 30_000
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
# `IMGDUP_UPDATE_DOCS_SCREENSHOT=1 pytest tests/integration/test_admin_browser.py` refreshes the
# README's screenshot; a plain run leaves tracked files alone.
DOCS_SCREENSHOT = REPO / "docs" / "admin.png"


@dataclass(frozen=True)
class Ad:
    ad_id: int
    source: str
    category: str | None
    seller_id: str
    images: tuple[str, ...]


# Originals first; the copies are posted once the originals are in, so "first seen" is known.
# seller-b re-posts two other sellers' photos (coffee and astronaut).
ORIGINALS = (
    Ad(9101, "olx.pt", "electronics", "seller-a", ("coffee.jpg", "rocket.jpg")),
    Ad(9104, "olx.pt", None, "seller-d", ("astronaut.jpg",)),
    Ad(9107, "olx.pt", "pets", "seller-f", ("chelsea.jpg",)),
)
COPIES = (
    Ad(9102, "olx.pl", "electronics", "seller-b", ("coffee_flip.jpg",)),
    Ad(9103, "olx.pt", "electronics", "seller-c", ("coffee_crop.jpg", "moto_left.jpg")),
    Ad(9105, "olx.pl", None, "seller-b", ("astronaut_wm.jpg", "moto_right.jpg")),
    Ad(9106, "olx.pl", None, "seller-e", ("astronaut_small.jpg",)),
    Ad(9108, "olx.pl", "pets", "seller-g", ("chelsea_bright.jpg",)),
)


@dataclass
class Running:
    api: str
    dsn: str


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    # Wrong credentials: 3 per address, refilled at one a second (the tests all come from loopback).
    return {
        "IMGDUP_API_TOKEN": TOKEN,
        "IMGDUP_API_CREDENTIALS": f"{VIEWER_ENTRY}\n{MODERATOR_ENTRY}",
        "IMGDUP_API_AUTH_FAILURES": "3",
        "IMGDUP_API_AUTH_FAILURE_WINDOW_S": "3",
    }


@pytest.fixture(scope="module")
def running(image_server: LoopbackImageServer, stack: Stack) -> Running:
    """The stack (helpers.photos.REPOSTED served) with the originals and then the copies processed."""
    for batch in (ORIGINALS, COPIES):
        for ad in batch:
            body = {
                "ad_id": ad.ad_id,
                "source": ad.source,
                "category": ad.category,
                "seller_id": ad.seller_id,
                "images": [image_server.url_for(name) for name in ad.images],
            }
            response = httpx.post(f"{stack.api_url}/api/v1/image/ingest", json=body, headers=AUTH, timeout=30)
            assert response.status_code == 202, response.text
        wait_idle(stack.api_url, headers=AUTH)
    return Running(stack.api_url, stack.dsn)


def _name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _admin_clusters(api: str, **params: Any) -> dict[str, Any]:
    response = _get(f"{api}/api/v1/admin/clusters", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _pair_between(api: str, name_x: str, name_y: str) -> dict[str, Any]:
    for cluster in _admin_clusters(api)["clusters"]:
        names = {image["image_id"]: _name(image["url"]) for image in cluster["images"]}
        for pair in cluster["pairs"]:
            if {names[pair["image_a"]], names[pair["image_b"]]} == {name_x, name_y}:
                found: dict[str, Any] = pair
                return found
    raise AssertionError(f"no pair {name_x} - {name_y}")


def _status_becomes(api: str, pair_id: str, status: str, timeout_s: float = 60) -> None:
    """Wait until the clusterer has applied a verdict (the pair's status), as loaded CI allows."""
    deadline = time.monotonic() + timeout_s
    while _get(f"{api}/api/v1/pairs/{pair_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"pair {pair_id} never became {status}"
        time.sleep(0.2)


def _dissolve_the_cats(api: str) -> None:
    """The state the browser test starts from, whatever ran before it: the cats' pair rejected by a
    moderator (rui's verdict of test_verdict_upsert_is_idempotent_latest_wins_and_rejections_are_used,
    the same one again: idempotent) and their cluster dissolved by the clusterer."""
    if _admin_clusters(api, ad_id=9107)["total"] == 0:
        return
    pair = _pair_between(api, "chelsea.jpg", "chelsea_bright.jpg")
    verdict = {"verdict": "not_duplicate", "moderator": "rui", "note": "two different cats"}
    response = httpx.post(f"{api}/api/v1/pairs/{pair['pair_id']}/verdict", json=verdict, headers=AUTH)
    assert response.status_code == 200, response.text
    _status_becomes(api, pair["pair_id"], "rejected")
    deadline = time.monotonic() + 60
    while _admin_clusters(api, ad_id=9107)["total"] != 0:
        assert time.monotonic() < deadline, "the cats' cluster was never dissolved"
        time.sleep(0.2)


# --------------------------------------------------------------------------- statistics


def test_stats_give_ratios_by_source_and_category_hosts_and_sellers(running: Running) -> None:
    stats = _get(f"{running.api}/api/v1/stats").json()
    assert stats["days"] == 30
    # 11 images indexed; the coffee (3), astronaut (3) and chelsea (2) copies are in clusters.
    assert stats["totals"] == {"images_indexed": 11, "images_in_clusters": 8, "ratio": 0.7273, "clusters": 3}
    assert len(stats["daily"]) == 1 and stats["daily"][0]["images_indexed"] == 11

    by_source = {s["source"]: (s["images_indexed"], s["images_in_clusters"]) for s in stats["by_source"]}
    assert by_source == {"olx.pt": (6, 4), "olx.pl": (5, 4)}
    assert stats["by_source"][0]["source"] == "olx.pl"  # highest ratio first
    assert stats["by_source"][0]["daily"][0]["ratio"] == 0.8
    by_category = {
        c["category"]: (c["images_indexed"], c["images_in_clusters"]) for c in stats["by_category"]
    }
    assert by_category == {"electronics": (5, 3), None: (4, 3), "pets": (2, 2)}

    assert stats["top_image_domains"] == [{"domain": "127.0.0.1", "images": 8, "clusters": 3, "ads": 8}]
    sellers = {s["seller_id"]: s for s in stats["top_sellers"]}
    assert stats["top_sellers"][0]["seller_id"] == "seller-b"
    assert sellers["seller-b"] == {"seller_id": "seller-b", "clusters": 2, "images": 2, "ads": 2, "copies": 2}
    assert sellers["seller-a"]["copies"] == 0 and sellers["seller-c"]["copies"] == 1
    assert "seller-x" not in sellers

    narrow = _get(f"{running.api}/api/v1/stats", params={"days": 1, "top": 1}).json()
    assert narrow["totals"]["images_indexed"] == 11 and len(narrow["top_sellers"]) == 1
    for bad in ({"days": 0}, {"days": 10_000}, {"days": "x"}, {"top": 0}):
        response = _get(f"{running.api}/api/v1/stats", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"] == "invalid_request"


# --------------------------------------------------------------------------- access, over the real server


def test_reads_need_credentials_and_the_right_role(running: Running) -> None:
    api = running.api
    for path in ("/api/v1/clusters", "/api/v1/stats", "/api/v1/admin/clusters", "/metrics", "/openapi.json"):
        response = httpx.get(f"{api}{path}")
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", path
    assert httpx.get(f"{api}/admin").status_code == 401  # the login form, no data
    assert httpx.get(f"{api}/livez").status_code == 200
    viewer = {"authorization": f"Bearer {VIEWER}"}
    stats = httpx.get(f"{api}/api/v1/stats", headers=viewer)
    assert stats.status_code == 200 and stats.json()["top_sellers"]
    assert httpx.get(f"{api}/metrics", headers=viewer).status_code == 403
    assert httpx.get(f"{api}/metrics", headers=AUTH).status_code == 200
    pair = _admin_clusters(api)["clusters"][0]["pairs"][0]
    verdict = {"verdict": "confirmed", "moderator": "vera"}
    url = f"{api}/api/v1/pairs/{pair['pair_id']}/verdict"
    assert httpx.post(url, json=verdict, headers=viewer).status_code == 403
    thumb = httpx.get(f"{api}/api/v1/images/{pair['image_a']}/thumbnail", headers=viewer)
    assert thumb.status_code == 200 and thumb.headers["cache-control"].startswith("private")
    assert httpx.get(f"{api}/api/v1/images/{pair['image_a']}/thumbnail").status_code == 401
    assert _get(f"{api}/api/v1/pairs/{pair['pair_id']}").json()["moderator_verdict"] is None


def test_wrong_credentials_are_throttled_whatever_x_forwarded_for_says(running: Running) -> None:
    """The API server does not take X-Forwarded-For from loopback (uvicorn's default would): each
    guess counts against this one address, and after 3 even the right token waits."""
    url = f"{running.api}/api/v1/progress"
    statuses = [
        httpx.get(
            url, headers={"authorization": f"Bearer guess-{n}", "x-forwarded-for": f"198.51.100.{n}"}
        ).status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    throttled = httpx.get(url, headers={**AUTH, "x-forwarded-for": "198.51.100.99"})
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) == 1  # the window refills one a second
    # The whole window, not just one guess: the other tests come from this address too.
    time.sleep(3.5)
    assert httpx.get(url, headers=AUTH).status_code == 200


# --------------------------------------------------------------------------- verdicts


def test_verdicts_need_the_token(running: Running) -> None:
    pair = _pair_between(running.api, "chelsea.jpg", "chelsea_bright.jpg")
    url = f"{running.api}/api/v1/pairs/{pair['pair_id']}/verdict"
    body = {"verdict": "confirmed", "moderator": "ana"}
    assert httpx.post(url, json=body).status_code == 401
    wrong = httpx.post(url, json=body, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert _get(f"{running.api}/api/v1/pairs/{pair['pair_id']}").json()["moderator_verdict"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"verdict": "maybe", "moderator": "ana"},
        {"verdict": "confirmed"},
        {"verdict": "confirmed", "moderator": "   "},
        {"verdict": "confirmed", "moderator": "ana", "note": "x" * 2001},
        {"verdict": "confirmed", "moderator": "ana", "extra": 1},
    ],
)
def test_a_bad_verdict_is_422(running: Running, body: dict[str, Any]) -> None:
    pair = _pair_between(running.api, "chelsea.jpg", "chelsea_bright.jpg")
    response = httpx.post(f"{running.api}/api/v1/pairs/{pair['pair_id']}/verdict", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


def test_unknown_or_malformed_pair_ids(running: Running) -> None:
    body = {"verdict": "confirmed", "moderator": "ana"}
    unknown = uuid.uuid4()
    assert (
        httpx.post(f"{running.api}/api/v1/pairs/{unknown}/verdict", json=body, headers=AUTH).status_code
        == 404
    )
    assert _get(f"{running.api}/api/v1/pairs/{unknown}").status_code == 404
    assert httpx.post(f"{running.api}/api/v1/pairs/nope/verdict", json=body, headers=AUTH).status_code == 422
    assert _get(f"{running.api}/api/v1/pairs/nope").status_code == 422


def test_verdict_upsert_is_idempotent_latest_wins_and_rejections_are_used(running: Running) -> None:
    api = running.api
    pair = _pair_between(api, "chelsea.jpg", "chelsea_bright.jpg")
    url = f"{api}/api/v1/pairs/{pair['pair_id']}/verdict"

    first = httpx.post(url, json={"verdict": "confirmed", "moderator": "ana"}, headers=AUTH).json()
    assert first["changed"] is True and first["verdict"] == "confirmed" and first["note"] is None
    again = httpx.post(url, json={"verdict": "confirmed", "moderator": " ana "}, headers=AUTH).json()
    assert again["changed"] is False and again["decided_at"] == first["decided_at"]
    latest = httpx.post(
        url, json={"verdict": "not_duplicate", "moderator": "rui", "note": "two different cats"}, headers=AUTH
    ).json()
    assert latest["changed"] is True and latest["verdict"] == "not_duplicate"

    detail = _get(f"{api}/api/v1/pairs/{pair['pair_id']}").json()
    assert detail["moderator_verdict"]["verdict"] == "not_duplicate"
    assert detail["moderator_verdict"]["moderator"] == "rui"
    assert detail["moderator_verdict"]["note"] == "two different cats"
    assert [h["verdict"] for h in detail["history"]] == ["confirmed", "not_duplicate"]
    assert detail["verifier_duplicate"] is True and detail["duplicate"] is False
    # The verdict reaches the clusterer (the single writer of clusters), which retracts the edge:
    # the cats' only pair, so their cluster is dissolved (docs/events.md).
    deadline = time.monotonic() + 60
    while detail["status"] != "rejected" and time.monotonic() < deadline:
        time.sleep(0.5)
        detail = _get(f"{api}/api/v1/pairs/{pair['pair_id']}").json()
    assert detail["status"] == "rejected"
    assert {_name(i["url"]) for i in detail["images"]} == {"chelsea.jpg", "chelsea_bright.jpg"}
    assert detail["evidence"]["embedding_cosine"] > 0.3 and detail["evidence"]["sift_inliers"] is not None
    thumb = _get(f"{api}{detail['images'][0]['thumbnail_url']}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"

    # The cats are in no cluster any more, whether rejected pairs are shown or not.
    assert _admin_clusters(api, ad_id=9107)["total"] == 0
    assert _admin_clusters(api, ad_id=9107, include_rejected="false")["total"] == 0
    assert _admin_clusters(api, include_rejected="false")["total"] == 2
    moderated = _get(f"{api}/api/v1/admin/duplicates/9107").json()
    assert moderated == {"ad_id": 9107, "duplicates": [], "cluster_mates_left_out": 0}
    coffee = _get(f"{api}/api/v1/admin/duplicates/9102").json()["duplicates"]
    assert sorted(d["ad_id"] for d in coffee) == [9101, 9103]
    assert coffee[0]["pairs"][0]["moderator_verdict"] is None
    # The statistics stop counting the cats as duplicates.
    stats = _get(f"{api}/api/v1/stats").json()
    assert stats["totals"]["images_in_clusters"] == 6
    assert {c["category"]: c["images_in_clusters"] for c in stats["by_category"]}.get("pets", 0) == 0

    async def truth() -> list[tuple[str, str]]:
        pool = await open_pool(running.dsn, max_size=1)
        try:
            return await moderated_truth(pool)
        finally:
            await pool.close()

    assert asyncio.run(truth()) == [(pair["pair_id"], "not_duplicate")]


def test_admin_clusters_filters(running: Running) -> None:
    api = running.api
    # Two clusters: the cats' was dissolved by the moderator's verdict in the test above.
    everything = _admin_clusters(api)
    assert everything["total"] == 2
    for cluster in everything["clusters"]:
        assert cluster["pairs"] and all(p["evidence"]["embedding_cosine"] > 0 for p in cluster["pairs"])
        assert all(image["thumbnail_url"].endswith("/thumbnail") for image in cluster["images"])

    def names(page: dict[str, Any]) -> set[frozenset[str]]:
        return {frozenset(_name(i["url"]) for i in c["images"]) for c in page["clusters"]}

    coffee = frozenset({"coffee.jpg", "coffee_flip.jpg", "coffee_crop.jpg"})
    astronaut = frozenset({"astronaut.jpg", "astronaut_wm.jpg", "astronaut_small.jpg"})
    assert names(_admin_clusters(api, ad_id=9103)) == {coffee}
    assert _admin_clusters(api, ad_id=9999)["total"] == 0
    assert names(_admin_clusters(api, category="electronics")) == {coffee}
    assert names(_admin_clusters(api, source="olx.pl", category="electronics")) == {coffee}
    assert _admin_clusters(api, source="olx.pt", category="pets")["total"] == 0
    assert _admin_clusters(api, source="avito.ma")["total"] == 0
    today = _get(f"{api}/api/v1/stats").json()["daily"][0]["day"]
    assert _admin_clusters(api, since=today, until=today)["total"] == 2
    assert _admin_clusters(api, until="2001-01-01")["total"] == 0
    first = _admin_clusters(api, limit=1)
    second = _admin_clusters(api, limit=1, offset=1)
    assert first["total"] == second["total"] == 2 and len(first["clusters"]) == 1
    assert len(second["clusters"]) == 1
    assert names(first) | names(second) == {coffee, astronaut}
    assert _get(f"{api}/api/v1/admin/clusters", params={"since": "yesterday"}).status_code == 422


# --------------------------------------------------------------------------- the page in a browser


def _browser_or_skip() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing and not os.environ.get("CI"):
        pytest.skip(f"browser test needs {' and '.join(missing)}")
    assert not missing, f"CI must run the browser test; missing: {', '.join(missing)}"


def test_admin_page_logs_in_shows_clusters_and_records_a_verdict(running: Running) -> None:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    api = running.api
    _dissolve_the_cats(api)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: (
                    problems.append(message.text) if "Content Security Policy" in message.text else None
                ),
            )
            opened = page.goto(f"{api}/admin")

            # Not logged in: the login form and no data at all (nothing was even fetched).
            assert opened is not None and opened.status == 401
            login = page.locator("#login")
            expect(login).to_be_visible()
            expect(page.locator("#app")).to_be_hidden()
            clusters = page.locator("article.cluster")
            assert clusters.count() == 0 and page.locator("img").count() == 0
            assert page.locator("#stats-body").inner_text() == ""
            assert "seller" not in page.content() and "9101" not in page.content()
            page.screenshot(path=str(SCREENSHOTS / "admin-login.png"))

            # A wrong credential is refused and the page says so.
            page.fill("#token", "vera:not-the-secret")
            page.click("#login-submit")
            expect(page.locator("#login-error")).to_contain_text("does not accept")
            expect(page.locator("#app")).to_be_hidden()

            # A viewer reads everything, thumbnails included, and records nothing.
            page.fill("#token", VIEWER)
            page.click("#login-submit")
            expect(clusters).to_have_count(2)  # the cats' cluster was dissolved (_dissolve_the_cats)
            expect(login).to_be_hidden()
            expect(page.locator("#who")).to_contain_text("vera · viewer · read-only")
            page.wait_for_function(IMAGES_LOADED)
            assert page.locator(".grid img").count() == 6
            widths = page.eval_on_selector_all(".grid img", "imgs => imgs.map(i => i.naturalWidth)")
            assert all(width > 0 for width in widths)
            sources = page.eval_on_selector_all(".grid img", "imgs => imgs.map(i => i.src)")
            assert all(src.startswith("blob:") for src in sources), sources
            expect(page.locator("table.pairs tbody tr")).to_have_count(3 + 3)
            expect(page.locator("tr.rejected")).to_have_count(0)  # the cats left with their cluster
            expect(page.locator("#stats-body")).to_contain_text("olx.pl")
            expect(page.locator("#stats-body")).to_contain_text("seller-b")
            # Only "Why?" is live for a viewer: no verdict button.
            assert page.locator("td.actions button:not(.why):enabled").count() == 0
            page.screenshot(path=str(SCREENSHOTS / "admin-clusters.png"), full_page=True)

            # Why: the coffee and its mirror image side by side, a line per matched keypoint, the
            # mirror noted, and the aligned overlay and difference under them.
            flip_row = page.locator("tr[data-pair-id]", has_text="ad 9101").filter(has_text="ad 9102")
            flip_pair = flip_row.get_attribute("data-pair-id")
            explained = _get(f"{api}/api/v1/pairs/{flip_pair}/explanation").json()
            assert explained["aligned"] and explained["mirrored"], explained
            flip_row.get_by_role("button", name="Why?").click()
            view = page.locator(f'.why-view[data-pair-id="{flip_pair}"]')
            lines = view.locator("svg.matches line.match")
            expect(lines).to_have_count(len(explained["matches"]))
            assert lines.count() >= 10
            assert view.locator("svg.matches image").count() == 2
            expect(view.locator(".mirror-note")).to_be_visible()
            page.wait_for_function(
                "() => { const i = document.querySelector('.why-overlay img');"
                " return Boolean(i && i.complete && i.naturalWidth > 0); }"
            )
            # A line joins a point of the coffee to its mirrored point: x flips, y stays.
            x1, y1, x2, y2 = (float(lines.first.get_attribute(a) or "nan") for a in ("x1", "y1", "x2", "y2"))
            assert abs(y1 - y2) < 8 and x2 > x1
            view.screenshot(path=str(SCREENSHOTS / "admin-why.png"))
            drawn = np.asarray(Image.open(SCREENSHOTS / "admin-why.png").convert("RGB"), dtype=float)
            assert drawn.shape[0] >= 250 and drawn.shape[1] >= 500
            # Pictures, lines and the overlay, not a blank box: many distinct colours, strong spread.
            assert drawn.std() > 25 and len(np.unique(drawn.reshape(-1, 3), axis=0)) > 2000
            flip_row.get_by_role("button", name="Hide").click()
            expect(view).to_have_count(0)

            # Search by ad id: only the coffee cluster, the searched ad highlighted, in the URL.
            page.fill("#f-ad", "9102")
            page.click("#search")
            expect(page.locator("#summary")).to_contain_text("1 cluster with ad 9102")
            expect(clusters).to_have_count(1)
            ads = page.eval_on_selector_all(".grid figure", "fs => fs.map(f => f.dataset.adId)")
            assert sorted(ads) == ["9101", "9102", "9103"]
            expect(page.locator(".thumb.match")).to_have_count(1)
            assert "ad_id=9102" in page.url
            page.wait_for_function(IMAGES_LOADED)
            page.screenshot(path=str(SCREENSHOTS / "admin-search.png"), full_page=True)

            # Logging out forgets the credential and every piece of data on the page.
            page.click("#logout")
            expect(login).to_be_visible()
            assert clusters.count() == 0 and page.locator("img").count() == 0
            assert page.evaluate("sessionStorage.getItem('imgdup.credential')") is None

            # A moderator records verdicts.
            page.fill("#token", MODERATOR)
            page.click("#login-submit")
            expect(clusters).to_have_count(1)  # the search is still in the URL's filters
            expect(page.locator("#who")).to_contain_text("mia · moderator")
            assert page.input_value("#moderator") == "mia"  # the credential's name, until changed
            row = page.locator("tr[data-pair-id]", has_text="ad 9101").filter(has_text="ad 9102")
            expect(row).to_have_count(1)
            pair_id = row.get_attribute("data-pair-id")
            assert pair_id
            page.fill("#moderator", "e2e-moderator")
            # The page's reload of the clusters after the verdict is held back until the clusterer
            # has applied the verdict: the order a loaded machine may give them (the flake). The row
            # is marked from the verdict POST's answer meanwhile, and still after the reload.
            held: list[Route] = []

            def hold(route: Route) -> None:
                held.append(route)

            page.route(ADMIN_CLUSTERS, hold)
            row.get_by_role("button", name="Not a duplicate").click()
            rejected = page.locator(f'tr[data-pair-id="{pair_id}"].rejected')
            # The POST waits for the broker's ack: on a loaded 2-core box that can take seconds.
            expect(rejected).to_have_count(1, timeout=VERDICT_TIMEOUT_MS)
            expect(rejected.locator("td.verdict")).to_contain_text("not a duplicate")
            _status_becomes(api, pair_id, "rejected")
            rejected.evaluate("row => { row.dataset.before = 'reload'; }")
            deadline = time.monotonic() + 30
            while not held:  # the reload's request reaches the route handler as events are read
                assert time.monotonic() < deadline, "the page did not reload its clusters after the verdict"
                page.wait_for_timeout(50)
            with page.expect_response(ADMIN_CLUSTERS):
                for route in held:
                    route.continue_()
            page.unroute(ADMIN_CLUSTERS)
            expect(page.locator(f'tr[data-pair-id="{pair_id}"][data-before]')).to_have_count(0)
            expect(rejected).to_have_count(1)
            expect(rejected.locator("td.verdict")).to_contain_text("e2e-moderator")
            assert page.evaluate("sessionStorage.getItem('imgdup.credential')") == MODERATOR
            assert page.evaluate("localStorage.getItem('imgdup.credential')") is None
            page.wait_for_function(IMAGES_LOADED)
            page.screenshot(path=str(SCREENSHOTS / "admin-verdict.png"), full_page=True)

            detail = _get(f"{api}/api/v1/pairs/{pair_id}").json()
            assert detail["moderator_verdict"]["verdict"] == "not_duplicate"
            assert detail["moderator_verdict"]["moderator"] == "e2e-moderator"
            assert detail["duplicate"] is False

            # A reload keeps the session (this tab); confirm another pair from the full list.
            page.goto(f"{api}/admin")
            expect(clusters).to_have_count(2)
            astronaut_row = page.locator("tr[data-pair-id]", has_text="ad 9104").first
            astronaut_pair = astronaut_row.get_attribute("data-pair-id")
            astronaut_row.get_by_role("button", name="Confirm").click()
            expect(page.locator(f'tr[data-pair-id="{astronaut_pair}"].confirmed')).to_have_count(
                1, timeout=VERDICT_TIMEOUT_MS
            )
            page.wait_for_function(IMAGES_LOADED)
            expect(page.locator("#toast")).to_be_hidden()
            page.screenshot(path=str(SCREENSHOTS / "admin-overview.png"), full_page=True)
            if os.environ.get("IMGDUP_UPDATE_DOCS_SCREENSHOT"):
                DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(SCREENSHOTS / "admin-overview.png", DOCS_SCREENSHOT)

            # Another browser context (a fresh tab of another profile) has no session: the login form.
            other = browser.new_page()
            other.goto(f"{api}/admin")
            expect(other.locator("#login")).to_be_visible()
            assert other.locator("article.cluster").count() == 0
        finally:
            browser.close()
    assert problems == []
    confirmed = _get(f"{api}/api/v1/pairs/{astronaut_pair}").json()["moderator_verdict"]
    assert confirmed["verdict"] == "confirmed" and confirmed["moderator"] == "e2e-moderator"
