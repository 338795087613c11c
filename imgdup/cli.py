"""Command line -> `imgdup up|demo|wait|worker|api|credential|migrate[-blobs]|topics|prune|retrain`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgdup.ops.embedded import StackError
from imgdup.ops.retrain import add_command as add_retrain_command
from imgdup.settings import ALL_ROLES, Settings
from imgdup.verifiers import verifier_problem

if TYPE_CHECKING:
    from imgdup.store.events import ReplayRange


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the command line's options on top."""
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "api_port", None):
        overrides["api_port"] = args.api_port
    return Settings(**overrides)


def _with_stack_endpoints(settings: Settings) -> Settings:
    """Fill unset endpoints from the stack file that a running `imgdup up` wrote."""
    from imgdup.ops.supervisor import read_stack_file

    known = read_stack_file(settings.data_dir)
    updates: dict[str, object] = {}
    if settings.database_url is None and known.get("database_url"):
        from pydantic import SecretStr

        updates["database_url"] = SecretStr(known["database_url"])
    if settings.kafka_bootstrap_servers is None and known.get("kafka"):
        updates["kafka_bootstrap_servers"] = known["kafka"]
    return settings.model_copy(update=updates)


def cmd_up(args: argparse.Namespace) -> int:
    from imgdup.ops.supervisor import Stack, worker_groups

    settings = _settings(args)
    # Before anything starts: a worker would refuse and be restarted for ever.
    if problem := verifier_problem(settings):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    stack = Stack(settings, worker_groups=worker_groups(settings, process_per_role=args.process_per_role))
    try:
        stack.start()
        print("Ctrl-C to stop.")
        stack.serve_forever()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping ...")
        stack.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from imgdup.ops.demo.run import run_demo

    return run_demo(_settings(args), exit_when_done=args.exit, timeout=args.timeout)


def cmd_wait(args: argparse.Namespace) -> int:
    from psycopg_pool import AsyncConnectionPool

    from imgdup.store.progress import progress
    from imgdup.store.transient import TRANSIENT_ERRORS

    settings = _with_stack_endpoints(_settings(args))
    if settings.database_url is None:
        print("error: no DATABASE_URL and no running `imgdup up` in this data dir", file=sys.stderr)
        return 2
    # The pool would log every failed connection attempt; an outage is reported once, at the end.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)

    async def poll() -> int:
        # Not opened with wait: a database that is down (e.g. restarting under `imgdup up`) is
        # asked again every half second until our own timeout, never fatal on the first try.
        pool = AsyncConnectionPool(
            settings.database_dsn(),
            min_size=0,
            max_size=1,
            open=False,
            timeout=max(1.0, min(5.0, args.timeout)),
            reconnect_timeout=0,
        )
        await pool.open()
        deadline = time.monotonic() + args.timeout
        try:
            while True:
                try:
                    p = await progress(pool)
                except TRANSIENT_ERRORS as exc:
                    if time.monotonic() > deadline:
                        reason = " ".join(str(exc).split())
                        print(f"timeout: the database is unreachable ({reason})", file=sys.stderr)
                        return 1
                else:
                    if p.unfinished == 0:
                        print(
                            f"done: {p.events_indexed} events processed, {p.events_dead} dead-lettered,"
                            f" {p.pairs_clustered} duplicate pairs, {p.pairs_rejected} rejected"
                        )
                        return 0
                    if time.monotonic() > deadline:
                        print(f"timeout: {p.unfinished} items unfinished ({p})", file=sys.stderr)
                        return 1
                await asyncio.sleep(0.5)
        finally:
            await pool.close()

    return asyncio.run(poll())


