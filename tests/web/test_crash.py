"""A server killed with SIGKILL mid-join leaves pending records; the next start settles every one of them by
asking Discord (Get Guild Member), so none stays pending and each says what really happened."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import (
    APP_A,
    GUILD,
    OUTPUT,
    PUT,
    WORLD,
    Proc,
    Sandbox,
    add_app,
    base_env,
    cli,
    free_port,
    new_key,
    start,
)
from tests.helpers import children, crowd

JOINS = 24


def _serve(env: dict[str, str], port: int, name: str) -> Proc:
    return start(["serve", "--port", str(port)], env=env, log=OUTPUT / name, ready_path="/readyz", port=port)


def _join(url: str, key: str, person: tuple[str, str]) -> tuple[int, str] | str:
    """(HTTP status, outcome code), or the name of the transport error when the server went away."""
    try:
        r = httpx.post(
            f"{url}/api/wanda/discord/guild",
            json={"authorization": person[1], "guild_id": GUILD},
            headers={"User-Token": key},
            timeout=60,
        )
        return r.status_code, r.json()["code"]
    except httpx.TransportError as exc:
        return type(exc).__name__


def _records(env: dict[str, str]) -> list[dict[str, Any]]:
    return list(json.loads(cli(["records", "list", "--limit", "500", "--json"], env=env).stdout))


def test_sigkill_mid_join_then_restart_settles_every_pending_record(tmp_path: Path, fresh: Sandbox) -> None:
    world, people = crowd(JOINS)
    fresh.reset(world)
    env = base_env(tmp_path, GUILDGATE_DISCORD_API_BASE=fresh.api, GUILDGATE_REQUEST_TIMEOUT="20")
    for app in WORLD["applications"]:
        add_app(env, app)
    key = new_key(env, APP_A)
    port = free_port()
    server = _serve(env, port, "crash-before.log")
    # Add Guild Member answers 1.5 s after it adds the member: joins are mid-flight when the server dies, and
    # Discord has already let the users in.
    fresh.faults({"routes": {PUT: {"latency_after_ms": 1500}}})

    with concurrent.futures.ThreadPoolExecutor(JOINS) as pool:
        futures = [pool.submit(_join, server.url, key, p) for p in people]
        deadline = time.monotonic() + 20
        while fresh.stats()["requests"].get(PUT, 0) < JOINS // 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        answers = [f.result() for f in futures]
    assert any(isinstance(a, str) for a in answers), "the kill came too late: every join was answered"
    time.sleep(2)  # the sandbox finishes the PUTs that were in flight
    fresh.faults({})

    before = _records(env)
    pending = [r for r in before if r["state"] == "pending"]
    assert pending, "no record was pending after the kill"
    assert any(r["user_id"] for r in pending), "no pending record had reached Add Guild Member"

    again = _serve(env, port, "crash-after.log")
    try:
        after = {r["id"]: r for r in _records(env)}
    finally:
        again.stop()
    assert [r for r in after.values() if r["state"] == "pending"] == []
    members = fresh.state()["guilds"][GUILD]["members"]
    for record in pending:
        settled = after[record["id"]]
        if record["user_id"] is None:
            assert (settled["state"], settled["code"]) == ("failed", "discord_unavailable")
        elif record["user_id"] in members:
            assert (settled["state"], settled["code"]) == ("succeeded", "joined"), settled
        else:
            assert settled["state"] == "failed", settled
    assert "left pending by a crash" in again.output()
    states = [after[r["id"]]["state"] for r in pending]
    assert "succeeded" in states, states  # Get Guild Member found them in: the join happened, the answer was lost


def test_sigkill_of_a_multi_worker_serve_takes_its_workers_and_a_restart_binds(
    tmp_path: Path, fresh: Sandbox, redis_server: Any
) -> None:
    env = base_env(
        tmp_path, GUILDGATE_DISCORD_API_BASE=fresh.api, GUILDGATE_REDIS_URL=redis_server.url, GUILDGATE_LOG_LEVEL="info"
    )
    for app in WORLD["applications"]:
        add_app(env, app)
    port = free_port()
    first = start(
        ["serve", "--port", str(port), "--workers", "2"],
        env=env,
        log=OUTPUT / "workers-killed.log",
        ready_path="/readyz",
        port=port,
    )
    started = children(first.proc.pid)
    assert len(started) >= 2  # the workers (and multiprocessing's resource tracker, which ends with them)
    # Killed at once: one worker answered /readyz, the other may still be starting.
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in started):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)
    second = start(
        ["serve", "--port", str(port), "--workers", "2"],
        env=env,
        log=OUTPUT / "workers-restarted.log",
        ready_path="/readyz",
        port=port,
    )
    second.stop()


def _state(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_sigterm_mid_join_lets_every_join_under_way_answer_and_finish_its_record(
    tmp_path: Path, fresh: Sandbox, redis_server: Any, postgres_server: Any
) -> None:
    """A deploy's SIGTERM while joins wait on Discord: the server stops taking new ones and waits for those under
    way (a join's deadline, not uvicorn's 5 s): each caller gets its answer and each record its outcome. Before,
    joins longer than 5 s were cancelled, their callers cut off and their records left pending. One worker on
    SQLite, two on SQLite and two on PostgreSQL (a database of its own), sharing Redis."""
    world, people = crowd(3 * 12)
    fresh.reset(world)
    subprocess.run(["psql", postgres_server.url, "-c", "CREATE DATABASE sigterm"], check=True, capture_output=True)
    postgres = postgres_server.url.rsplit("/", 1)[0] + "/sigterm"
    setups = (("1", "sqlite"), ("2", "sqlite"), ("2", "postgres"))
    for n, (workers, database) in enumerate(setups):
        batch = people[12 * n : 12 * (n + 1)]
        (tmp_path / str(n)).mkdir()
        env = base_env(tmp_path / str(n), GUILDGATE_DISCORD_API_BASE=fresh.api, GUILDGATE_REDIS_URL=redis_server.url)
        if database == "postgres":
            env["GUILDGATE_DATABASE_URL"] = postgres
        for app in WORLD["applications"]:
            add_app(env, app)
        key = new_key(env, APP_A)
        port = free_port()
        server = start(
            ["serve", "--port", str(port), "--workers", workers],
            env=env,
            log=OUTPUT / f"sigterm-{workers}-{database}.log",
            ready_path="/readyz",
            port=port,
        )
        fresh.faults({"routes": {PUT: {"latency_ms": 6000}}})  # Discord answers each add 6 s late

        with concurrent.futures.ThreadPoolExecutor(len(batch)) as pool:
            futures = [pool.submit(_join, server.url, key, p) for p in batch]
            deadline = time.monotonic() + 20
            while fresh.stats()["requests"].get(PUT, 0) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
            server.proc.wait(60)
        fresh.faults({})
        assert answers == [(200, "joined")] * len(batch), (workers, database, answers)
        records = _records(env)
        assert len(records) == len(batch) and {(r["state"], r["code"]) for r in records} == {("succeeded", "joined")}


def test_a_killed_servers_metrics_directory_is_removed_at_the_next_start(
    tmp_path: Path, fresh: Sandbox, redis_server: Any
) -> None:
    """Workers share a metrics directory, named after their supervisor. One killed with SIGKILL leaves it behind;
    the next start removes every directory whose supervisor is gone, and none other."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ended = subprocess.Popen(["true"])
    ended.wait()  # a pid no process has now
    stale = tmp / f"guildgate-metrics-{ended.pid}-x"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"\0" * 64)
    alive = tmp / f"guildgate-metrics-{os.getpid()}-y"  # this test's own pid: running
    unnamed = tmp / "guildgate-metrics-abc"  # not named after a pid: not for guildgate to judge
    alive.mkdir()
    unnamed.mkdir()
    env = base_env(
        tmp_path, GUILDGATE_DISCORD_API_BASE=fresh.api, GUILDGATE_REDIS_URL=redis_server.url, TMPDIR=str(tmp)
    )

    def serve(name: str) -> Any:
        port = free_port()
        log = OUTPUT / f"metrics-dirs-{name}.log"
        return start(
            ["serve", "--port", str(port), "--workers", "2"], env=env, log=log, ready_path="/readyz", port=port
        )

    first = serve("first")
    assert not stale.exists() and alive.exists() and unnamed.exists()
    assert "removed 1 metrics directories" in first.output()
    (own,) = tmp.glob(f"guildgate-metrics-{first.proc.pid}-*")
    first.proc.kill()
    first.proc.wait(10)
    assert own.exists()  # SIGKILL: nothing ran to remove it
    second = serve("second")
    assert not own.exists()
    (also_own,) = tmp.glob(f"guildgate-metrics-{second.proc.pid}-*")
    second.proc.send_signal(signal.SIGTERM)
    second.proc.wait(30)
    assert not also_own.exists() and alive.exists() and unnamed.exists()
