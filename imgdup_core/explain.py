"""Two stored images and their stored features -> why the verifier decided as it did: the matched
keypoints (mirror undone), the compared part of a framed image, and the aligned overlay and difference.

Recomputed, not stored: the same stored features give the same ratio-test matches, and OpenCV's
RANSAC seeds its generator the same on every call, so the page shows the verdict's alignment
without a column of correspondences per pair (the inlier count is given to compare)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imgdup_core.decode import load_rgb
from imgdup_core.geometry import align_flat_again, best_geometry
from imgdup_core.gray import working_gray
from imgdup_core.sift import SiftFeatures, extract_features, extract_flat_features, sift_from_bytes
from imgdup_core.verifier_config import DEFAULT_VERIFIER, VerifierConfig
from imgdup_core.verify import ImageView, content_order_swaps, reversed_compared

__all__ = ["Explanation", "Side", "box_fractions", "explain_pair", "overlay_panels"]

# The decoder's cap on the longer side (imgdup.analysis.analyse): photo boxes are in those pixels.
DECODED_MAX_SIDE = 1024
# More lines than this hide the pictures; the strongest-spread sample is drawn.
MAX_LINES = 80

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the full stored copy


@dataclass(frozen=True)
class Side:
    """One image of the pair as stored: its reduced copy, the framed photo's (if any), their SIFT
    features (None: extracted here) and the photo's box in fractions of the full copy."""

    jpeg: bytes
    photo_jpeg: bytes | None = None
    sift: bytes | None = None
    photo_sift: bytes | None = None
    photo_box: Box | None = None
    # The decoded upload's pHashes (plain, mirrored): the verifier measured the pair in the order
    # they give (imgdup_core.verify.measure_images), and so is it explained. None: as given.
    phash: tuple[int, int] | None = None


@dataclass(frozen=True)
class Explanation:
    compared: str  # "full/full", "photo/full", ...: which pictures were compared
    aligned: bool  # a plausible alignment was found
    mirrored: bool  # b matched as its mirror image
    inliers: int
    # Inlier correspondences, each (xa, ya, xb, yb) in fractions of each side's full stored copy,
    # b's in its own (unmirrored) orientation: a line joins the same scene point in both pictures.
    matches: tuple[tuple[float, float, float, float], ...]
    box_a: Box | None  # the part of a that was compared, when it was the framed photo
    box_b: Box | None
    # Maps b's compared copy (mirrored first when `mirrored`) onto a's, in copy pixels.
    homography: np.ndarray | None


def box_fractions(box: tuple[int, int, int, int], width: int, height: int) -> Box | None:
    """A photo box in decoded pixels (the original capped at DECODED_MAX_SIDE) -> fractions."""
    if width <= 0 or height <= 0:
        return None
    ratio = min(1.0, DECODED_MAX_SIDE / max(width, height))
    w, h = max(1, round(width * ratio)), max(1, round(height * ratio))
    x0, y0, x1, y1 = box

    def clamp(value: float) -> float:
        return min(1.0, max(0.0, value))

    return (clamp(x0 / w), clamp(y0 / h), clamp(x1 / w), clamp(y1 / h))


def _compared(side: Side, photo: bool, config: VerifierConfig) -> tuple[np.ndarray, SiftFeatures | None]:
    # Stored features under other extraction settings read as None: extracted here, as the verifier.
    if photo and side.photo_jpeg is not None:
        return load_rgb(side.photo_jpeg), sift_from_bytes(
            side.photo_sift, config
        ) if side.photo_sift else None
    return load_rgb(side.jpeg), sift_from_bytes(side.sift, config) if side.sift else None


def _to_full(points: np.ndarray, size: tuple[int, int], box: Box | None) -> np.ndarray:
    """Compared-copy pixels -> fractions of the full stored copy (through the photo's box)."""
    w, h = size
    fx, fy = points[:, 0] / w, points[:, 1] / h
    if box is not None:
        fx = box[0] + fx * (box[2] - box[0])
        fy = box[1] + fy * (box[3] - box[1])
    return np.stack([fx, fy], axis=1)


def explain_pair(
    a: Side,
    b: Side,
    *,
    compared: str = "full/full",
    prefer_mirrored: bool = False,
    cosine: float = 1.0,
    config: VerifierConfig = DEFAULT_VERIFIER,
) -> tuple[Explanation, np.ndarray, np.ndarray]:
    """The explanation, and the two compared copies (RGB) for overlay_panels. With both sides'
    pHashes, the alignment is recomputed in the order the verifier measured the pair in (its
    inliers are the evidence's) and given back in a, b's order; `cosine` is the pair's embedding
    cosine, which decides whether a flat picture is aligned again (config.flat_retry_min_cosine)."""
    if a.phash is not None and b.phash is not None:
        view_a, view_b = ImageView(None, a.phash, jpeg=a.jpeg), ImageView(None, b.phash, jpeg=b.jpeg)
        if content_order_swaps(view_a, view_b):
            swapped, rgb_b, rgb_a = _explain_in_order(
                b,
                a,
                compared=reversed_compared(compared),
                prefer_mirrored=prefer_mirrored,
                cosine=cosine,
                config=config,
            )
            return _back_to_given_order(swapped, rgb_a, rgb_b), rgb_a, rgb_b
    return _explain_in_order(
        a, b, compared=compared, prefer_mirrored=prefer_mirrored, cosine=cosine, config=config
    )


