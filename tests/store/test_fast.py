"""The SQLite hot path while another process holds the database's write lock: the write waits without
stopping the event loop, then lands."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from guildgate.store.db import Database
from guildgate.store.models import Base, RecordRow, utcnow


def test_a_locked_database_delays_the_write_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    db = Database(f"sqlite:///{path}")
    assert db.sync_engine is not None and db.fast is not None
    Base.metadata.create_all(db.sync_engine)
    table = RecordRow.__table__
    values = {"id": "r1", "app_id": "a", "source": "api", "state": "pending", "created_at": utcnow()}
    statement = db.fast.insert(table, tuple(sorted(values)))  # type: ignore[arg-type]

    other = sqlite3.connect(path, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock...
    released = threading.Event()

    def release_later() -> None:
        time.sleep(0.4)  # ...for 0.4 s
        other.commit()
        released.set()

    async def go() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.ensure_future(ticker())
        threading.Thread(target=release_later).start()
        await db.fast.write_retrying([(statement, [values])])
        beat.cancel()
        return ticks

    ticks = asyncio.run(go())
    assert released.is_set()  # the write went through only after the lock was given back
    assert ticks >= 10, f"the event loop ran {ticks} times in the 0.4 s wait: it was blocked"
    assert other.execute("SELECT state FROM records WHERE id = 'r1'").fetchone() == ("pending",)
    other.close()
    asyncio.run(db.dispose())
