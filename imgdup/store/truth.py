"""A pair's current truth (the verifier's verdict, overridden by a moderator's) -> its edge added or
retracted in one transaction by the clusterer, the cluster changes recorded in the outbox, and the
public duplicate event of a clustered pair.

What a pair should be: a moderator's `confirmed` pins it as an edge (whatever a re-verification
says, until a moderator changes it), `not_duplicate` keeps it out; without a moderator the verifier
decides (`verified`/`clustered` in, `rejected` out); a pair being verified again keeps what it has.
A pair that should be an edge but would join two established groups through one marginal edge is
held (imgdup_core.bridges, imgdup.store.bridges): a duplicate pair, settled, but no edge and no event.
Whenever a cluster gains or loses an edge, the held pairs touching it are looked at again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from imgdup import ids
from imgdup.store import bridges, changes, clusters, touched
from imgdup_core.bridges import BridgeRule
from imgdup_core.clustering import ClusterPlan
from schemas import ClusterRef, DuplicateEventV1, PairClusteredV1, PairRetractedV1

Row = dict[str, Any]
Cause = Literal["verifier", "moderator"]


@dataclass(frozen=True)
class Settled:
    """A pair after the clusterer reconciled it."""

    edge: bool  # the pair is an edge of a cluster now
    added: bool  # it became one in this transaction
    event: DuplicateEventV1 | None  # its public duplicate event while it is an edge
    # Held pairs that this pair's edge added or retracted let in, made edges in this transaction:
    # their duplicate events (published like the pair's own).
    released: tuple[DuplicateEventV1, ...] = field(default=())


def wanted(pair: Row) -> bool | None:
    """Should the pair be an edge? None: not decided yet (a candidate), leave it as it is."""
    if pair["verdict"] == "confirmed":
        return True if pair["decided_at"] is not None else None
    if pair["verdict"] == "not_duplicate":
        return False
    if pair["status"] in ("verified", "clustered"):
        return True
    return False if pair["status"] == "rejected" else None


# Pairs whose edge the clusterer has still to add or retract (`wanted` disagrees with `clustered_at`):
# an edge the verifier rejected, an edge a moderator said is no duplicate, a confirmed pair not yet an
# edge. Status 'verified' is in flight anyway. Partial index duplicates_unsettled (migration 007) and
# the small moderator_verdicts table keep it cheap.
UNSETTLED_PAIRS = (
    "SELECT d.pair_id FROM duplicates d WHERE d.clustered_at IS NOT NULL AND d.status = 'rejected'"
    " AND NOT EXISTS (SELECT 1 FROM moderator_verdicts v"
    " WHERE v.pair_id = d.pair_id AND v.verdict = 'confirmed')"
    " UNION ALL SELECT d.pair_id FROM moderator_verdicts v JOIN duplicates d USING (pair_id)"
    " WHERE (v.verdict = 'not_duplicate' AND d.clustered_at IS NOT NULL AND d.status = 'clustered')"
    " OR (v.verdict = 'confirmed' AND d.clustered_at IS NULL AND d.status IN ('rejected', 'clustered'))"
)


async def pairs_to_review(pool: AsyncConnectionPool, limit: int = 10_000) -> list[str]:
    """Unsettled pairs, and one pair when only unpublished changes are left (any review makes the
    clusterer publish them): what a re-drive hands the clusterer again."""
    async with pool.connection() as conn:
        cur = await conn.execute(f"{UNSETTLED_PAIRS} LIMIT %s", (limit,))
        pairs = [str(row[0]) for row in await cur.fetchall()]
        if not pairs:
            cur = await conn.execute(
                "SELECT pair_id FROM cluster_changes WHERE published_at IS NULL AND pair_id IS NOT NULL"
                " ORDER BY seq LIMIT 1"
            )
            pairs = [str(row[0]) for row in await cur.fetchall()]
    return pairs


@dataclass(frozen=True)
class _Locked:
    pair: Row  # the `duplicates` row, locked, with its moderator verdict
    retractions: int  # how many times its edge was retracted: the number in its events' ids
    images: dict[str, Row]  # its two images with their ads (clusters.sides, the duplicate event)
    cluster_of: dict[str, str]  # its images that are in a cluster -> that cluster


# What every path needs of a locked pair, in one read: its two images with their ads, the cluster
# each is in, and how many times its edge was retracted (cluster_changes_pair index).
_PAIR_CONTEXT = (
    "SELECT i.image_id::text AS image_id, i.url, i.first_seen_at, a.ad_id, a.source, a.category,"
    " a.seller_id, a.created_at, m.cluster_id::text AS cluster_id,"
    " (SELECT count(*) FROM cluster_changes c WHERE c.pair_id = d.pair_id AND c.type = 'pair_retracted')"
    " AS retractions FROM duplicates d"
    " JOIN images i ON i.image_id = ANY(ARRAY[d.image_a, d.image_b]) JOIN ads a ON a.ad_id = i.ad_id"
    " LEFT JOIN cluster_members m ON m.image_id = i.image_id WHERE d.pair_id = %s"
)


async def _lock_pair(conn: AsyncConnection[Any], pair_id: str) -> _Locked | None:
    """The pair's row locked, then what the paths need of it. Both statements are sent before either
    answer is read: in the clusterer's pipeline one round trip. The second still runs after the lock
    is taken, on its own snapshot, so it sees every retraction and cluster change committed before
    (as the separate reads after the lock did)."""
    locked = await conn.cursor(row_factory=dict_row).execute(
        "SELECT d.*, v.verdict, v.moderator, v.note FROM duplicates d"
        " LEFT JOIN moderator_verdicts v ON v.pair_id = d.pair_id"
        " WHERE d.pair_id = %s FOR UPDATE OF d",
        (pair_id,),
    )
    context = await conn.cursor(row_factory=dict_row).execute(_PAIR_CONTEXT, (pair_id,))
    pair = await locked.fetchone()
    rows = {str(row["image_id"]): row for row in await context.fetchall()}
    if pair is None:
        return None
    retractions = max((int(row["retractions"]) for row in rows.values()), default=0)
    cluster_of = {image: str(row["cluster_id"]) for image, row in rows.items() if row["cluster_id"]}
    return _Locked(pair, retractions, rows, cluster_of)


async def settle(
    conn: AsyncConnection[Any], pair_id: str, rule: BridgeRule, *, release: bool = True
) -> Settled | None:
    """Reconcile one pair inside the caller's transaction; None when the pair is unknown.
    Idempotent: a pair already as it should be changes nothing and records nothing. `release`: make
    the held pairs this pair's merge put inside one cluster edges too."""
    locked = await _lock_pair(conn, pair_id)
    if locked is None:
        return None
    pair, retractions = locked.pair, locked.retractions
    want, edge = wanted(pair), pair["clustered_at"] is not None
    if want is None:
        return Settled(edge, False, None)
    if not want:
        changed: list[str] = []  # the images of the cluster that lost the edge
        if edge:
            changed = await _retract(conn, locked)
        if pair["status"] in ("verified", "clustered"):  # a moderator overrode the verifier
            # A held pair was never announced: it leaves quietly, no cluster loses an edge.
            await conn.execute(
                "UPDATE duplicates SET status = 'rejected', held_at = NULL WHERE pair_id = %s", (pair_id,)
            )
        freed = await _release(conn, changed, rule) if release else ()
        return Settled(False, False, None, freed)
    if edge:  # an edge already (a redelivery, a look again): its event again, nothing else
        if pair["status"] != "candidate":
            await _mark_edge(conn, pair)
        event = await clusters.duplicate_event(conn, pair, locked.images, retractions=retractions)
        return Settled(True, False, event)
    # The clusters the pair touches, locked and read once: the bridge rule and the plan share them.
    near = await touched.read(conn, pair_id, str(pair["image_a"]), str(pair["image_b"]), locked.cluster_of)
    if bridges.decision(pair, rule, near) == "held":
        if pair["status"] != "candidate":
            await bridges.hold(conn, pair_id)
        return Settled(False, False, None)
    plan = await _add(conn, locked, near)
    # The cluster as the plan left it: its row and members need no reading back.
    cluster = ClusterRef(cluster_id=plan.cluster_id, size=plan.size, ad_count=plan.ad_count)
    event = await clusters.duplicate_event(
        conn, pair, locked.images, retractions=retractions, cluster=cluster
    )
    released: tuple[DuplicateEventV1, ...] = ()
    if release:
        members = sorted(near.members().keys() | {str(pair["image_a"]), str(pair["image_b"])})
        released = await _release(conn, members, rule)
    return Settled(True, True, event, released)


