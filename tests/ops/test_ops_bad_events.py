"""Consumes imgdup.ops.bad_inputs.event_cases: each bad event of the corpus -> the reason it expects,
by the same parser the images agent runs (the pipeline run is tests/integration/test_hostile_pipeline.py)."""

from __future__ import annotations

import pytest

from imgdup.ops.bad_inputs import EventCase, event_cases
from schemas.parsing import InvalidEvent, parse_ad_event

CASES = event_cases("https://cdn.example.com/ok.jpg")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_bad_event_gets_its_reason(case: EventCase) -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_ad_event(case.value)
    assert refused.value.reason == case.expected
