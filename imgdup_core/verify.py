"""Two stored RGB copies (and, for framed photos, the photo cut out of the frame) plus their pHashes
and embedding cosine in, a fused duplicate Verdict out."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from imgdup_core.decode import load_rgb
from imgdup_core.hashing import phash_distance, phash_pair

__all__ = [
    "CALIBRATED_FUSION",
    "DEFAULT_VERIFIER",
    "FUSION_FEATURES",
    "Evidence",
    "FusionModel",
    "ImageView",
    "SiftFeatures",
    "Verdict",
    "VerifierConfig",
    "decide",
    "extract_sift",
    "fusion_features",
    "measure_images",
    "measure_pair",
    "sift_from_bytes",
    "sift_to_bytes",
    "verify_images",
    "verify_pair",
]


@dataclass(frozen=True)
class Evidence:
    """What the verifier measured; ``ssim`` is None when no plausible homography was found."""

    phash_distance: int
    phash_mirrored: bool
    cosine: float
    sift_inliers: int
    sift_mirrored: bool
    ssim: float | None
    # Added in fused-v2 (defaults keep older constructors valid).
    exact: bool = False  # identical stored pixels: decided without the heavy methods
    sift_matches: int = 0  # ratio-test matches of the orientation that won (inliers are a part)
    overlap: float = 0.0  # share of the smaller picture that the other covers once aligned
    mismatch: float | None = None  # share of the aligned textured overlap that disagrees
    # Added in fused-v3: which pictures were compared, a's then b's: "full" (the stored copy)
    # or "photo" (the photo cut out of a screenshot or border, imgdup_core.framing).
    view: str = "full/full"


@dataclass(frozen=True)
class Verdict:
    """``confidence`` (0.5..1) is how sure the verifier is of ``is_duplicate`` as stated;
    ``score`` is the fused probability of a duplicate (0..1) the decision thresholds."""

    is_duplicate: bool
    confidence: float
    evidence: Evidence
    verifier_version: str
    score: float = 0.0


_DEFAULT_VERSION = "fused-v3"


@dataclass(frozen=True)
class FusionModel:
    """Logistic fusion of the evidence: p(duplicate) = sigmoid(bias + sum(weight * feature)),
    a duplicate when p >= threshold. Fitted on the benchmark's training split only
    (`python -m bench.quality calibrate`); see imgdup_core/fusion_weights.py."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def __post_init__(self) -> None:
        unknown = set(self.features) - set(FUSION_FEATURES)
        if unknown or len(self.features) != len(self.weights):
            raise ValueError(f"bad fusion model: unknown features {sorted(unknown)} or weight count")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"fusion threshold must be in (0, 1), got {self.threshold}")

    def probability(self, evidence: Evidence) -> float:
        values = fusion_features(evidence)
        logit = self.bias + sum(w * values[name] for name, w in zip(self.features, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-min(60.0, max(-60.0, logit))))


# What the fusion may weigh, all derived from Evidence (so stored evidence can be re-scored).
FUSION_FEATURES: tuple[str, ...] = (
    "cosine",
    "cosine_strong",
    "phash_close",
    "log_inliers",
    "inlier_ratio",
    "ssim",
    "ssim_strong",
    "no_alignment",
    "overlap",
    "mismatch",
)


def fusion_features(evidence: Evidence) -> dict[str, float]:
    """Evidence -> the fusion's inputs, each roughly in 0..1 (hinges let a linear model say
    "this alone is enough" for a strong cosine or a strong aligned SSIM)."""
    aligned = evidence.ssim is not None and evidence.sift_inliers > 0
    ssim = max(0.0, evidence.ssim) if evidence.ssim is not None and aligned else 0.0
    ratio = evidence.sift_inliers / evidence.sift_matches if evidence.sift_matches else 0.0
    return {
        "cosine": evidence.cosine,
        "cosine_strong": max(0.0, evidence.cosine - 0.8) / 0.2,
        "phash_close": max(0.0, 16 - evidence.phash_distance) / 16,
        "log_inliers": math.log1p(evidence.sift_inliers) / math.log1p(500),
        "inlier_ratio": ratio if aligned else 0.0,
        "ssim": ssim,
        "ssim_strong": max(0.0, ssim - 0.6) / 0.4,
        "no_alignment": 0.0 if aligned else 1.0,
        "overlap": evidence.overlap if aligned else 0.0,
        "mismatch": evidence.mismatch if aligned and evidence.mismatch is not None else 0.0,
    }