async def _release(
    conn: AsyncConnection[Any], images: list[str], rule: BridgeRule
) -> tuple[DuplicateEventV1, ...]:
    """Look again at the held pairs touching `images` (a cluster that just changed): those that join
    no two groups through one marginal edge any more become edges. Again while one does (each may
    open the way for another); at most once per held pair."""
    events: list[DuplicateEventV1] = []
    done: set[str] = set()
    while images:
        grown: set[str] = set()
        for held in await bridges.held_touching(conn, images):
            if held in done:
                continue
            settled = await settle(conn, held, rule, release=False)
            if settled is not None and settled.added:
                done.add(held)
                if settled.event is not None:
                    events.append(settled.event)
                grown.add(await _cluster_of_pair(conn, held))
        images = [image for cluster in sorted(grown) for image in await bridges.members_of(conn, cluster)]
    return tuple(events)


async def _cluster_of_pair(conn: AsyncConnection[Any], pair_id: str) -> str:
    cur = await conn.execute(
        "SELECT m.cluster_id::text FROM duplicates d JOIN cluster_members m ON m.image_id = d.image_a"
        " WHERE d.pair_id = %s",
        (pair_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def _mark_edge(conn: AsyncConnection[Any], pair: Row) -> None:
    """The locked pair's row as an edge (clustered since now, unless it already was), in one UPDATE: a
    pair being verified again keeps 'candidate' for the verifier, any other becomes 'clustered' and
    is no longer held."""
    if pair["status"] == "candidate":
        sql = "UPDATE duplicates SET clustered_at = coalesce(clustered_at, now()) WHERE pair_id = %s"
    else:
        sql = (
            "UPDATE duplicates SET status = 'clustered', clustered_at = coalesce(clustered_at, now()),"
            " held_at = NULL WHERE pair_id = %s"
        )
    await conn.execute(sql, (str(pair["pair_id"]),))


async def _add(conn: AsyncConnection[Any], locked: _Locked, near: touched.Touched) -> ClusterPlan:
    """Make the pair an edge: its clusters planned and written, the pair's row marked (one UPDATE),
    its pair_clustered change in the outbox. Only writes: in the clusterer's pipeline they cost no
    round trip of their own."""
    pair, retractions = locked.pair, locked.retractions
    pair_id = str(pair["pair_id"])
    plan = await clusters.add_edge(conn, pair, near, retractions=retractions)
    await _mark_edge(conn, pair)
    sides = clusters.sides(locked.images)
    by: Cause = "moderator" if pair["verdict"] == "confirmed" else "verifier"
    clustered = PairClusteredV1(
        event_id=ids.change_event_id("pair_clustered", pair_id, retractions),
        occurred_at=datetime.now(UTC),
        pair_id=pair_id,
        duplicate_event_id=ids.duplicate_event_id(pair_id, pair["verifier_version"], retractions),
        original=sides.original,
        duplicate=sides.duplicate,
        cluster_id=plan.cluster_id,
        by=by,
        verifier_version=pair["verifier_version"],
    )
    await changes.record(
        conn, clustered, key=sides.duplicate.ad_id, pair_id=pair_id, cluster_id=plan.cluster_id
    )
    return plan


async def _retract(conn: AsyncConnection[Any], locked: _Locked) -> list[str]:
    """Retract the pair's edge (and split its cluster if it fell apart); the cluster's images."""
    pair, retractions = locked.pair, locked.retractions
    pair_id = str(pair["pair_id"])
    cluster_id = (await clusters.cluster_of(conn, [str(pair["image_a"])])).get(str(pair["image_a"]))
    images = await bridges.members_of(conn, cluster_id) if cluster_id is not None else []
    await conn.execute("UPDATE duplicates SET clustered_at = NULL WHERE pair_id = %s", (pair_id,))
    sides = clusters.sides(locked.images)
    by_moderator = pair["verdict"] == "not_duplicate"
    retracted = PairRetractedV1(
        event_id=ids.change_event_id("pair_retracted", pair_id, retractions),
        occurred_at=datetime.now(UTC),
        pair_id=pair_id,
        original=sides.original,
        duplicate=sides.duplicate,
        cluster_id=cluster_id or "",
        by="moderator" if by_moderator else "verifier",
        moderator=pair["moderator"] if by_moderator else None,
        note=pair["note"] if by_moderator else None,
        verifier_version=pair["verifier_version"],
    )
    await changes.record(conn, retracted, key=sides.duplicate.ad_id, pair_id=pair_id, cluster_id=cluster_id)
    if cluster_id is not None:
        await clusters.split_after_retraction(conn, cluster_id, pair_id)
    return images


async def cluster_pair(pool: AsyncConnectionPool, pair_id: str, rule: BridgeRule) -> list[DuplicateEventV1]:
    """A verified pair handed on by the verifier: its public event while it is an edge (also on
    redelivery, same event_id, so a crash between commit and publish is repaired), then those of the
    held pairs its merge released; none when a moderator said `not_duplicate`, the pair is no
    longer verified, or it is held."""
    async with pool.connection() as conn, conn.transaction(), conn.pipeline():
        settled = await settle(conn, pair_id, rule)
    if settled is None:
        return []
    return ([settled.event] if settled.event is not None else []) + list(settled.released)


async def review_pair(pool: AsyncConnectionPool, pair_id: str, rule: BridgeRule) -> list[DuplicateEventV1]:
    """A pair whose truth may have changed: its duplicate event when it just became an edge, then
    those of the held pairs its merge released."""
    async with pool.connection() as conn, conn.transaction(), conn.pipeline():
        settled = await settle(conn, pair_id, rule)
    if settled is None:
        return []
    own = [settled.event] if settled.event is not None and settled.added else []
    return own + list(settled.released)
