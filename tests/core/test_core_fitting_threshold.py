"""The threshold rules of imgdup_core.fitting: the precision rule (fused-v3..v6, `imgdup retrain`)
and the cost rule (fused-v7), on scores whose precision target cannot be reached: a few negatives
no evidence can tell from copies, as the leave-one-domain-out folds hold (issue 11)."""

from __future__ import annotations

import numpy as np

from imgdup_core.fitting import FALSE_POSITIVE_COST, choose_threshold, choose_threshold_by_cost


def _scores() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3 negatives at the top (indistinguishable), 100 copies at 0.95, 20 hard negatives at 0.7,
    1,000 easy negatives (sampled 1 in 5, weighted back) at 0.1: 99.5 % precision is reached
    at no cut."""
    p = np.array([0.999] * 3 + [0.95] * 100 + [0.7] * 20 + [0.1] * 200)
    y = np.array([0] * 3 + [1] * 100 + [0] * 20 + [0] * 200, dtype=np.float64)
    w = np.array([1.0] * 123 + [5.0] * 200)
    return p, y, w


def test_cost_rule_keeps_the_separable_hard_negatives_out_when_the_target_is_unreachable() -> None:
    p, y, w = _scores()
    threshold = choose_threshold_by_cost(p, y, w)
    # Every copy in, the 20 hard negatives out (between the two blocks, not at 0.5's fallback).
    assert 0.7 < threshold < 0.95
    assert threshold == 0.5 * (0.95 + 0.7)


def test_precision_rule_falls_back_to_half_when_the_target_is_unreachable() -> None:
    """The old rule, kept for the shipped versions: the documented behaviour the cost rule fixes."""
    p, y, w = _scores()
    assert choose_threshold(p, y, w, 0.995) < 0.7


def test_cost_rule_trades_copies_for_false_positives_at_the_stated_price() -> None:
    # 10 more copies cost 5 false positives: worth it while a false positive costs under 2 copies.
    p = np.array([0.9] * 10 + [0.8] * 5 + [0.6] * 10 + [0.1] * 50)
    y = np.array([1] * 10 + [0] * 5 + [1] * 10 + [0] * 50, dtype=np.float64)
    w = np.ones_like(p)
    assert choose_threshold_by_cost(p, y, w, false_positive_cost=1.5) < 0.6
    assert 0.8 < choose_threshold_by_cost(p, y, w, false_positive_cost=3.0) < 0.9
    assert FALSE_POSITIVE_COST > 1.0


def test_cost_rule_is_not_moved_by_one_negative_among_many_copies() -> None:
    rng = np.random.default_rng(3)
    positives = rng.uniform(0.85, 1.0, 500)
    negatives = rng.uniform(0.0, 0.6, 500)
    p = np.concatenate([positives, negatives])
    y = np.concatenate([np.ones(500), np.zeros(500)])
    w = np.ones_like(p)
    base = choose_threshold_by_cost(p, y, w)
    with_outlier = choose_threshold_by_cost(np.append(p, 0.99), np.append(y, 0.0), np.append(w, 1.0))
    assert base == with_outlier
