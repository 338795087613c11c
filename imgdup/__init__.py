"""imgdup: streaming duplicate and near-duplicate photo detection for classified-ad portals."""
