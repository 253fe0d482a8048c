"""Reads against a large records table: what the dashboard's and a billing script's reads of ``GET /api/records``
and ``GET /api/usage`` cost, and what 16 clients reading in a loop do to the joins.

    python bench/reads.py                      # 1,000,000 records, SQLite; several minutes, most of it the build
    python bench/reads.py --records 100000     # smaller and quicker
    python bench/reads.py --postgres           # a throwaway PostgreSQL instead (tests/servers.py's)

Builds a throwaway database on the real schema (``guildgate migrate``, then the rows inserted directly with
SQLAlchemy Core into the tables as the migrations left them, and the usage roll-up filled from them with the
statement guildgate's writes use, ``guildgate.store.usage``): three apps holding 60 %, 30 % and 10 % of the
records and six API keys made with ``guildgate keys create``, thousands of guilds (a few busy, most quiet), about
nine records in ten joined or already a member and the rest spread over the refusals, one in three with a
``Developer-Id``, one in twenty with an ``Idempotency-Key``, created evenly over the last 90 days. PostgreSQL gets
``VACUUM ANALYZE`` afterwards, as its autovacuum would have done on a live server; SQLite gets nothing (guildgate
never runs ``ANALYZE``). Then starts the Discord sandbox and ``guildgate serve`` (one worker) and, over HTTP only:

1. each read, one at a time, with the first app's key (repeated ``--repeat`` times or for ``--budget`` seconds,
   whichever ends first): the first page unfiltered and filtered by guild, state, outcome, developer and time
   range, pages followed by cursor, and usage for the last day, 30 days and all time (``days=366``). Prints p50,
   p99 and whether p99 is within 100 ms; "matching": the app's records the filter selects (usage: its total).
2. joins through the join API at ``--rate`` a second, open loop, for ``--seconds``, the sandbox answering every
   call ``--discord-latency`` ms late: first with nobody reading, then with ``--readers`` clients (another
   process) going round those reads without pause. Prints both side by side and the ratio of the join p99s (the
   target: below 2).

``GUILDGATE_READS_PER_MINUTE`` is set far above what the readers send (10,000,000), so the per-key read limit
does not stop the measurement; ``--reads-per-minute 10000000 120`` runs step 2 once for each value, guildgate
restarted with it (120 is the default setting: what the limit does for the joins). A reader answered 429 waits
its ``Retry-After`` (or until the run ends) before its next read. Everything listens on 127.0.0.1 and is
stopped at the end, on an error and on Ctrl-C. The load generator, the readers, the sandbox and guildgate share
this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy import MetaData, Table, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load
from tests.servers import Server, free_port, start_postgres, wait_http

from guildgate.store.usage import rollup_sql

# (client id, share of the records, API keys); the first is the sandbox's app, whose keys read and join.
APPS = ((load.APP, 0.6, 3), ("1100000000000000011", 0.3, 2), ("1100000000000000021", 0.1, 1))
GUILDS = (3000, 1500, 500)  # per app, busiest first: the n-th guild gets a share proportional to 1/n
DEVELOPERS = 50
# (code, state, share, Discord's HTTP status, Discord's error code)
OUTCOMES = (
    ("joined", "succeeded", 0.80, 201, None), ("already_member", "succeeded", 0.08, 204, None),
    ("token_expired", "failed", 0.04, 401, 0), ("invalid_oauth_token", "failed", 0.015, 403, 50025),
    ("banned", "failed", 0.01, 403, 40007), ("max_guilds", "failed", 0.01, 400, 30001),
    ("rate_limited", "failed", 0.01, 429, None), ("bot_missing_permissions", "failed", 0.005, 403, 50013),
    ("unknown_guild", "failed", 0.005, 404, 10004), ("discord_error", "failed", 0.005, 400, 50035),
    ("discord_unavailable", "unknown", 0.005, 503, None), ("quota_exceeded", "failed", 0.005, None, None),
    ("invalid_request", "failed", 0.005, None, None),
)  # fmt: skip
SECRETS_FROM_ENV = ("--client-secret-env", "BENCH_SECRET", "--bot-token-env", "BENCH_BOT")
KNOWN_TABLES = {"alembic_version", "apps", "api_keys", "records", "links", "oauth_states", "usage_days"}
GUILDGATE = str(load.BIN / "guildgate")
BATCH = 5000
RAISED = 10_000_000  # GUILDGATE_READS_PER_MINUTE while measuring: far above what the readers send
DAYS = 90


def guild_id(app: int, rank: int) -> str:
    return str(1200000000000000000 + app * 100000 + rank)


def match(column: str, value: Any, until: Any = None) -> Any:
    """A test of a row: ``column`` equal to ``value``, or with ``until``, in [``value``, ``until``)."""
    return (lambda row: row[column] == value) if until is None else (lambda row: value <= row[column] < until)


class Reads:
    """The reads measured: (name, path, query, a test of which of the reading app's records it selects)."""

    def __init__(self, now: datetime) -> None:
        def between(since: datetime, until: datetime) -> tuple[dict[str, str], Any]:
            iso = "%Y-%m-%dT%H:%M:%SZ"
            return {"since": since.strftime(iso), "until": until.strftime(iso)}, match("created_at", since, until)

        day, month, month_ago = now - timedelta(days=1), now - timedelta(days=30), now - timedelta(days=31)
        busy, quiet, new = guild_id(0, 0), guild_id(0, 500), guild_id(0, GUILDS[0])
        r, every = "/api/records", match("created_at", datetime.min, datetime.max)
        self.rows: list[tuple[str, str, dict[str, str], Any]] = [
            ("records: first page, no filter", r, {}, every),
            ("records: the busiest guild", r, {"guild_id": busy}, match("guild_id", busy)),
            ("records: a quiet guild", r, {"guild_id": quiet}, match("guild_id", quiet)),
            ("records: a guild with none yet", r, {"guild_id": new}, match("guild_id", new)),
            ("records: state=failed", r, {"state": "failed"}, match("state", "failed")),
            ("records: code=banned", r, {"code": "banned"}, match("code", "banned")),
            ("records: one developer_id", r, {"developer_id": "dev-07"}, match("developer_id", "dev-07")),
            ("records: last day", r, *between(day, now)),
            ("records: last 30 days", r, *between(month, now)),
            ("records: a day a month ago", r, *between(month_ago, month)),
            ("records: 20 pages of 50 by cursor, each", r, {"limit": "50"}, every),
            ("records: 20 pages of 500 by cursor, each", r, {"limit": "500"}, every),
            ("usage: days=1", "/api/usage", {"days": "1"}, None),
            ("usage: days=30", "/api/usage", {"days": "30"}, None),
            ("usage: days=366 (all time)", "/api/usage", {"days": "366"}, None),
        ]
        self.matching: Counter[str] = Counter()


def record_id() -> str:
    """A version 4 UUID's text, as guildgate makes record ids."""
    x = os.urandom(16).hex()
    return f"{x[:8]}-{x[8:12]}-4{x[13:16]}-a{x[17:20]}-{x[20:]}"


def records(count: int, keys: dict[str, list[str]], now: datetime, reads: Reads) -> Any:
    """Batches of record rows, oldest first, evenly over the last ``DAYS`` days."""
    rng = random.Random(22)
    start, span = now - timedelta(days=DAYS), timedelta(days=DAYS).total_seconds()
    guilds = [list(itertools.accumulate(1 / (n + 1) for n in range(g))) for g in GUILDS]
    tests = [(name, test) for name, _, _, test in reads.rows if test is not None]
    for first in range(0, count, BATCH):
        size = min(BATCH, count - first)
        apps = rng.choices(range(len(APPS)), weights=[a[1] for a in APPS], k=size)
        outcomes = rng.choices(OUTCOMES, weights=[o[2] for o in OUTCOMES], k=size)
        batch = []
        for i, (app, (code, state, _, status, discord_code)) in enumerate(zip(apps, outcomes, strict=True)):
            created = start + timedelta(seconds=span * (first + i + rng.random()) / count)
            cost = round(rng.uniform(80, 900), 2)
            idempotent = rng.random() < 0.05
            rank = bisect.bisect(guilds[app], rng.random() * guilds[app][-1])
            row = {
                "id": record_id(),
                "app_id": APPS[app][0],
                "key_id": rng.choice(keys[APPS[app][0]]),
                "source": "api",
                "state": state,
                "code": code,
                "detail": "Unknown Guild" if code == "discord_error" else None,
                "guild_id": guild_id(app, min(rank, GUILDS[app] - 1)),
                "guild_name": f"Server {app}-{rank}" if rng.random() < 0.1 else None,
                "user_id": str(1300000000000000000 + rng.randrange(300000)),
                "developer_id": f"dev-{rng.randrange(DEVELOPERS):02}" if rng.random() < 0.33 else None,
                "link_id": None,
                "cost_ms": cost,
                "discord_status": status,
                "discord_code": discord_code,
                "created_at": created,
                "finished_at": created + timedelta(milliseconds=cost),
                "idempotency_key": f"order-{first + i}" if idempotent else None,
                "request_hash": os.urandom(32).hex() if idempotent else None,
                "response_status": 200 if idempotent else None,
                "response_body": '{"status":1,"msg":"ok","data":{}}' if idempotent else None,
                "response_headers": "{}" if idempotent else None,
            }
            if app == 0:
                reads.matching.update(name for name, test in tests if test(row))
            batch.append(row)
        yield batch


async def build(url: str, count: int, keys: dict[str, list[str]], now: datetime, reads: Reads) -> None:
    """``count`` records straight into the migrated ``records`` table, in its columns as the database has them."""
    async_url = url.replace("sqlite:///", "sqlite+aiosqlite:///", 1).replace("postgresql://", "postgresql+asyncpg://")
    engine = create_async_engine(async_url)
    try:
        async with engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            if names - KNOWN_TABLES:  # e.g. a roll-up a later migration adds: direct inserts do not fill it
                print(f"note: tables not filled here: {', '.join(sorted(names - KNOWN_TABLES))}", file=sys.stderr)
            table = await conn.run_sync(lambda c: Table("records", MetaData(), autoload_with=c))
            ours = set(next(iter(records(1, keys, now, Reads(now))))[0])
            needed = {c.name for c in table.c if not c.nullable and c.server_default is None} - ours
            if needed:
                raise SystemExit(f"records has columns this bench does not fill: {', '.join(sorted(needed))}")
            dropped = ours - set(table.c.keys())
            if url.startswith("sqlite"):
                await conn.execute(text("PRAGMA synchronous=OFF"))
                await conn.execute(text("PRAGMA cache_size=-1000000"))  # 1 GB: the id index is inserted at random
            started, done = time.monotonic(), 0
            for batch in records(count, keys, now, reads):
                rows = [{k: v for k, v in r.items() if k not in dropped} for r in batch] if dropped else batch
                await conn.execute(table.insert(), rows)
                await conn.commit()
                done += len(rows)
                rate = done / max(time.monotonic() - started, 1e-9)
                print(f"\rbuilding: {done:,} of {count:,} records, {rate:,.0f}/s ", end="", file=sys.stderr, flush=True)
            print(f"in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            if "usage_days" in names:  # the roll-up guildgate keeps as it finishes records: filled as it would be
                await conn.execute(text(rollup_sql(conn.dialect.name, "true")))
                await conn.commit()
            if url.startswith("sqlite"):
                await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        if url.startswith("postgresql"):
            print("VACUUM ANALYZE…", file=sys.stderr, flush=True)
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()


class Stack:
    """The sandbox (``load.fixture``'s app and users) and ``guildgate serve`` on ``database_url``."""

    def __init__(self, tmp: Path, database_url: str, latency_ms: float) -> None:
        self.tmp, self.procs = tmp, []
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GUILDGATE_")},
            "GUILDGATE_DATABASE_URL": database_url,
            "GUILDGATE_SECRET_KEY": "reads-bench-secret-key-0123456789",
            "GUILDGATE_GLOBAL_RATE_LIMIT": "100000",
            "GUILDGATE_READS_PER_MINUTE": str(RAISED),
            "GUILDGATE_LOG_LEVEL": "warning",
            "BENCH_SECRET": "load-secret",
            "BENCH_BOT": load.BOT_TOKEN,
        }
        (tmp / "fixture.json").write_text(json.dumps(load.fixture(latency_ms)))
        port = free_port()
        self.sandbox = self.spawn(["sandbox", "--fixture", str(tmp / "fixture.json"), "--port", str(port)], "sandbox")
        wait_http(f"http://127.0.0.1:{port}/_sandbox/stats", self.sandbox)
        self.env["GUILDGATE_DISCORD_API_BASE"] = f"http://127.0.0.1:{port}/api/v10"

    def spawn(self, args: list[str], name: str) -> Any:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([GUILDGATE, *args], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(proc)
        return proc

    def cli(self, args: list[str]) -> str:
        done = subprocess.run([GUILDGATE, *args], env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"guildgate {args[0]} {args[1] if len(args) > 1 else ''} failed: {done.stderr[-2000:]}")
        return done.stdout

    def serve(self) -> None:
        port = free_port()
        self.gateway = self.spawn(["serve", "--port", str(port)], "gateway")
        wait_http(f"http://127.0.0.1:{port}/readyz", self.gateway, timeout=120)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()  # nothing if it has exited
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def get(session: aiohttp.ClientSession, url: str, key: str) -> tuple[float, int, bytes]:
    seconds, status, body, _ = await get_retry(session, url, key)
    return seconds, status, body


async def get_retry(session: aiohttp.ClientSession, url: str, key: str) -> tuple[float, int, bytes, float]:
    """``get``, and the answer's ``Retry-After`` in seconds (0 without one)."""
    started = time.perf_counter()
    async with session.get(url, headers={"User-Token": key}) as answer:
        body = await answer.read()
    return time.perf_counter() - started, answer.status, body, float(answer.headers.get("retry-after") or 0)


async def measure_reads(stack: Stack, key: str, reads: Reads, repeat: int, budget: float) -> list[str]:
    """Each read one at a time; a paged read walks 20 pages by cursor, each page a sample."""
    lines = ["| read | matching | n | p50 ms | p99 ms | p99 ≤ 100 ms |", "|---|---|---|---|---|---|"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def read(name: str, path: str, query: dict[str, str]) -> tuple[float, dict[str, Any]]:
            seconds, status, body = await get(session, f"{stack.url}{path}?{urlencode(query)}", key)
            answer = json.loads(body)
            if status != 200 or answer.get("status") != 1:
                raise SystemExit(f"{name}: HTTP {status}: {body[:300]!r}")
            return seconds, answer["data"]

        for name, path, query, _ in reads.rows:
            pages = 20 if "pages" in name else 1
            _, data = await read(name, path, query)  # warms the connection and the statement: not counted
            samples: list[float] = []
            started = time.monotonic()
            while len(samples) < max(repeat, pages) and (time.monotonic() - started < budget or len(samples) < 3):
                cursor = None
                for _ in range(pages):
                    seconds, data = await read(name, path, {**query, **({"cursor": cursor} if cursor else {})})
                    samples.append(seconds)
                    cursor = data.get("next_cursor")
                    if pages > 1 and not cursor:
                        raise SystemExit(f"{name}: fewer than {pages} pages")
            matching = data["total"] if "total" in data else reads.matching[name]
            p50, p99 = load.pct(samples, 50), load.pct(samples, 99)
            print(f"{name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms", file=sys.stderr, flush=True)
            lines.append(
                f"| {name} | {matching:,} | {len(samples)} | {p50:.1f} | {p99:.1f} | {'yes' if p99 <= 100 else 'no'} |"
            )
    held, counted = reads.matching[reads.rows[0][0]], data.get("total")
    if counted is not None and counted != held:  # the last read is usage for all time
        lines.append(f"\nWARNING: usage counts {counted:,} of the {held:,} records: a table not filled here?")
    return lines


def readers(url: str, keys: list[str], reads: list[str], count: int, ready: Any, stop: Any, out: Any) -> None:
    """Another process: ``count`` clients, each going round ``reads`` without pause until ``stop`` is set."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def reader(n: int, session: aiohttp.ClientSession) -> None:
        i = n
        while not stop.is_set():
            retry = 0.0
            try:
                seconds, status, _, retry = await get_retry(
                    session, f"{url}{reads[i % len(reads)]}", keys[n % len(keys)]
                )
            except (aiohttp.ClientError, TimeoutError):
                seconds, status = 0.0, 0
            if status == 200:
                latencies.append(seconds)
            statuses[status] += 1
            i += 1
            if status == 429:  # the key's reads are spent: wait as told (or until the run ends)
                await asyncio.get_running_loop().run_in_executor(None, stop.wait, max(retry, 0.1))

    async def run() -> None:
        connector = aiohttp.TCPConnector(limit=count)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
            ready.set()
            started = time.monotonic()
            await asyncio.gather(*(reader(n, session) for n in range(count)))
            out.put((latencies, dict(statuses), time.monotonic() - started))

    asyncio.run(run())


async def joins(stack: Stack, key: str, rate: float, seconds: float) -> tuple[list[float], int, float]:
    """``rate`` joins a second through guildgate for ``seconds`` (``load.offered``): latencies, failures, CPU s."""
    async with load._Client("aiohttp", int(rate)) as client:

        async def one(user: int) -> bool:
            body = {"authorization": f"load-user-{user}", "guild_id": load.GUILD}
            status, answer = await client.send(
                "POST", f"{stack.url}/api/wanda/discord/guild", body, {"User-Token": key}
            )
            return status == 200 and answer.get("status") == 1

        cpu = load.cpu_seconds(stack.gateway.pid)
        _, latencies, failures = await load.offered(one, rate, seconds)
        return latencies, failures, load.cpu_seconds(stack.gateway.pid) - cpu


def join_phase(stack: Stack, secrets: dict[str, list[str]], reads: Reads, args: argparse.Namespace) -> list[str]:
    join_key, read_keys = secrets[load.APP][2], secrets[load.APP][:2]  # the first app's three keys
    asyncio.run(joins(stack, join_key, args.rate, 2.0))  # warm-up, not measured
    print(f"joins: {args.rate:g}/s for {args.seconds:g} s, nobody reading…", file=sys.stderr, flush=True)
    alone = asyncio.run(joins(stack, join_key, args.rate, args.seconds))
    print(f"joins: the same with {args.readers} readers…", file=sys.stderr, flush=True)
    paths = [f"{path}?{urlencode(query)}" for name, path, query, _ in reads.rows if "pages" not in name]
    mp = multiprocessing.get_context("spawn")
    ready, stop, out = mp.Event(), mp.Event(), mp.Queue()
    proc = mp.Process(target=readers, args=(stack.url, read_keys, paths, args.readers, ready, stop, out))
    proc.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the readers did not start")
        time.sleep(1.0)
        busy = asyncio.run(joins(stack, join_key, args.rate, args.seconds))
        stop.set()
        read_lat, statuses, read_s = out.get(timeout=180)
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    head = (
        "| readers | joins | failed | join p50 ms | join p99 ms | guildgate CPU % | reads | reads/s | read p50 / p99 ms"
    )
    lines = [f"{head} | read answers |", "|---|---|---|---|---|---|---|---|---|---|"]
    for n, (lat, failed, cpu), rl in ((0, alone, []), (args.readers, busy, read_lat)):
        reading = (
            f"{len(rl)} | {len(rl) / read_s:.1f} | {load.pct(rl, 50):.0f} / {load.pct(rl, 99):.0f} | "
            + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
            if rl
            else "– | – | – | –"
        )
        lines.append(
            f"| {n} | {len(lat)} | {failed} | {load.pct(lat, 50):.1f} | {load.pct(lat, 99):.1f} | "
            f"{cpu * 100 / args.seconds:.0f} | {reading} |"
        )
    ratio = load.pct(busy[0], 99) / load.pct(alone[0], 99)
    verdict = "met" if ratio < 2 else "not met"
    lines.append(f"\njoin p99 with {args.readers} readers / without: {ratio:.2f} (target: below 2: {verdict})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL instead of SQLite")
    parser.add_argument("--repeat", type=int, default=30, help="samples per read (at most)")
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per read (at most, after 3 samples)")
    parser.add_argument("--rate", type=float, default=50.0, help="joins a second offered")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each join run")
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--discord-latency", type=float, default=20.0, metavar="MS")
    parser.add_argument(
        "--reads-per-minute",
        type=int,
        nargs="+",
        default=[RAISED],
        help="GUILDGATE_READS_PER_MINUTE for step 2, a run for each (guildgate's default: 120)",
    )
    args = parser.parse_args()
    if args.records < 20 * 500 or args.repeat < 3 or args.rate <= 0 or args.seconds <= 0 or args.readers < 1:
        parser.error("--records at least 10000 (20 pages of 500), --repeat at least 3; --rate, --seconds above 0")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally clauses stop what was started
    with tempfile.TemporaryDirectory(prefix="guildgate-reads-") as tmp:
        pg: Server | None = None
        stack: Stack | None = None
        try:
            pg = start_postgres() if args.postgres else None
            url = pg.url if pg else f"sqlite:///{Path(tmp) / 'reads.db'}"
            stack = Stack(Path(tmp), url, args.discord_latency)
            stack.cli(["migrate"])
            keys: dict[str, list[str]] = {}
            secrets: dict[str, list[str]] = {}
            for app, _, count in APPS:
                stack.cli(["apps", "add", "--client-id", app, *SECRETS_FROM_ENV])
                made = [json.loads(stack.cli(["keys", "create", "--app", app, "--json"])) for _ in range(count)]
                keys[app], secrets[app] = [k["id"] for k in made], [k["key"] for k in made]
            now = datetime.now(UTC).replace(tzinfo=None)
            reads = Reads(now)
            asyncio.run(build(url, args.records, keys, now, reads))
            stack.serve()
            backend = "PostgreSQL" if pg else "SQLite"
            lines = asyncio.run(measure_reads(stack, secrets[load.APP][0], reads, args.repeat, args.budget))
            held = reads.matching[reads.rows[0][0]]
            print(f"{args.records:,} records, {backend}; the reading app holds {held:,}\n")
            print("\n".join(lines), flush=True)
            for limit in args.reads_per_minute:
                if stack.env["GUILDGATE_READS_PER_MINUTE"] != str(limit):
                    stack.gateway.terminate()
                    stack.gateway.wait(30)
                    stack.env["GUILDGATE_READS_PER_MINUTE"] = str(limit)
                    stack.serve()
                lines = join_phase(stack, secrets, reads, args)
                print(
                    f"\njoins: {args.rate:g}/s for {args.seconds:g} s, sandbox {args.discord_latency:g} ms late; "
                    f"{backend}; GUILDGATE_READS_PER_MINUTE={limit}"
                )
                print("\n" + "\n".join(lines), flush=True)
        except BaseException:
            for log in sorted(Path(tmp).glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                if tail:
                    print(f"--- {log.name}:\n" + "\n".join(tail), file=sys.stderr)
            raise
        finally:
            if stack is not None:
                stack.stop()
            if pg is not None:
                pg.stop()


if __name__ == "__main__":
    main()
