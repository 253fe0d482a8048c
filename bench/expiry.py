"""Grants ending on time: N grants coming due at the same second, ended by guildgate's sweep, with joins
offered meanwhile.

    python bench/expiry.py                          # 2,000 grants; 1 worker (SQLite), then 4 (PostgreSQL + Redis)
    python bench/expiry.py --grants 300 --workers 4 # the acceptance point: 300 grants, 4 workers (~6 minutes)
    python bench/expiry.py --bucket 10/1 --window sliding   # a bucket 10x Discord's: the sweep's own pace binds

Each run starts a Discord sandbox (the bot's global limit 50/s; Remove Guild Member Role limited per guild by
``--bucket LIMIT/SECONDS`` in a fixed window or ``--window sliding``, by default Discord's observed 10 per 10 s
in a fixed window, as in the sandbox's demo fixture, so 2,000 removals in one server take Discord 33 minutes;
Add Guild Member 10 per 10 s per guild), a throwaway
database (SQLite for one worker; PostgreSQL with a throwaway Redis for more) and ``guildgate serve`` with
``GUILDGATE_GRANT_SWEEP_INTERVAL=1``. N members of one server hold a role at the sandbox (its fixture's
``member_roles``), and N real grants of that role, one per member, all ending at the same whole second
(``--lead`` seconds ahead), are written through the engine's store (``GrantRepo.insert``: the row and its
``grant.started`` event, as the API writes a new grant) into guildgate's database while it runs. Reminders and
the periodic sync are off (``GUILDGATE_GRANT_REMIND_BEFORE=""``, ``GUILDGATE_GRANT_SYNC_INTERVAL=0``): they
would have run long before such an end, not during it.

From 8 s before the end until every grant has ended, joins arrive through the join API at ``--join-rate`` per
second (open loop, users taken in turn from a pool of 1,000, spread over the grants' server and three others,
within Add Guild Member's per-guild limit). Then the run prints, from the grants themselves and from the sandbox's
own counts (``/_sandbox/stats``): the end lag (``ends_at`` to ``ended_at``) at p50/p99/max, beside the time the
removal bucket needs for N calls; removals per grant (must be exactly 1 for each); the 429s the sandbox sent (must
be 0); the joins answered during the sweep with their latency, beside that of the joins in the 8 s before it. The
verdict line checks the acceptance point: every role removed exactly once, no 429, and the last end no later than
the bucket's time for N calls plus 15 s. The exit status is 1 when a run misses it.

Everything listens on 127.0.0.1; every process, file and database it starts is removed when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import select, text

from guildgate.core.grants import Grant, GrantState, OnEnd, new_grant_id
from guildgate.store.db import Database
from guildgate.store.grants import GrantRepo
from guildgate.store.models import GrantRow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import Server, free_port, start_postgres, start_redis, stop_process, wait_http  # noqa: E402

BIN = Path(sys.executable).parent
APP = "1100000000000000001"
BOT_TOKEN = "expiry-bench-bot-token"
BOT_USER = "1100000000000000002"
GUILD = "1200000000000000001"  # the grants' server
OTHER_GUILDS = [str(1200000000000000002 + i) for i in range(3)]  # more servers the joins go to
ROLE = "1200000000000000011"
GRANT_USER0 = 1300000000000000000
JOIN_USER0 = 1400000000000000000
GLOBAL = 50
REMOVE = "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
GIVE = "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
ADD = "PUT /guilds/{guild_id}/members/{user_id}"
ADD_LIMIT, ADD_RESET = 10, 10.0
JOINERS = 1000  # users with a token for the joins, taken in turn
BEFORE = 8.0  # seconds of joins before the due second, to compare with those during the sweep


@dataclass(frozen=True)
class Bucket:
    limit: int
    seconds: float
    window: str

    def time_for(self, calls: int) -> float:
        """Seconds from the first of ``calls`` requests to the last, sent as fast as this bucket (and the bot's
        global limit) allow, starting full."""
        if self.window == "fixed":
            own = (math.ceil(calls / self.limit) - 1) * self.seconds
        else:
            own = max(0, calls - self.limit) * self.seconds / self.limit
        return max(own, max(0, calls - GLOBAL) / GLOBAL)


def fixture(grants: int, joiners: int, bucket: Bucket) -> dict[str, Any]:
    grant_users = [str(GRANT_USER0 + i) for i in range(grants)]
    return {
        "applications": [
            {
                "id": APP,
                "name": "Expiry",
                "client_id": APP,
                "client_secret": "expiry-secret",
                "bot_token": BOT_TOKEN,
                "bot_user_id": BOT_USER,
            }
        ],
        "guilds": [
            {
                "id": GUILD,
                "name": "Cohort",
                "bots": {APP: ["CREATE_INSTANT_INVITE", "MANAGE_ROLES", "KICK_MEMBERS"]},
                "roles": [{"id": ROLE, "name": "Member", "position": 1}],
                "bot_role_position": 5,
                "members": grant_users,
                "member_roles": {u: [ROLE] for u in grant_users},
            },
            *(
                {"id": g, "name": f"Other {i}", "bots": {APP: ["CREATE_INSTANT_INVITE"]}}
                for i, g in enumerate(OTHER_GUILDS)
            ),
        ],
        "users": [
            *({"id": u, "username": f"m{i}", "max_guilds": 10**6} for i, u in enumerate(grant_users)),
            *(
                {
                    "id": str(JOIN_USER0 + j),
                    "username": f"j{j}",
                    "max_guilds": 10**6,
                    "tokens": [{"access_token": f"expiry-join-{j}", "application_id": APP}],
                }
                for j in range(joiners)
            ),
        ],
        "rate_limits": {
            "global_per_second": GLOBAL,
            "routes": {
                REMOVE: {"limit": bucket.limit, "reset_after": bucket.seconds, "window": bucket.window},
                ADD: {"limit": ADD_LIMIT, "reset_after": ADD_RESET},
                "GET /users/@me": {"limit": 5, "reset_after": 1.0},
            },
        },
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class Run:
    workers: int
    grants: int
    bucket: Bucket
    database: str = ""
    lags: list[float] = field(default_factory=list)
    last_end: float = float("nan")  # seconds from the due second to the last ended_at
    removals: dict[int, int] = field(default_factory=dict)  # removals per grant -> how many grants
    not_ended: int = 0
    states: dict[str, int] = field(default_factory=dict)
    too_many: int = 0
    joins: list[tuple[float, float, bool]] = field(default_factory=list)  # (sent, latency s, ok)
    sweep: tuple[float, float] = (0.0, 0.0)  # monotonic (due, last end seen)
    notes: list[str] = field(default_factory=list)  # what the sandbox saw, when the verdict is no

    @property
    def bucket_time(self) -> float:
        return self.bucket.time_for(self.grants)

    def joins_in_sweep(self) -> list[tuple[float, float, bool]]:
        start, end = self.sweep
        return [j for j in self.joins if start <= j[0] <= end]

    def joins_before(self) -> list[tuple[float, float, bool]]:
        """The joins sent before the due second: the same load without the sweep, to compare with."""
        return [j for j in self.joins if j[0] < self.sweep[0]]

    def verdict(self) -> tuple[bool, str]:
        once = self.removals == {1: self.grants}
        quiet = self.too_many == 0
        on_time = self.not_ended == 0 and self.last_end <= self.bucket_time + 15
        text = (
            f"every role removed exactly once: {'yes' if once else 'NO ' + str(self.removals)}; "
            f"no 429: {'yes' if quiet else f'NO ({self.too_many})'}; "
            f"last end {self.last_end:.1f} s after the due second <= bucket time for {self.grants} calls "
            f"{self.bucket_time:.1f} s + 15 s: {'yes' if on_time else 'NO'}"
        )
        return once and quiet and on_time, text


class Stack:
    """The sandbox, guildgate's database (and Redis), and ``guildgate serve`` with N workers."""

    def __init__(self, tmp: Path, workers: int, grants: int, joiners: int, bucket: Bucket) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.servers: list[Server] = []
        try:
            self._start(workers, grants, joiners, bucket)
        except BaseException:
            self.stop()
            raise

    def _start(self, workers: int, grants: int, joiners: int, bucket: Bucket) -> None:
        path = self.tmp / "fixture.json"
        path.write_text(json.dumps(fixture(grants, joiners, bucket)))
        port = free_port()
        sandbox = self._spawn(["sandbox", "--fixture", str(path), "--port", str(port)], "sandbox", None)
        self.sandbox = f"http://127.0.0.1:{port}"
        wait_http(self.sandbox + "/_sandbox/stats", sandbox, timeout=120)
        if workers > 1:
            postgres, redis = start_postgres(), start_redis()
            self.servers += [postgres, redis]
            self.database_url, self.database = postgres.url, "PostgreSQL + Redis"
        else:
            self.database_url, self.database = f"sqlite:///{self.tmp / 'expiry.db'}", "SQLite"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GUILDGATE_")},
            "GUILDGATE_DATABASE_URL": self.database_url,
            "GUILDGATE_SECRET_KEY": "expiry-bench-secret-key-0123456789",
            "GUILDGATE_DISCORD_API_BASE": self.sandbox + "/api/v10",
            "GUILDGATE_GLOBAL_RATE_LIMIT": str(GLOBAL),
            "GUILDGATE_REQUEST_TIMEOUT": "5",
            "GUILDGATE_LOG_LEVEL": "warning",
            "GUILDGATE_GRANT_SWEEP_INTERVAL": "1",
            "GUILDGATE_GRANT_REMIND_BEFORE": "",
            "GUILDGATE_GRANT_SYNC_INTERVAL": "0",
            **({"GUILDGATE_REDIS_URL": self.servers[1].url} if workers > 1 else {}),
            "BENCH_SECRET": "expiry-secret",
            "BENCH_BOT": BOT_TOKEN,
        }
        self._cli(["migrate"])
        self._cli(
            ["apps", "add", "--client-id", APP, "--client-secret-env", "BENCH_SECRET", "--bot-token-env", "BENCH_BOT"]
        )
        self.key = json.loads(self._cli(["keys", "create", "--app", APP, "--json"]))["key"]
        port = free_port()
        self.gateway = self._spawn(["serve", "--port", str(port), "--workers", str(workers)], "gateway", self.env)
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + "/readyz", self.gateway, timeout=180)

    def _spawn(self, args: list[str], name: str, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([str(BIN / "guildgate"), *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        return proc

    def _cli(self, args: list[str]) -> str:
        done = subprocess.run([str(BIN / "guildgate"), *args], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"guildgate {args[0]} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def log_tail(self, lines: int = 30) -> str:
        text = (self.tmp / "gateway.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, grace=15)
        self.procs.clear()
        for server in self.servers:
            server.stop()
        self.servers.clear()


async def write_grants(stack: Stack, grants: int, due: datetime) -> None:
    """N real grants, one per member (who holds the role at the sandbox), all ending at ``due``, written through
    the engine's store as the API writes a new one (each with its ``grant.started`` event), 8 at a time."""
    now = datetime.now(UTC)
    db = Database(stack.database_url)
    repo = GrantRepo(db)
    pending = iter(range(grants))

    async def writer() -> None:
        for i in pending:
            grant = Grant(
                id=new_grant_id(),
                app_id=APP,
                guild_id=GUILD,
                user_id=str(GRANT_USER0 + i),
                roles=(ROLE,),
                state=GrantState.ACTIVE,
                starts_at=now,
                ends_at=due,
                on_end=OnEnd.REMOVE_ROLES,
                external_ref=f"sub_bench_{i}",
                source="api",
                link_id=None,
                record_id=None,
                roles_preexisting=(),
                absent_since=None,
                revision=1,
                as_of=None,
                ended_at=None,
                end_reason=None,
                last_error=None,
                created_at=now,
                updated_at=now,
            )
            await repo.insert(grant)

    try:
        await asyncio.gather(*(writer() for _ in range(8)))
    finally:
        await db.dispose()


async def count_active(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM grants WHERE state = 'active'"))).scalar_one())


async def read_grants(db: Database) -> list[tuple[Any, ...]]:
    async with db.engine.connect() as conn:
        result = await conn.execute(
            select(GrantRow.user_id, GrantRow.state, GrantRow.ends_at, GrantRow.ended_at, GrantRow.end_action)
        )
        return [tuple(r) for r in result]


async def offer_joins(stack: Stack, run: Run, rate: float, stop: asyncio.Event) -> None:
    """Joins through the join API at ``rate`` per second until ``stop`` (open loop), the pool's users in turn: a
    user's second join to the same server is ``already_member``, a success too."""
    guilds = [GUILD, *OTHER_GUILDS]
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=500)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers={"User-Token": stack.key}) as c:

        async def one(i: int) -> None:
            body = {"authorization": f"expiry-join-{i % JOINERS}", "guild_id": guilds[i % len(guilds)]}
            sent = time.monotonic()
            try:
                async with c.post(stack.url + "/api/wanda/discord/guild", json=body) as r:
                    ok = r.status == 200 and (await r.json()).get("status") == 1
            except (aiohttp.ClientError, TimeoutError, ValueError):
                ok = False
            run.joins.append((sent, time.monotonic() - sent, ok))

        start, i = time.monotonic(), 0
        while not stop.is_set():
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        await asyncio.gather(*tasks)


async def measure(stack: Stack, run: Run, lead: float, join_rate: float, patience: float) -> None:
    due = datetime.fromtimestamp(math.ceil(time.time() + lead), UTC)
    started = time.monotonic()
    await write_grants(stack, run.grants, due)
    took = time.monotonic() - started
    if time.time() > due.timestamp() - BEFORE:
        raise RuntimeError(f"writing the grants took {took:.1f} s, too close to their end: give a longer --lead")
    due_mono = time.monotonic() + (due.timestamp() - time.time())
    print(f"  {run.grants} grants written in {took:.1f} s, due at {due:%H:%M:%S}Z…", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    await asyncio.sleep(max(0.0, due_mono - BEFORE - time.monotonic()))
    joins = asyncio.create_task(offer_joins(stack, run, join_rate, stop)) if join_rate > 0 else None
    db = Database(stack.database_url)
    deadline = due_mono + run.bucket_time + patience
    try:
        while time.monotonic() < deadline:
            if time.monotonic() >= due_mono and await count_active(db) == 0:
                break
            await asyncio.sleep(0.25)
        run.sweep = (due_mono, time.monotonic())
        stop.set()
        if joins is not None:
            await joins
        rows = await read_grants(db)
    finally:
        stop.set()
        await db.dispose()
    async with httpx.AsyncClient(timeout=30) as plain:
        stats = (await plain.get(stack.sandbox + "/_sandbox/stats")).json()
    removals = stats.get("role_removals", {})
    for user_id, state, ends_at, ended_at, _action in rows:
        run.states[state] = run.states.get(state, 0) + 1
        n = int(removals.get(f"{GUILD}/{user_id}/{ROLE}", 0))
        run.removals[n] = run.removals.get(n, 0) + 1
        if ended_at is None:
            run.not_ended += 1
        else:
            run.lags.append((_utc(ended_at) - _utc(ends_at)).total_seconds())
    if run.lags:
        run.last_end = max(run.lags)
    run.too_many = sum(stats["rate_limited"].values())
    twice = [u for u, *_ in rows if int(removals.get(f"{GUILD}/{u}/{ROLE}", 0)) != 1][:3]
    async with httpx.AsyncClient(timeout=30) as plain:
        for user_id in twice:  # what the sandbox saw of each grant not removed exactly once: for the log
            audit = (await plain.get(stack.sandbox + "/_sandbox/audit", params={"target_id": user_id})).json()
            run.notes.append(f"audit of {user_id}: {json.dumps(audit.get('entries', []))[:1500]}")
    if run.too_many:
        run.notes.append(f"429s: {stats['rate_limited']}; responses: {json.dumps(stats.get('responses', {}))[:1500]}")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def table(runs: list[Run]) -> str:
    head = (
        "| workers | database | grants | end lag p50 / p99 / max s | Discord's time for N removals s "
        "| removals per grant | 429s | joins ok / sent during the sweep | join p50 / p99 ms during "
        "| join p50 / p99 ms before |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in runs:
        joins = r.joins_in_sweep()
        ok = [lat for _, lat, good in joins if good]
        before = [lat for _, lat, good in r.joins_before() if good]
        per_grant = ", ".join(f"{n}: {count:,}" for n, count in sorted(r.removals.items()))
        lines.append(
            f"| {r.workers} | {r.database} | {r.grants:,} | {pct(r.lags, 50):.1f} / {pct(r.lags, 99):.1f} / "
            f"{r.last_end:.1f} | {r.bucket_time:.1f} | {per_grant} | {r.too_many} | {len(ok)} / {len(joins)} | "
            f"{pct(ok, 50) * 1000:.0f} / {pct(ok, 99) * 1000:.0f} | "
            f"{pct(before, 50) * 1000:.0f} / {pct(before, 99) * 1000:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grants", type=int, default=2000, help="grants coming due at the same second")
    parser.add_argument("--workers", default="1,4", help="a run per count; 1 on SQLite, more on PostgreSQL + Redis")
    parser.add_argument(
        "--bucket",
        default="10/10",
        metavar="LIMIT/SECONDS",
        help="Remove Guild Member Role's per-guild bucket (default: 10 per 10 s, as observed on Discord)",
    )
    parser.add_argument(
        "--window", choices=("sliding", "fixed"), default="fixed", help="how that bucket refills (Discord's: fixed)"
    )
    parser.add_argument("--join-rate", type=float, default=4.0, help="joins offered per second meanwhile (0: none)")
    parser.add_argument(
        "--lead",
        type=float,
        help="seconds from starting to write the grants to their end (default: 20 + one per 20 grants)",
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=120.0,
        help="seconds past the bucket's time for N removals to wait for the last end before giving up",
    )
    args = parser.parse_args()
    try:
        limit, seconds = args.bucket.split("/")
        bucket = Bucket(int(limit), float(seconds), args.window)
        workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        parser.error("--bucket is LIMIT/SECONDS (e.g. 10/1) and --workers a comma list of counts (e.g. 1,4)")
    if args.grants < 1 or bucket.limit < 1 or bucket.seconds <= 0 or min(workers) < 1 or args.join_rate < 0:
        parser.error("--grants, --workers and the bucket must be positive, --join-rate 0 or more")
    if args.join_rate > len(OTHER_GUILDS) + 1:
        parser.error(f"--join-rate above {len(OTHER_GUILDS) + 1}/s would pass Add Guild Member's per-guild limits")
    lead = args.lead if args.lead is not None else 20 + args.grants / 20
    runs: list[Run] = []
    ok = True
    for count in workers:
        run = Run(workers=count, grants=args.grants, bucket=bucket)
        print(f"{count} worker(s), {args.grants} grants: starting…", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="guildgate-expiry-") as tmp:
            stack = Stack(Path(tmp), count, args.grants, JOINERS, bucket)
            run.database = stack.database
            try:
                asyncio.run(measure(stack, run, lead, args.join_rate, args.patience))
            finally:
                tail = stack.log_tail()
                stack.stop()
        runs.append(run)
        good, text = run.verdict()
        ok = ok and good
        print(table([run]).splitlines()[-1], file=sys.stderr, flush=True)
        if not good:
            notes = "\n  ".join(run.notes)
            print(f"  {text}\n  states: {run.states}\n  {notes}\n  gateway log:\n{tail}", file=sys.stderr, flush=True)
    print(
        f"Remove Guild Member Role bucket: {bucket.limit} per {bucket.seconds:g} s per guild, {bucket.window}; "
        f"the bot's global limit {GLOBAL}/s; joins offered: {args.join_rate:g}/s\n"
    )
    print(table(runs))
    print()
    for run in runs:
        print(f"{run.workers} worker(s), {run.grants} grants: {run.verdict()[1]}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