def _calibrated() -> FusionModel:
    from imgdup_core import fusion_weights

    return FusionModel(
        features=tuple(fusion_weights.FEATURES),
        weights=tuple(fusion_weights.WEIGHTS),
        bias=fusion_weights.BIAS,
        threshold=fusion_weights.THRESHOLD,
    )


CALIBRATED_FUSION = _calibrated()


@dataclass(frozen=True)
class VerifierConfig:
    """Measurement settings and the calibrated fusion of the verifier. Change ``version``
    whenever anything changes: stored verdicts are only comparable within one version
    (enforced in __post_init__)."""

    version: str = _DEFAULT_VERSION

    # Local features. Inputs are the stored copies (longer side <= 512); SIFT runs on a
    # 384-pixel working copy: about a third cheaper than 512 and no loss on the tested edits.
    sift_features: int = 1000
    sift_max_side: int = 384
    # Smaller pictures (thumbnails, tight crops) are enlarged to this first: SIFT finds too
    # few keypoints on a 150-pixel crop to align it.
    sift_min_side: int = 384
    ratio_test: float = 0.75
    ransac_reproj_px: float = 3.0
    min_matches: int = 8
    # A first orientation with this many inliers is conclusive; the mirrored try is skipped.
    conclusive_inliers: int = 60

    # Homography plausibility (maps b onto a).
    min_scale: float = 0.2
    max_scale: float = 5.0
    max_anisotropy: float = 2.0
    max_perspective: float = 3.0
    min_overlap: float = 0.05
    min_inlier_spread: float = 0.08

    # Aligned SSIM, over the textured part of the overlap (flat backdrops prove nothing).
    ssim_max_side: int = 384
    texture_min_std: float = 4.0
    mismatch_ssim: float = 0.3

    # The decision: a logistic fusion of all the evidence, calibrated on training data.
    fusion: FusionModel = CALIBRATED_FUSION

    def __post_init__(self) -> None:
        if self.version == _DEFAULT_VERSION:
            changed = [
                field.name
                for field in dataclasses.fields(self)
                if field.name != "version" and getattr(self, field.name) != field.default
            ]
            if changed:
                raise ValueError(f"settings {changed} differ from {_DEFAULT_VERSION!r}; give a new version")


DEFAULT_VERIFIER = VerifierConfig()

# scikit-image ships no annotations for it.
_structural_similarity: Callable[..., Any] = structural_similarity


@dataclass(frozen=True)
class SiftFeatures:
    """The SIFT keypoints of one stored copy at the verifier's working size: what every pair
    involving the image needs first. Extracting them is most of a verification's cost, so the
    pipeline extracts them once when it indexes the image (extract_sift) and stores them
    (sift_to_bytes / sift_from_bytes)."""

    points: np.ndarray  # [N, 2] float32, working-size pixel coordinates
    descriptors: np.ndarray  # [N, 128] float32 holding whole numbers 0..255
    width: int
    height: int


@dataclass(frozen=True)
class _Geometry:
    homography: np.ndarray  # maps (possibly mirrored) b onto a, working-size coordinates
    matches: int
    inliers: int
    mirrored: bool
    plausible: bool
    overlap: float  # intersection / the smaller of (a, b projected), 0 when implausible


# About 0.5 MB per entry (1000 SIFT descriptors).
_FEATURE_CACHE_SIZE = 32
_FEATURE_CACHE: OrderedDict[bytes, SiftFeatures] = OrderedDict()
_FEATURE_CACHE_LOCK = threading.Lock()


def verify_pair(
    a_rgb: np.ndarray,
    b_rgb: np.ndarray,
    *,
    phash_a: tuple[int, int],
    phash_b: tuple[int, int],
    cosine: float,
    config: VerifierConfig = DEFAULT_VERIFIER,
) -> Verdict:
    """Decide whether b is a (possibly edited or mirrored) copy of a.

    a_rgb/b_rgb are the stored reduced copies; phash_a/phash_b come from phash_pair and cosine
    from the embedder. Raises ValueError for malformed arrays or a non-finite cosine.
    """
    evidence = measure_pair(a_rgb, b_rgb, phash_a=phash_a, phash_b=phash_b, cosine=cosine, config=config)
    return decide(evidence, config)


