"""The routers on a real Postgres: seeded rows in, the JSON the admin page and API clients read out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from helpers.api import RecordingPublisher
from pydantic import SecretStr

from imgdup.http import deps
from imgdup.http.app import create_api
from imgdup.kafka.publisher import PublishError
from imgdup.settings import Settings
from schemas import EvidenceV1, PairReviewV1, topics

TOKEN = "s3cret-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WHEN = datetime(2024, 5, 1, 12, tzinfo=UTC)
CLUSTER = str(uuid.UUID(int=900))
KEPT, REJECTED, CANDIDATE = (str(uuid.UUID(int=n)) for n in (501, 502, 503))
Conn = psycopg.Connection[Any]


def _image(n: int) -> str:
    return str(uuid.UUID(int=n))


def _ads(conn: Conn, ads: tuple[int, ...]) -> None:
    """Ads with one indexed image each."""
    for ad in ads:
        row = (ad, f"s{ad}", WHEN, f"e{ad}")
        conn.execute("INSERT INTO ads VALUES (%s, 'olx.pt', 'cars', %s, %s, %s)", row)
        conn.execute(
            "INSERT INTO images (image_id, ad_id, url, position, status, width, height, first_seen_at)"
            " VALUES (%s, %s, %s, 0, 'indexed', 640, 480, %s)",
            (_image(ad), ad, f"https://cdn.example.com/{ad}.jpg", WHEN),
        )


def _pair(
    conn: Conn, pair: str, a: int, b: int, status: str, *, duplicate: bool = True, edge: bool = False
) -> None:
    """A verified pair of the two ads' images (an edge of their cluster when `edge`)."""
    conn.execute(
        "INSERT INTO duplicates (pair_id, image_a, image_b, ad_a, ad_b, status, is_duplicate,"
        " confidence, cosine, phash_distance, phash_mirrored, sift_inliers, sift_mirrored, ssim,"
        " exact, embedding_model, verifier_version, decided_at, clustered_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 0.9, 0.8, 4, false, 30, false, 0.75, false,"
        " 'm1', 'v1', %s, %s)",
        (pair, _image(a), _image(b), a, b, status, duplicate, WHEN, WHEN if edge else None),
    )


def _cluster(conn: Conn, cluster: str, ads: tuple[int, ...], confidence: float) -> None:
    """One cluster of the ads' images (two edges)."""
    conn.execute(
        "INSERT INTO duplicate_clusters VALUES (%s, %s, %s, 2, %s, %s, %s, NULL)",
        (cluster, len(ads), len(ads), confidence, WHEN, WHEN),
    )
    for ad in ads:
        conn.execute("INSERT INTO cluster_members VALUES (%s, %s, %s, %s)", (_image(ad), cluster, ad, WHEN))


