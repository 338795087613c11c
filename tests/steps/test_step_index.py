"""imgdup.steps.index on a real Postgres and vector index, without Kafka: an ad event in; its images
indexed, its failed images as data, and the candidate pairs its neighbours make out."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from helpers.fakes import Web
from helpers.photos import jpeg, photo
from PIL import ImageOps

from imgdup import ids
from imgdup.analysis.analyse import AnalysedImage
from imgdup.analysis.fetch import FetchPolicy, fetch_image
from imgdup.steps.index import IndexContext, finish_event, index_ad
from imgdup_core.decode import ImageRejected
from schemas import AdImagesCreatedV1


def _event(ad_id: int, *urls: str, **changes: Any) -> AdImagesCreatedV1:
    return AdImagesCreatedV1(
        schema_version=1,
        event_id=f"evt-{ad_id}",
        ad_id=ad_id,
        source="olx.pt",
        images=list(urls),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        **changes,
    )


def _rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


async def test_one_failed_image_is_data_and_the_others_are_indexed(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    web.files["https://cdn.example/a.jpg"] = jpeg(photo("astronaut"))
    event = _event(1, "https://cdn.example/a.jpg", "https://cdn.example/missing.jpg")

    result = await index_ad(index_context, event)

    assert result.candidates == []  # nothing else indexed yet
    [failure] = result.failures
    assert (failure.url, failure.reason) == ("https://cdn.example/missing.jpg", "http_404")
    assert failure.image_id == ids.image_id(1, "https://cdn.example/missing.jpg")
    states = dict(_rows(clean_db, "SELECT url, status || ':' || coalesce(error_reason, '') FROM images"))
    assert states == {
        "https://cdn.example/a.jpg": "indexed:",
        "https://cdn.example/missing.jpg": "failed:http_404",
    }
    # Not finished until the caller has handed the candidates on.
    assert _rows(clean_db, "SELECT status FROM ingest_events") == [("processing",)]
    await finish_event(index_context, event, published=0)
    assert _rows(clean_db, "SELECT status FROM ingest_events") == [("indexed",)]


async def test_a_copy_in_another_ad_is_a_candidate_and_a_redelivery_repeats_it_without_downloading(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    original = photo("coffee")
    web.files["https://cdn.example/coffee.jpg"] = jpeg(original)
    web.files["https://cdn.example/mirror.jpg"] = jpeg(ImageOps.mirror(original))
    web.files["https://cdn.example/cat.jpg"] = jpeg(photo("chelsea"))
    await index_ad(index_context, _event(1, "https://cdn.example/coffee.jpg"))

    event = _event(2, "https://cdn.example/mirror.jpg", "https://cdn.example/cat.jpg", category=None)
    first = await index_ad(index_context, event)

    copy = ids.image_id(2, "https://cdn.example/mirror.jpg")
    source = ids.image_id(1, "https://cdn.example/coffee.jpg")
    assert first.failures == []
    assert first.candidates, "the mirrored copy must find its original"
    best = first.candidates[0]
    assert {best.a.image_id, best.b.image_id} == {copy, source}
    assert best.pair_id == ids.pair_id(copy, source)
    assert {best.a.ad_id, best.b.ad_id} == {1, 2}
    cosines = [c.cosine for c in first.candidates]
    assert cosines == sorted(cosines, reverse=True)  # most similar first
    assert _rows(clean_db, f"SELECT status FROM duplicates WHERE pair_id = '{best.pair_id}'") == [
        ("candidate",)
    ]

    downloads = len(web.downloads)
    again = await index_ad(index_context, event)
    assert len(web.downloads) == downloads  # indexed images are searched from their stored vectors
    assert [c.pair_id for c in again.candidates] == [c.pair_id for c in first.candidates]
    assert _rows(clean_db, "SELECT count(*) FROM duplicates") == [(len(first.candidates),)]


def _served(files: dict[str, bytes], redirects: dict[str, str]) -> httpx.MockTransport:
    """A mock CDN: each URL in `redirects` answers 302 to its target, each in `files` its bytes."""

    async def respond(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in redirects:
            return httpx.Response(302, headers={"location": redirects[url]})
        if url in files:
            return httpx.Response(200, content=files[url])
        return httpx.Response(404)

    return httpx.MockTransport(respond)


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


async def test_an_image_redirecting_to_a_bad_port_fails_alone_and_the_ad_still_finds_its_copies(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    """Issue 12: the second image's 302 to port 99999 used to raise ValueError out of the whole
    event (dead / processing_error, both images pending, no duplicates found)."""
    original = photo("coffee")
    web.files["https://cdn.example/coffee.jpg"] = jpeg(original)
    await index_ad(index_context, _event(1, "https://cdn.example/coffee.jpg"))

    transport = _served(
        {"https://cdn2.example/copy.jpg": jpeg(ImageOps.mirror(original))},
        {"https://cdn2.example/stolen.jpg": "http://host:99999/img.jpg"},
    )
    policy = FetchPolicy(timeout_s=5.0, max_bytes=5_000_000, max_redirects=3)
    ctx = dataclasses.replace(
        index_context, fetch=lambda url: fetch_image(transport, url, policy, resolver=_public)
    )
    event = _event(2, "https://cdn2.example/copy.jpg", "https://cdn2.example/stolen.jpg")
    result = await index_ad(ctx, event)

    [failure] = result.failures
    assert (failure.url, failure.reason) == ("https://cdn2.example/stolen.jpg", "url_invalid")
    assert "99999" in failure.detail
    copy = ids.image_id(2, "https://cdn2.example/copy.jpg")
    assert any(copy in (c.a.image_id, c.b.image_id) for c in result.candidates)
    states = dict(_rows(clean_db, "SELECT url, status || ':' || coalesce(error_reason, '') FROM images"))
    assert states["https://cdn2.example/copy.jpg"] == "indexed:"
    assert states["https://cdn2.example/stolen.jpg"] == "failed:url_invalid"


async def test_any_exception_of_one_download_is_that_image_s_failure(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    web.files["https://cdn.example/a.jpg"] = jpeg(photo("astronaut"))

    async def fetch(url: str) -> bytes:
        if url.endswith("boom.jpg"):
            raise RuntimeError("a bug in a transport")
        return await web.fetch(url)

    ctx = dataclasses.replace(index_context, fetch=fetch)
    result = await index_ad(ctx, _event(3, "https://cdn.example/a.jpg", "https://cdn.example/boom.jpg"))

    [failure] = result.failures
    assert failure.reason == "fetch_error"
    assert failure.detail.startswith("RuntimeError: a bug in a transport")
    states = dict(_rows(clean_db, "SELECT url, status FROM images"))
    assert states == {"https://cdn.example/a.jpg": "indexed", "https://cdn.example/boom.jpg": "failed"}


async def test_an_analysis_exception_of_one_image_fails_only_that_image(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    """Whatever the analyse port raises on one image's bytes (a decoder or model bug), the ad's
    other images are still analysed and indexed."""
    poison = b"\xff\xd8 bytes that make the analysis raise"
    web.files["https://cdn.example/a.jpg"] = jpeg(photo("astronaut"))
    web.files["https://cdn.example/b.jpg"] = jpeg(photo("chelsea"))
    web.files["https://cdn.example/poison.jpg"] = poison
    analyse = index_context.analyse

    async def fragile(blobs: Sequence[bytes]) -> list[AnalysedImage | ImageRejected]:
        if poison in blobs:
            raise MemoryError("the model ran out of memory on one input")
        return await analyse(blobs)

    ctx = dataclasses.replace(index_context, analyse=fragile)
    urls = ["https://cdn.example/a.jpg", "https://cdn.example/poison.jpg", "https://cdn.example/b.jpg"]
    result = await index_ad(ctx, _event(4, *urls))

    [failure] = result.failures
    assert (failure.url, failure.reason) == ("https://cdn.example/poison.jpg", "analysis_error")
    assert failure.detail.startswith("MemoryError")
    states = dict(_rows(clean_db, "SELECT url, status FROM images"))
    assert states == {urls[0]: "indexed", urls[1]: "failed", urls[2]: "indexed"}


class _FlakyVectors:
    """A vector store whose first upsert and first search fail as a database outage does (the
    pgvector store lives in Postgres), then work."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.failures = {"upsert": 1, "search_batch": 1}

    def _maybe_fail(self, name: str) -> None:
        if self.failures[name]:
            self.failures[name] -= 1
            raise psycopg.OperationalError("the database system is starting up")

    def upsert(self, points: Any) -> None:
        self._maybe_fail("upsert")
        self.inner.upsert(points)

    def search_batch(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("search_batch")
        return self.inner.search_batch(*args, **kwargs)


async def test_a_vector_store_outage_is_retried_not_a_failure(
    index_context: IndexContext, web: Web, clean_db: str
) -> None:
    original = photo("coffee")
    web.files["https://cdn.example/coffee.jpg"] = jpeg(original)
    web.files["https://cdn.example/mirror.jpg"] = jpeg(ImageOps.mirror(original))
    await index_ad(index_context, _event(1, "https://cdn.example/coffee.jpg"))
    flaky = _FlakyVectors(index_context.vectors)
    ctx = dataclasses.replace(index_context, vectors=flaky)  # type: ignore[arg-type]

    result = await index_ad(ctx, _event(2, "https://cdn.example/mirror.jpg"))

    assert flaky.failures == {"upsert": 0, "search_batch": 0}
    assert result.failures == []
    assert [{c.a.ad_id, c.b.ad_id} for c in result.candidates] == [{1, 2}]
