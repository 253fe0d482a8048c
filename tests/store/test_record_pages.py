"""Paging through records newest first (the dashboard, GET /api/records, records export) seeks through an index:
a page costs the same on a table of a million records as on one of a hundred (bench/record_pages.py has the
figures). Each statement the repository sends is checked with SQLite's own query plan."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event

from guildgate.store.db import Database
from guildgate.store.migrate import upgrade
from guildgate.store.repos import RecordFilters, RecordRepo

APP = "1100000000000000001"


def test_every_page_of_records_is_read_through_an_index_without_sorting_the_table(tmp_path: Path) -> None:
    path = tmp_path / "pages.db"
    upgrade(f"sqlite:///{path}")
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

    async def walk() -> list[list[str]]:
        try:
            return [await pages(None, None), await pages(APP, None), await pages(None, "succeeded")]
        finally:
            await db.dispose()

    newest_first = [f"rec-{i}" for i in reversed(range(7))]  # same time: the larger id first
    assert asyncio.run(walk()) == [newest_first] * 3  # nothing lost or repeated at a page's edge
    assert len(sent) == 12
    with sqlite3.connect(path) as conn:
        for statement, parameters in sent:
            plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (statement, plan)
