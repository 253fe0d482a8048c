"""The usage roll-up agrees with the records: an upgrade fills it from the records there are, and every way a
record is finished afterwards (the join's writes, a refusal written finished, the reconciler's settle) counts it
once, on its creation day; a pending record is not counted until it finishes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from guildgate.core.outcomes import Outcome, RecordState, Source
from guildgate.core.ports import NewRecord, RecordUpdate
from guildgate.store.db import Database
from guildgate.store.migrate import upgrade
from guildgate.store.repos import RecordRepo

APP = "1100000000000000001"
NOW = datetime.now(UTC).replace(tzinfo=None)


def _counted(records: list[tuple[str, str | None]]) -> dict[tuple[str, str], int]:
    return dict(Counter((day, code) for day, code in records if code is not None))


def test_an_upgrade_fills_the_roll_up_from_the_records_there_are(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    upgrade(url, "0004")
    rows = []
    for i in range(300):
        created = NOW - timedelta(days=i % 7, minutes=i)
        code = (None, "joined", "banned", "token_expired")[i % 4]
        state = "pending" if code is None else "succeeded"
        rows.append((f"r{i}", APP if i % 5 else "other-app", f"k{i % 3}" if i % 11 else None, "api", state, code,
                     f"dev-{i % 2}" if i % 3 else None, created.isoformat(sep=" ")))  # fmt: skip
    with sqlite3.connect(tmp_path / "u.db") as conn:
        conn.executemany(
            "INSERT INTO records (id, app_id, key_id, source, state, code, developer_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    upgrade(url)

    async def usage() -> list[tuple[str, str, int]]:
        db = Database(url)
        try:
            return await RecordRepo(db).usage(app_id=APP, since=datetime.now(UTC) - timedelta(days=30))
        finally:
            await db.dispose()

    expected = _counted([(r[7][:10], r[5]) for r in rows if r[1] == APP])
    assert {(d, c): n for d, c, n in asyncio.run(usage())} == expected
    assert sum(expected.values()) == sum(1 for r in rows if r[1] == APP and r[5] is not None)


def test_every_way_a_record_is_finished_counts_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    upgrade(url)

    async def go() -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
        db = Database(url)
        repo = RecordRepo(db)
        try:
            new = NewRecord(app_id=APP, key_id="k1", source=Source.API, developer_id="dev-1")
            joined = await repo.create(new)
            await repo.finish(joined, RecordUpdate(state=RecordState.SUCCEEDED, code=Outcome.JOINED))
            refused = RecordUpdate(state=RecordState.FAILED, code=Outcome.INVALID_REQUEST)
            await repo.create(NewRecord(app_id=APP, key_id=None, source=Source.LINK), finished=refused)
            left = await repo.create(new)  # its worker stopped: pending until the reconciler settles it
            await asyncio.gather(*(repo.create(new) for _ in range(5)))  # a burst, never finished
            since = datetime.now(UTC) - timedelta(days=1)
            before = await repo.usage(app_id=APP, since=since)
            unknown = RecordUpdate(state=RecordState.UNKNOWN, code=Outcome.DISCORD_UNAVAILABLE)
            assert await repo.settle(left, unknown)
            assert not await repo.settle(left, unknown)  # settled once: not counted again
            return before, await repo.usage(app_id=APP, since=since)
        finally:
            await repo.aclose()
            await db.dispose()

    before, after = asyncio.run(go())
    today = datetime.now(UTC).date().isoformat()
    assert sorted(before) == [(today, "invalid_request", 1), (today, "joined", 1)]
    assert sorted(after) == [(today, "discord_unavailable", 1), (today, "invalid_request", 1), (today, "joined", 1)]
