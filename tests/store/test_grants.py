"""The grants repository on SQLite and on PostgreSQL: due grants claimed exactly once by concurrent claimers
(each its own engine, as separate worker processes have), a lease taken over leaves its old holder writing
nothing, and every change bumps the revision with its event in the same transaction."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from guildgate.core.grants import Grant, GrantState, OnEnd, new_grant_id
from guildgate.store.db import Database
from guildgate.store.grants import GrantRepo, new_lease_token
from guildgate.store.migrate import upgrade
from guildgate.store.models import EventRow, GrantRow


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        made = f"sqlite:///{tmp_path / 'grants.db'}"
    else:
        server: Any = request.getfixturevalue("postgres_server")
        name = "grants_" + uuid.uuid4().hex[:8]
        subprocess.run(["psql", server.url, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        made = server.url.rsplit("/", 1)[0] + "/" + name
    upgrade(made)
    yield made


def grant(*, ends_in: float | None = -1.0, user: int = 1, **extra: Any) -> Grant:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": new_grant_id(),
        "app_id": "1100000000000000001",
        "guild_id": "1200000000000000001",
        "user_id": str(1300000000000000000 + user),
        "roles": ("1200000000000000011",),
        "state": GrantState.ACTIVE,
        "starts_at": now,
        "ends_at": None if ends_in is None else now + timedelta(seconds=ends_in),
        "on_end": OnEnd.REMOVE_ROLES,
        "external_ref": None,
        "source": "api",
        "link_id": None,
        "record_id": None,
        "roles_preexisting": (),
        "absent_since": None,
        "revision": 1,
        "as_of": None,
        "ended_at": None,
        "end_reason": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }
    values.update(extra)
    return Grant(**values)


async def event_types(db: Database, grant_id: str) -> list[tuple[str, int]]:
    async with db.session() as s:
        bodies = [json.loads(b) for b in (await s.scalars(select(EventRow.body))).all()]
    return [(b["type"], b["data"]["revision"]) for b in bodies if b["data"]["id"] == grant_id]


async def test_due_grants_are_claimed_exactly_once_by_concurrent_workers(url: str) -> None:
    db = Database(url)
    repo = GrantRepo(db)
    due = [grant(user=i) for i in range(120)]
    for g in due:
        await repo.insert(g)
    later = grant(ends_in=3600, user=500)
    await repo.insert(later)
    open_ended = grant(ends_in=None, user=501)
    await repo.insert(open_ended)

    workers = [GrantRepo(Database(url)) for _ in range(4)]

    async def claim_all(worker: GrantRepo) -> list[str]:
        token, got = new_lease_token(), []
        while rows := await worker.claim_due(token=token, limit=7):
            got += [r.id for r in rows]
            assert all(r.lease_token == token for r in rows)
        return got

    claimed = await asyncio.gather(*(claim_all(w) for w in workers))
    everything = [i for ids in claimed for i in ids]
    assert sorted(everything) == sorted(g.id for g in due)  # each due grant once, none twice, no other
    assert sum(1 for ids in claimed if ids) >= 2  # the workers did share the work
    assert await workers[0].claim_due(token=new_lease_token(), limit=500) == []  # all held now
    for w in workers:
        await w.db.dispose()
    await db.dispose()


async def test_a_worker_whose_lease_was_taken_over_writes_nothing(url: str) -> None:
    db = Database(url)
    repo = GrantRepo(db)
    g = grant()
    await repo.insert(g)
    first, second = new_lease_token(), new_lease_token()
    assert [r.id for r in await repo.claim_due(token=first, limit=5)] == [g.id]
    assert await repo.claim_due(token=second, limit=5) == []  # the lease is held
    async with db.session() as s:  # the first worker stalls past its lease
        await s.execute(
            update(GrantRow).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)).where(GrantRow.id == g.id)
        )
        await s.commit()
    assert [r.id for r in await repo.claim_due(token=second, limit=5)] == [g.id]

    stale_write = await repo.change(
        g.id, values={"state": GrantState.ENDED.value}, event="grant.ended", lease_token=first, release=True
    )
    assert stale_write is None
    assert (await repo.get(g.id)).state is GrantState.ACTIVE
    assert await event_types(db, g.id) == [("grant.started", 1)]

    ended = await repo.change(
        g.id,
        values={"state": GrantState.ENDED.value, "ended_at": datetime.now(UTC), "end_reason": "expired"},
        event="grant.ended",
        extra={"action": "roles_removed"},
        lease_token=second,
        release=True,
    )
    assert ended is not None and ended.state is GrantState.ENDED and ended.revision == 2
    assert await event_types(db, g.id) == [("grant.started", 1), ("grant.ended", 2)]
    assert await repo.claim_due(token=first, limit=5) == []  # ended: never due again
    await db.dispose()


async def test_every_change_bumps_the_revision_with_its_event(url: str) -> None:
    db = Database(url)
    repo = GrantRepo(db)
    g = grant(ends_in=3600)
    await repo.insert(g)
    for n in range(2, 5):
        changed = await repo.change(g.id, values={"roles": ("1200000000000000011", str(n))}, event="grant.updated")
        assert changed is not None and changed.revision == n
    assert await event_types(db, g.id) == [("grant.started", 1)] + [("grant.updated", n) for n in range(2, 5)]
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(EventRow))).scalar_one() == 4
    await db.dispose()


async def test_a_grant_held_back_or_leased_is_not_claimed(url: str) -> None:
    db = Database(url)
    repo = GrantRepo(db)
    held_back = grant(user=1)
    await repo.insert(held_back)
    token = new_lease_token()
    assert [r.id for r in await repo.claim_due(token=token, limit=5)] == [held_back.id]
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await repo.release(held_back.id, token=token, values={"next_try_at": later, "tries": 1})
    assert await repo.claim_due(token=new_lease_token(), limit=5) == []  # its retry is not due yet
    one = grant(user=2)
    await repo.insert(one, lease_token=new_lease_token())  # made under a lease (an API call acting on it)
    assert await repo.claim_due(token=new_lease_token(), limit=5) == []
    await db.dispose()