def _mirror_matrix(width: int) -> np.ndarray:
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _back_to_given_order(swapped: Explanation, rgb_a: np.ndarray, rgb_b: np.ndarray) -> Explanation:
    """An explanation of (b, a) as one of (a, b): sides swapped, and the homography that mapped a
    (mirrored first when mirrored) onto b inverted to map b (mirrored first) onto a."""
    homography = None
    if swapped.homography is not None:
        inverse = np.linalg.inv(swapped.homography)
        if swapped.mirrored:
            inverse = _mirror_matrix(rgb_a.shape[1]) @ inverse @ _mirror_matrix(rgb_b.shape[1])
        homography = inverse / inverse[2, 2]
    return Explanation(
        reversed_compared(swapped.compared),
        swapped.aligned,
        swapped.mirrored,
        swapped.inliers,
        tuple((xb, yb, xa, ya) for xa, ya, xb, yb in swapped.matches),
        swapped.box_b,
        swapped.box_a,
        homography,
    )


def _explain_in_order(
    a: Side, b: Side, *, compared: str, prefer_mirrored: bool, cosine: float, config: VerifierConfig
) -> tuple[Explanation, np.ndarray, np.ndarray]:
    photo_a, photo_b = (part == "photo" for part in [*compared.split("/"), "full", "full"][:2])
    photo_a, photo_b = photo_a and a.photo_jpeg is not None, photo_b and b.photo_jpeg is not None
    rgb_a, feats_a = _compared(a, photo_a, config)
    rgb_b, feats_b = _compared(b, photo_b, config)
    if feats_a is None:
        feats_a = extract_features(working_gray(rgb_a, config), config)
    if feats_b is None:
        feats_b = extract_features(working_gray(rgb_b, config), config)
    box_a = a.photo_box if photo_a else None
    box_b = b.photo_box if photo_b else None
    geometry = best_geometry(
        feats_a, feats_b, (feats_a.height, feats_a.width), prefer_mirrored=prefer_mirrored, config=config
    )
    geometry = align_flat_again(
        geometry,
        feats_a,
        feats_b,
        flat_a=lambda: extract_flat_features(working_gray(rgb_a, config), config),
        flat_b=lambda: extract_flat_features(working_gray(rgb_b, config), config),
        prefer_mirrored=prefer_mirrored,
        cosine=cosine,
        config=config,
    )
    kind = f"{'photo' if photo_a else 'full'}/{'photo' if photo_b else 'full'}"
    if geometry is None or not geometry.plausible or geometry.inliers_a is None or geometry.inliers_b is None:
        return Explanation(kind, False, False, 0, (), box_a, box_b, None), rgb_a, rgb_b
    (ha, wa), (hb, wb) = rgb_a.shape[:2], rgb_b.shape[:2]
    scale_a = np.diag([wa / feats_a.width, ha / feats_a.height, 1.0])
    scale_b = np.diag([wb / feats_b.width, hb / feats_b.height, 1.0])
    points_b = geometry.inliers_b.astype(np.float64).copy()
    if geometry.mirrored:  # back to b's own orientation, where the page draws it
        points_b[:, 0] = (feats_b.width - 1) - points_b[:, 0]
    in_a = _to_full(geometry.inliers_a.astype(np.float64) @ scale_a[:2, :2], (wa, ha), box_a)
    in_b = _to_full(points_b @ scale_b[:2, :2], (wb, hb), box_b)
    # An even sample along a's x then y keeps the drawing readable and spread over the picture.
    order = np.lexsort((in_a[:, 1], in_a[:, 0]))
    keep = order[np.linspace(0, len(order) - 1, min(MAX_LINES, len(order))).astype(int)]
    matches = tuple(
        (
            round(float(in_a[i, 0]), 4),
            round(float(in_a[i, 1]), 4),
            round(float(in_b[i, 0]), 4),
            round(float(in_b[i, 1]), 4),
        )
        for i in keep
    )
    homography = scale_a @ geometry.homography @ np.linalg.inv(scale_b)
    explanation = Explanation(
        kind, True, geometry.mirrored, geometry.inliers, matches, box_a, box_b, homography
    )
    return explanation, rgb_a, rgb_b


def overlay_panels(explanation: Explanation, rgb_a: np.ndarray, rgb_b: np.ndarray) -> np.ndarray | None:
    """Two panels in a's frame, side by side: a and b-aligned blended half and half, and their
    difference (bright where the pictures differ: a watermark, an edit, another photo). None when
    nothing aligned."""
    if explanation.homography is None:
        return None
    source = np.ascontiguousarray(rgb_b[:, ::-1]) if explanation.mirrored else rgb_b
    h, w = rgb_a.shape[:2]
    warped = cv2.warpPerspective(source, explanation.homography, (w, h), flags=cv2.INTER_LINEAR)
    covered = cv2.warpPerspective(
        np.full(source.shape[:2], 255, np.uint8), explanation.homography, (w, h), flags=cv2.INTER_NEAREST
    )
    inside = (covered > 0)[..., None]
    blend = np.where(inside, (rgb_a.astype(np.uint16) + warped) // 2, rgb_a // 3).astype(np.uint8)
    grey_a = cv2.cvtColor(rgb_a, cv2.COLOR_RGB2GRAY)
    grey_b = cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY)
    difference = np.clip(cv2.absdiff(grey_a, grey_b).astype(np.uint16) * 3, 0, 255).astype(np.uint8)
    heat = cv2.cvtColor(cv2.applyColorMap(difference, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    heat = np.where(inside, heat, 40).astype(np.uint8)  # outside the overlap: not compared
    gap = np.full((h, 8, 3), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([blend, gap, heat], axis=1))
