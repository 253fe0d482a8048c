"""Paging through records newest first (the dashboard, GET /api/records, records export) seeks through an index:
a page costs the same on a table of a million records as on one of a hundred (bench/record_pages.py has the
figures). Each statement the repository sends is checked with SQLite's own query plan."""

from __future__ import annotations

import sqlite3
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from guildgate.store.db import Database
from guildgate.store.repos import RecordFilters, RecordRepo

APP = "1100000000000000001"
STORED = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a time in SQLite


async def test_every_page_of_records_is_read_through_an_index_without_sorting_the_table(migrated_path: Path) -> None:
    path = migrated_path
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.executemany(
            "INSERT INTO records (id, app_id, source, state, created_at) VALUES (?, ?, 'api', 'succeeded', ?)",
            [(f"rec-{i}", APP, f"2026-01-01 00:00:0{i // 2}.000000") for i in range(7)],  # pairs share a time
        )
    sent: list[tuple[str, Any]] = []
    db = Database(f"sqlite:///{path}")

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM records" in statement:
            sent.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    repo = RecordRepo(db)

    async def pages(app_id: str | None, state: str | None) -> list[str]:
        ids: list[str] = []
        cursor: str | None = None
        while True:
            rows, cursor = await repo.list(app_id=app_id, filters=RecordFilters(state=state), limit=2, cursor=cursor)
            ids += [row.id for row in rows]
            if cursor is None:
                return ids

    try:
        walked = [await pages(None, None), await pages(APP, None), await pages(None, "succeeded")]
    finally:
        await db.dispose()

    newest_first = [f"rec-{i}" for i in reversed(range(7))]  # same time: the larger id first
    assert walked == [newest_first] * 3  # nothing lost or repeated at a page's edge
    assert len(sent) == 12
    with sqlite3.connect(path) as conn:
        for statement, parameters in sent:
            plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (statement, plan)


async def test_the_dashboards_hours_count_every_record_however_many(migrated_path: Path) -> None:
    """The dashboard's last 24 hours: 60,000 finished records (more than it ever loaded one by one) are all
    counted, hour by hour, with their successes; pending and older records are not; an hour's median is exact
    when the hour holds fewer records than the sample."""
    path = migrated_path
    now = datetime.now(UTC).replace(tzinfo=None)
    first = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    rows = [  # (hour, code, cost, at): spread over the first 23 hours
        (i * 7919 % (23 * 3600) // 3600, ("joined", "already_member", "failed")[i % 3], float(i % 100), i * 7919)
        for i in range(60_000)
    ]
    rows += [(23, "joined", float(i * 10), 23 * 3600 + i) for i in range(5)]  # the hour under way: five
    stray = [(None, None, None, now), (None, "joined", 1.0, first - timedelta(seconds=1))]  # pending; older
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.executemany(
            "INSERT INTO records (id, app_id, source, state, code, cost_ms, created_at) "
            "VALUES (?, ?, 'api', ?, ?, ?, ?)",
            [
                (f"rec-{n}", APP, "pending" if code is None else "succeeded", code, cost, when.strftime(STORED))
                for n, (code, cost, when) in enumerate(
                    [
                        (c, cost, first + timedelta(seconds=at % (23 * 3600) if h < 23 else at))
                        for h, c, cost, at in rows
                    ]
                    + [(c, cost, at) for _, c, cost, at in stray]
                )
            ],
        )
    db = Database(f"sqlite:///{path}")

    try:
        got = await RecordRepo(db).per_hour(first=first.replace(tzinfo=UTC), hours=24)
    finally:
        await db.dispose()
    assert [h.start for h in got] == [(first + timedelta(hours=i)).replace(tzinfo=UTC) for i in range(24)]
    assert sum(h.total for h in got) == 60_005
    totals = Counter(h for h, _, _, _ in rows)
    good = Counter(h for h, code, _, _ in rows if code in ("joined", "already_member"))
    assert [h.total for h in got] == [totals[i] for i in range(24)]
    assert [h.succeeded for h in got] == [good[i] for i in range(24)]
    assert [len(h.costs) for h in got] == [min(totals[i], 2001) for i in range(24)]
    assert got[23].total == 5 and statistics.median(got[23].costs) == 20.0