@dataclass(frozen=True)
class ImageView:
    """One image as the verifier sees it: the stored copy (longer side <= 512), the pHashes of the
    decoded image (plain, mirrored) and, when the image frames a photo (a screenshot, a border),
    the stored copy of that photo.

    The copies are given as pixels (rgb, photo_rgb) or as the stored JPEG bytes (jpeg,
    photo_jpeg), decoded only if the comparison needs pixels: with stored SIFT features, a pair
    that does not align (most candidates) is decided without decoding either whole copy (a
    framed photo's copy is still decoded for its pHash)."""

    rgb: np.ndarray | None
    phash: tuple[int, int]
    photo_rgb: np.ndarray | None = None
    # extract_sift of rgb and photo_rgb when stored at indexing (else extracted here).
    sift: SiftFeatures | None = None
    photo_sift: SiftFeatures | None = None
    jpeg: bytes | None = None
    photo_jpeg: bytes | None = None
    _decoded: dict[bool, np.ndarray] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.rgb is None and self.jpeg is None:
            raise ValueError("an ImageView needs the stored copy's pixels or its JPEG bytes")

    @property
    def frames_photo(self) -> bool:
        return self.photo_rgb is not None or self.photo_jpeg is not None

    def pixels(self, photo: bool = False) -> np.ndarray:
        """The stored copy (or the framed photo's), decoded from its JPEG on first use."""
        given = self.photo_rgb if photo else self.rgb
        if given is not None:
            return given
        if photo not in self._decoded:
            blob = self.photo_jpeg if photo else self.jpeg
            if blob is None:
                raise ValueError("this image frames no photo")
            self._decoded[photo] = load_rgb(blob)
        return self._decoded[photo]

    def stored_bytes(self, photo: bool = False) -> bytes | None:
        return self.photo_jpeg if photo else self.jpeg


def verify_images(
    a: ImageView, b: ImageView, *, cosine: float, config: VerifierConfig = DEFAULT_VERIFIER
) -> Verdict:
    """Decide whether b is a copy of a, comparing the framed photos where there are any."""
    return decide(measure_images(a, b, cosine=cosine, config=config), config)


def measure_images(
    a: ImageView, b: ImageView, *, cosine: float, config: VerifierConfig = DEFAULT_VERIFIER
) -> Evidence:
    """The evidence of the most telling comparison of the two images.

    A framed photo is compared by the photo inside its frame: two screenshots of one site share
    the whole page layout, which aligns perfectly and proves nothing. When only one side frames
    a photo, the whole pictures are compared as well (the frame finder may have taken a window
    or a horizon for a frame) and the comparison with the higher fused probability is kept.
    """
    comparisons = [(a.frames_photo, b.frames_photo)]
    if comparisons[0][0] != comparisons[0][1]:
        comparisons.append((False, False))
    best: tuple[float, Evidence] | None = None
    for photo_a, photo_b in comparisons:
        evidence = _measure(
            partial(a.pixels, photo_a),
            partial(b.pixels, photo_b),
            same_pixels=partial(_same_pixels, a, photo_a, b, photo_b),
            phash_a=phash_pair(a.pixels(True)) if photo_a else a.phash,
            phash_b=phash_pair(b.pixels(True)) if photo_b else b.phash,
            cosine=cosine,
            config=config,
            sift_a=a.photo_sift if photo_a else a.sift,
            sift_b=b.photo_sift if photo_b else b.sift,
        )
        evidence = dataclasses.replace(
            evidence, view=f"{'photo' if photo_a else 'full'}/{'photo' if photo_b else 'full'}"
        )
        # Unrounded (decide's score keeps 6 decimals): two near-certain comparisons must not
        # tie, or the reported one would depend on the order they were tried in.
        score = _duplicate_probability(evidence, config)
        if best is None or score > best[0]:
            best = (score, evidence)
    assert best is not None
    return best[1]


