"""Webhook delivery under failures and a slow receiver: N events (default 5,000) written to the outbox at a steady
rate, delivered by a real ``guildgate serve`` to receivers on 127.0.0.1 that verify every message with the
``standardwebhooks`` library.

    python bench/webhooks.py                                   # 5,000 events, 2 runs, a few minutes
    python bench/webhooks.py --events 1000 --rate 200 --slow 0.5
    GUILDGATE_WEBHOOK_RETRY_SCHEDULE=0.5,1,2,4,8 python bench/webhooks.py   # the retry schedule the bench uses

Two runs, each on a fresh database: (1) one endpoint, ``healthy``, whose receiver answers 500 to 20 % of
attempts at random (seeded), so retries are part of the load; (2) the same, plus a second endpoint of the same
app, ``slow``, whose receiver takes ``--slow`` seconds over every answer (10 in flight at most: the sender's
limit per endpoint). Events are written through the outbox's own ``add_events_sync`` (what joins use), in
batches of ``--batch``, at ``--rate`` events a second; each event goes to every endpoint.

Prints, per run and endpoint: delivery lag (from the event's timestamp to the first 2xx the receiver gave)
at p50 and p99, attempts per event, events delivered a second (from the first write to the last delivery),
deliveries that failed (their retries ran out: replayable), events lost (neither delivered nor failed once
nothing waits: must be 0) and messages that failed verification (must be 0); then whether the slow endpoint
delayed the healthy one (its p50 and p99 with the slow endpoint beside them without it; ``--with-slow-only``
skips the first run). Everything runs on this machine (SQLite, one worker); the receivers share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from standardwebhooks import Webhook, WebhookVerificationError  # noqa: E402
from tests.servers import free_port, wait_http  # noqa: E402

BIN = Path(sys.executable).parent
APP = "1100000000000000001"
SCHEDULE = os.environ.get("GUILDGATE_WEBHOOK_RETRY_SCHEDULE", "0.5,1,2,4,8,15")


class Receiver:
    """One receiver per endpoint: verifies each message, fails ``fail`` of attempts at random, answers after
    ``delay`` seconds; keeps each event's attempts and the time of its first 2xx."""

    def __init__(self, *, fail: float, delay: float, seed: int) -> None:
        self.fail, self.delay, self.random = fail, delay, random.Random(seed)
        self.hook: Webhook | None = None
        self.attempts: dict[str, int] = {}
        self.delivered: dict[str, float] = {}  # event id -> lag (s)
        self.last = 0.0  # when the last first-2xx came (time.time())
        self.bad = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = owner.answer(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer(self, body: bytes, headers: dict[str, str]) -> int:
        if self.delay:
            time.sleep(self.delay)
        arrived = time.time()
        assert self.hook is not None
        try:
            event = self.hook.verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.bad += 1
            return 400
        with self.lock:
            self.attempts[event["id"]] = self.attempts.get(event["id"], 0) + 1
            if self.random.random() < self.fail:
                return 500
            if event["id"] not in self.delivered:
                made = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
                self.delivered[event["id"]] = arrived - made
                self.last = arrived
        return 204

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def waiting(path: Path) -> int:
    """Deliveries still waiting (pending) in the run's database."""
    with sqlite3.connect(path, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'").fetchone()[0])


def states(path: Path, state: str) -> dict[str, set[str]]:
    """Endpoint id -> ids of the events whose delivery to it is in ``state``."""
    found: dict[str, set[str]] = {}
    with sqlite3.connect(path, timeout=30) as conn:
        query = "SELECT endpoint_id, event_id FROM webhook_deliveries WHERE state = ?"
        for endpoint_id, event_id in conn.execute(query, (state,)):
            found.setdefault(endpoint_id, set()).add(event_id)
    return found


def cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(BIN / "guildgate"), *args], env=env, capture_output=True, text=True, check=True).stdout


async def write_events(database_url: str, n: int, rate: float, batch: int) -> list[str]:
    """``n`` join.succeeded events through the outbox, ``batch`` at a time, at ``rate`` a second."""
    from guildgate.store.db import Database
    from guildgate.store.events import add_events_sync

    db = Database(database_url)
    ids: list[str] = []
    start = time.monotonic()
    try:
        for first in range(0, n, batch):
            await asyncio.sleep(max(0.0, start + first / rate - time.monotonic()))
            events = [
                (
                    APP,
                    "join.succeeded",
                    {
                        "record_id": f"bench-{i}",
                        "app_id": APP,
                        "guild_id": "1200000000000000001",
                        "user_id": str(1300000000000000000 + i),
                        "joined": True,
                        "source": "api",
                        "link_id": None,
                        "grant_id": None,
                        "developer_id": None,
                    },
                )
                for i in range(first, min(first + batch, n))
            ]
            ids += await db.run(lambda conn, events=events: add_events_sync(conn, events))
    finally:
        await db.dispose()
    return ids


