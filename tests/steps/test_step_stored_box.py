"""The photo box stored at indexing on a real Postgres: index_ad writes the box as shares of the picture
(images.photo_box_share, migration 013), and verify_candidate hands it to the verifier, which then runs
no frame finder; a row of before migration 013 (NULL) is verified as before, the finder run again."""

from __future__ import annotations

import io

import psycopg
import pytest
from helpers.fakes import Web, count_finder_calls, run_inline
from PIL import Image
from skimage import data

from bench.quality.templates import render
from imgdup.steps.index import IndexContext
from imgdup.steps.verify import VerifyContext, verify_candidate
from imgdup_core.decode import decode_image
from imgdup_core.framing import find_photo_region
from imgdup_core.verifier_config import FUSED_V10
from tests.steps.test_step_verify import _candidate


def _page(name: str) -> bytes:
    """A social-post page around the photo: the frame finder boxes the photo in it."""
    buffer = io.BytesIO()
    render("social-0", Image.fromarray(getattr(data, name)())).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _stored(dsn: str) -> dict[str, tuple[list[float] | None, list[int] | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT url, photo_box_share, photo_box FROM images").fetchall()
    return {url: (share, box) for url, share, box in rows}


async def test_the_indexed_box_is_stored_as_shares_and_the_verifier_reads_it(
    index_context: IndexContext, web: Web, clean_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _page("chelsea"), _page("rocket")
    candidate = await _candidate(index_context, web, first, second)
    stored = _stored(clean_db)
    for url, page in (("https://cdn.example/1.jpg", first), ("https://cdn.example/2.jpg", second)):
        rgb = decode_image(page).rgb
        region = find_photo_region(rgb)
        assert region is not None
        share, box = stored[url]
        # The same box as the pixel column, over the size of the decode it was found in, exactly.
        assert box == region.as_list()
        assert share == list(region.shares(rgb.shape[1], rgb.shape[0]))
    ctx = VerifyContext(
        pool=index_context.pool,
        run_cpu=run_inline,
        embedding_model="model-v1",
        blobs=index_context.blobs,
        config=FUSED_V10,
    )
    calls = count_finder_calls(monkeypatch)

    with_stored_box = await verify_candidate(ctx, candidate)

    assert calls == []
    assert with_stored_box is None  # two different photos in one page template
    # A row indexed before migration 013: no share stored, the verifier runs the finder again.
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE images SET photo_box_share = NULL")
        conn.execute("UPDATE duplicates SET status = 'candidate', decided_at = NULL")
    assert await verify_candidate(ctx, candidate) is None
    assert len(calls) == 2, "the pair never reached the page rule: the test above would prove nothing"
