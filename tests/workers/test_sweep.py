"""The grant sweep in real ``serve`` processes against the sandbox: due grants end exactly once with one worker
on SQLite and with four workers on PostgreSQL sharing Redis, without a 429, through a removal bucket that makes
them wait; a server killed with SIGKILL while grants are due ends every one of them after its restart, none
twice; reminders are emitted once. The grants are written into the server's database with the repository (as
the API would); what happened is read at the sandbox (``role_removals``, ``rate_limited``) and in the events."""

from __future__ import annotations

import asyncio
import copy
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guildgate.core.grants import Grant, GrantState, OnEnd, new_grant_id
from guildgate.store.db import Database
from guildgate.store.grants import GrantRepo
from guildgate.store.models import EventRow, GrantRow
from tests.conftest import (
    APP_A,
    GUILD,
    OUTPUT,
    ROLE_LOW,
    TOKENS,
    WORLD,
    Proc,
    Sandbox,
    add_app,
    free_port,
    gateway_env,
    new_key,
    start,
)
from tests.servers import Server, start_redis

REMOVE_ROLE = "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
FIRST_USER = 1400000000000000000


@pytest.fixture
def world(fresh: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, given back to the fixture's world after the test (``paced`` changes it)."""
    yield fresh


@pytest.fixture
def pg_url(postgres_server: Server) -> str:
    name = "sweep_" + uuid.uuid4().hex[:8]
    subprocess.run(["psql", postgres_server.url, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return postgres_server.url.rsplit("/", 1)[0] + "/" + name


def paced(sandbox: Sandbox, *, per_second: int, members: int) -> list[str]:
    """The fixture's world with a Discord-like bucket on the removal route (``per_second`` calls a second per
    server) and ``members`` more members, each holding ROLE_LOW."""
    fixture = copy.deepcopy(WORLD)
    fixture["rate_limits"]["routes"][REMOVE_ROLE] = {"limit": per_second, "reset_after": 1.0}
    sandbox.reset(fixture)
    users = [str(FIRST_USER + i) for i in range(members)]
    with httpx.Client(base_url=sandbox.proc.url) as client:
        for user in users:
            client.put(f"/_sandbox/guilds/{GUILD}/members/{user}", json={"roles": [ROLE_LOW]}).raise_for_status()
    return users


def due_grant(user: str, *, ends_at: datetime, on_end: OnEnd = OnEnd.REMOVE_ROLES) -> Grant:
    now = datetime.now(UTC)
    return Grant(
        id=new_grant_id(),
        app_id=APP_A,
        guild_id=GUILD,
        user_id=user,
        roles=(ROLE_LOW,),
        state=GrantState.ACTIVE,
        starts_at=now,
        ends_at=ends_at,
        on_end=on_end,
        external_ref=None,
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


async def write_grants(url: str, users: list[str], *, ends_at: datetime) -> list[Grant]:
    db = Database(url)
    try:
        repo = GrantRepo(db)
        return [await repo.insert(due_grant(u, ends_at=ends_at)) for u in users]
    finally:
        await db.dispose()


async def ended_events(url: str) -> Counter[str]:
    db = Database(url)
    try:
        async with db.session() as s:
            bodies = [json.loads(b) for b in (await s.scalars(select(EventRow.body))).all()]
    finally:
        await db.dispose()
    return Counter(b["data"]["id"] for b in bodies if b["type"] == "grant.ended")


async def wait_ended(url: str, count: int, *, within: float) -> None:
    give_up = time.monotonic() + within
    db = Database(url)
    try:
        repo = GrantRepo(db)
        while True:
            states = await repo.states()
            if states.get(GrantState.ENDED.value, 0) >= count:
                return
            if time.monotonic() > give_up:
                raise AssertionError(f"after {within} s only {states} of {count} grants ended")
            await asyncio.sleep(0.5)
    finally:
        await db.dispose()


async def until_removals(sandbox: Sandbox, count: int) -> None:
    give_up = time.monotonic() + 30
    while sum(sandbox.stats()["role_removals"].values()) < count:
        assert time.monotonic() < give_up, "the sweep never started"
        await asyncio.sleep(0.2)


def join(proc: Proc, key: str, token: str) -> dict[str, Any]:
    response = httpx.post(
        proc.url + "/api/wanda/discord/guild",
        json={"authorization": token, "guild_id": GUILD},
        headers={"User-Token": key},
        timeout=10,
    )
    return dict(response.json())


def metrics(proc: Proc) -> str:
    return httpx.get(proc.url + "/metrics", timeout=10).text


def serve(env: dict[str, str], *, name: str, workers: int = 1) -> Proc:
    port = int(env["GUILDGATE_PUBLIC_URL"].rsplit(":", 1)[1])
    return start(
        ["serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        log=OUTPUT / f"gateway-{name}.log",
        ready_path="/readyz",
        port=port,
    )


def server_env(home: Path, sandbox: Sandbox, **settings: str) -> dict[str, str]:
    env = gateway_env(home, sandbox, free_port(), GUILDGATE_GRANT_SWEEP_INTERVAL="1", **settings)
    for app in WORLD["applications"]:
        add_app(env, app)
    return env


def check_once(sandbox: Sandbox, users: list[str]) -> None:
    stats = sandbox.stats()
    removals = stats["role_removals"]
    assert removals == {f"{GUILD}/{u}/{ROLE_LOW}": 1 for u in users}, sorted(removals.items())[:5]
    assert sum(stats["rate_limited"].values()) == 0, stats["rate_limited"]
    assert not any(m for u in users if (m := sandbox.member(GUILD, u)) and ROLE_LOW in m["roles"])


async def test_due_grants_end_exactly_once_with_one_worker_on_sqlite(tmp_path: Path, world: Sandbox) -> None:
    users = paced(world, per_second=10, members=60)
    env = server_env(tmp_path, world)
    url = env["GUILDGATE_DATABASE_URL"]
    proc = serve(env, name="sweep-sqlite")
    try:
        await write_grants(url, users, ends_at=datetime.now(UTC) + timedelta(seconds=2))
        await wait_ended(url, len(users), within=60 / 10 + 30)
        shown = metrics(proc)
        assert 'guildgate_grants{state="ended"} 60.0' in shown and "guildgate_grants_due 0.0" in shown
        assert "guildgate_grant_end_lag_seconds_count 60.0" in shown
    finally:
        proc.stop()
    check_once(world, users)
    assert set((await ended_events(url)).values()) == {1} and len(await ended_events(url)) == len(users)


async def test_due_grants_end_exactly_once_with_four_workers_on_postgres_and_redis(
    tmp_path: Path, world: Sandbox, pg_url: str
) -> None:
    users = paced(world, per_second=20, members=300)
    redis = start_redis()
    try:
        env = server_env(
            tmp_path, world, GUILDGATE_DATABASE_URL=pg_url, GUILDGATE_REDIS_URL=redis.url, GUILDGATE_REQUEST_TIMEOUT="4"
        )
        key = new_key(env, APP_A)
        proc = serve(env, name="sweep-postgres", workers=4)
        try:
            await write_grants(pg_url, users, ends_at=datetime.now(UTC) + timedelta(seconds=3))
            await until_removals(world, 20)
            # joins meanwhile are answered, within their 4 s deadline, through the same limiter
            answers = [join(proc, key, TOKENS[user]) for user in ("alice", "carol")]
            assert [a.get("code") for a in answers] == ["joined"] * 2, answers
            # the removal bucket lets 20 a second through: 300 need 15 s, and the sweep may add its interval
            await wait_ended(pg_url, len(users), within=300 / 20 + 15 + 3)
        finally:
            proc.stop()
    finally:
        redis.stop()
    check_once(world, users)
    ends = await ended_events(pg_url)
    assert len(ends) == len(users) and set(ends.values()) == {1}


async def test_a_server_killed_while_grants_are_due_ends_them_all_after_restart(tmp_path: Path, world: Sandbox) -> None:
    users = paced(world, per_second=2, members=30)
    env = server_env(tmp_path, world)
    url = env["GUILDGATE_DATABASE_URL"]
    proc = serve(env, name="sweep-killed")
    await write_grants(url, users, ends_at=datetime.now(UTC))
    await until_removals(world, 4)  # the sweep is under way
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    before = sum(world.stats()["role_removals"].values())
    assert before < len(users)  # killed mid-sweep

    again = serve(env, name="sweep-restarted")
    try:
        # the killed process's leases run out within 60 s; then 30 removals at 2 a second
        await wait_ended(url, len(users), within=60 + 30 / 2 + 20)
    finally:
        again.stop()
    ends = await ended_events(url)
    assert len(ends) == len(users) and set(ends.values()) == {1}  # every grant ended once
    removals = world.stats()["role_removals"]
    assert set(removals) == {f"{GUILD}/{u}/{ROLE_LOW}" for u in users}
    # a removal may be sent again only for an end that was in flight when the process died
    assert sum(n - 1 for n in removals.values()) <= 8, removals


async def test_a_reminder_is_emitted_once_before_the_end(tmp_path: Path, world: Sandbox) -> None:
    users = paced(world, per_second=50, members=3)
    env = server_env(tmp_path, world, GUILDGATE_GRANT_REMIND_BEFORE="1h, 5s")
    url = env["GUILDGATE_DATABASE_URL"]
    proc = serve(env, name="sweep-reminders")
    try:
        made = await write_grants(url, users, ends_at=datetime.now(UTC) + timedelta(seconds=8))
        await wait_ended(url, len(users), within=40)
    finally:
        proc.stop()
    db = Database(url)
    async with db.session() as s:
        bodies = [json.loads(b) for b in (await s.scalars(select(EventRow.body))).all()]
    await db.dispose()
    soon = Counter(b["data"]["id"] for b in bodies if b["type"] == "grant.ending_soon")
    # "5s" once each; "1h" never: each grant was made less than an hour before its end
    assert soon == {g.id: 1 for g in made}
    assert all(0 <= b["data"]["ends_in"] <= 5 for b in bodies if b["type"] == "grant.ending_soon"), bodies


async def test_a_server_stopped_mid_sweep_hands_its_grants_over_at_once(tmp_path: Path, world: Sandbox) -> None:
    """SIGTERM while grants are being ended: the stopping process gives up the leases it still holds, so the
    next process ends the rest without waiting for those leases to run out (60 s)."""
    users = paced(world, per_second=2, members=30)
    env = server_env(tmp_path, world)
    url = env["GUILDGATE_DATABASE_URL"]
    proc = serve(env, name="sweep-stopped")
    await write_grants(url, users, ends_at=datetime.now(UTC))
    await until_removals(world, 4)
    proc.stop()  # SIGTERM, then waits for the exit
    assert sum(world.stats()["role_removals"].values()) < len(users)
    db = Database(url)
    async with db.session() as s:
        held = (await s.scalars(select(GrantRow.id).where(GrantRow.lease_token.is_not(None)))).all()
    await db.dispose()
    assert held == []  # nothing left leased by the stopped process

    again = serve(env, name="sweep-resumed")
    try:
        await wait_ended(url, len(users), within=30 / 2 + 30)
    finally:
        again.stop()
    ends = await ended_events(url)
    assert len(ends) == len(users) and set(ends.values()) == {1}


async def test_the_periodic_sync_gives_back_a_role_taken_by_hand(tmp_path: Path, world: Sandbox) -> None:
    users = paced(world, per_second=50, members=2)
    env = server_env(tmp_path, world, GUILDGATE_GRANT_SYNC_INTERVAL="0.001")  # every 3.6 s
    url = env["GUILDGATE_DATABASE_URL"]
    proc = serve(env, name="sweep-sync")
    try:
        await write_grants(url, users, ends_at=datetime.now(UTC) + timedelta(hours=1))
        take_role(world, users[0])
        give_up = time.monotonic() + 30
        while ROLE_LOW not in (world.member(GUILD, users[0]) or {}).get("roles", []):
            assert time.monotonic() < give_up, "the periodic sync never gave the role back"
            await asyncio.sleep(0.5)
    finally:
        proc.stop()
    assert world.stats()["role_removals"] == {}  # a sync takes nothing


def take_role(sandbox: Sandbox, user: str) -> None:
    httpx.delete(f"{sandbox.proc.url}/_sandbox/guilds/{GUILD}/members/{user}/roles/{ROLE_LOW}").raise_for_status()