def _same_pixels(a: ImageView, photo_a: bool, b: ImageView, photo_b: bool) -> bool:
    """Whether the two stored copies hold identical pixels. Stored JPEGs are compared as bytes:
    the encoder is deterministic, so equal pixels were encoded to equal bytes, and equal bytes
    decode to equal pixels."""
    bytes_a, bytes_b = a.stored_bytes(photo_a), b.stored_bytes(photo_b)
    if bytes_a is not None and bytes_b is not None:
        return bytes_a == bytes_b
    return _equal_pixels(a.pixels(photo_a), b.pixels(photo_b))


def _equal_pixels(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def measure_pair(
    a_rgb: np.ndarray,
    b_rgb: np.ndarray,
    *,
    phash_a: tuple[int, int],
    phash_b: tuple[int, int],
    cosine: float,
    config: VerifierConfig = DEFAULT_VERIFIER,
    sift_a: SiftFeatures | None = None,
    sift_b: SiftFeatures | None = None,
) -> Evidence:
    """Every method's measurement for the pair, without a decision. sift_a/sift_b, when given,
    must be extract_sift of a_rgb/b_rgb under the same config (they save extracting them)."""
    for rgb in (a_rgb, b_rgb):
        _check_rgb(rgb)
    return _measure(
        lambda: a_rgb,
        lambda: b_rgb,
        same_pixels=partial(_equal_pixels, a_rgb, b_rgb),
        phash_a=phash_a,
        phash_b=phash_b,
        cosine=cosine,
        config=config,
        sift_a=sift_a,
        sift_b=sift_b,
    )


def _measure(
    load_a: Callable[[], np.ndarray],
    load_b: Callable[[], np.ndarray],
    *,
    same_pixels: Callable[[], bool],
    phash_a: tuple[int, int],
    phash_b: tuple[int, int],
    cosine: float,
    config: VerifierConfig,
    sift_a: SiftFeatures | None,
    sift_b: SiftFeatures | None,
) -> Evidence:
    """measure_pair on pictures loaded only when needed: features not given are extracted, and
    the aligned SSIM needs both; a pair without a plausible alignment needs neither."""
    if not math.isfinite(cosine):
        raise ValueError(f"cosine must be finite, got {cosine!r}")
    distance, phash_mirrored = phash_distance(phash_a, phash_b)
    if same_pixels():
        # The same stored pixels (a re-upload): nothing to align.
        return Evidence(
            distance, phash_mirrored, float(cosine), 0, False, 1.0, exact=True, overlap=1.0, mismatch=0.0
        )
    grays: dict[str, np.ndarray] = {}

    def gray(side: str) -> np.ndarray:
        if side not in grays:
            grays[side] = _working_gray((load_a if side == "a" else load_b)(), config)
        return grays[side]

    feats_a = sift_a if sift_a is not None else _features(gray("a"), config)
    feats_b = sift_b if sift_b is not None else _features(gray("b"), config)
    geometry = _best_geometry(
        feats_a, feats_b, (feats_a.height, feats_a.width), prefer_mirrored=phash_mirrored, config=config
    )
    if geometry is None or not geometry.plausible:
        return Evidence(
            phash_distance=distance,
            phash_mirrored=phash_mirrored,
            cosine=float(cosine),
            sift_inliers=0,
            sift_mirrored=False,
            ssim=None,
            sift_matches=geometry.matches if geometry is not None else 0,
        )
    gray_b = gray("b")
    b_aligned = np.ascontiguousarray(gray_b[:, ::-1]) if geometry.mirrored else gray_b
    aligned = _aligned_ssim(gray("a"), b_aligned, geometry.homography, config)
    return Evidence(
        phash_distance=distance,
        phash_mirrored=phash_mirrored,
        cosine=float(cosine),
        sift_inliers=geometry.inliers,
        sift_mirrored=geometry.mirrored,
        ssim=aligned[0] if aligned is not None else None,
        sift_matches=geometry.matches,
        overlap=round(geometry.overlap, 4),
        mismatch=round(aligned[1], 4) if aligned is not None else None,
    )


def _duplicate_probability(evidence: Evidence, config: VerifierConfig) -> float:
    return 1.0 if evidence.exact else config.fusion.probability(evidence)


def decide(evidence: Evidence, config: VerifierConfig = DEFAULT_VERIFIER) -> Verdict:
    """The calibrated fusion's verdict on measured evidence."""
    if evidence.exact:
        return Verdict(True, 1.0, evidence, config.version, 1.0)
    p = _duplicate_probability(evidence, config)
    t = config.fusion.threshold
    is_duplicate = p >= t
    # How far p sits from the threshold, towards 0 or 1: 0.5 at the threshold, 1 at certainty.
    margin = (p - t) / (1.0 - t) if is_duplicate else (t - p) / t
    return Verdict(is_duplicate, round(0.5 + 0.5 * margin, 4), evidence, config.version, round(p, 6))


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"expected an HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")