def _seed(dsn: str) -> None:
    """Ads 1, 2, 3 with one image each: 1-2 a clustered duplicate, 1-3 clustered but rejected by a
    moderator, 2-3 a candidate not yet verified."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _ads(conn, (1, 2, 3))
        _pair(conn, KEPT, 1, 2, "clustered")
        _pair(conn, REJECTED, 1, 3, "clustered")
        conn.execute(
            "INSERT INTO duplicates (pair_id, image_a, image_b, ad_a, ad_b, cosine)"
            " VALUES (%s, %s, %s, 2, 3, 0.7)",
            (CANDIDATE, _image(2), _image(3)),
        )
        _cluster(conn, CLUSTER, (1, 2, 3), 0.9)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def client(clean_db: str, publisher: RecordingPublisher) -> Iterator[TestClient]:
    _seed(clean_db)
    settings = Settings(
        database_url=SecretStr(clean_db), kafka_bootstrap_servers="127.0.0.1:9", api_token=SecretStr(TOKEN)
    )
    app = create_api(settings)
    app.dependency_overrides[deps.get_publisher] = lambda: publisher
    # Every read needs credentials too (tests/http/test_http_access.py): this client sends the token.
    with TestClient(app, headers=AUTH) as test_client:
        response = test_client.post(
            f"/api/v1/pairs/{REJECTED}/verdict",
            json={"verdict": "not_duplicate", "moderator": "ana"},
        )
        assert response.status_code == 200 and response.json()["changed"] is True
        yield test_client


def test_both_duplicates_urls_answer_the_same(client: TestClient) -> None:
    public = client.get("/api/v1/duplicates/1").json()
    assert public == client.get("/api/v1/admin/duplicates/1").json()
    # The pair a moderator rejected is left out; the other carries the verifier's whole evidence.
    assert [(entry["ad_id"], entry["match"]) for entry in public["duplicates"]] == [(2, "pair")]
    assert public["cluster_mates_left_out"] == 0
    (pair,) = public["duplicates"][0]["pairs"]
    assert pair["pair_id"] == KEPT and pair["moderator_verdict"] is None
    assert EvidenceV1.model_validate(pair["evidence"]).sift_inliers == 30
    assert set(pair["evidence"]) == set(EvidenceV1.model_fields)


def _seed_edits(dsn: str) -> str:
    """Ads 10 (an original), 11 and 12 (two edits of it): 10-11 and 10-12 clustered duplicates,
    11-12 rejected by the verifier; one cluster of the three. Returns the 11-12 pair's id."""
    edit_pair = str(uuid.UUID(int=512))
    with psycopg.connect(dsn, autocommit=True) as conn:
        _ads(conn, (10, 11, 12))
        _pair(conn, str(uuid.UUID(int=510)), 10, 11, "clustered", edge=True)
        _pair(conn, str(uuid.UUID(int=511)), 10, 12, "clustered", edge=True)
        _pair(conn, edit_pair, 11, 12, "rejected", duplicate=False)
        _cluster(conn, str(uuid.UUID(int=901)), (10, 11, 12), 0.93)
    return edit_pair


def test_two_edits_of_one_photo_are_listed_for_each_other_through_their_cluster(
    client: TestClient, clean_db: str
) -> None:
    """Edits 11 and 12 were each verified against the original 10, not against each other: each lists
    the other as matched through the cluster, after its verified pairs, with the images linking them."""
    edit_pair = _seed_edits(clean_db)
    answer = client.get("/api/v1/duplicates/11").json()
    assert [(e["ad_id"], e["match"]) for e in answer["duplicates"]] == [(10, "pair"), (12, "cluster")]
    mate = answer["duplicates"][1]
    assert mate["pairs"] == [] and mate["similarity"] == pytest.approx(0.93)
    (link,) = mate["links"]
    assert (link["image_id"], link["other_image_id"]) == (_image(11), _image(12))
    assert link["other_image_url"] == "https://cdn.example.com/12.jpg"
    assert (link["cluster_id"], link["cluster_size"]) == (str(uuid.UUID(int=901)), 3)
    assert answer["duplicates"][0]["links"] == [] and answer["cluster_mates_left_out"] == 0
    # The original has both as verified pairs, none through the cluster only.
    original = client.get("/api/v1/duplicates/10").json()["duplicates"]
    assert [(e["ad_id"], e["match"]) for e in original] == [(11, "pair"), (12, "pair")]
    # The limit: verified pairs only, and how many cluster mates it left out.
    pairs_only = client.get("/api/v1/duplicates/11", params={"cluster_mates": 0}).json()
    assert [e["ad_id"] for e in pairs_only["duplicates"]] == [10]
    assert pairs_only["cluster_mates_left_out"] == 1
    assert client.get("/api/v1/duplicates/11", params={"cluster_mates": 1001}).status_code == 422
    # A moderator's "not a duplicate" on the two edits stands, though the cluster still links them.
    verdict = {"verdict": "not_duplicate", "moderator": "ana"}
    assert client.post(f"/api/v1/pairs/{edit_pair}/verdict", json=verdict).status_code == 200
    for ad, other in ((11, 10), (12, 10)):
        after = client.get(f"/api/v1/duplicates/{ad}").json()
        assert [e["ad_id"] for e in after["duplicates"]] == [other]
        assert after["cluster_mates_left_out"] == 0


