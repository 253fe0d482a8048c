"""How close guildgate runs to Discord's limits without ever being told to slow down.

Starts a Discord sandbox with realistic limits, a Redis, and guildgate with 1, 2 and 4 workers sharing it;
offers 10x the allowed load for ~30 s per run through the join API; then reads the sandbox's own counts.
The same workload also goes through discord.py's HTTP client (a real peer, one process and four) against
the same sandbox, when a Python with discord.py is given.

    python bench/ratelimit.py                                  # all runs, ~4 minutes
    python bench/ratelimit.py --seconds 10 --workers 1 --peer-python /tmp/benchenv/bin/python
    python bench/ratelimit.py --workers 4 --scenarios global --postgres       # PostgreSQL as guildgate's store

Scenarios:
  buckets  8 guilds, Add Guild Member 10 per 10 s each (sliding); the buckets bind (8/s allowed)
  global   3 x G guilds, Add Guild Member 10 per 10 s each; the bot's global limit G binds (default Discord's
           50/s, 500 joins/s offered; --global-limit sets another G)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import redis as redis_py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, start_postgres, start_redis, wait_http  # noqa: E402

BIN = Path(sys.executable).parent
APP = "1100000000000000001"
BOT_TOKEN = "bench-bot-token"
PUT = "PUT /guilds/{guild_id}/members/{user_id}"
GLOBAL = 50


def fixture(guilds: int, users: int, window: str) -> dict[str, Any]:
    return {
        "applications": [
            {
                "id": APP,
                "name": "Bench",
                "client_id": APP,
                "client_secret": "bench-secret",
                "bot_token": BOT_TOKEN,
                "bot_user_id": "1100000000000000002",
            }
        ],
        "guilds": [
            {"id": str(1200000000000000000 + i), "name": f"g{i}", "bots": {APP: ["CREATE_INSTANT_INVITE"]}}
            for i in range(guilds)
        ],
        "users": [
            {
                "id": str(1300000000000000000 + i),
                "username": f"u{i}",
                "guild_count": 0,
                "max_guilds": 10**6,
                "tokens": [{"access_token": f"bench-user-{i}", "application_id": APP}],
            }
            for i in range(users)
        ],
        "rate_limits": {
            "global_per_second": GLOBAL,
            "window": window,
            "routes": {PUT: {"limit": 10, "reset_after": 10.0}, "GET /users/@me": {"limit": 5, "reset_after": 1.0}},
        },
    }


class Stack:
    """A sandbox process and a guildgate with N workers on one Redis."""

    def __init__(self, tmp: Path, redis_url: str, database_url: str | None = None) -> None:
        self.tmp, self.redis_url, self.database_url = tmp, redis_url, database_url
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_sandbox(self, world: dict[str, Any]) -> str:
        path = self.tmp / "fixture.json"
        path.write_text(json.dumps(world))
        port = free_port()
        self.procs.append(
            subprocess.Popen(
                [str(BIN / "guildgate"), "sandbox", "--fixture", str(path), "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        self.sandbox = f"http://127.0.0.1:{port}"
        wait_http(self.sandbox + "/_sandbox/stats")
        return self.sandbox

    def start_gateway(self, workers: int, run: int) -> tuple[str, str]:
        env = {
            **os.environ,
            "GUILDGATE_DATABASE_URL": self.database_url or f"sqlite:///{self.tmp}/gg-{run}.db",
            "GUILDGATE_SECRET_KEY": "bench-secret-key-0123456789",
            **({"GUILDGATE_REDIS_URL": self.redis_url} if self.redis_url else {}),
            "GUILDGATE_DISCORD_API_BASE": self.sandbox + "/api/v10",
            "GUILDGATE_REQUEST_TIMEOUT": "5",
            "GUILDGATE_GLOBAL_RATE_LIMIT": str(GLOBAL),
            "GUILDGATE_LOG_LEVEL": "warning",
            "CS": "bench-secret",
            "BT": BOT_TOKEN,
        }
        gg = str(BIN / "guildgate")
        subprocess.run(
            [gg, "apps", "add", "--client-id", APP, "--client-secret-env", "CS", "--bot-token-env", "BT"],
            env=env,
            check=True,
            capture_output=True,
        )
        key = json.loads(
            subprocess.run(
                [gg, "keys", "create", "--app", APP, "--json"], env=env, check=True, capture_output=True, text=True
            ).stdout
        )["key"]
        port = free_port()
        self.procs.append(
            subprocess.Popen(
                [gg, "serve", "--port", str(port), "--workers", str(workers)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/readyz")
        return url, key

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


async def offer(rate: float, seconds: float, send: Any) -> dict[str, int]:
    """Open-loop load: ``rate`` requests per second for ``seconds``, whatever the answers."""
    outcomes: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        code = await send(i)
        outcomes[code] = outcomes.get(code, 0) + 1

    start = time.monotonic()
    i = 0
    while (now := time.monotonic()) - start < seconds:
        due = start + i / rate
        if due > now:
            await asyncio.sleep(due - now)
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    await asyncio.gather(*tasks)
    return outcomes


def histogram_quantiles(metrics: str, name: str, qs: tuple[float, ...]) -> list[float]:
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0
    out = []
    for q in qs:
        target, prev_bound, prev_count = q * total, 0.0, 0.0
        value = float("nan")
        for bound, count in ordered:
            if count >= target and total:
                span = count - prev_count
                frac = (target - prev_count) / span if span else 1.0
                value = prev_bound + (min(bound, prev_bound * 4 or 60) - prev_bound) * frac
                break
            prev_bound, prev_count = bound, count
        out.append(value)
    return out


def analyse(stats: dict[str, Any], guilds: int) -> dict[str, Any]:
    puts = [b for b in stats["buckets"] if b["route"] == PUT]
    ratios = []
    for b in puts:
        span = b["active_seconds"]
        allowed = (
            b["limit"] + b["limit"] / b["reset_after"] * span
            if b["window"] == "sliding"
            else (b["limit"] * (int(span / b["reset_after"]) + 1))
        )
        ratios.append(b["accepted"] / allowed)
    accepted = sum(b["accepted"] for b in puts)
    firsts = [b["first_at"] for b in puts if b["first_at"]]
    lasts = [b["last_at"] for b in puts if b["last_at"]]
    span = (max(lasts) - min(firsts)) if firsts else 0
    maxima = stats["global"]["max_in_any_second"]
    return {
        "puts": accepted,
        "429_user": stats["rate_limited"]["user"],
        "429_global": stats["rate_limited"]["global"],
        "429_shared": stats["rate_limited"]["shared"],
        "bucket_min": min(ratios) if ratios else 0,
        "bucket_mean": statistics.mean(ratios) if ratios else 0,
        "put_rate": accepted / span if span else 0,
        "max_1s": max(maxima.values()) if maxima else 0,
        "buckets": len(puts),
    }


async def run_guildgate(stack: Stack, workers: int, scenario: str, seconds: float, run: int) -> dict[str, Any]:
    guilds = 8 if scenario == "buckets" else 3 * GLOBAL
    stack.start_sandbox(fixture(guilds, 3000, "sliding"))
    url, key = stack.start_gateway(workers, run)
    allowed = guilds * 1.0 if scenario == "buckets" else GLOBAL
    rate = 10 * allowed
    rng = random.Random(run)
    # aiohttp drives the load: a light client, so the generator keeps the offered rate on this shared machine
    # (httpx here fell behind, stretching a 30 s run and lowering the rate actually offered).
    connector = aiohttp.TCPConnector(limit=2000)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers={"User-Token": key}) as client:

        async def send(i: int) -> str:
            body = {
                "authorization": f"bench-user-{rng.randrange(3000)}",
                "guild_id": str(1200000000000000000 + i % guilds),
            }
            try:
                async with client.post(url + "/api/wanda/discord/guild", json=body) as r:
                    return str((await r.json())["code"])
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                return "client_error"

        outcomes = await offer(rate, seconds, send)
    async with httpx.AsyncClient(timeout=30) as plain:
        metrics = (await plain.get(url + "/metrics")).text
        stats = (await plain.get(stack.sandbox + "/_sandbox/stats")).json()
    result = analyse(stats, guilds)
    p50, p99 = histogram_quantiles(metrics, "guildgate_limiter_wait_seconds", (0.5, 0.99))
    result.update(
        client="guildgate",
        workers=workers,
        scenario=scenario,
        offered=rate,
        outcomes=outcomes,
        wait_p50=p50,
        wait_p99=p99,
    )
    stack.stop()
    return result


PEER = (
    r"""
