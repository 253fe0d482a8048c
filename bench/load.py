"""What a join costs: guildgate's join API at rising concurrency, beside the floor (the same two Discord calls,
Get Current User and Add Guild Member, sent straight to the sandbox), in one run, limits off.

    python bench/load.py                       # concurrency 1, 4, 16, 64; 10 s each; ~2 minutes
    python bench/load.py --seconds 5 --concurrency 16
    python bench/load.py --client httpx        # the same, with httpx as the load generator's client
    python bench/load.py --workers 2           # two worker processes sharing a throwaway Redis
    python bench/load.py --discord-latency 20  # every sandbox answer 20 ms late, as across a network
    python bench/load.py --rate 200 --discord-latency 20   # open loop: 200 joins/s offered, added latency

Before the first level, joins run through guildgate and straight to the sandbox for ``--warmup`` seconds,
unmeasured: what is timed is the steady state, not the first connections, statement compilations and cold
pages. Prints, per concurrency: joins/s and p50/p95/p99 latency through guildgate and straight to the sandbox, the
throughput ratio (gateway / floor), and guildgate's server CPU per join (user + system time of the serving
process, from /proc, divided by the joins it answered); then a second table with the CPU per join of every
process on the machine — guildgate, the sandbox and the load generator, through guildgate and for the floor
(Redis, with ``--workers`` above 1, is not counted) — which says where the two cores went. One worker, SQLite,
in-process limits; with ``--workers N`` (N > 1), N worker processes sharing a throwaway Redis for the limits
(what ``serve`` requires), and the CPU is that of the supervisor and all its workers. Everything runs on this
machine: the load generator, the sandbox, Redis and guildgate share its cores. By default the sandbox answers at
once, so the comparison is one of CPU; ``--discord-latency`` delays every answer (the sandbox's
``faults.latency_ms``), for both the floor and guildgate, to show what guildgate adds to a join against a Discord
that is some way off.

``--rate R`` measures the other way an operator meets load: R joins a second arrive whatever the answers do (open
loop, each sent at its own time), through guildgate and then as the two direct calls; it prints the latency of
each at p50/p99, guildgate's added latency (guildgate minus the two direct calls, at the same percentile) and its
server CPU per join.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import Server, free_port, start_redis, wait_http  # noqa: E402

BIN = Path(sys.executable).parent
APP = "1100000000000000001"
BOT_TOKEN = "load-bot-token"
GUILD = "1200000000000000001"
USERS = 2000
TICKS = os.sysconf("SC_CLK_TCK")


def fixture(latency_ms: float = 0.0) -> dict[str, Any]:
    return {
        "applications": [
            {
                "id": APP,
                "name": "Load",
                "client_id": APP,
                "client_secret": "load-secret",
                "bot_token": BOT_TOKEN,
                "bot_user_id": "1100000000000000002",
            }
        ],
        "guilds": [{"id": GUILD, "name": "Load", "bots": {APP: ["CREATE_INSTANT_INVITE"]}}],
        "users": [
            {
                "id": str(1300000000000000000 + i),
                "username": f"u{i}",
                "max_guilds": 10**6,
                "tokens": [{"access_token": f"load-user-{i}", "application_id": APP}],
            }
            for i in range(USERS)
        ],
        "rate_limits": {"global_per_second": None, "routes": {}, "invalid_requests_per_10_minutes": None},
        "faults": {"latency_ms": latency_ms},
    }


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid`` and every living process under it (the workers of a supervisor)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(k) for k in children.read_text().split()] if children.exists() else []
    return own + sum(cpu_seconds(kid) for kid in kids if Path(f"/proc/{kid}").exists())


def machine_cpu(stack: Stack) -> tuple[float, float, float]:
    """CPU seconds so far of guildgate (and its workers), the sandbox, and this load generator."""
    own = os.times()
    return cpu_seconds(stack.gateway.pid), cpu_seconds(stack.sandbox.pid), own.user + own.system


def per_join(before: tuple[float, ...], after: tuple[float, ...], joins: int) -> tuple[float, ...]:
    """CPU ms per join of each process between two ``machine_cpu`` readings."""
    return tuple((b - a) * 1000 / max(joins, 1) for a, b in zip(before, after, strict=True))


class Stack:
    def __init__(self, tmp: Path, workers: int = 1, latency_ms: float = 0.0, command: list[str] | None = None) -> None:
        self.tmp = tmp
        self.command = command or [str(BIN / "guildgate")]  # how to run ``guildgate`` (load_ab.py: another revision)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis: Server | None = start_redis() if workers > 1 else None
        fx = tmp / "fixture.json"
        fx.write_text(json.dumps(fixture(latency_ms)))
        self.sandbox_port = free_port()
        self.sandbox = self._spawn(["sandbox", "--fixture", str(fx), "--port", str(self.sandbox_port)], "sandbox")
        wait_http(f"http://127.0.0.1:{self.sandbox_port}/_sandbox/stats", self.sandbox)
        self.api = f"http://127.0.0.1:{self.sandbox_port}/api/v10"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GUILDGATE_")},
            "GUILDGATE_DATABASE_URL": f"sqlite:///{tmp / 'load.db'}",
            "GUILDGATE_SECRET_KEY": "load-bench-secret-key-0123456789",
            "GUILDGATE_DISCORD_API_BASE": self.api,
            "GUILDGATE_GLOBAL_RATE_LIMIT": "100000",
            "GUILDGATE_LOG_LEVEL": "warning",
            "BENCH_SECRET": "load-secret",
            "BENCH_BOT": BOT_TOKEN,
            **({"GUILDGATE_REDIS_URL": self.redis.url} if self.redis else {}),
        }
        self._cli(
            ["apps", "add", "--client-id", APP, "--client-secret-env", "BENCH_SECRET", "--bot-token-env", "BENCH_BOT"]
        )
        self.key = json.loads(self._cli(["keys", "create", "--app", APP, "--json"]))["key"]
        self.port = free_port()
        self.gateway = self._spawn(
            ["serve", "--port", str(self.port), "--workers", str(workers)], "gateway", env=self.env
        )
        wait_http(f"http://127.0.0.1:{self.port}/readyz", self.gateway)
        self.url = f"http://127.0.0.1:{self.port}"

    def _spawn(self, args: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([*self.command, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        return proc

    def _cli(self, args: list[str]) -> str:
        return subprocess.run([*self.command, *args], env=self.env, capture_output=True, text=True, check=True).stdout

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
        if self.redis is not None:
            self.redis.stop()


async def drive(send: Any, concurrency: int, seconds: float) -> tuple[int, list[float], int]:
    """Closed loop: ``concurrency`` callers, each sending again as soon as it is answered."""
    latencies: list[float] = []
    failures = 0
    stop = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def caller() -> None:
        nonlocal failures
        while time.monotonic() < stop:
            user = next(counter) % USERS
            started = time.perf_counter()
            ok = await send(user)
            latencies.append(time.perf_counter() - started)
            failures += 0 if ok else 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return len(latencies), latencies, failures


async def offered(send: Any, rate: float, seconds: float) -> tuple[int, list[float], int]:
    """Open loop: one call every 1/``rate`` s for ``seconds``, each on its own, however long the others take."""
    latencies: list[float] = []
    failures = 0
    start = time.monotonic()

    async def one(user: int, at: float) -> None:
        nonlocal failures
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        started = time.perf_counter()
        ok = await send(user)
        latencies.append(time.perf_counter() - started)
        failures += 0 if ok else 1

    total = int(rate * seconds)
    await asyncio.gather(*(one(i % USERS, start + i / rate) for i in range(total)))
    return len(latencies), latencies, failures


async def measure_rate(stack: Stack, rate: float, seconds: float) -> dict[str, Any]:
    """``rate`` joins/s offered for ``seconds`` through guildgate, then the same straight to the sandbox."""
    async with _Client("aiohttp", int(rate)) as client:
        cpu_before = cpu_seconds(stack.gateway.pid)
        g_count, g_lat, g_fail = await offered(gateway_join(stack, client), rate, seconds)
        cpu = cpu_seconds(stack.gateway.pid) - cpu_before
        _, f_lat, f_fail = await offered(floor(stack, client), rate, seconds)
    g = (pct(g_lat, 50), pct(g_lat, 99))
    f = (pct(f_lat, 50), pct(f_lat, 99))
    return {
        "rate": rate,
        "joins": g_count,
        "gateway": g,
        "floor": f,
        "added": (g[0] - f[0], g[1] - f[1]),
        "cpu_ms_per_join": cpu * 1000 / max(g_count, 1),
        "failures": g_fail + f_fail,
    }


def rate_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        "| run | offered joins/s | joins | guildgate p50 / p99 ms | two direct calls p50 / p99 ms "
        "| added p50 / p99 ms | server CPU ms/join | failures |\n|---|---|---|---|---|---|---|---|"
    ]
    for name, r in rows:
        g, f, a = r["gateway"], r["floor"], r["added"]
        lines.append(
            f"| {name} | {r['rate']:g} | {r['joins']} | {g[0]:.1f} / {g[1]:.1f} | {f[0]:.1f} / {f[1]:.1f} "
            f"| {a[0]:.1f} / {a[1]:.1f} | {r['cpu_ms_per_join']:.2f} | {r['failures']} |"
        )
    return "\n".join(lines)


class _Client:
    """The load generator's HTTP client: aiohttp or httpx, one pool sized to the concurrency."""

    def __init__(self, name: str, concurrency: int) -> None:
        self.name, self.concurrency = name, concurrency

    async def __aenter__(self) -> _Client:
        if self.name == "httpx":
            limits = httpx.Limits(max_connections=self.concurrency * 2, max_keepalive_connections=self.concurrency * 2)
            self.httpx = httpx.AsyncClient(limits=limits, timeout=60)
        else:
            connector = aiohttp.TCPConnector(limit=max(self.concurrency * 2, 100))
            self.aiohttp = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.name == "httpx":
            await self.httpx.aclose()
        else:
            await self.aiohttp.close()

    async def send(self, method: str, url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        if self.name == "httpx":
            r = await self.httpx.request(method, url, json=body, headers=headers)
            return r.status_code, (r.json() if r.content else None)
        async with self.aiohttp.request(method, url, json=body, headers=headers) as a:
            raw = await a.read()
            return a.status, (json.loads(raw) if raw else None)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) >= 2 else float("nan")