def replay_range(args: argparse.Namespace) -> ReplayRange:
    """The events `imgdup replay` selects: dead-lettered ones too with --include-dead, or when
    ads are named (whatever became of them: an ad a bug killed is recovered this way)."""
    from datetime import datetime

    from imgdup.store.events import ReplayRange

    return ReplayRange(
        since=datetime.fromisoformat(args.since) if args.since else None,
        until=datetime.fromisoformat(args.until) if args.until else None,
        ad_ids=[int(a) for a in args.ad_ids.split(",")] if args.ad_ids else None,
        include_dead=bool(args.include_dead or args.ad_ids),
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from imgdup.kafka.publisher import EventPublisher
    from imgdup.kafka.security import confluent_config
    from imgdup.ops.replay import replay
    from imgdup.store.db import open_pool
    from imgdup.store.events import load_events

    settings = _with_stack_endpoints(_settings(args))
    if not (args.all or args.since or args.until or args.ad_ids):
        print("error: say what to replay: --all, --since/--until, or --ad-ids", file=sys.stderr)
        return 2
    target_dsn = settings.database_dsn()
    stored = load_events(args.from_database_url or target_dsn, replay_range(args))
    events = stored.events
    if stored.unreadable:
        print(f"skipping {len(stored.unreadable)} dead events that were never ad events (e.g. invalid JSON)")
    print(f"replaying {len(events)} events onto the replay topic ...")

    def show(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            print(f"  {done}/{total}")

    async def go() -> int:
        pool = await open_pool(target_dsn, max_size=2)
        publisher = EventPublisher(
            settings.bootstrap_servers(), security=confluent_config(settings), client_id="imgdup-replay"
        )
        try:
            return await replay(events, target=pool, publisher=publisher, on_progress=show)
        finally:
            publisher.close()
            await pool.close()

    count = asyncio.run(go())
    print(f"published {count} replay events; `imgdup wait` tells when they are processed")
    return 0


def cmd_bad_inputs(args: argparse.Namespace) -> int:
    from imgdup.ops.bad_inputs import corpus_table

    rows, table = corpus_table(progress=lambda line: print(f"  {line}", file=sys.stderr))
    print(table)
    if args.write:
        Path(args.write).write_text(table + "\n")
    return 0 if all(r["expected"] == r["observed"] for r in rows) else 1


def cmd_health(args: argparse.Namespace) -> int:
    from streams.liveness import check_health, health_file

    settings = _settings(args)
    healthy, reason = check_health(
        health_file(settings.data_dir, args.roles.split(",")), max_age_s=args.max_age
    )
    print(reason)
    return 0 if healthy else 1


def cmd_worker(args: argparse.Namespace) -> int:
    from agents import register_roles
    from imgdup.kafka.preflight import check_broker
    from streams.app import build_app
    from streams.worker import run_worker

    settings = Settings()
    roles = args.roles.split(",") if args.roles else list(settings.worker_roles)
    unknown = set(roles) - set(ALL_ROLES)
    if unknown:
        print(f"error: unknown roles {sorted(unknown)}; known: {list(ALL_ROLES)}", file=sys.stderr)
        return 2
    # The roles name the consumer group and the heartbeat file.
    settings = settings.model_copy(update={"worker_roles": roles})
    if problem := verifier_problem(settings):  # one line, before any broker is asked
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        # A refused TLS handshake or login is one line here, not Faust's endless retries.
        asyncio.run(check_broker(settings))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app = build_app(settings)
    register_roles(app, settings.worker_roles)
    run_worker(app, loglevel=args.loglevel)
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from imgdup.http.app import create_api
    from imgdup.kafka.security import KafkaSecurityError, confluent_config

    settings = _settings(args)
    try:
        confluent_config(settings)  # unusable TLS files: one line here, not a traceback from the lifespan
    except KafkaSecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(
        create_api(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        # uvicorn would take X-Forwarded-For from 127.0.0.1 (its default) as the client's address;
        # the API reads it itself, from IMGDUP_TRUSTED_PROXIES only (imgdup.http.auth).
        proxy_headers=False,
        forwarded_allow_ips="",
    )
    return 0


def cmd_credential(args: argparse.Namespace) -> int:
    import getpass

    from imgdup.http.auth import CredentialError, hash_secret, new_credential, parse_credentials

    try:
        if args.secret_stdin:
            # A secret someone chose (a moderator's password): scrypt, and no token is printed.
            secret = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
            if len(secret) < 12:
                print("error: choose a secret of 12+ characters", file=sys.stderr)
                return 2
            entry = f"{args.name}:{args.roles}:{hash_secret(secret, 'scrypt')}"
            parse_credentials(entry)
            print(f"entry  {entry}")
            print(f"log in with  {args.name}:<your secret>")
            return 0
        token, entry = new_credential(args.name, args.roles, "scrypt" if args.scrypt else "sha256")
    except CredentialError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"token  {token}")
    print(f"entry  {entry}")
    print("Hand the token to its user (Authorization: Bearer <token>); add the entry to")
    print("IMGDUP_API_CREDENTIALS (or its secret file). Only the entry's hash is stored.")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from imgdup.store.db import migrate

    applied = migrate(_with_stack_endpoints(_settings(args)).database_dsn())
    print(f"applied: {', '.join(applied) or 'nothing to do'}")
    return 0


def cmd_upkeep(args: argparse.Namespace) -> int:
    """`imgdup prune` and `imgdup migrate-blobs` (imgdup/ops/maintenance.py)."""
    from imgdup.ops.maintenance import move_blobs, prune

    run = {"prune": prune, "migrate-blobs": move_blobs}[args.command]
    print(run(_with_stack_endpoints(_settings(args))))
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from imgdup.kafka.security import confluent_config
    from imgdup.kafka.topic_admin import ensure_topics

    settings = _with_stack_endpoints(_settings(args))
    try:
        created = ensure_topics(
            settings.bootstrap_servers(),
            settings.topic_partitions,
            security=confluent_config(settings),
            replication_factor=settings.topic_replication_factor,
        )
    except RuntimeError as exc:  # unreachable, refused TLS or login, unusable security files
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"created: {', '.join(created) or 'nothing to do'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgdup", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", type=Path, help="state folder (default ./.imgdup)")
        return p

    up = with_data_dir(sub.add_parser("up", help="run the whole stack in the foreground"))
    up.add_argument("--api-port", type=int)
    up.add_argument(
        "--process-per-role",
        action="store_true",
        help="one worker process per role (images, verifier, clusterer), as in production: a "
        "verdict is published sooner when the embedder does not share its process",
    )
    up.set_defaults(func=cmd_up)

    demo = with_data_dir(sub.add_parser("demo", help="run the stack on a sample feed of real photos"))
    demo.add_argument("--exit", action="store_true", help="stop once the summary is printed")
    demo.add_argument("--api-port", type=int)
    demo.add_argument("--timeout", type=float, default=600.0)
    demo.set_defaults(func=cmd_demo)

    wait = with_data_dir(sub.add_parser("wait", help="wait until every accepted event is processed"))
    wait.add_argument("--timeout", type=float, default=300.0)
    wait.set_defaults(func=cmd_wait)

    rep = with_data_dir(sub.add_parser("replay", help="re-publish stored events to backfill or re-process"))
    rep.add_argument("--all", action="store_true", help="every event known in the source database")
    rep.add_argument("--since", help="accepted at or after (ISO 8601)")
    rep.add_argument("--until", help="accepted before (ISO 8601)")
    rep.add_argument("--ad-ids", help="comma-separated ad ids (their dead-lettered events included)")
    rep.add_argument("--include-dead", action="store_true", help="also re-run events that were dead-lettered")
    rep.add_argument(
        "--from-database-url", help="read events from this database (default: the target itself)"
    )
    rep.set_defaults(func=cmd_replay)

    bad = sub.add_parser("bad-inputs", help="run the hostile-input corpus and print the outcome table")
    bad.add_argument("--write", help="also write the markdown table to this file")
    bad.set_defaults(func=cmd_bad_inputs)

    health = with_data_dir(sub.add_parser("health", help="liveness probe of a worker (exit 0 when live)"))
    health.add_argument("--roles", default=",".join(ALL_ROLES), help="the worker's roles, as started")
    health.add_argument("--max-age", type=float, default=30.0, help="heartbeat older than this is dead")
    health.set_defaults(func=cmd_health)

    worker = sub.add_parser("worker", help="run a Faust worker (endpoints from the environment)")
    worker.add_argument("--roles", help=f"comma-separated subset of {','.join(ALL_ROLES)}")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(func=cmd_worker)

    api = with_data_dir(sub.add_parser("api", help="run the HTTP API (endpoints from the environment)"))
    api.add_argument("--api-port", type=int)
    api.set_defaults(func=cmd_api)

    cred = sub.add_parser(
        "credential", help="make an API credential: a token to hand out and the entry to configure"
    )
    cred.add_argument("name", help="who holds it, e.g. portal, prometheus, ana")
    cred.add_argument("roles", help="ingest, moderator, viewer or metrics; several joined by +")
    cred.add_argument("--scrypt", action="store_true", help="store an scrypt hash instead of sha256")
    cred.add_argument(
        "--secret-stdin",
        action="store_true",
        help="hash a secret read from stdin (a person's password; scrypt) instead of generating one",
    )
    cred.set_defaults(func=cmd_credential)

    for name, func, text in (
        ("migrate", cmd_migrate, "apply SQL migrations"),
        ("migrate-blobs", cmd_upkeep, "move bytea of before migration 009 to the blob store"),
        ("topics", cmd_topics, "create the Kafka topics"),
        ("prune", cmd_upkeep, "delete old rejected pairs and orphan blobs"),
    ):
        with_data_dir(sub.add_parser(name, help=text)).set_defaults(func=func)
    add_retrain_command(sub, with_data_dir)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:  # settings from the environment: one line per problem, no traceback
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            print(f"error: invalid settings: {where + ': ' if where else ''}{message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
