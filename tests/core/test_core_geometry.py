"""Tests for imgdup_core.geometry: homographies in, whether they can be a copy-edit out."""

from __future__ import annotations

import numpy as np
import pytest

from imgdup_core.geometry import plausible_shares
from imgdup_core.verifier_config import DEFAULT_VERIFIER


def _spread_points(width: int, height: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(20, width - 20, 6), np.linspace(20, height - 20, 6))
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "matrix", "expected"),
    [
        ("identity", [[1, 0, 0], [0, 1, 0], [0, 0, 1]], True),
        ("rotate 10 and shift", [[0.985, -0.174, 40], [0.174, 0.985, -20], [0, 0, 1]], True),
        ("crop 25 % enlarged", [[0.5, 0, 96], [0, 0.5, 96], [0, 0, 1]], True),
        ("mild perspective", [[1, 0, 0], [0, 1, 0], [0.0004, 0, 1]], True),
        ("collapsed to a sliver", [[0.05, 0, 100], [0, 0.05, 100], [0, 0, 1]], False),
        ("collapsed to a line", [[1, 1, 0], [1, 1, 0], [0, 0, 1]], False),
        ("reflection", [[-1, 0, 384], [0, 1, 0], [0, 0, 1]], False),
        ("huge skew", [[1, 2.5, 0], [0, 1, 0], [0, 0, 1]], False),
        ("anisotropic squash", [[1, 0, 0], [0, 0.3, 0], [0, 0, 1]], False),
        ("crosses the horizon", [[1, 0, 0], [0, 1, 0], [-0.004, 0, 1]], False),
        ("strong perspective", [[1, 0, 0], [0, 1, 0], [0.003, 0.003, 1]], False),
    ],
)
def test_plausibility_of_homographies(name: str, matrix: list[list[float]], expected: bool) -> None:
    homography = np.array(matrix, dtype=np.float64)
    points = _spread_points(384, 384)
    shares = plausible_shares(homography, (384, 384), (384, 384), points, DEFAULT_VERIFIER)
    assert (shares is not None) is expected, name


def test_overlap_is_the_share_of_the_smaller_picture_covered() -> None:
    points = _spread_points(384, 384)
    identity = np.eye(3)
    whole = plausible_shares(identity, (384, 384), (384, 384), points, DEFAULT_VERIFIER)
    assert whole is not None and whole[0] == pytest.approx(1.0)
    # b shifted half its width off a: half of it is covered.
    shifted = np.array([[1, 0, 192], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    half = plausible_shares(shifted, (384, 384), (384, 384), points[points[:, 0] > 200], DEFAULT_VERIFIER)
    assert half is not None and half[0] == pytest.approx(0.5, abs=0.01)


def test_bunched_inliers_are_not_plausible() -> None:
    bunched = _spread_points(40, 30) + np.array([[300, 300]], dtype=np.float32)
    identity = np.eye(3)
    assert plausible_shares(identity, (384, 384), (384, 384), bunched, DEFAULT_VERIFIER) is None