def _working_gray(rgb: np.ndarray, config: VerifierConfig) -> np.ndarray:
    _check_rgb(rgb)
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    if 0 < max(h, w) < config.sift_min_side:
        ratio = config.sift_min_side / max(h, w)
        size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
        return cv2.resize(gray, size, interpolation=cv2.INTER_CUBIC)
    return _fit(gray, config.sift_max_side)


def _fit(gray: np.ndarray, max_side: int) -> np.ndarray:
    h, w = gray.shape
    if max(h, w) <= max_side:
        return gray
    ratio = max_side / max(h, w)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _features(gray: np.ndarray, config: VerifierConfig) -> SiftFeatures:
    # A new listing photo is usually verified against several candidates in a row, so its
    # features are worth keeping for a moment; SIFT dominates the cost of a verification.
    digest = hashlib.blake2b(gray.tobytes(), digest_size=16)
    digest.update(f"{gray.shape}:{config.sift_features}".encode())
    key = digest.digest()
    with _FEATURE_CACHE_LOCK:
        cached = _FEATURE_CACHE.get(key)
        if cached is not None:
            _FEATURE_CACHE.move_to_end(key)
            return cached
    features = _extract_features(gray, config)
    with _FEATURE_CACHE_LOCK:
        _FEATURE_CACHE[key] = features
        while len(_FEATURE_CACHE) > _FEATURE_CACHE_SIZE:
            _FEATURE_CACHE.popitem(last=False)
    return features


def _extract_features(gray: np.ndarray, config: VerifierConfig) -> SiftFeatures:
    sift = cv2.SIFT.create(nfeatures=config.sift_features)
    keypoints, descriptors = sift.detectAndCompute(gray, None)
    h, w = gray.shape
    if descriptors is None or not keypoints:
        return SiftFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), w, h)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    descriptors = np.asarray(descriptors, dtype=np.float32)
    # Shared through the cache, so nobody may edit them in place.
    points.setflags(write=False)
    descriptors.setflags(write=False)
    return SiftFeatures(points, descriptors, w, h)


def extract_sift(rgb: np.ndarray, config: VerifierConfig = DEFAULT_VERIFIER) -> SiftFeatures:
    """The features measure_pair would extract from this stored copy (an HxWx3 uint8 array
    decoded from the stored JPEG: the same pixels the verifier loads)."""
    return _extract_features(_working_gray(rgb, config), config)


# Stored features: magic, format 1, then the extraction settings they were made with, so a
# verifier with other settings extracts afresh instead of trusting them.
_SIFT_MAGIC = b"SIFT"
_SIFT_HEADER = np.dtype(
    [
        ("magic", "S4"),
        ("format", "<u2"),
        ("features", "<u2"),
        ("max_side", "<u2"),
        ("min_side", "<u2"),
        ("width", "<u2"),
        ("height", "<u2"),
        ("count", "<u4"),
    ]
)


def sift_to_bytes(features: SiftFeatures, config: VerifierConfig = DEFAULT_VERIFIER) -> bytes:
    """Compact storage form: ~136 bytes per keypoint (float32 x, y and 128 uint8 descriptor
    values, which is all a SIFT descriptor holds)."""
    header = np.array(
        [
            (
                _SIFT_MAGIC,
                1,
                config.sift_features,
                config.sift_max_side,
                config.sift_min_side,
                features.width,
                features.height,
                len(features.points),
            )
        ],
        dtype=_SIFT_HEADER,
    )
    descriptors = features.descriptors.astype(np.uint8)
    if not np.array_equal(descriptors, features.descriptors):
        raise ValueError("SIFT descriptors must hold whole numbers 0..255")
    return header.tobytes() + features.points.astype("<f4").tobytes() + descriptors.tobytes()


