"""Detection-quality benchmark: `python -m bench.quality` (see bench/quality/README.md)."""
