"""The record writer on SQLite: a write made alone is committed before the caller goes on; a burst shares
transactions; a locked database sends an alone write to the queue, which lands it once the lock is free."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from guildgate.core.outcomes import Outcome, RecordState, Source
from guildgate.core.ports import NewRecord, RecordUpdate
from guildgate.store.db import Database
from guildgate.store.models import Base, RecordRow, utcnow
from guildgate.store.repos import RecordRepo
from guildgate.store.writer import GroupWriter
from tests.store.locked import write_while_locked


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'writer.db'}")
    assert database.sync_engine is not None and database.fast is not None
    Base.metadata.create_all(database.sync_engine)
    yield database
    asyncio.run(database.dispose())


def _row(record_id: str) -> dict[str, Any]:
    return {"id": record_id, "app_id": "a", "source": "api", "state": "pending", "created_at": utcnow()}


def _states(db: Database) -> dict[str, str]:
    other = sqlite3.connect(db.url.split("///", 1)[1])  # another connection, as another process would read
    try:
        return dict(other.execute("SELECT id, state FROM records").fetchall())
    finally:
        other.close()


def _count_transactions(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows per committed transaction, in order."""
    assert db.fast is not None
    sizes: list[int] = []
    real = db.fast.write

    def counted(batches: Any) -> None:
        real(batches)
        sizes.append(sum(len(rows) for _, rows in batches))

    monkeypatch.setattr(db.fast, "write", counted)
    return sizes


def test_an_alone_write_is_committed_before_the_call_returns(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = _count_transactions(db, monkeypatch)
    writer = GroupWriter(db, RecordRow.__table__)  # type: ignore[arg-type]

    async def go() -> tuple[dict[str, str], dict[str, str]]:
        await writer.insert(_row("r1"), alone=True)
        created = _states(db)
        await asyncio.sleep(0)  # the next turn of the loop: another alone write is made at once again
        await writer.update("r1", {"state": "succeeded"}, alone=True)
        finished = _states(db)
        await writer.aclose()
        return created, finished

    created, finished = asyncio.run(go())
    assert created == {"r1": "pending"}
    assert finished == {"r1": "succeeded"}
    assert sizes == [1, 1]
    assert writer._task is None  # neither write went through the writer's task


def test_a_burst_of_alone_writes_shares_transactions(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = _count_transactions(db, monkeypatch)
    writer = GroupWriter(db, RecordRow.__table__)  # type: ignore[arg-type]

    async def go() -> None:
        await asyncio.gather(*(writer.insert(_row(f"r{i}"), alone=True) for i in range(20)))
        await writer.aclose()

    asyncio.run(go())
    assert len(_states(db)) == 20
    assert sizes == [1, 19]  # the first at once, the 19 that came in the same turn in one transaction


def test_an_alone_write_that_breaks_a_constraint_is_an_integrity_error(db: Database) -> None:
    writer = GroupWriter(db, RecordRow.__table__)  # type: ignore[arg-type]

    async def go() -> None:
        await writer.insert(_row("same"), alone=True)
        await asyncio.sleep(0)
        with pytest.raises(IntegrityError):
            await writer.insert(_row("same"), alone=True)
        await writer.aclose()

    asyncio.run(go())
    assert _states(db) == {"same": "pending"}


def test_an_alone_write_to_a_locked_database_is_queued_and_lands(db: Database) -> None:
    writer = GroupWriter(db, RecordRow.__table__)  # type: ignore[arg-type]

    async def write() -> None:
        await writer.insert(_row("r1"), alone=True)
        await writer.aclose()

    released, ticks = write_while_locked(Path(db.url.split("///", 1)[1]), write)
    assert released  # it went through only after the lock was given back...
    assert ticks >= 10, f"the event loop ran {ticks} times in the 0.4 s wait: it was blocked"  # ...by the queue
    assert _states(db) == {"r1": "pending"}


def test_closing_waits_for_the_joins_under_way_to_write_their_outcomes(db: Database) -> None:
    """At shutdown the joins under way (cancelled by the server, or finishing) still write their outcomes: the
    records' store waits for them, and the writer writes what is queued before it stops. Before, the writer was
    cancelled at once and every record whose outcome was queued stayed pending."""
    records = RecordRepo(db)

    async def go() -> None:
        ids = [await records.create(NewRecord(app_id="a", key_id=None, source=Source.API)) for _ in range(12)]

        async def one_join(i: int, record_id: str) -> None:
            try:
                await asyncio.sleep(10)  # waiting on Discord when the server stops
            finally:  # as core.joins.join does, cancelled or not
                outcome = RecordUpdate(state=RecordState.UNKNOWN, code=Outcome.DISCORD_UNAVAILABLE, detail=str(i))
                await records.finish(record_id, outcome)

        joins = [asyncio.create_task(one_join(i, record_id)) for i, record_id in enumerate(ids)]
        await asyncio.sleep(0.05)
        for task in joins:  # uvicorn past its graceful timeout
            task.cancel()
        await records.aclose(within=5)
        done, _ = await asyncio.wait(joins, timeout=2)  # a join whose write was dropped would wait for ever
        assert len(done) == len(joins)

    asyncio.run(go())
    states = _states(db)
    assert len(states) == 12 and set(states.values()) == {"unknown"}, states
