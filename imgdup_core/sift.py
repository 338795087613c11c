"""A stored copy's grey working copy -> its SIFT features; their storage format, their mirror
image, a small cache of recent extractions and the ratio-test matcher between two sets."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from imgdup_core.gray import working_gray
from imgdup_core.verifier_config import DEFAULT_VERIFIER, VerifierConfig

__all__ = [
    "FeatureCache",
    "SiftFeatures",
    "extract_features",
    "extract_flat_features",
    "extract_sift",
    "flat_from_bytes",
    "flat_to_bytes",
    "mirrored",
    "ratio_test_matches",
    "sift_from_bytes",
    "sift_to_bytes",
    "stored_flat_features",
]


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


def extract_features(gray: np.ndarray, config: VerifierConfig) -> SiftFeatures:
    """The SIFT features of a working copy (working_gray), as read-only arrays. A low-texture
    picture (fewer than config.sift_low_texture_keypoints at the default contrast threshold) is
    extracted again at the lower one, so a flat sky or a white room still has keypoints to
    align a copy by."""
    if config.sift_low_texture_keypoints:
        keypoints, descriptors = _detect_two_pass(gray, config)
    else:
        keypoints, descriptors = _detect(gray, config.sift_features, config.sift_contrast)
    return _as_features(gray, keypoints, descriptors)


def extract_flat_features(gray: np.ndarray, config: VerifierConfig) -> SiftFeatures:
    """The SIFT features of a working copy at the low-texture contrast threshold
    (config.sift_low_texture_contrast), in one pass: a flat picture's second chance to align
    (config.flat_retry_keypoints). Never stored."""
    scale = config.flat_retry_scale
    if scale == 1.0:
        keypoints, descriptors = _detect(gray, config.sift_features, config.sift_low_texture_contrast)
        return _as_features(gray, keypoints, descriptors)
    h, w = gray.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    keypoints, descriptors = _detect(small, config.sift_features, config.sift_low_texture_contrast)
    found = _as_features(small, keypoints, descriptors)
    # Back in the working copy's coordinates, where the alignment and SSIM read them.
    points = found.points * np.array([w / size[0], h / size[1]], dtype=np.float32)
    points.setflags(write=False)
    return SiftFeatures(points, found.descriptors, w, h)


def _as_features(
    gray: np.ndarray, keypoints: Sequence[cv2.KeyPoint], descriptors: np.ndarray | None
) -> SiftFeatures:
    h, w = gray.shape
    if descriptors is None or not keypoints:
        return SiftFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), w, h)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    descriptors = np.asarray(descriptors, dtype=np.float32)
    # Shared through a FeatureCache, so nobody may edit them in place.
    points.setflags(write=False)
    descriptors.setflags(write=False)
    return SiftFeatures(points, descriptors, w, h)


# OpenCV's SIFT keeps an extremum when |contrast| x layers per octave >= contrastThreshold and
# reports |contrast| as the keypoint's response (nOctaveLayers is left at its default, 3).
_SIFT_OCTAVE_LAYERS = 3

# A picture looks flat when at most this share of its half-size pixels has a difference of
# Gaussians (sigma 1.0 - 1.6) over _FLAT_DOG_LEVEL grey levels. Measured on 500 broad-pool images
# and 218 throughput-feed tiles, 189 of them under 150 keypoints at 0.04: it picks 141 of those and
# 7 of the other 529, for 0.6 ms. A wrong guess only costs time: the result is the two passes'
# either way (on 518 of them: identical features, 48 -> 39 ms of SIFT per picture).
_FLAT_DOG_SHARE = 0.10
_FLAT_DOG_LEVEL = 3.4


def _looks_flat(gray: np.ndarray) -> bool:
    """Whether a working copy will probably give too few keypoints at the default contrast."""
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA).astype(
        np.float32
    )
    dog = np.abs(cv2.GaussianBlur(small, (0, 0), 1.0) - cv2.GaussianBlur(small, (0, 0), 1.6))
    return bool(np.count_nonzero(dog > _FLAT_DOG_LEVEL) <= _FLAT_DOG_SHARE * dog.size)


def _detect_two_pass(
    gray: np.ndarray, config: VerifierConfig
) -> tuple[Sequence[cv2.KeyPoint], np.ndarray | None]:
    """SIFT at the default contrast, or at the low-texture one when that finds fewer than
    config.sift_low_texture_keypoints: the same keypoints whichever pass runs first.

    Most of a flat picture's cost was the first pass, which it then threw away, so a picture that
    looks flat (_looks_flat) runs the low pass first. Its keypoints with a response at the default
    threshold include every keypoint the default pass would find (the same extrema, interpolated
    the same way; only a lower cut; and if the keypoint budget dropped any, at least that many
    stronger ones are there): fewer than the minimum of them means the default pass would find
    fewer too, and the low pass's result is the answer. Otherwise the default pass decides, as it
    always did."""
    features, minimum = config.sift_features, config.sift_low_texture_keypoints
    low: tuple[Sequence[cv2.KeyPoint], np.ndarray | None] | None = None
    if _looks_flat(gray):
        low = _detect(gray, features, config.sift_low_texture_contrast)
        cut = np.float32(config.sift_contrast / _SIFT_OCTAVE_LAYERS) * np.float32(1 - 1e-5)
        strong = sum(1 for kp in low[0] if kp.response >= cut)
        if strong < minimum:
            return low
    first = _detect(gray, features, config.sift_contrast)
    if len(first[0]) >= minimum:
        return first
    return low if low is not None else _detect(gray, features, config.sift_low_texture_contrast)


def _detect(
    gray: np.ndarray, features: int, contrast: float
) -> tuple[Sequence[cv2.KeyPoint], np.ndarray | None]:
    sift = cv2.SIFT.create(nfeatures=features, contrastThreshold=contrast)
    keypoints, descriptors = sift.detectAndCompute(gray, None)
    return keypoints, descriptors


def extract_sift(rgb: np.ndarray, config: VerifierConfig = DEFAULT_VERIFIER) -> SiftFeatures:
    """The features the verifier would extract from this stored copy (an HxWx3 uint8 array
    decoded from the stored JPEG: the same pixels the verifier loads)."""
    return extract_features(working_gray(rgb, config), config)


class FeatureCache:
    """The features of the last few working copies extracted, by their pixels. A new listing
    photo is usually verified against several candidates in a row, and SIFT dominates the cost
    of a verification, so a caller verifying a stream of pairs keeps one of these and passes it
    to every verification. Thread-safe."""

    def __init__(self, size: int = 32) -> None:
        # About 0.5 MB per entry (1000 SIFT descriptors).
        self._size = size
        self._entries: OrderedDict[bytes, SiftFeatures] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def features(self, gray: np.ndarray, config: VerifierConfig, *, flat: bool = False) -> SiftFeatures:
        """extract_features(gray, config), or extract_flat_features with `flat`, from the cache when
        these pixels were extracted so lately."""
        digest = hashlib.blake2b(gray.tobytes(), digest_size=16)
        settings = (
            (config.sift_features, round(config.sift_low_texture_contrast * 10_000), config.flat_retry_scale)
            if flat
            else None
        )
        digest.update(f"{gray.shape}:{_settings(config)}:{settings}".encode())
        key = digest.digest()
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                return cached
        features = extract_flat_features(gray, config) if flat else extract_features(gray, config)
        with self._lock:
            self._entries[key] = features
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return features


def stored_flat_features(
    gray: np.ndarray, features: SiftFeatures, config: VerifierConfig
) -> SiftFeatures | None:
    """What an image stores at indexing for its second alignment (config.flat_retry_keypoints): the
    low-contrast features of its stored copy's working copy (`gray`; `features`: its extract_features)
    where that retry would extract them, so a pair pays only for matching them; None for a picture with
    keypoints enough."""
    if config.flat_retry_keypoints <= 0 or len(features.points) >= config.flat_retry_keypoints:
        return None
    return extract_flat_features(gray, config)


# Stored features: magic, format, then the extraction settings they were made with, so a
# verifier with other settings extracts afresh instead of trusting them. Format 1 (fused-v3 and
# before) had no contrast settings: its features were extracted at 0.04 without a second pass.
# Format 2 adds them, as whole ten-thousandths.
_SIFT_MAGIC = b"SIFT"
_SIFT_FORMAT = 2
_SIFT_HEADER_1 = np.dtype(
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
_SIFT_HEADER = np.dtype(
    [
        *[(name, _SIFT_HEADER_1[name].str) for name in _SIFT_HEADER_1.names or ()],
        ("contrast", "<u2"),
        ("low_texture_keypoints", "<u2"),
        ("low_texture_contrast", "<u2"),
    ]
)
_FORMAT_1_CONTRAST = (400, 0, 400)  # 0.04, no second pass


def _settings(config: VerifierConfig) -> tuple[int, ...]:
    """The extraction settings stored features record, as whole numbers (without a second pass,
    its contrast is the first one's: it changes nothing)."""
    second = config.sift_low_texture_contrast if config.sift_low_texture_keypoints else config.sift_contrast
    return (
        config.sift_features,
        config.sift_max_side,
        config.sift_min_side,
        round(config.sift_contrast * 10_000),
        config.sift_low_texture_keypoints,
        round(second * 10_000),
    )


def sift_to_bytes(features: SiftFeatures, config: VerifierConfig = DEFAULT_VERIFIER) -> bytes:
    """Compact storage form: ~136 bytes per keypoint (float32 x, y and 128 uint8 descriptor
    values, which is all a SIFT descriptor holds)."""
    settings = _settings(config)
    features_n, max_side, min_side = settings[:3]
    first = (_SIFT_MAGIC, 1, features_n, max_side, min_side, features.width, features.height)
    if settings[3:] == _FORMAT_1_CONTRAST:
        # Format 1 where it says everything (fused-v3's settings): readable by older verifiers.
        header = np.array([(*first, len(features.points))], dtype=_SIFT_HEADER_1)
    else:
        row = (*first[:1], _SIFT_FORMAT, *first[2:], len(features.points), *settings[3:])
        header = np.array([row], dtype=_SIFT_HEADER)
    return header.tobytes() + _body(features)


def sift_from_bytes(blob: bytes, config: VerifierConfig = DEFAULT_VERIFIER) -> SiftFeatures | None:
    """sift_to_bytes' inverse; None when the features were extracted under other settings
    (any format-1 blob under a lower contrast threshold). Raises ValueError for a malformed blob."""
    if len(blob) < _SIFT_HEADER_1.itemsize:
        raise ValueError("stored SIFT features: truncated header")
    first = np.frombuffer(blob[: _SIFT_HEADER_1.itemsize], dtype=_SIFT_HEADER_1)[0]
    version = int(first["format"])
    if bytes(first["magic"]) != _SIFT_MAGIC or version not in (1, _SIFT_FORMAT):
        raise ValueError("stored SIFT features: unknown format")
    dtype = _SIFT_HEADER if version == _SIFT_FORMAT else _SIFT_HEADER_1
    size = dtype.itemsize
    if len(blob) < size:
        raise ValueError("stored SIFT features: truncated header")
    header = np.frombuffer(blob[:size], dtype=dtype)[0]
    recorded: tuple[int, ...] = (int(header["features"]), int(header["max_side"]), int(header["min_side"]))
    if version == _SIFT_FORMAT:
        recorded += tuple(
            int(header[name]) for name in ("contrast", "low_texture_keypoints", "low_texture_contrast")
        )
    else:
        recorded += _FORMAT_1_CONTRAST
    if recorded != _settings(config):
        return None
    return _from_body(blob, size, header)


# A flat picture's low-contrast features (extract_flat_features), stored at indexing for its second
# alignment: their own magic, and the settings they were made with (low-texture contrast and the
# retry's scale, in whole ten-thousandths and thousandths), so they are never read as the first ones.
_FLAT_MAGIC = b"FLAT"
_FLAT_HEADER = np.dtype(
    [
        *[(name, _SIFT_HEADER_1[name].str) for name in _SIFT_HEADER_1.names or ()],
        ("contrast", "<u2"),
        ("scale", "<u2"),
    ]
)


def _flat_settings(config: VerifierConfig) -> tuple[int, ...]:
    return (
        config.sift_features,
        config.sift_max_side,
        config.sift_min_side,
        round(config.sift_low_texture_contrast * 10_000),
        round(config.flat_retry_scale * 1_000),
    )


def flat_to_bytes(features: SiftFeatures, config: VerifierConfig) -> bytes:
    """extract_flat_features' result in sift_to_bytes' layout under its own header."""
    features_n, max_side, min_side, contrast, scale = _flat_settings(config)
    row = (_FLAT_MAGIC, 1, features_n, max_side, min_side, features.width, features.height)
    header = np.array([(*row, len(features.points), contrast, scale)], dtype=_FLAT_HEADER)
    return header.tobytes() + _body(features)


def flat_from_bytes(blob: bytes, config: VerifierConfig) -> SiftFeatures | None:
    """flat_to_bytes' inverse; None when made under other settings. ValueError for a malformed blob."""
    if len(blob) < _FLAT_HEADER.itemsize:
        raise ValueError("stored flat SIFT features: truncated header")
    header = np.frombuffer(blob[: _FLAT_HEADER.itemsize], dtype=_FLAT_HEADER)[0]
    if bytes(header["magic"]) != _FLAT_MAGIC or int(header["format"]) != 1:
        raise ValueError("stored flat SIFT features: unknown format")
    names = ("features", "max_side", "min_side", "contrast", "scale")
    if tuple(int(header[name]) for name in names) != _flat_settings(config):
        return None
    return _from_body(blob, _FLAT_HEADER.itemsize, header)


def _body(features: SiftFeatures) -> bytes:
    descriptors = features.descriptors.astype(np.uint8)
    if not np.array_equal(descriptors, features.descriptors):
        raise ValueError("SIFT descriptors must hold whole numbers 0..255")
    return features.points.astype("<f4").tobytes() + descriptors.tobytes()


def _from_body(blob: bytes, size: int, header: np.void) -> SiftFeatures:
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


def mirrored(features: SiftFeatures) -> SiftFeatures:
    """The features of the horizontally mirrored working copy, without extracting them again."""
    points = features.points.copy()
    points[:, 0] = (features.width - 1) - points[:, 0]
    descriptors = np.ascontiguousarray(features.descriptors[:, _MIRROR_PERMUTATION])
    return SiftFeatures(points, descriptors, features.width, features.height)


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
