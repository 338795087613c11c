"""imgdup_core.explain on real photos: stored copies and features in; the matched keypoints (mirror
undone), the compared box of a framed photo, and the aligned overlay and difference panels out."""

from __future__ import annotations

import numpy as np

from imgdup_core.decode import load_rgb, storage_jpeg
from imgdup_core.explain import Side, box_fractions, explain_pair, overlay_panels
from imgdup_core.verify import extract_sift, sift_to_bytes


def _side(rgb: np.ndarray, *, with_features: bool = True) -> Side:
    jpeg = storage_jpeg(rgb)
    return Side(jpeg=jpeg, sift=sift_to_bytes(extract_sift(load_rgb(jpeg))) if with_features else None)


def test_a_mirrored_copy_is_explained_by_lines_to_the_mirrored_points(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray]
) -> None:
    explanation, rgb_a, rgb_b = explain_pair(
        _side(stored["chelsea"]), _side(edited[("chelsea", "mirror")]), prefer_mirrored=True
    )
    assert explanation.aligned and explanation.mirrored and explanation.inliers >= 20
    assert 20 <= len(explanation.matches) <= 80
    matches = np.array(explanation.matches)
    # The same scene point: x mirrored, y kept (fractions of each stored copy).
    assert np.median(np.abs(matches[:, 2] - (1 - matches[:, 0]))) < 0.01
    assert np.median(np.abs(matches[:, 3] - matches[:, 1])) < 0.01
    panels = overlay_panels(explanation, rgb_a, rgb_b)
    assert panels is not None and panels.shape == (rgb_a.shape[0], 2 * rgb_a.shape[1] + 8, 3)
    # Aligned, the mirror image differs little from the original: the difference panel is dark.
    difference = panels[:, rgb_a.shape[1] + 8 :].astype(float)
    assert difference.mean() < 60


def test_the_same_features_give_the_same_explanation_and_a_crop_maps_inside(
    stored: dict[str, np.ndarray], edited: dict[tuple[str, str], np.ndarray]
) -> None:
    a, b = _side(stored["coffee"]), _side(edited[("coffee", "crop25")])
    first, _, _ = explain_pair(a, b)
    again, _, _ = explain_pair(a, b)
    assert first.matches == again.matches and first.inliers == again.inliers
    assert first.aligned and not first.mirrored
    # b is the middle of a: a's matched points sit inside the crop's box.
    xa = np.array(first.matches)[:, 0]
    assert xa.min() > 0.1 and xa.max() < 0.9
    # Features extracted on the fly (images indexed before features were stored) match too.
    extracted, _, _ = explain_pair(_side(stored["coffee"], with_features=False), b)
    assert extracted.aligned


def test_different_photos_draw_nothing(stored: dict[str, np.ndarray]) -> None:
    explanation, rgb_a, rgb_b = explain_pair(_side(stored["coffee"]), _side(stored["rocket"]))
    assert not explanation.aligned and explanation.matches == ()
    assert overlay_panels(explanation, rgb_a, rgb_b) is None


def test_a_framed_photo_is_drawn_through_its_box(stored: dict[str, np.ndarray]) -> None:
    photo = stored["astronaut"]
    frame = np.full((photo.shape[0] * 2, photo.shape[1] * 2, 3), 240, np.uint8)
    frame[100 : 100 + photo.shape[0], 200 : 200 + photo.shape[1]] = photo
    h, w = frame.shape[:2]
    box = box_fractions((200, 100, 200 + photo.shape[1], 100 + photo.shape[0]), w, h)
    assert box is not None
    framed = Side(jpeg=storage_jpeg(frame), photo_jpeg=storage_jpeg(photo), photo_box=box)
    explanation, _, _ = explain_pair(_side(photo), framed, compared="full/photo")
    assert explanation.compared == "full/photo" and explanation.box_b == box and explanation.box_a is None
    xb, yb = np.array(explanation.matches)[:, 2], np.array(explanation.matches)[:, 3]
    assert xb.min() >= box[0] and xb.max() <= box[2] and yb.min() >= box[1] and yb.max() <= box[3]
