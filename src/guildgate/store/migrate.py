"""Run the Alembic migrations programmatically (``guildgate migrate``, and before any command that uses the
database). A database already at ``HEAD`` is detected with one query, without loading Alembic. Alembic's own
log lines (INFO: each plugin, each step) are kept quiet: the caller says in one line what was done."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from guildgate.settings import shown_url, to_async_url

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0008"  # the newest revision in migrations/versions (tests/store/test_migrations.py checks it)


class DatabaseUnreachableError(Exception):
    """The database named by ``GUILDGATE_DATABASE_URL`` could not be opened, reached or brought up to date. The
    message names it without its password."""


def alembic_config(database_url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = database_url
    return cfg


def _version(conn: Connection) -> str | None:
    try:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no schema yet
        return None


def current_revision(database_url: str) -> str | None:
    """The database's schema revision (None: no schema yet). A database that cannot be opened or reached raises.
    Called before any event loop runs (``upgrade``), it may block. SQLite is asked through SQLAlchemy's plain
    engine rather than aiosqlite: when its connection fails, aiosqlite's thread can outlive the event loop and
    print a traceback of its own."""
    url = to_async_url(database_url)
    if url.startswith("sqlite+aiosqlite"):
        engine = create_engine(url.replace("sqlite+aiosqlite", "sqlite", 1))
        try:
            with engine.connect() as conn:
                return _version(conn)
        finally:
            engine.dispose()
    return asyncio.run(_async_revision(url))


async def _async_revision(url: str) -> str | None:
    async_engine = create_async_engine(url)
    try:
        async with async_engine.connect() as aconn:
            return await aconn.run_sync(_version)
    finally:
        await async_engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``revision``; returns the revision it was at (None: no schema) and the one it is at."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("upgrade() must be called outside a running event loop")
    try:
        before = current_revision(database_url)
        if revision == "head" and before == HEAD:
            return before, HEAD
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from alembic import command

        command.upgrade(alembic_config(database_url), revision)
        return before, HEAD if revision == "head" else revision
    except (DBAPIError, OSError) as exc:  # OSError: a server that refuses the connection, a host that is unknown
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        where = shown_url(database_url)
        raise DatabaseUnreachableError(f"cannot use the database {where} (GUILDGATE_DATABASE_URL): {reason}") from None
