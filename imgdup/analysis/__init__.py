"""Image URLs -> analysed images: the guarded download, decoding, hashing, framing, batched embedding."""
