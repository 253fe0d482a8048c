"""Group commit for record writes: concurrent requests' inserts and updates share one transaction.

Every caller still waits until its own row is committed (nothing is answered or sent to Discord before its
record is durable), but a burst of N requests costs one transaction instead of N. A batch that fails (an
idempotency key taken, say) is retried row by row, so each caller gets its own error.

When there is nobody to share a transaction with, the round trip through the writer's task is pure cost: on
SQLite a write the caller marks ``alone`` (few joins under way, RecordRepo decides) is committed at once, in
the caller's own step, if nothing is queued or being written and no other write was made so in this turn of
the event loop (a burst still reaches the queue after its first write). It is made before the caller first
suspends, as a queued write is queued before it, so a cancelled caller's write is made all the same. A write
that finds the database locked by another process goes to the queue, which retries without blocking the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.exc import IntegrityError

from guildgate.store.db import Database
from guildgate.store.fast import held_by_another

MAX_BATCH = 500


@dataclass
class _Op:
    kind: str  # "insert" or "update"
    values: dict[str, Any]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupWriter:
    def __init__(self, db: Database, table: Table) -> None:
        self.db, self.table = db, table
        self._queue: list[_Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a batch is being written (it may wait for another process's lock)
        self._turn_used = False  # a write was made at once in this turn of the event loop
        self._drained: asyncio.Event | None = None  # set when the queue is empty, once aclose waits for it

    async def insert(self, values: dict[str, Any], *, alone: bool = False) -> None:
        if alone and self._wrote_now("insert", values):
            return
        await self._submit(_Op("insert", values))

    async def update(self, record_id: str, values: dict[str, Any], *, alone: bool = False) -> None:
        values = {"_key": record_id, **values}
        if alone and self._wrote_now("update", values):
            return
        await self._submit(_Op("update", values))

    def _wrote_now(self, kind: str, values: dict[str, Any]) -> bool:
        """Commit one row at once if nothing else is queued or being written: True when it is committed, False
        when the queue must take it (another write came first, or another process holds the lock)."""
        fast = self.db.fast
        if fast is None or self._queue or self._busy or self._turn_used:
            return False
        self._turn_used = True
        asyncio.get_running_loop().call_soon(self._next_turn)
        shape = tuple(sorted(values))
        statement = fast.insert(self.table, shape) if kind == "insert" else fast.update(self.table, shape)
        try:
            fast.write([(statement, [values])])
        except sqlite3.IntegrityError:
            raise _conflict() from None
        except sqlite3.OperationalError as exc:
            if held_by_another(exc):
                return False
            raise
        return True

    def _next_turn(self) -> None:
        self._turn_used = False

    async def _submit(self, op: _Op) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._queue.append(op)
        self._wake.set()
        # Not shielded: a cancelled caller cancels only its own future; the op stays queued and is written
        # (``_settle`` skips a future already done).
        await op.done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self._busy = True
                try:
                    await self._commit(batch)
                finally:
                    self._busy = False
            if self._drained is not None:
                self._drained.set()

    async def _commit(self, batch: list[_Op]) -> None:
        try:
            await self._write(batch)
        except Exception:
            if len(batch) == 1:
                _settle(batch[0], error=True)
                return
            for op in batch:  # find the one that failed; the others succeed on their own
                await self._commit([op])
            return
        for op in batch:
            _settle(op)

    async def _write(self, batch: list[_Op]) -> None:
        inserts: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for op in batch:
            group = inserts if op.kind == "insert" else updates
            group.setdefault(tuple(sorted(op.values)), []).append(op.values)
        table = self.table
        fast = self.db.fast
        if fast is not None:
            batches = [(fast.insert(table, shape), rows) for shape, rows in inserts.items()]
            batches += [(fast.update(table, shape), rows) for shape, rows in updates.items()]
            await fast.write_retrying(batches)
            return

        def write(conn: Connection) -> None:
            for rows in inserts.values():
                conn.execute(table.insert(), rows)
            for shape, rows in updates.items():
                stmt = (
                    table.update()
                    .where(table.c.id == bindparam("_key"))
                    .values({name: bindparam(name) for name in shape if name != "_key"})
                )
                conn.execute(stmt, rows)

        await self.db.run(write)

    async def aclose(self, *, within: float = 5.0) -> None:
        """Stop, after writing what is queued (for up to ``within`` seconds): a write a caller is waiting for is
        not dropped at shutdown."""
        if self._task is None:
            return
        if (self._queue or self._busy) and not self._task.done():
            self._drained = asyncio.Event()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), within)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _settle(op: _Op, *, error: bool = False) -> None:
    if op.done.done():
        return
    if error:
        op.done.set_exception(_conflict())
    else:
        op.done.set_result(None)


def _conflict() -> IntegrityError:
    """What a caller gets when its row breaks a constraint (an idempotency key taken): RecordRepo's Conflict."""
    return IntegrityError("record write", None, Exception("constraint"))
