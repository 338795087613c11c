"""Settings -> the database's upkeep, each as one line to print: rejected pairs, published cluster
changes and orphan blobs pruned (`imgdup prune`), bytea of before migration 009 moved to the blob
store (`imgdup migrate-blobs`)."""

from __future__ import annotations

from imgdup.blobs.factory import open_blob_store
from imgdup.settings import Settings
from imgdup.store.blob_gc import collect_orphan_blobs
from imgdup.store.blob_migration import migrate_blobs
from imgdup.store.retention import prune_published_changes, prune_rejected_pairs


def prune(settings: Settings) -> str:
    """Rejected pairs and published cluster changes past their retention, then blobs no row refers
    to (past the grace period)."""
    days, hours, dsn = (
        settings.rejected_pair_retention_days,
        settings.blob_orphan_grace_hours,
        settings.database_dsn(),
    )
    deleted = prune_rejected_pairs(dsn, retention_days=days, batch_size=settings.prune_batch_size)
    change_days = settings.cluster_changes_retention_days
    changes = prune_published_changes(dsn, retention_days=change_days, batch_size=settings.prune_batch_size)
    orphans = collect_orphan_blobs(dsn, open_blob_store(settings), grace_s=hours * 3600)
    return (
        f"pruned {deleted} rejected pairs decided more than {days} days ago;"
        f" pruned {changes} published cluster changes published more than {change_days} days ago;"
        f" deleted {orphans} blobs no image refers to, written more than {hours} hours ago"
    )


def move_blobs(settings: Settings) -> str:
    moved = migrate_blobs(settings.database_dsn(), open_blob_store(settings))
    return "moved to the blob store: " + ", ".join(f"{n} {column}" for column, n in moved.items())
