"""What a join's record costs on SQLite: its three writes (create, the pre-send note, finish), each committed,
through guildgate's own ``RecordRepo`` one join at a time (each write committed at once) and 16 at once (group
commit, ``store/writer.py``),
beside the same three statements sent by hand through ``sqlite3`` — on the real schema (the migrations), and
on the same table made ``WITHOUT ROWID``.

    python bench/record_writes.py                   # 4000 joins per row
    python bench/record_writes.py --joins 10000

Everything runs in this process on a warm cache, back to back: these are the writes' own costs, lower than
what they cost inside a server that sleeps between requests. Prints process CPU ms per join.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from guildgate.core.outcomes import Outcome, RecordState, Source
from guildgate.core.ports import NewRecord, RecordUpdate
from guildgate.store.db import Database
from guildgate.store.migrate import upgrade
from guildgate.store.repos import RecordRepo

APP, KEY, GUILD, USER = "1100000000000000001", "k" * 14, "1200000000000000001", "1300000000000000001"


async def through_repo(url: str, joins: int, concurrency: int) -> float:
    db = Database(url)
    repo = RecordRepo(db)
    new = NewRecord(app_id=APP, key_id=KEY, source=Source.API, guild_id=GUILD)
    done = RecordUpdate(
        state=RecordState.SUCCEEDED, code=Outcome.JOINED, guild_id=GUILD, user_id=USER, discord_status=201, cost_ms=3.2
    )

    async def one() -> None:
        # In a server each write is a turn of the event loop after the last (a Discord call comes between):
        # the sleeps keep that, so a write made alone is not taken for one of a burst.
        record_id = await repo.create(new)
        await asyncio.sleep(0)
        await repo.sending(record_id, guild_id=GUILD, guild_name=None, user_id=USER)
        await asyncio.sleep(0)
        await repo.finish(record_id, done)

    async def caller(count: int) -> None:
        for _ in range(count):
            await one()

    try:
        await caller(500)  # warm-up: statements compiled, pages cached
        before = time.process_time()
        await asyncio.gather(*(caller(joins // concurrency) for _ in range(concurrency)))
        return (time.process_time() - before) * 1000 / (joins // concurrency * concurrency)
    finally:
        await repo.aclose()
        await db.dispose()


def by_hand(path: Path, joins: int, *, without_rowid: bool) -> float:
    """The same three statements through sqlite3, each committed, on a copy of the records table."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    table = "records_copy"
    (schema,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()
    schema = schema.replace('CREATE TABLE "records"', f"CREATE TABLE {table}", 1)
    conn.execute(schema + (" WITHOUT ROWID" if without_rowid else ""))
    for (index,) in conn.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'records' AND type = 'index'"
    ).fetchall():
        if index:
            conn.execute(index.replace(" ON records ", f" ON {table} ", 1).replace("INDEX ", f"INDEX {table}_", 1))
    conn.commit()

    def one() -> None:
        record_id, now = str(uuid.uuid4()), datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        conn.execute(
            "INSERT INTO records_copy (id, app_id, key_id, source, state, guild_id, created_at) VALUES (?,?,?,?,?,?,?)",
            (record_id, APP, KEY, "api", "pending", GUILD, now),
        )
        conn.commit()
        conn.execute("UPDATE records_copy SET guild_id=?, user_id=? WHERE id=?", (GUILD, USER, record_id))
        conn.commit()
        conn.execute(
            "UPDATE records_copy SET state=?, code=?, finished_at=?, cost_ms=?, discord_status=? WHERE id=?",
            ("succeeded", "joined", now, 3.2, 201, record_id),
        )
        conn.commit()

    for _ in range(500):
        one()
    before = time.process_time()
    for _ in range(joins):
        one()
    spent = (time.process_time() - before) * 1000 / joins
    conn.execute("DROP TABLE records_copy")
    conn.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=4000, help="joins per row (default 4000)")
    args = parser.parse_args()
    if args.joins < 16:
        parser.error("--joins must be at least 16")
    with tempfile.TemporaryDirectory(prefix="guildgate-records-") as tmp:
        path = Path(tmp) / "records.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        rows = [
            ("RecordRepo, one join at a time", uvloop.run(through_repo(url, args.joins, 1))),
            ("RecordRepo, 16 joins at once (group commit)", uvloop.run(through_repo(url, args.joins, 16))),
            ("sqlite3 by hand, the records table", by_hand(path, args.joins, without_rowid=False)),
            ("sqlite3 by hand, the same table WITHOUT ROWID", by_hand(path, args.joins, without_rowid=True)),
        ]
    print(f"{args.joins} joins per row, three committed writes each, SQLite WAL, synchronous=NORMAL\n")
    print("| writes | CPU ms per join |")
    print("|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} |")


if __name__ == "__main__":
    main()
