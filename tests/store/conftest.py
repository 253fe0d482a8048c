"""SQLite database files for the store's own tests: the models' tables in WAL mode, or the migrated schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from guildgate.core.links import Link
from guildgate.store.db import Database
from guildgate.store.links import LinkRepo
from guildgate.store.migrate import upgrade
from guildgate.store.models import AppRow, Base


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


async def app_with_link(db: Database, app_id: str = "1100000000000000001") -> Link:
    """An app (its secrets stand-ins) and a join link of it to the fixture's server, written to ``db``."""
    async with db.session() as s:
        s.add(AppRow(client_id=app_id, name="a", client_secret_enc="x", bot_token_enc="y"))
        await s.commit()
    return await LinkRepo(db).create(
        app_id=app_id,
        guild_id="1200000000000000001",
        guild_name=None,
        guild_icon=None,
        roles=[],
        title=None,
        max_uses=None,
        expires_at=None,
    )


def states(path: Path) -> dict[str, str]:
    """Every record's state, read on a connection of its own, as another process would read them."""
    other = sqlite3.connect(path)
    try:
        return dict(other.execute("SELECT id, state FROM records").fetchall())
    finally:
        other.close()
