"""The record writer on SQLite: a write is committed before the caller goes on; a burst shares one transaction;
a row that breaks a constraint fails alone; a failure of another kind is not taken for a broken constraint; at
shutdown, the joins under way still write their outcomes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError

from guildgate.core.outcomes import Outcome, RecordState, Source
from guildgate.core.ports import NewRecord, RecordUpdate
from guildgate.store.db import Database
from guildgate.store.models import Base, RecordRow, utcnow
from guildgate.store.repos import RecordRepo
from guildgate.store.writer import GroupWriter
from tests.store.conftest import states

RECORDS = RecordRow.__table__


def _row(record_id: str) -> dict[str, Any]:
    return {"id": record_id, "app_id": "a", "source": "api", "state": "pending", "created_at": utcnow()}


def _commits(db: Database) -> list[int]:
    """One entry per transaction committed through ``db``."""
    commits: list[int] = []
    event.listen(db.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    return commits


async def test_a_write_is_committed_before_the_call_returns(sqlite_path: Path) -> None:
    db = Database(f"sqlite:///{sqlite_path}")
    writer = GroupWriter(db, RECORDS)  # type: ignore[arg-type]
    await writer.insert(_row("r1"))
    created = states(sqlite_path)
    await writer.update("r1", {"state": "succeeded"})
    finished = states(sqlite_path)
    await writer.aclose()
    await db.dispose()

    assert created == {"r1": "pending"}
    assert finished == {"r1": "succeeded"}


async def test_a_burst_of_writes_shares_one_transaction(sqlite_path: Path) -> None:
    db = Database(f"sqlite:///{sqlite_path}")
    commits = _commits(db)
    writer = GroupWriter(db, RECORDS)  # type: ignore[arg-type]
    await asyncio.gather(*(writer.insert(_row(f"r{i}")) for i in range(20)))
    await writer.aclose()
    await db.dispose()
    result = commits

    assert len(result) == 1
    assert len(states(sqlite_path)) == 20


async def test_a_row_that_breaks_a_constraint_fails_alone(sqlite_path: Path) -> None:
    db = Database(f"sqlite:///{sqlite_path}")
    writer = GroupWriter(db, RECORDS)  # type: ignore[arg-type]
    await writer.insert(_row("same"))
    burst = [_row("r1"), _row("same"), _row("r2")]
    got = await asyncio.gather(*(writer.insert(row) for row in burst), return_exceptions=True)
    await writer.aclose()
    await db.dispose()
    first, taken, last = got

    assert first is None and last is None
    assert isinstance(taken, IntegrityError)
    assert states(sqlite_path) == {"same": "pending", "r1": "pending", "r2": "pending"}


async def test_a_failure_that_is_no_broken_constraint_is_not_reported_as_one(tmp_path: Path) -> None:
    """A database without the table (or one gone, or locked past its busy timeout): every caller gets that
    error, not the IntegrityError that the records' store turns into "idempotency key already used"."""

    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    writer = GroupWriter(db, RECORDS)  # type: ignore[arg-type]
    got = await asyncio.gather(*(writer.insert(_row(f"r{i}")) for i in range(3)), return_exceptions=True)
    await db.run(Base.metadata.create_all)  # the database back in order: the writer writes again
    await writer.insert(_row("after"))
    await writer.aclose()
    await db.dispose()

    assert all(isinstance(e, OperationalError) and "no such table" in str(e) for e in got), got
    assert states(tmp_path / "empty.db") == {"after": "pending"}


async def test_closing_waits_for_the_joins_under_way_to_write_their_outcomes(sqlite_path: Path) -> None:
    """At shutdown the joins under way (cancelled by the server, or finishing) still write their outcomes: the
    records' store waits for them, and the writer writes what is queued before it stops. Before, the writer was
    cancelled at once and every record whose outcome was queued stayed pending."""

    db = Database(f"sqlite:///{sqlite_path}")
    records = RecordRepo(db)
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
    await db.dispose()

    found = states(sqlite_path)
    assert len(found) == 12 and set(found.values()) == {"unknown"}, found


@pytest.mark.parametrize("cancelled", [True, False])
async def test_a_caller_cancelled_while_it_waits_still_gets_its_row_written(sqlite_path: Path, cancelled: bool) -> None:
    db = Database(f"sqlite:///{sqlite_path}")
    writer = GroupWriter(db, RECORDS)  # type: ignore[arg-type]
    waiting = asyncio.create_task(writer.insert(_row("r1")))
    await asyncio.sleep(0)  # queued
    if cancelled:
        waiting.cancel()
    await asyncio.wait([waiting])
    await writer.aclose()
    await db.dispose()

    assert states(sqlite_path) == {"r1": "pending"}