def test_admin_clusters_mark_rejected_pairs_and_detached_images(client: TestClient) -> None:
    (cluster,) = client.get("/api/v1/admin/clusters").json()["clusters"]
    pairs = {pair["pair_id"]: pair for pair in cluster["pairs"]}
    assert pairs[KEPT]["duplicate"] is True and pairs[REJECTED]["duplicate"] is False
    assert pairs[REJECTED]["moderator_verdict"]["moderator"] == "ana"
    assert cluster["verdicts"] == {"confirmed": 0, "not_duplicate": 1, "pending": 1}
    detached = {image["image_id"]: image["detached"] for image in cluster["images"]}
    assert detached == {_image(1): False, _image(2): False, _image(3): True}
    assert all(
        image["thumbnail_url"] == f"/api/v1/images/{image['image_id']}/thumbnail"
        for image in cluster["images"]
    )
    hidden = client.get("/api/v1/admin/clusters", params={"include_rejected": "false"}).json()
    assert [pair["pair_id"] for pair in hidden["clusters"][0]["pairs"]] == [KEPT]


def test_a_rejected_pair_stays_listed_marked_once_the_clusterer_applied_it(
    client: TestClient, clean_db: str
) -> None:
    """The admin page reloads its clusters right after a verdict, racing the clusterer: the pair must
    read the same, marked, before and after the clusterer retracted its edge (status 'rejected',
    image 3 left the cluster), not vanish from its cluster once the verdict is applied."""
    before = client.get("/api/v1/admin/clusters").json()["clusters"][0]
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE duplicates SET status = 'rejected', clustered_at = NULL WHERE pair_id = %s", (REJECTED,)
        )
        conn.execute("DELETE FROM cluster_members WHERE image_id = %s", (_image(3),))
    (cluster,) = client.get("/api/v1/admin/clusters").json()["clusters"]
    pairs = {pair["pair_id"]: pair for pair in cluster["pairs"]}
    assert set(pairs) == {KEPT, REJECTED}
    assert [p["pair_id"] for p in cluster["pairs"]] == [p["pair_id"] for p in before["pairs"]]
    assert pairs[REJECTED]["duplicate"] is False
    assert pairs[REJECTED]["moderator_verdict"]["verdict"] == "not_duplicate"
    assert cluster["verdicts"] == before["verdicts"] == {"confirmed": 0, "not_duplicate": 1, "pending": 1}
    assert {image["image_id"] for image in cluster["images"]} == {_image(1), _image(2)}
    # Left out, as before, where rejected pairs are hidden.
    hidden = client.get("/api/v1/admin/clusters", params={"include_rejected": "false"}).json()
    assert [pair["pair_id"] for pair in hidden["clusters"][0]["pairs"]] == [KEPT]
    # A pair the verifier rejected (no moderator) was never listed and is not now.
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("DELETE FROM moderator_verdicts WHERE pair_id = %s", (REJECTED,))
    (cluster,) = client.get("/api/v1/admin/clusters").json()["clusters"]
    assert [pair["pair_id"] for pair in cluster["pairs"]] == [KEPT]


def test_pair_detail_has_evidence_once_a_verifier_measured_the_pair(client: TestClient) -> None:
    decided = client.get(f"/api/v1/pairs/{REJECTED}").json()
    assert decided["duplicate"] is False and decided["verifier_duplicate"] is True
    assert decided["evidence"]["phash_distance"] == 4
    assert [image["thumbnail_url"] for image in decided["images"]] == [
        f"/api/v1/images/{_image(1)}/thumbnail",
        f"/api/v1/images/{_image(3)}/thumbnail",
    ]
    assert [entry["verdict"] for entry in decided["history"]] == ["not_duplicate"]
    candidate = client.get(f"/api/v1/pairs/{CANDIDATE}").json()
    assert candidate["status"] == "candidate" and candidate["evidence"] is None
    assert client.get(f"/api/v1/pairs/{uuid.UUID(int=1)}").status_code == 404


def test_the_same_verdict_again_changes_nothing(client: TestClient) -> None:
    again = client.post(
        f"/api/v1/pairs/{REJECTED}/verdict",
        json={"verdict": "not_duplicate", "moderator": "ana"},
    )
    assert again.status_code == 200 and again.json()["changed"] is False


