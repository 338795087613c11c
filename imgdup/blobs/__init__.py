"""Stored copies and SIFT features -> content-addressed blobs: one interface, a module per backend."""