def gateway_join(stack: Stack, client: _Client) -> Callable[[int], Awaitable[bool]]:
    """One join through guildgate's join API, for user number ``user``: True when it joined."""

    async def one(user: int) -> bool:
        status, body = await client.send(
            "POST",
            f"{stack.url}/api/wanda/discord/guild",
            {"authorization": f"load-user-{user}", "guild_id": GUILD},
            {"User-Token": stack.key},
        )
        return status == 200 and body.get("status") == 1

    return one


async def through_gateway(
    stack: Stack, client: _Client, concurrency: int, seconds: float
) -> tuple[int, list[float], int, float]:
    """Joins through guildgate for ``seconds``: (count, latencies, failures, the gateway's CPU seconds)."""
    cpu_before = cpu_seconds(stack.gateway.pid)
    count, latencies, failures = await drive(gateway_join(stack, client), concurrency, seconds)
    return count, latencies, failures, cpu_seconds(stack.gateway.pid) - cpu_before


def floor(stack: Stack, client: _Client) -> Callable[[int], Awaitable[bool]]:
    """The floor's join: Get Current User, then Add Guild Member, sent straight to the sandbox."""

    async def one(user: int) -> bool:
        _, me = await client.send("GET", f"{stack.api}/users/@me", None, {"Authorization": f"Bearer load-user-{user}"})
        status, _ = await client.send(
            "PUT",
            f"{stack.api}/guilds/{GUILD}/members/{me['id']}",
            {"access_token": f"load-user-{user}"},
            {"Authorization": f"Bot {BOT_TOKEN}"},
        )
        return status in (201, 204)

    return one