def sift_from_bytes(blob: bytes, config: VerifierConfig = DEFAULT_VERIFIER) -> SiftFeatures | None:
    """sift_to_bytes' inverse; None when the features were extracted under other settings.
    Raises ValueError for a malformed blob."""
    size = _SIFT_HEADER.itemsize
    if len(blob) < size:
        raise ValueError("stored SIFT features: truncated header")
    header = np.frombuffer(blob[:size], dtype=_SIFT_HEADER)[0]
    if bytes(header["magic"]) != _SIFT_MAGIC or int(header["format"]) != 1:
        raise ValueError("stored SIFT features: unknown format")
    if (int(header["features"]), int(header["max_side"]), int(header["min_side"])) != (
        config.sift_features,
        config.sift_max_side,
        config.sift_min_side,
    ):
        return None
    count = int(header["count"])
    if len(blob) != size + count * (8 + 128):
        raise ValueError("stored SIFT features: wrong length")
    points = np.frombuffer(blob, dtype="<f4", count=2 * count, offset=size).astype(np.float32).reshape(-1, 2)
    descriptors = np.frombuffer(blob, dtype=np.uint8, offset=size + 8 * count).astype(np.float32)
    descriptors = descriptors.reshape(-1, 128)
    points.setflags(write=False)
    descriptors.setflags(write=False)
    return SiftFeatures(points, descriptors, int(header["width"]), int(header["height"]))


def _mirror_permutation() -> np.ndarray:
    # OpenCV lays a SIFT descriptor out as 4x4 spatial cells x 8 orientation bins, in the
    # keypoint's own rotated frame. Mirroring the image flips that frame's rows and reflects
    # the orientation bins, so the mirrored image's descriptors are a fixed permutation of
    # the original ones (measured: ~91 % of keypoints re-match exactly). This saves a second
    # SIFT pass over b.
    perm = np.empty(128, dtype=np.intp)
    for row in range(4):
        for col in range(4):
            for ori in range(8):
                perm[((3 - row) * 4 + col) * 8 + (8 - ori) % 8] = (row * 4 + col) * 8 + ori
    return perm


_MIRROR_PERMUTATION = _mirror_permutation()


def _mirrored(features: SiftFeatures) -> SiftFeatures:
    points = features.points.copy()
    points[:, 0] = (features.width - 1) - points[:, 0]
    descriptors = np.ascontiguousarray(features.descriptors[:, _MIRROR_PERMUTATION])
    return SiftFeatures(points, descriptors, features.width, features.height)


def _best_geometry(
    feats_a: SiftFeatures,
    feats_b: SiftFeatures,
    shape_a: tuple[int, ...],
    *,
    prefer_mirrored: bool,
    config: VerifierConfig,
) -> _Geometry | None:
    if len(feats_a.points) < config.min_matches or len(feats_b.points) < config.min_matches:
        return None
    best: _Geometry | None = None
    for mirrored in (prefer_mirrored, not prefer_mirrored):
        candidate = _fit_homography(
            feats_a, _mirrored(feats_b) if mirrored else feats_b, mirrored, shape_a, config
        )
        if candidate is None:
            continue
        if best is None or (candidate.plausible, candidate.inliers) > (best.plausible, best.inliers):
            best = candidate
        if best.plausible and best.inliers >= config.conclusive_inliers:
            break
    return best


def _fit_homography(
    feats_a: SiftFeatures,
    feats_b: SiftFeatures,
    mirrored: bool,
    shape_a: tuple[int, ...],
    config: VerifierConfig,
) -> _Geometry | None:
    query, train = ratio_test_matches(feats_b.descriptors, feats_a.descriptors, config.ratio_test)
    if len(query) < config.min_matches:
        return None
    src = feats_b.points[query]
    dst = feats_a.points[train]
    homography, mask = cv2.findHomography(
        src, dst, cv2.RANSAC, config.ransac_reproj_px, maxIters=2000, confidence=0.995
    )
    if homography is None or mask is None:
        return None
    inlier_mask = mask.ravel().astype(bool)
    inliers = int(inlier_mask.sum())
    overlap = _plausible_overlap(
        homography, (feats_b.height, feats_b.width), shape_a, dst[inlier_mask], config
    )
    return _Geometry(homography, len(query), inliers, mirrored, overlap is not None, overlap or 0.0)


