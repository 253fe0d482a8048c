"""SQLite while another process holds the database's write lock: every write of the store (a join's record, a
link's consent flow, settling, pruning) waits for it without stopping the event loop, then lands."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from guildgate.core.outcomes import Outcome, RecordState, Source
from guildgate.core.ports import NewRecord, RecordUpdate
from guildgate.store.db import Database
from guildgate.store.links import LinkRepo
from guildgate.store.models import utcnow
from guildgate.store.repos import RecordRepo
from tests.store.conftest import app_with_link, states
from tests.store.locked import write_while_locked

APP = "1100000000000000001"
DONE = RecordUpdate(state=RecordState.SUCCEEDED, code=Outcome.JOINED)


async def _prepared(db: Database) -> tuple[RecordRepo, LinkRepo, str, str]:
    """A record pending since two days ago and a link, made before the lock is taken."""
    link = await app_with_link(db, APP)
    records, links = RecordRepo(db), LinkRepo(db)
    old = await records.create(NewRecord(app_id=APP, key_id=None, source=Source.API))
    await db.run(lambda c: c.exec_driver_sql("UPDATE records SET created_at = ?", (utcnow() - timedelta(days=2),)))
    return records, links, old, link.id


Write = Callable[[RecordRepo, LinkRepo, str, str], Awaitable[object]]
WRITES: dict[str, Write] = {
    "a join's record": lambda r, _l, _o, _k: r.create(NewRecord(app_id=APP, key_id=None, source=Source.API)),
    "a record settled": lambda r, _l, old, _k: r.settle(old, DONE),
    "old records pruned": lambda r, _l, old, _k: r.finish(old, DONE),  # then pruned, below
    "a link's consent flow started": lambda _r, links, _o, link: links.start_flow(link),
    "a link's use claimed": lambda _r, links, _o, link: links.claim_use(link),
}


@pytest.mark.parametrize("what", list(WRITES))
async def test_a_write_waits_for_another_process_lock_without_blocking_the_loop(sqlite_path: Path, what: str) -> None:
    url = f"sqlite:///{sqlite_path}"
    prepared = await _setup(url)
    got: list[object] = []

    async def write() -> None:
        db = Database(url)
        records, links = RecordRepo(db), LinkRepo(db)
        got.append(await WRITES[what](records, links, *prepared))
        if what == "old records pruned":
            got.append(await records.prune(before=utcnow() - timedelta(days=1)))
        await records.aclose(within=0)  # a record created here stays pending: no join is waited for
        await db.dispose()

    released, ticks = await write_while_locked(sqlite_path, write)
    assert released  # the write went through only after the lock was given back...
    assert ticks >= 10, f"the event loop ran {ticks} times in the 0.4 s wait: it was blocked"  # ...off the loop
    with sqlite3.connect(sqlite_path) as conn:
        links = conn.execute("SELECT uses, sends FROM links").fetchone()
        flows = conn.execute("SELECT count(*) FROM oauth_states").fetchone()[0]
    found = states(sqlite_path)
    if what == "a join's record":
        assert len(found) == 2 and sorted(found.values()) == ["pending", "pending"]
    elif what == "a record settled":
        assert got == [True] and found == {prepared[0]: "succeeded"}
    elif what == "old records pruned":
        assert got == [None, 1] and found == {}
    elif what == "a link's consent flow started":
        assert links == (0, 1) and flows == 1
    else:
        assert got == [True] and links == (1, 0)


async def _setup(url: str) -> tuple[str, str]:
    db = Database(url)
    records, _links, old, link = await _prepared(db)
    await records.aclose(within=0)
    await db.dispose()
    return old, link
