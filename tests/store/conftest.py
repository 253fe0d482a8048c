"""SQLite database files for the store's own tests: the models' tables in WAL mode, or the migrated schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from guildgate.store.migrate import upgrade
from guildgate.store.models import Base


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # as every connection of the service leaves it (store/db.py)
    return path


@pytest.fixture
def migrated_path(tmp_path: Path) -> Path:
    """A SQLite database file brought to the newest schema by the migrations (``guildgate migrate``)."""
    path = tmp_path / "migrated.db"
    upgrade(f"sqlite:///{path}")  # outside the test's event loop: upgrade() refuses to run inside one
    return path


def states(path: Path) -> dict[str, str]:
    """Every record's state, read on a connection of its own, as another process would read them."""
    other = sqlite3.connect(path)
    try:
        return dict(other.execute("SELECT id, state FROM records").fetchall())
    finally:
        other.close()
