"""Vectors of images -> nearest neighbours: one interface, one module per backend, one factory."""
