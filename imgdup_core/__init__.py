"""Pure image core: untrusted bytes in; decoded pixels, hashes, embeddings and verdicts out."""

from imgdup_core.decode import DecodedImage, ImageRejected, decode_image, load_rgb, storage_jpeg
from imgdup_core.embedding import ClipEmbedder, Embedder, SscdOnnxEmbedder, build_embedder
from imgdup_core.hashing import hamming64, phash64, phash_distance, phash_pair
from imgdup_core.verify import DEFAULT_VERIFIER, Evidence, ImageView, Verdict, VerifierConfig, verify_images

__all__ = [
    "DEFAULT_VERIFIER",
    "ClipEmbedder",
    "DecodedImage",
    "Embedder",
    "Evidence",
    "ImageRejected",
    "ImageView",
    "SscdOnnxEmbedder",
    "Verdict",
    "VerifierConfig",
    "build_embedder",
    "decode_image",
    "hamming64",
    "load_rgb",
    "phash64",
    "phash_distance",
    "phash_pair",
    "storage_jpeg",
    "verify_images",
]