import asyncio, json, sys, time, random
import discord
from discord.http import HTTPClient, Route
base, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
guilds, seed = int(sys.argv[4]), int(sys.argv[5])
Route.BASE = base
async def main():
    http = HTTPClient(asyncio.get_running_loop())
    await http.static_login(BOT_TOKEN_HERE)
    rng = random.Random(seed)
    out = {}
    async def one(i):
        u = rng.randrange(3000)
        route = Route('PUT', '/guilds/{guild_id}/members/{user_id}', guild_id=str(1200000000000000000 + i % guilds),
                      user_id=str(1300000000000000000 + u))
        try:
            await asyncio.wait_for(http.request(route, json={'access_token': f'bench-user-{u}'}), 5)
            k = 'ok'
        except asyncio.TimeoutError:
            k = 'timeout'
        except Exception as e:
            k = type(e).__name__
        out[k] = out.get(k, 0) + 1
    tasks = []
    start = time.monotonic(); i = 0
    while time.monotonic() - start < seconds:
        due = start + i / rate
        now = time.monotonic()
        if due > now: await asyncio.sleep(due - now)
        tasks.append(asyncio.create_task(one(i))); i += 1
    await asyncio.gather(*tasks)
    await http.close()
    print(json.dumps(out))
asyncio.run(main())
"""
).replace("BOT_TOKEN_HERE", repr(BOT_TOKEN))


def run_peer(stack: Stack, python: str, processes: int, scenario: str, seconds: float, run: int) -> dict[str, Any]:
    guilds = 8 if scenario == "buckets" else 3 * GLOBAL
    stack.start_sandbox(fixture(guilds, 3000, "sliding"))
    allowed = guilds * 1.0 if scenario == "buckets" else GLOBAL
    rate = 10 * allowed / processes
    script = stack.tmp / "peer.py"
    script.write_text(PEER)
    procs = [
        subprocess.Popen(
            [python, str(script), stack.sandbox + "/api/v10", str(rate), str(seconds), str(guilds), str(run * 10 + p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for p in range(processes)
    ]
    outcomes: dict[str, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 120)
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            outcomes[k] = outcomes.get(k, 0) + v
    stats = httpx.get(stack.sandbox + "/_sandbox/stats").json()
    result = analyse(stats, guilds)
    result.update(
        client="discord.py " + discord_version(python),
        workers=processes,
        scenario=scenario,
        offered=10 * allowed,
        outcomes=outcomes,
        wait_p50=float("nan"),
        wait_p99=float("nan"),
    )
    stack.stop()
    return result


def discord_version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import discord; print(discord.__version__)"], capture_output=True, text=True
    ).stdout.strip()


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "scenario",
        "client",
        "procs",
        "offered/s",
        "PUT ok",
        "429 user",
        "429 global",
        "bucket use min",
        "bucket use mean",
        "global use",
        "max in 1 s",
        "wait p50",
        "wait p99",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        global_use = r["put_rate"] / GLOBAL
        lines.append(
            "| "
            + " | ".join(
                [
                    r["scenario"],
                    r["client"],
                    str(r["workers"]),
                    f"{r['offered']:.0f}",
                    str(r["puts"]),
                    str(r["429_user"]),
                    str(r["429_global"]),
                    f"{r['bucket_min']:.1%}",
                    f"{r['bucket_mean']:.1%}",
                    f"{global_use:.1%}" if r["scenario"] == "global" else "-",
                    f"{r['max_1s']}/{GLOBAL}",
                    f"{r['wait_p50'] * 1000:.0f} ms" if r["wait_p50"] == r["wait_p50"] else "-",
                    f"{r['wait_p99'] * 1000:.0f} ms" if r["wait_p99"] == r["wait_p99"] else "-",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    global GLOBAL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--scenarios", default="buckets,global")
    parser.add_argument("--peer-python", help="a Python with discord.py installed, for the peer rows")
    parser.add_argument(
        "--global-limit",
        type=int,
        default=50,
        help="the bot's global limit (Discord: 50/s; lower it when 10x of it is more load than "
        "this machine can generate and serve)",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="guildgate's store is a throwaway PostgreSQL (one per run) instead of an SQLite file",
    )
    args = parser.parse_args()
    GLOBAL = args.global_limit
    redis = start_redis()
    rows = []
    try:
        run = 0
        for scenario in args.scenarios.split(","):
            for workers in [int(w) for w in args.workers.split(",")]:
                with tempfile.TemporaryDirectory() as tmp:
                    postgres = start_postgres() if args.postgres else None
                    stack = Stack(Path(tmp), redis.url, postgres.url if postgres else None)
                    try:
                        redis_py.Redis.from_url(redis.url).flushall()
                        rows.append(asyncio.run(run_guildgate(stack, workers, scenario, args.seconds, run)))
                    finally:
                        stack.stop()
                        if postgres is not None:
                            postgres.stop()
                run += 1
                print(table(rows[-1:]).splitlines()[-1], rows[-1]["outcomes"], flush=True)
            if args.peer_python:
                for processes in (1, 4):
                    with tempfile.TemporaryDirectory() as tmp:
                        stack = Stack(Path(tmp), redis.url)
                        try:
                            rows.append(run_peer(stack, args.peer_python, processes, scenario, args.seconds, run))
                        finally:
                            stack.stop()
                    run += 1
                    print(table(rows[-1:]).splitlines()[-1], rows[-1]["outcomes"], flush=True)
    finally:
        redis.stop()
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