def ratio_test_matches(query: np.ndarray, train: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowe's ratio test over exact nearest neighbours: (query rows, their train rows) whose
    nearest train descriptor is closer than `ratio` x the second nearest, in query order.

    The same matches as OpenCV's brute-force L2 knnMatch(k=2), from one matrix product: SIFT
    descriptors hold whole numbers (0..255, norm ~512), so every squared distance is an exact
    integer in float32 whatever the summation order, and ties fall the same way (a tie for
    the nearest fails the test either way). About 10x cheaper than BFMatcher at 500-1000
    keypoints a side, which was a sixth of a verification."""
    if len(query) == 0 or len(train) < 2:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    q = np.asarray(query, dtype=np.float32)
    t = np.asarray(train, dtype=np.float32)
    # |q - t|^2 = |q|^2 + (|t|^2 - 2 q.t); the row constant |q|^2 is added to the two kept only.
    without_q = q @ t.T
    without_q *= -2.0
    without_q += np.einsum("ij,ij->i", t, t)[None, :]
    rows = np.arange(len(q))
    nearest = without_q.argmin(axis=1)
    first = without_q[rows, nearest]
    without_q[rows, nearest] = np.inf
    second = without_q.min(axis=1)
    norms = np.einsum("ij,ij->i", q, q)
    d0 = np.sqrt(np.maximum(norms + first, 0.0)).astype(np.float64)
    d1 = np.sqrt(np.maximum(norms + second, 0.0)).astype(np.float64)
    keep = d0 < ratio * d1
    return rows[keep], nearest[keep]


def _plausible(
    homography: np.ndarray,
    shape_b: tuple[int, int],
    shape_a: tuple[int, ...],
    inlier_points_a: np.ndarray,
    config: VerifierConfig,
) -> bool:
    return _plausible_overlap(homography, shape_b, shape_a, inlier_points_a, config) is not None


def _plausible_overlap(
    homography: np.ndarray,
    shape_b: tuple[int, int],
    shape_a: tuple[int, ...],
    inlier_points_a: np.ndarray,
    config: VerifierConfig,
) -> float | None:
    """None when the homography cannot be a copy-edit; else the share of the smaller picture
    (a, or b projected onto a) that the other covers."""
    if not np.all(np.isfinite(homography)) or abs(homography[2, 2]) < 1e-12:
        return None
    h = homography / homography[2, 2]
    hb, wb = shape_b
    ha, wa = int(shape_a[0]), int(shape_a[1])
    corners = np.array([[0, 0], [wb, 0], [wb, hb], [0, hb]], dtype=np.float64)
    denominators = corners @ h[2, :2] + h[2, 2]
    if np.any(denominators <= 1e-6):
        return None  # part of b would land beyond the horizon: not a copy-edit
    projected = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), h).reshape(-1, 2)
    quad = projected.astype(np.float32)
    if not cv2.isContourConvex(quad):
        return None

    # Local scale (Jacobian determinant) at each corner: sign flips mean a reflection, a wide
    # spread means strong perspective, and either bound catches collapsed (tiny-area) fits.
    jacobians = []
    for (x, y), w in zip(corners, denominators, strict=True):
        u, v = h[0, 0] * x + h[0, 1] * y + h[0, 2], h[1, 0] * x + h[1, 1] * y + h[1, 2]
        jac = np.array(
            [
                [(h[0, 0] * w - u * h[2, 0]) / w**2, (h[0, 1] * w - u * h[2, 1]) / w**2],
                [(h[1, 0] * w - v * h[2, 0]) / w**2, (h[1, 1] * w - v * h[2, 1]) / w**2],
            ]
        )
        jacobians.append(jac)
    dets = np.array([np.linalg.det(j) for j in jacobians])
    if np.any(dets <= 0):
        return None
    scales = np.sqrt(dets)
    if scales.min() < config.min_scale or scales.max() > config.max_scale:
        return None
    if scales.max() / scales.min() > config.max_perspective:
        return None
    for jac in jacobians:
        singular = np.linalg.svd(jac, compute_uv=False)
        if singular[0] / max(singular[1], 1e-12) > config.max_anisotropy:
            return None

    rect_a = np.array([[0, 0], [wa, 0], [wa, ha], [0, ha]], dtype=np.float32)
    overlap, _ = cv2.intersectConvexConvex(rect_a, quad)
    smaller = min(float(wa * ha), abs(float(cv2.contourArea(quad))))
    if smaller <= 0 or overlap < config.min_overlap * smaller:
        return None
    if len(inlier_points_a) < 3:
        return None
    # Inliers bunched in one spot (a shared logo, a repeated texture) prove nothing about the
    # rest of the picture.
    hull = cv2.convexHull(inlier_points_a.astype(np.float32))
    spread = float(cv2.contourArea(hull)) / float(overlap)
    if spread < config.min_inlier_spread:
        return None
    return min(1.0, float(overlap) / smaller)


def _aligned_ssim(
    gray_a: np.ndarray, gray_b: np.ndarray, homography: np.ndarray, config: VerifierConfig
) -> tuple[float, float] | None:
    """(mean SSIM, share of pixels with SSIM < mismatch_ssim) over the textured overlap."""
    small_a = _fit(gray_a, config.ssim_max_side)
    small_b = _fit(gray_b, config.ssim_max_side)
    scale_a = np.diag([small_a.shape[1] / gray_a.shape[1], small_a.shape[0] / gray_a.shape[0], 1.0])
    scale_b = np.diag([small_b.shape[1] / gray_b.shape[1], small_b.shape[0] / gray_b.shape[0], 1.0])
    h = scale_a @ homography @ np.linalg.inv(scale_b)
    h = h / h[2, 2]

    # Band-limit whichever side is finer so that resampling alone does not cost SSIM: a crop
    # blown up to full size carries less detail per pixel than the original it came from.
    magnification = math.sqrt(abs(float(np.linalg.det(h[:2, :2]))))
    src_b: np.ndarray = small_b.astype(np.float32)
    ref_a: np.ndarray = small_a.astype(np.float32)
    if magnification < 1.0:
        src_b = cv2.GaussianBlur(src_b, (0, 0), 0.5 * math.sqrt(1.0 / magnification**2 - 1.0))
    elif magnification > 1.0:
        ref_a = cv2.GaussianBlur(ref_a, (0, 0), 0.5 * math.sqrt(magnification**2 - 1.0))

    height, width = small_a.shape
    if min(height, width) < 7:
        return None
    warped = cv2.warpPerspective(
        src_b, h, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    footprint = cv2.warpPerspective(
        np.full(small_b.shape, 255, np.uint8), h, (width, height), flags=cv2.INTER_NEAREST
    )
    # Drop a margin the size of the SSIM window so that border pixels never enter the score.
    valid: np.ndarray = cv2.erode(footprint, np.ones((11, 11), np.uint8)) > 0
    if valid.sum() < 0.02 * valid.size:
        return None
    _, ssim_map = _structural_similarity(
        ref_a,
        warped,
        data_range=255.0,
        full=True,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    # Flat areas (white studio backdrops, sky) score ~1 against any other flat photo, and text
    # overlaid on them adds texture to one side only; content that both sides show textured
    # is what says whether the pictures line up.
    textured_a = _local_std(ref_a) > config.texture_min_std
    textured_b = _local_std(warped) > config.texture_min_std
    region = valid & textured_a & textured_b
    if region.sum() < 0.05 * valid.sum():
        region = valid & (textured_a | textured_b)
    if region.sum() < 0.05 * valid.sum():
        region = valid
    # Where the aligned pictures disagree outright: a shared frame (a screenshot template, an
    # agency banner) lines up while the photos inside it do not, which the mean over the
    # textured intersection hides (a product on white in one picture and a different one in
    # the other share little texture). Measured over each side's own texture and the smaller
    # share kept, so an overlay that adds texture to one side only (text tiled over a flat sky)
    # does not count: the clean side shows no disagreement there.
    shares = []
    for textured in (textured_a, textured_b):
        own = valid & textured
        shares.append(float((ssim_map[own] < config.mismatch_ssim).mean()) if own.any() else 0.0)
    mismatch = min(shares)
    return float(np.clip(ssim_map[region].mean(), -1.0, 1.0)), mismatch


def _local_std(image: np.ndarray) -> np.ndarray:
    mean = cv2.GaussianBlur(image, (0, 0), 1.5)
    mean_sq = cv2.GaussianBlur(image * image, (0, 0), 1.5)
    std: np.ndarray = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return std
