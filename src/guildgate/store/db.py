"""The engines and session factory; SQLite gets WAL and a busy timeout.

``run(fn)`` runs sync-style SQLAlchemy code ``fn(connection)`` in one transaction: for PostgreSQL through
the async engine (asyncpg), for SQLite directly on a plain pysqlite connection in the event loop thread.
A local SQLite statement takes tens of microseconds, far less than handing it to aiosqlite's thread and
back. The hottest statements (authenticating a key, writing records) go further on SQLite: ``fast``
(store/fast.py) runs them, compiled once, on a raw connection; on PostgreSQL ``pg_fast`` runs the key lookup
through asyncpg directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from guildgate.settings import to_async_url
from guildgate.store.fast import PostgresFast, SQLiteFast

T = TypeVar("T")


class Database:
    def __init__(self, url: str) -> None:
        self.url = to_async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.sync_engine: Engine | None = None
        self.fast: SQLiteFast | None = None
        self.pg_fast: PostgresFast | None = None
        if not self.is_sqlite:
            self.pg_fast = PostgresFast(self.url, self.engine.dialect)
        if self.is_sqlite:
            self.sync_engine = create_engine(
                self.url.replace("sqlite+aiosqlite", "sqlite", 1),
                connect_args={"timeout": 5, "check_same_thread": False},
            )
            event.listen(self.sync_engine, "connect", _sqlite_pragmas)
            self.fast = SQLiteFast(self.sync_engine)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        if self.sync_engine is not None:
            with self.sync_engine.begin() as conn:
                return fn(conn)
        async with self.engine.begin() as aconn:
            return await aconn.run_sync(fn)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.pg_fast is not None:
            await self.pg_fast.close()
        if self.fast is not None:
            self.fast.close()
        if self.sync_engine is not None:
            self.sync_engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
