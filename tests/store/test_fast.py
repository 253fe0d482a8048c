"""The SQLite hot path while another process holds the database's write lock: the write waits without
stopping the event loop, then lands."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from guildgate.store.db import Database
from guildgate.store.models import Base, RecordRow, utcnow
from tests.store.locked import write_while_locked


def test_a_locked_database_delays_the_write_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    db = Database(f"sqlite:///{path}")
    assert db.sync_engine is not None and db.fast is not None
    Base.metadata.create_all(db.sync_engine)
    table = RecordRow.__table__
    values = {"id": "r1", "app_id": "a", "source": "api", "state": "pending", "created_at": utcnow()}
    statement = db.fast.insert(table, tuple(sorted(values)))  # type: ignore[arg-type]

    fast = db.fast
    released, ticks = write_while_locked(path, lambda: fast.write_retrying([(statement, [values])]))
    assert released  # the write went through only after the lock was given back
    assert ticks >= 10, f"the event loop ran {ticks} times in the 0.4 s wait: it was blocked"
    other = sqlite3.connect(path)
    assert other.execute("SELECT state FROM records WHERE id = 'r1'").fetchone() == ("pending",)
    other.close()
    asyncio.run(db.dispose())