def test_a_verdict_is_handed_to_the_clusterer_as_a_pair_review(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    # The fixture's verdict, and the same one again (how a failed hand-over is repaired).
    client.post(f"/api/v1/pairs/{REJECTED}/verdict", json={"verdict": "not_duplicate", "moderator": "ana"})
    assert len(publisher.published) == 2
    for topic, key, value in publisher.published:
        assert (topic, key) == (topics.PAIRS_VERIFIED.name, REJECTED.encode())
        review = PairReviewV1.model_validate_json(value)
        assert (review.pair_id, review.cause, review.type) == (REJECTED, "moderator", "pair_review")


def test_a_verdict_the_bus_cannot_take_is_stored_and_answered_503(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    async def refuse(
        topic: str, *, key: bytes, value: bytes, headers: dict[str, bytes] | None = None
    ) -> None:
        raise PublishError("broker down")

    publisher.publish = refuse  # type: ignore[method-assign]
    response = client.post(f"/api/v1/pairs/{KEPT}/verdict", json={"verdict": "confirmed", "moderator": "bo"})
    assert response.status_code == 503 and "repeat the request" in response.json()["detail"]
    # What tells the admin page this 503 from the database's (where nothing was stored).
    assert response.headers["imgdup-verdict"] == "stored"
    assert client.get(f"/api/v1/pairs/{KEPT}").json()["moderator_verdict"]["verdict"] == "confirmed"


def test_state_progress_and_probes(client: TestClient) -> None:
    ad = client.get("/api/v1/ads/1").json()
    assert ad["ad"]["seller_id"] == "s1" and ad["pairs"] == {"clustered": 2}
    assert client.get("/api/v1/ads/99").status_code == 404
    progress = client.get("/api/v1/progress").json()
    assert progress["pairs_candidate"] == 1 and progress["unfinished"] == 1
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/healthz").json() == {"status": "ok"}
    page = client.get("/api/v1/clusters").json()
    assert page["total"] == 1 and page["clusters"][0]["ads"] == [1, 2, 3]


def _seed_outcomes(dsn: str) -> None:
    """Ad 10: one image indexed, one failed (its event indexed). Ad 11: its event dead, its
    images never processed. Ad 12: an event still processing."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ad, status, reason in (
            (10, "indexed", None),
            (11, "dead", "processing_error"),
            (12, "processing", None),
        ):
            conn.execute(
                "INSERT INTO ingest_events (event_id, ad_id, payload, status, dead_reason)"
                " VALUES (%s, %s, '{}', %s, %s)",
                (f"evt-{ad}", ad, status, reason),
            )
            conn.execute("INSERT INTO ads VALUES (%s, 'olx.pt', NULL, NULL, %s, %s)", (ad, WHEN, f"evt-{ad}"))
        images = [
            (10, 0, "indexed", None, None),
            (10, 1, "failed", "url_invalid", "bad port in http://host:99999/img.jpg"),
            (11, 0, "pending", None, None),
            (12, 0, "pending", None, None),
        ]
        for ad, position, status, reason, detail in images:
            conn.execute(
                "INSERT INTO images (image_id, ad_id, url, position, status, error_reason, error_detail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    _image(ad * 10 + position),
                    ad,
                    f"https://cdn.example.com/{ad}/{position}.jpg",
                    position,
                    status,
                    reason,
                    detail,
                ),
            )


def test_ad_state_says_what_happened_to_each_image(client: TestClient, clean_db: str) -> None:
    _seed_outcomes(clean_db)
    states = {ad: client.get(f"/api/v1/ads/{ad}").json() for ad in (1, 10, 11, 12)}
    assert {ad: state["state"] for ad, state in states.items()} == {
        1: "done",
        10: "done_with_failures",  # was "done": a failed image was not worth a word
        11: "dead",  # was "done": its event was dead-lettered, nothing was processed
        12: "processing",
    }
    assert states[1]["image_counts"] == {"indexed": 1} and states[1]["failed_images"] == []
    assert states[10]["image_counts"] == {"indexed": 1, "failed": 1}
    assert states[10]["failed_images"] == [
        {
            "image_id": _image(101),
            "url": "https://cdn.example.com/10/1.jpg",
            "reason": "url_invalid",
            "detail": "bad port in http://host:99999/img.jpg",
        }
    ]
    assert states[11]["image_counts"] == {"pending": 1}
    assert states[11]["events"][0]["dead_reason"] == "processing_error"
    assert states[11]["failed_images"] == [
        {
            "image_id": _image(110),
            "url": "https://cdn.example.com/11/0.jpg",
            "reason": "not_processed",
            "detail": "the ad's event was dead-lettered: processing_error",
        }
    ]
