"""The hot path's statements without SQLAlchemy's per-statement work.

A join writes its record three times (create, the pre-send note, finish) and reads its API key once. Through
SQLAlchemy Core each of those costs a connection checkout, a cache-key computation and result set-up — about
a third of a join's CPU when measured (docs/performance.md). Here each statement is compiled by SQLAlchemy
once (so the SQL and the column types' conversions are SQLAlchemy's own), then run on one pysqlite connection
kept for the purpose, in the event-loop thread: a local SQLite statement takes microseconds, so nothing is
gained by a thread hop. On PostgreSQL the API-key lookup (every request makes one) runs through a small
asyncpg pool (``PostgresFast``); the record writes keep the Core path, group-committed (``store/writer.py``)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import Engine, Table, bindparam, make_url, select

Processor = Callable[[Any], Any] | None
BUSY_MS = 2  # the raw connection's SQLite busy timeout; longer waits happen in write_retrying, off the loop


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    names: tuple[str, ...]  # parameter names, in the order of the SQL's "?" marks
    binds: tuple[Processor, ...]
    # (position, conversion) of the parameters that have one; the rest are passed as they are
    _converted: tuple[tuple[int, Callable[[Any], Any]], ...] = field(init=False, repr=False, compare=False)
    _pick: Callable[[dict[str, Any]], Any] = field(init=False, repr=False, compare=False)  # the values, in order

    def __post_init__(self) -> None:
        converted = tuple((i, bind) for i, bind in enumerate(self.binds) if bind is not None)
        object.__setattr__(self, "_converted", converted)
        object.__setattr__(self, "_pick", itemgetter(*self.names) if self.names else (lambda _values: ()))

    def params(self, values: dict[str, Any]) -> list[Any]:
        picked = self._pick(values)
        out = list(picked) if len(self.names) != 1 else [picked]
        for i, bind in self._converted:
            value = out[i]
            if value is not None:
                out[i] = bind(value)
        return out


@dataclass(frozen=True, slots=True)
class Query:
    statement: Statement
    columns: tuple[str, ...]
    results: tuple[Processor, ...]

    def row(self, raw: Sequence[Any]) -> dict[str, Any]:
        return {
            name: (convert(value) if convert is not None else value)
            for name, convert, value in zip(self.columns, self.results, raw, strict=True)
        }


class Compiled:
    """Statements compiled once by SQLAlchemy for a dialect, with its own conversions of the values."""

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect
        self._statements: dict[tuple[str, str, tuple[str, ...]], Statement] = {}
        self._queries: dict[tuple[str, str], Query] = {}

    # ---- compiling ------------------------------------------------------------------------------------
    def _compile(self, table: Table, stmt: Any, types: dict[str, Any]) -> Statement:
        compiled = stmt.compile(dialect=self.dialect)
        names = tuple(compiled.positiontup or ())
        binds = tuple(types[name].bind_processor(self.dialect) for name in names)
        return Statement(sql=compiled.string, names=names, binds=binds)

    def query(self, table: Table, where: str) -> Query:
        """SELECT every column of ``table`` WHERE where = :value"""
        key = (table.name, where)
        found = self._queries.get(key)
        if found is None:
            stmt = select(table).where(table.c[where] == bindparam("value"))
            statement = self._compile(table, stmt, {"value": table.c[where].type})
            columns = tuple(c.name for c in table.columns)
            results = tuple(c.type.result_processor(self.dialect, None) for c in table.columns)
            found = self._queries[key] = Query(statement=statement, columns=columns, results=results)
        return found


class PostgresFast(Compiled):
    """The per-request lookup (an API key) on PostgreSQL straight through asyncpg: through SQLAlchemy's async
    layer it cost about 1–1.4 ms of CPU per lookup (a transaction, a pool pre-ping, the greenlet bridge) —
    the most of a refused request's cost under a flood (docs/performance.md). A small pool of its own,
    opened on first use; asyncpg prepares each statement once per connection."""

    def __init__(self, url: str, dialect: Any, *, max_size: int = 4) -> None:
        super().__init__(dialect)
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._max_size)
        return self._pool

    async def fetch_one(self, query: Query, value: Any) -> dict[str, Any] | None:
        pool = await self._connections()
        raw = await pool.fetchrow(query.statement.sql, *query.statement.params({"value": value}))
        return None if raw is None else query.row(tuple(raw))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def held_by_another(error: sqlite3.OperationalError) -> bool:
    """The write failed because another connection holds the database's lock (it may be retried)."""
    return "locked" in str(error) or "busy" in str(error)


class SQLiteFast(Compiled):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.dialect)
        self._engine = engine
        self._pooled: Any = None
        self._raw: sqlite3.Connection | None = None  # the pooled connection's sqlite3 connection, kept at hand

    @property
    def conn(self) -> sqlite3.Connection:
        raw = self._raw
        if raw is not None:
            return raw
        if self._pooled is None:
            # A pooled connection kept for good: it has the pragmas every connection of the engine gets, but
            # almost no busy timeout: SQLite's busy handler sleeps in the calling thread — the event loop —
            # for up to its timeout when another process holds the write lock. A locked write fails at once
            # instead, and the writer retries it asynchronously (``write_retrying``).
            self._pooled = self._engine.raw_connection()
            self._pooled.driver_connection.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        raw = self._pooled.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        self._raw = raw
        return raw

    def close(self) -> None:
        self._raw = None
        if self._pooled is not None:
            self._pooled.close()
            self._pooled = None

    def insert(self, table: Table, names: tuple[str, ...]) -> Statement:
        key = ("insert", table.name, names)
        found = self._statements.get(key)
        if found is None:
            stmt = table.insert().values({n: bindparam(n) for n in names})
            found = self._compile(table, stmt, {n: table.c[n].type for n in names})
            self._statements[key] = found
        return found

    def update(self, table: Table, names: tuple[str, ...], *, key_column: str = "id") -> Statement:
        """UPDATE table SET names... WHERE key_column = :_key"""
        key = ("update", table.name, names)
        found = self._statements.get(key)
        if found is None:
            stmt = (
                table.update()
                .where(table.c[key_column] == bindparam("_key"))
                .values({n: bindparam(n) for n in names if n != "_key"})
            )
            types = {n: table.c[n].type for n in names if n != "_key"} | {"_key": table.c[key_column].type}
            found = self._compile(table, stmt, types)
            self._statements[key] = found
        return found

    # ---- running --------------------------------------------------------------------------------------
    def write(self, batches: Sequence[tuple[Statement, Sequence[dict[str, Any]]]]) -> None:
        """Every batch in one transaction; all or nothing."""
        conn = self.conn
        try:
            for statement, rows in batches:
                conn.executemany(statement.sql, [statement.params(r) for r in rows])
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    async def write_retrying(
        self, batches: Sequence[tuple[Statement, Sequence[dict[str, Any]]]], *, patience: float = 30.0
    ) -> None:
        """``write``, retried while another process holds the database's write lock (several workers, or a CLI
        command), sleeping between tries without blocking the event loop; gives up after ``patience`` s."""
        delay, waited = 0.001, 0.0
        while True:
            try:
                self.write(batches)
                return
            except sqlite3.OperationalError as exc:
                if not held_by_another(exc) or waited >= patience:
                    raise
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05)

    def fetch_one(self, query: Query, value: Any) -> dict[str, Any] | None:
        conn = self.conn
        raw = conn.execute(query.statement.sql, query.statement.params({"value": value})).fetchone()
        return None if raw is None else query.row(raw)
