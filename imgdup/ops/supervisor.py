"""Settings -> the whole stack running: embedded broker/Postgres where no endpoint is configured,
migrations, topics, re-driven unfinished work, and the worker and API processes (`imgdup up`)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from imgdup.kafka.publisher import EventPublisher
from imgdup.kafka.security import KafkaSecurityError, confluent_config, security_env
from imgdup.kafka.topic_admin import ensure_topics
from imgdup.ops.embedded import Broker, Postgres, StackError, port_open, start_broker, start_postgres
from imgdup.settings import ALL_ROLES, Settings
from imgdup.store.db import migrate, open_pool
from imgdup.store.events import unfinished_events
from imgdup.store.pairs import unfinished_pairs, verified_pair_from_row
from imgdup.store.truth import pairs_to_review
from schemas import CandidatePairV1, ImageRef, PairReviewV1, topics
from schemas.wire import encode, encode_key

log = logging.getLogger(__name__)
Say = Callable[[str], None]


def worker_groups(settings: Settings, *, process_per_role: bool) -> list[list[str]]:
    """The worker processes `imgdup up` starts: one running every role (or one per role); with
    IMGDUP_IMAGES_WORKERS=N > 1, N processes of the images role alone, which share one consumer
    group (streams.app.consumer_group names a group by its roles), and the other roles apart."""
    n = settings.images_workers
    if process_per_role:
        return [*[["images"]] * n, *([str(r)] for r in ALL_ROLES if r != "images")]
    if n == 1:
        return [list(ALL_ROLES)]
    return [*[["images"]] * n, [str(r) for r in ALL_ROLES if r != "images"]]


def stack_file(data_dir: Path) -> Path:
    return data_dir / "stack.json"


def read_stack_file(data_dir: Path) -> dict[str, Any]:
    path = stack_file(data_dir)
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@dataclass
class Stack:
    settings: Settings
    say: Say = print
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: Broker | None = None
    postgres: Postgres | None = None
    # One worker process per group of roles; the default runs every role in one process.
    worker_groups: list[list[str]] = field(default_factory=lambda: [list(ALL_ROLES)])
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)
    kafka: str = ""
    dsn: str = ""
    api_url: str = ""

    def start(self) -> None:
        """Start every part; on any failure, stop what was started and raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def check_workers(self) -> None:
        """StackError when several processes would run the images role on a vector store that one
        process owns (a qdrant-edge or numpy folder, locked by the first)."""
        images = sum("images" in roles for roles in self.worker_groups)
        if images > 1 and not self.settings.vector_store_is_shared():
            raise StackError(
                f"{images} images worker processes need a vector store they can share, and"
                f" IMGDUP_VECTOR_STORE={self.settings.vector_store_kind()} is a folder one process owns:"
                " set IMGDUP_VECTOR_STORE=pgvector or QDRANT_URL, or run one images worker"
            )

    def _start(self) -> None:
        s = self.settings
        self.check_workers()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        if port_open(s.api_host, s.api_port):
            raise StackError(
                f"port {s.api_port} is in use: pass --api-port, set IMGDUP_API_PORT, or stop that process"
            )
        if s.database_url is None:
            self.say(f"[1/5] starting embedded Postgres in {s.embedded_pg_dir} ...")
            self.postgres = start_postgres(s.embedded_pg_dir)
            self.dsn = self.postgres.dsn
        else:
            self.dsn = s.database_url.get_secret_value()
            self.say("[1/5] using DATABASE_URL")
        try:
            applied = migrate(self.dsn)
        except Exception as exc:
            raise StackError(f"cannot migrate the database (check DATABASE_URL): {exc}") from exc
        self.say(f"      migrations applied: {', '.join(applied) or 'none needed'}")
        if s.kafka_bootstrap_servers is None:
            if s.kafka_security_protocol != "PLAINTEXT":
                raise StackError(
                    f"KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs KAFKA_BOOTSTRAP_SERVERS:"
                    " the embedded broker (tansu) speaks PLAINTEXT only"
                )
            self.say("[2/5] starting embedded Kafka-protocol broker (tansu) ...")
            self.broker = start_broker(s.data_dir)
            self.kafka = self.broker.bootstrap
        else:
            self.kafka = s.kafka_bootstrap_servers
            self.say(f"[2/5] using KAFKA_BOOTSTRAP_SERVERS={self.kafka}")
        security = confluent_config(s)  # PLAINTEXT for the embedded broker (checked above)
        try:
            created = ensure_topics(
                self.kafka,
                s.topic_partitions,
                security=security,
                replication_factor=s.topic_replication_factor,
                timeout=15,
            )
        except KafkaSecurityError as exc:
            raise StackError(str(exc)) from exc
        except RuntimeError as exc:
            raise StackError(f"{exc} (check KAFKA_BOOTSTRAP_SERVERS)") from exc
        self.say(f"      topics created: {len(created)} (of {len(topics.ALL_TOPICS)})")
        self.say("[3/5] re-driving unfinished work from Postgres ...")
        events, pairs = asyncio.run(redrive(self.dsn, self.kafka, security))
        self.say(f"      re-published {events} events and {pairs} pairs")
        self.say(f"[4/5] starting {len(self.worker_groups)} Faust worker process(es) ...")
        for name, roles in self.workers().items():
            self._spawn(name, [sys.executable, "-m", "imgdup", "worker", "--roles", ",".join(roles)])
        self.say(f"[5/5] starting the API on http://{s.api_host}:{s.api_port} ...")
        self._spawn("api", [sys.executable, "-m", "imgdup", "api", "--api-port", str(s.api_port)])
        self.api_url = f"http://{s.api_host}:{s.api_port}"
        self._wait_for_api()
        if self.api_is_open():
            self.say(
                "      the API is OPEN: no IMGDUP_API_TOKEN or IMGDUP_API_CREDENTIALS is set, so every"
                " route answers anyone (fine on a laptop; see docs/production.md)"
            )
        self.write_stack_file()
        self.say(f"stack ready in {time.monotonic() - t0:.1f}s: API {self.api_url}/docs")

    def write_stack_file(self) -> None:
        """Endpoints and child PIDs of the running stack, for `imgdup wait` and operators."""
        stack_file(self.settings.data_dir).write_text(
            json.dumps(
                {
                    "kafka": self.kafka,
                    "database_url": self.dsn,
                    "api_url": self.api_url,
                    "pids": {name: p.pid for name, p in self.processes.items()},
                }
            )
        )

    def workers(self) -> dict[str, list[str]]:
        """Process name -> roles. A group listed twice is two processes of the same roles in one
        consumer group, sharing the topics' partitions (worker-verifier, worker-verifier-2); they
        share one heartbeat file, so `imgdup health` speaks for one process per data dir, as in
        a pod."""
        if len(self.worker_groups) == 1:
            return {"worker": self.worker_groups[0]}
        named: dict[str, list[str]] = {}
        for roles in self.worker_groups:
            base = "worker-" + "-".join(roles)
            name, copy = base, 1
            while name in named:
                copy += 1
                name = f"{base}-{copy}"
            named[name] = roles
        return named

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            # Its own view of Kafka security too, however it was given (environment, secret files).
            **security_env(self.settings),
            "DATABASE_URL": self.dsn,
            "IMGDUP_DATA_DIR": str(self.settings.data_dir),
            # The supervisor's choice, however it was made: every images process opens the same store.
            "IMGDUP_VECTOR_STORE": self.settings.vector_store_kind(),
            **self.extra_env,
        }

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.argv[name] = argv
        log_path = self.settings.data_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            self.processes[name] = subprocess.Popen(
                argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,  # we forward signals ourselves, in order
            )

    def _wait_for_api(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StackError(f"API did not answer within {timeout}s; see {self.settings.data_dir}/api.log")

    def api_is_open(self) -> bool:
        """Asked of the API itself: it lets a caller without credentials in only when open."""
        try:
            answer = httpx.get(f"{self.api_url}/api/v1/whoami", timeout=5)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json().get("via") == "open"

    def check_children(self) -> None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                raise StackError(f"{name} exited with {code}; see {self.settings.data_dir / (name + '.log')}")

    def stop_process(self, name: str, *, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`: shutdown is bounded."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", name, timeout)
            process.kill()
            process.wait()

    def kill_process(self, name: str) -> None:
        """SIGKILL: what a crash or an OOM kill does (fault tests)."""
        process = self.processes[name]
        process.kill()
        process.wait()

    def start_process(self, name: str) -> None:
        self._spawn(name, self.argv[name])

    def restart_broker(self) -> None:
        """The embedded broker keeps its topics in memory: after it dies, start it again on the
        same port, recreate the topics, restart the workers (their group state is gone) and
        re-drive every unfinished item from Postgres."""
        if self.broker is None:
            raise StackError("the broker is external: restart it where it runs")
        for name in self.workers():
            self.stop_process(name, timeout=15)
        self.broker.stop()
        self.broker = start_broker(self.settings.data_dir, port=self.broker.port)
        ensure_topics(
            self.kafka,
            self.settings.topic_partitions,
            security=confluent_config(self.settings),  # PLAINTEXT: the embedded broker
            replication_factor=self.settings.topic_replication_factor,
        )
        asyncio.run(redrive(self.dsn, self.kafka, confluent_config(self.settings)))
        for name in self.workers():
            self.start_process(name)

    def check_postgres(self) -> bool:
        """Restart the embedded Postgres if its postmaster died (SIGKILL, OOM kill); True if it did.
        Nothing else restarts: the workers retry their statements and the API answers 503 until
        their pools reconnect on their own; Postgres recovers from its WAL, so nothing is lost."""
        if self.postgres is None or self.postgres.running():
            return False
        self.say("the embedded Postgres died; restarting it on the same data dir")
        self.postgres.restart()
        self.say("      embedded Postgres is back")
        return True

    def stop(self) -> None:
        for name in ("api", *self.workers()):
            self.stop_process(name)
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        stack_file(self.settings.data_dir).unlink(missing_ok=True)

    def serve_forever(self, *, max_restarts_per_hour: int = 10) -> None:
        """Block until SIGINT/SIGTERM. A crashed worker or API is restarted (its work is
        redelivered); one that keeps crashing stops the stack with an error."""
        stop = False
        restarts: list[float] = []

        def on_signal(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop:
            self.check_postgres()
            if self.broker is not None and self.broker.process.poll() is not None:
                self.say("the embedded broker died; restarting it and re-driving unfinished work")
                self.restart_broker()
            for name, process in list(self.processes.items()):
                code = process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 3600] + [now]
                if len(restarts) > max_restarts_per_hour:
                    raise StackError(
                        f"{name} keeps exiting (last code {code}); see "
                        f"{self.settings.data_dir / (name + '.log')}"
                    )
                self.say(f"{name} exited with {code}; restarting it")
                self.start_process(name)
                self.write_stack_file()
            time.sleep(0.5)


async def redrive(dsn: str, kafka: str, security: Mapping[str, str]) -> tuple[int, int]:
    """Publish again what Postgres says is unfinished (the embedded broker forgets its topics
    on restart). Everything downstream is idempotent, so re-publishing is always safe."""
    pool = await open_pool(dsn, max_size=2)
    publisher = EventPublisher(kafka, security=security, client_id="imgdup-redrive")
    try:
        events = await unfinished_events(pool)
        for payload in events:
            ad_id = json.loads(payload)["ad_id"]
            await publisher.publish(
                topics.AD_IMAGES_CREATED.name, key=encode_key(ad_id), value=payload.encode()
            )
        pairs = await unfinished_pairs(pool)
        for row in pairs:
            if row["status"] == "candidate":
                candidate = CandidatePairV1(
                    pair_id=str(row["pair_id"]),
                    a=ImageRef(image_id=str(row["image_a"]), ad_id=row["ad_a"]),
                    b=ImageRef(image_id=str(row["image_b"]), ad_id=row["ad_b"]),
                    cosine=float(row["cosine"]),
                    replay=row["replay"],
                    found_at=row["found_at"] or datetime.now(UTC),
                )
                await publisher.publish(
                    topics.IMAGE_CANDIDATES.name,
                    key=encode_key(row["ad_a"]),
                    value=encode(candidate),
                )
            else:
                verified = verified_pair_from_row(row)
                await publisher.publish(
                    topics.PAIRS_VERIFIED.name,
                    key=encode_key(verified.pair_id),
                    value=encode(verified),
                )
        # Pairs whose edge the clusterer has still to add or retract (a review lost with the broker).
        for pair_id in await pairs_to_review(pool):
            review = PairReviewV1(pair_id=pair_id, cause="verifier", requested_at=datetime.now(UTC))
            await publisher.publish(topics.PAIRS_VERIFIED.name, key=encode_key(pair_id), value=encode(review))
        return len(events), len(pairs)
    finally:
        publisher.close()
        await pool.close()
