"""Paging through the records, newest first, as the admin dashboard, ``GET /api/records`` and ``guildgate records
export`` do: how long a page takes as the table grows.

    python bench/record_pages.py                      # 10,000 and 100,000 records
    python bench/record_pages.py --records 50000

For each size: a throwaway SQLite database on the real schema (the migrations of the tree it runs from), filled
with that many finished records of two apps, one a millisecond after the other; then, through ``RecordRepo.list``,
the first page of 50 (the dashboard's first screen), and every page of 500 from the newest to the oldest, for
all apps (the dashboard, an export without ``--app``) and for one app (an API key's listing, ``--app``). Prints
wall time, which includes SQLite's own work in its thread. Run it from another revision's tree (a worktree) to
compare.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from guildgate.store.db import Database
from guildgate.store.migrate import upgrade
from guildgate.store.repos import RecordFilters, RecordRepo

APPS = ("1100000000000000001", "1100000000000000002")


def fill(path: Path, count: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")  # the apps themselves are not needed to list their records
        conn.executemany(
            "INSERT INTO records (id, app_id, source, state, code, guild_id, user_id, created_at) "
            "VALUES (?, ?, 'api', 'succeeded', 'joined', '1200000000000000001', '1300000000000000001', ?)",
            (
                (f"rec-{i:07}", APPS[i % 2], (start + timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f"))
                for i in range(count)
            ),
        )


async def walk(repo: RecordRepo, app_id: str | None) -> tuple[int, int, float]:
    """Every page of 500, newest to oldest: (records, pages, seconds)."""
    started = time.perf_counter()
    seen = pages = 0
    cursor: str | None = None
    while True:
        rows, cursor = await repo.list(app_id=app_id, filters=RecordFilters(), limit=500, cursor=cursor)
        seen, pages = seen + len(rows), pages + 1
        if cursor is None:
            return seen, pages, time.perf_counter() - started


async def measure(url: str, count: int) -> str:
    db = Database(url)
    repo = RecordRepo(db)
    try:
        await repo.list(app_id=None, filters=RecordFilters(), limit=50, cursor=None)  # warm: connection, statements
        started = time.perf_counter()
        await repo.list(app_id=None, filters=RecordFilters(), limit=50, cursor=None)
        first = (time.perf_counter() - started) * 1000
        every, every_pages, every_s = await walk(repo, None)
        one, one_pages, one_s = await walk(repo, APPS[0])
    finally:
        await db.dispose()
    if every != count or one != count // 2 + count % 2:
        raise SystemExit(f"paging lost records: {every} of {count}, {one} of one app's")
    return (
        f"| {count:,} | {first:.1f} | {every_s:.2f} ({every_s * 1000 / every_pages:.1f}) | "
        f"{one_s:.2f} ({one_s * 1000 / one_pages:.1f}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default="10000,100000", help="comma-separated table sizes")
    args = parser.parse_args()
    try:
        sizes = [int(n) for n in args.records.split(",")]
    except ValueError:
        parser.error("--records must be comma-separated whole numbers")
    if not sizes or min(sizes) < 1:
        parser.error("--records must be at least 1")
    print("| records | first page of 50, ms | every page of 500, all apps: s (ms a page) | one app: s (ms a page) |")
    print("|---|---|---|---|")
    for count in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'pages.db'}"
            upgrade(url)
            fill(Path(tmp) / "pages.db", count)
            print(asyncio.run(measure(url, count)), flush=True)


if __name__ == "__main__":
    main()
