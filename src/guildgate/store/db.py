"""The one way into the database: SQLAlchemy's async engine (aiosqlite for SQLite, asyncpg for PostgreSQL) and
its session factory. SQLite gets WAL and a busy timeout.

Nothing here blocks the event loop. On SQLite each connection's statements run in aiosqlite's thread for that
connection, so a statement waiting for another process's write lock (several workers, a CLI command) waits
there, up to ``BUSY_SECONDS``, while the loop goes on serving. ``run(fn)`` runs sync-style SQLAlchemy code
``fn(connection)`` in one transaction on an async connection (``AsyncConnection.run_sync``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from guildgate.settings import to_async_url

T = TypeVar("T")
# How long a SQLite statement waits for another connection's write lock before it fails ("database is
# locked"). It waits in aiosqlite's thread, never in the event loop.
BUSY_SECONDS = 30


class Database:
    def __init__(self, url: str) -> None:
        self.url = to_async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": BUSY_SECONDS}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """``fn(connection)`` in one transaction, committed when it returns (rolled back when it raises)."""
        async with self.engine.begin() as aconn:
            return await aconn.run_sync(fn)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
