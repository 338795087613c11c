"""Postgres rows -> duplicate statistics for operations (read models): ratios by source and category
over time, the image hosts and the sellers that show up most in duplicate clusters.

An image counts as "in a cluster" when it is a member of a duplicate cluster through at least one
pair that no moderator marked `not_duplicate`: a moderator's rejection is used here as everywhere
the admin API presents duplicates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

# Images first seen in the window, with their ad and whether they count as duplicated.
_WINDOW = """
WITH win AS (
    SELECT i.image_id, i.url, i.ad_id, a.source, a.category, a.seller_id, i.first_seen_at,
           (i.first_seen_at AT TIME ZONE 'UTC')::date AS day, m.cluster_id,
           m.image_id IS NOT NULL AND EXISTS (
               SELECT 1 FROM duplicates d
               WHERE d.is_duplicate AND (d.image_a = i.image_id OR d.image_b = i.image_id)
                 AND NOT EXISTS (
                     SELECT 1 FROM moderator_verdicts v
                     WHERE v.pair_id = d.pair_id AND v.verdict = 'not_duplicate')
           ) AS duplicated
    FROM images i
    JOIN ads a ON a.ad_id = i.ad_id
    LEFT JOIN cluster_members m ON m.image_id = i.image_id
    WHERE i.status = 'indexed' AND i.first_seen_at >= %(since)s
)
"""

# The host of an absolute URL (user-info and port left out; IPv6 literals keep their brackets).
_HOST = r"lower(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^]/]*\]|[^:/?#]*)'))"


class DayBucket(BaseModel):
    day: date
    images_indexed: int
    images_in_clusters: int
    ratio: float = Field(description="images_in_clusters / images_indexed")


class GroupStats(BaseModel):
    images_indexed: int
    images_in_clusters: int
    ratio: float
    daily: list[DayBucket] = Field(description="One bucket per day with images first seen; others left out")


class SourceStats(GroupStats):
    source: str


class CategoryStats(GroupStats):
    category: str | None


class DomainStats(BaseModel):
    domain: str
    images: int = Field(description="Images from this host that are in a cluster")
    clusters: int
    ads: int


class SellerStats(BaseModel):
    seller_id: str
    clusters: int
    images: int = Field(description="The seller's images that are in a cluster")
    ads: int
    copies: int = Field(
        description="Of those, images whose photo was first seen earlier in another seller's ad"
    )


class Totals(BaseModel):
    images_indexed: int
    images_in_clusters: int
    ratio: float
    clusters: int


class Stats(BaseModel):
    days: int
    since: date = Field(description="First day of the window (UTC); the window ends today")
    totals: Totals
    daily: list[DayBucket]
    by_source: list[SourceStats]
    by_category: list[CategoryStats]
    top_image_domains: list[DomainStats]
    top_sellers: list[SellerStats]


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def window_start(days: int, now: datetime | None = None) -> date:
    """The first UTC day of a window of `days` days ending today."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return today - timedelta(days=days - 1)


def _group(rows: list[dict[str, Any]]) -> tuple[int, int, list[DayBucket]]:
    per_day: dict[date, list[int]] = {}
    for row in rows:
        bucket = per_day.setdefault(row["day"], [0, 0])
        bucket[0] += row["indexed"]
        bucket[1] += row["clustered"]
    daily = [
        DayBucket(day=day, images_indexed=n, images_in_clusters=c, ratio=_ratio(c, n))
        for day, (n, c) in sorted(per_day.items())
    ]
    return sum(b.images_indexed for b in daily), sum(b.images_in_clusters for b in daily), daily


async def duplicate_stats(pool: AsyncConnectionPool, *, days: int = 30, top: int = 10) -> Stats:
    """Statistics over the `days` days ending today (UTC); `top` hosts and sellers."""
    since = window_start(days)
    params = {"since": datetime(since.year, since.month, since.day, tzinfo=UTC), "top": top}
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            _WINDOW + "SELECT source, category, day, count(*) AS indexed,"
            " count(*) FILTER (WHERE duplicated) AS clustered"
            " FROM win GROUP BY source, category, day",
            params,
        )
        buckets = await cur.fetchall()
        await cur.execute(
            _WINDOW + "SELECT count(DISTINCT cluster_id) AS clusters FROM win WHERE duplicated", params
        )
        clusters_row = await cur.fetchone()
        await cur.execute(
            _WINDOW + "SELECT domain, count(*) AS images, count(DISTINCT cluster_id) AS clusters,"
            " count(DISTINCT ad_id) AS ads"
            f" FROM (SELECT {_HOST} AS domain, cluster_id, ad_id FROM win WHERE duplicated) h"
            " WHERE domain IS NOT NULL AND domain <> ''"
            " GROUP BY domain ORDER BY images DESC, clusters DESC, domain LIMIT %(top)s",
            params,
        )
        domains = await cur.fetchall()
        await cur.execute(
            _WINDOW + "SELECT w.seller_id, count(DISTINCT w.cluster_id) AS clusters, count(*) AS images,"
            " count(DISTINCT w.ad_id) AS ads,"
            " count(*) FILTER (WHERE EXISTS ("
            "   SELECT 1 FROM cluster_members m2 JOIN images i2 ON i2.image_id = m2.image_id"
            "   JOIN ads a2 ON a2.ad_id = i2.ad_id"
            "   WHERE m2.cluster_id = w.cluster_id AND i2.first_seen_at < w.first_seen_at"
            "     AND a2.seller_id IS DISTINCT FROM w.seller_id)) AS copies"
            " FROM win w WHERE w.duplicated AND w.seller_id IS NOT NULL GROUP BY w.seller_id"
            " ORDER BY clusters DESC, images DESC, w.seller_id LIMIT %(top)s",
            params,
        )
        sellers = await cur.fetchall()

    total_n, total_c, daily = _group(buckets)
    by_source: list[SourceStats] = []
    for source in sorted({row["source"] for row in buckets}):
        n, c, days_ = _group([row for row in buckets if row["source"] == source])
        by_source.append(
            SourceStats(
                source=source, images_indexed=n, images_in_clusters=c, ratio=_ratio(c, n), daily=days_
            )
        )
    by_category: list[CategoryStats] = []
    for category in sorted({row["category"] for row in buckets}, key=lambda c: (c is None, c or "")):
        n, c, days_ = _group([row for row in buckets if row["category"] == category])
        by_category.append(
            CategoryStats(
                category=category, images_indexed=n, images_in_clusters=c, ratio=_ratio(c, n), daily=days_
            )
        )
    by_source.sort(key=lambda s: (-s.ratio, -s.images_indexed, s.source))
    by_category.sort(key=lambda s: (-s.ratio, -s.images_indexed, s.category is None, s.category or ""))
    return Stats(
        days=days,
        since=since,
        totals=Totals(
            images_indexed=total_n,
            images_in_clusters=total_c,
            ratio=_ratio(total_c, total_n),
            clusters=int(clusters_row["clusters"]) if clusters_row else 0,
        ),
        daily=daily,
        by_source=by_source,
        by_category=by_category,
        top_image_domains=[DomainStats(**row) for row in domains],
        top_sellers=[SellerStats(**row) for row in sellers],
    )