def run_once(args: argparse.Namespace, *, slow: bool) -> dict[str, dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    database_url = f"sqlite:///{tmp / 'hooks.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GUILDGATE_")},
        "GUILDGATE_DATABASE_URL": database_url,
        "GUILDGATE_SECRET_KEY": "webhooks-bench-secret-key-0123456789",
        "GUILDGATE_DISCORD_API_BASE": "http://127.0.0.1:9/api/v10",  # no Discord call is made here
        "GUILDGATE_WEBHOOK_ALLOW_INSECURE": "1",
        "GUILDGATE_WEBHOOK_RETRY_SCHEDULE": SCHEDULE,
        "GUILDGATE_LOG_LEVEL": "warning",
        "BENCH_SECRET": "bench-client-secret",
        "BENCH_BOT": "bench-bot-token",
    }
    cli(env, "apps", "add", "--client-id", APP, "--client-secret-env", "BENCH_SECRET", "--bot-token-env", "BENCH_BOT")
    receivers = {"healthy": Receiver(fail=args.fail, delay=0.0, seed=args.seed)}
    if slow:
        receivers["slow"] = Receiver(fail=0.0, delay=args.slow, seed=args.seed + 1)
    endpoint_of: dict[str, str] = {}
    for name, receiver in receivers.items():
        made = json.loads(cli(env, "webhooks", "add", "--app", APP, "--url", receiver.url, "--json"))
        receiver.hook = Webhook(made["secret"])
        endpoint_of[name] = made["id"]
    port = free_port()
    log = (tmp / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "guildgate"), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", server)
        started, began = time.monotonic(), time.time()
        ids = asyncio.run(write_events(database_url, args.events, args.rate, args.batch))
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:  # until no delivery is waiting (each delivered, or its retries ran out)
            if all(len(r.delivered) >= len(ids) for r in receivers.values()) or waiting(tmp / "hooks.db") == 0:
                break
            time.sleep(0.5)
        failed = states(tmp / "hooks.db", "failed")
        wall = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(15)
    result = {}
    for name, receiver in receivers.items():
        lags = sorted(receiver.delivered.values())
        result[name] = {
            "p50": statistics.median(lags) if lags else float("nan"),
            "p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else float("nan"),
            "attempts": sum(receiver.attempts.values()) / max(len(ids), 1),
            # failed: its retries ran out (the schedule is short here): replayable, so not lost; lost: neither
            "failed": len(failed.get(endpoint_of[name], set())),
            "lost": len(set(ids) - set(receiver.delivered) - failed.get(endpoint_of[name], set())),
            "bad": receiver.bad,
            "wall": wall,
            "per_second": len(lags) / max(receiver.last - began, 1e-9),
        }
        receiver.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=250.0, help="events written a second")
    parser.add_argument("--batch", type=int, default=25, help="events a transaction")
    parser.add_argument("--fail", type=float, default=0.2, help="share of the healthy endpoint's attempts answered 500")
    parser.add_argument("--slow", type=float, default=0.3, help="seconds the slow endpoint takes over every answer")
    parser.add_argument("--wait", type=float, default=3600.0, help="seconds to wait for every delivery")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--with-slow-only", action="store_true", help="only the run with the slow endpoint")
    args = parser.parse_args()
    print(
        f"{args.events} events at {args.rate:g}/s; healthy endpoint fails {args.fail:.0%} of attempts; slow endpoint "
        f"answers in {args.slow:g} s; retry schedule {SCHEDULE} s"
    )
    runs = {} if args.with_slow_only else {"healthy alone": run_once(args, slow=False)}
    runs["healthy + slow"] = run_once(args, slow=True)
    print()
    print(
        f"{'run':<16} {'endpoint':<9} {'lag p50':>9} {'lag p99':>9} {'attempts/event':>15} {'delivered/s':>12} "
        f"{'failed':>6} {'lost':>5} {'bad sig':>8}"
    )
    for run, result in runs.items():
        for name, r in result.items():
            print(
                f"{run:<16} {name:<9} {r['p50']:>8.2f}s {r['p99']:>8.2f}s {r['attempts']:>15.2f} "
                f"{r['per_second']:>12.1f} {r['failed']:>6} {r['lost']:>5} {r['bad']:>8}"
            )
    lost = sum(r["lost"] for result in runs.values() for r in result.values())
    if args.with_slow_only:
        sys.exit(1 if lost else 0)
    alone, beside = runs["healthy alone"]["healthy"], runs["healthy + slow"]["healthy"]
    print()
    print(f"{'healthy endpoint':<22} {'lag p50':>9} {'lag p99':>9}")
    print(f"{'without slow endpoint':<22} {alone['p50']:>8.2f}s {alone['p99']:>8.2f}s")
    print(f"{'with slow endpoint':<22} {beside['p50']:>8.2f}s {beside['p99']:>8.2f}s")
    delayed = beside["p99"] > 2 * alone["p99"] + 1.0
    print(f"slow endpoint delayed the healthy one: {'yes' if delayed else 'no'}")
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
