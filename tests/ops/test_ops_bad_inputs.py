"""Consumes imgdup.ops.bad_inputs and imgdup.ops.decode_probe: each image body of the corpus decoded in
a fresh process ends as its expected outcome, and the process's peak memory is reported."""

from __future__ import annotations

import pytest

from imgdup.ops.bad_inputs import IMAGE_CASES, ImageCase, decode_in_child, image_bodies, peak_cell

MIB_KIB = 1024
BODIES = image_bodies()  # built once: the amplified images take a few seconds


def test_a_plain_photo_is_indexed_and_its_peak_reported() -> None:
    result = decode_in_child(BODIES["/ok.jpg"][1])
    assert result.outcome == "indexed"
    assert result.before_kib > 0
    assert result.peak_kib >= result.before_kib
    assert peak_cell(result) == f"{round(result.peak_kib / 1024)} MiB (+{round(result.growth_kib / 1024)})"


def test_a_body_that_is_no_image_is_reported_from_the_child() -> None:
    assert decode_in_child(b"<!doctype html><p>gone</p>").outcome == "not_an_image"


# Every body served as it is, except the one over the download cap (never decoded).
_DECODED = [case for case in IMAGE_CASES if case.path in BODIES and case.expected != "too_large"]


@pytest.mark.slow
@pytest.mark.parametrize("case", _DECODED, ids=[case.path for case in _DECODED])
def test_every_served_body_decodes_to_its_expected_outcome_within_the_memory_bound(case: ImageCase) -> None:
    result = decode_in_child(BODIES[case.path][1])
    assert result.outcome == case.expected
    # A limit, not a timing: the decode budget is 256 MiB; hostile bodies took up to 1 GiB before.
    assert result.growth_kib < 300 * MIB_KIB


def test_the_corpus_has_the_hostile_formats_and_memory_amplifiers() -> None:
    expected = {case.path: case.expected for case in IMAGE_CASES}
    for path in ("/image.ppm", "/image.pcx", "/image.tga", "/image.eps", "/image.heic"):
        assert expected[path] == "unsupported_format"
    assert expected["/lossless-6320.webp"] == "too_much_memory"
    assert expected["/float-6320.tif"] == "too_much_memory"
    assert expected["/palette-6320.png"] == "indexed"