async def measure(stack: Stack, concurrency: int, seconds: float, client_name: str = "aiohttp") -> dict[str, Any]:
    """One concurrency level: through guildgate, then the floor, both sent with ``client_name``'s client.

    aiohttp is the default: a light client, so the generator (which shares the machine) takes less CPU from
    the two servers and the floor is not held down by the client. ``httpx`` shows what a heavier client sees."""
    async with _Client(client_name, concurrency) as client:
        start = machine_cpu(stack)
        g_count, g_lat, g_fail, cpu = await through_gateway(stack, client, concurrency, seconds)
        middle = machine_cpu(stack)
        f_count, f_lat, f_fail = await drive(floor(stack, client), concurrency, seconds)
        end = machine_cpu(stack)
    return {
        "concurrency": concurrency,
        "gateway_rps": g_count / seconds,
        "floor_rps": f_count / seconds,
        "gateway": (pct(g_lat, 50), pct(g_lat, 95), pct(g_lat, 99)),
        "floor": (pct(f_lat, 50), pct(f_lat, 95), pct(f_lat, 99)),
        "cpu_ms_per_join": cpu * 1000 / max(g_count, 1),
        "failures": g_fail + f_fail,
        "machine_gateway": per_join(start, middle, g_count),
        "machine_floor": per_join(middle, end, f_count)[1:],
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| concurrency | gateway joins/s | floor joins/s | ratio | gateway p50/p95/p99 ms | floor p50/p95/p99 ms "
        "| server CPU ms/join | failures |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        g, f = r["gateway"], r["floor"]
        lines.append(
            f"| {r['concurrency']} | {r['gateway_rps']:.0f} | {r['floor_rps']:.0f} | "
            f"{r['gateway_rps'] / r['floor_rps']:.2f} | {g[0]:.1f} / {g[1]:.1f} / {g[2]:.1f} | "
            f"{f[0]:.1f} / {f[1]:.1f} / {f[2]:.1f} | {r['cpu_ms_per_join']:.2f} | {r['failures']} |"
        )
    return "\n".join(lines)


def machine_table(rows: list[dict[str, Any]]) -> str:
    """CPU ms per join of every process on the machine, through guildgate and straight to the sandbox."""
    lines = [
        "| concurrency | through guildgate: guildgate / sandbox / generator = all | "
        "straight: sandbox / generator = all |\n|---|---|---|"
    ]
    for r in rows:
        g, f = r["machine_gateway"], r["machine_floor"]
        lines.append(
            f"| {r['concurrency']} | {g[0]:.2f} / {g[1]:.2f} / {g[2]:.2f} = {sum(g):.2f} | "
            f"{f[0]:.2f} / {f[1]:.2f} = {sum(f):.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before the first level")
    parser.add_argument(
        "--client", choices=("aiohttp", "httpx"), default="aiohttp", help="the load generator's HTTP client"
    )
    parser.add_argument("--workers", type=int, default=1, help="guildgate worker processes (above 1: with Redis)")
    parser.add_argument(
        "--discord-latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="the sandbox answers every call this many ms late, as a Discord across a network does (default 0)",
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, metavar="R", help="open loop: R joins/s offered for --seconds (no levels)"
    )
    args = parser.parse_args()
    if args.discord_latency < 0 or args.rate < 0:
        parser.error("--discord-latency and --rate must be 0 or more")
    with tempfile.TemporaryDirectory(prefix="guildgate-load-") as tmp:
        stack = Stack(Path(tmp), args.workers, args.discord_latency)
        try:
            if args.rate:
                if args.warmup > 0:
                    asyncio.run(measure_rate(stack, args.rate, args.warmup))
                row = asyncio.run(measure_rate(stack, args.rate, args.seconds))
                print(f"sandbox latency per call: {args.discord_latency:g} ms; workers: {args.workers}\n")
                print(rate_table([("working tree", row)]))
                return
            rows = []
            if args.warmup > 0:
                print(f"warm-up: {args.warmup:.0f} s each way, not measured…", file=sys.stderr, flush=True)
                asyncio.run(measure(stack, 4, args.warmup, args.client))
            for level in [int(c) for c in args.concurrency.split(",")]:
                print(
                    f"concurrency {level}: {args.seconds:.0f} s through guildgate, then {args.seconds:.0f} s straight…",
                    file=sys.stderr,
                    flush=True,
                )
                rows.append(asyncio.run(measure(stack, level, args.seconds, args.client)))
        finally:
            stack.stop()
    print(
        f"load generator: {args.client}; guildgate workers: {args.workers}; "
        f"sandbox latency per call: {args.discord_latency:g} ms\n"
    )
    print(table(rows))
    print("\nCPU ms per join of every process on the machine (the sandbox's two calls, the generator's one or two):\n")
    print(machine_table(rows))


if __name__ == "__main__":
    main()
