"""Group commit for record writes: concurrent requests' inserts and updates share one transaction.

Every caller still waits until its own row is committed (nothing is answered or sent to Discord before its
record is durable), but a burst of N requests costs one transaction instead of N. A batch that fails (an
idempotency key taken, say) is retried row by row, so each caller gets its own error."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.exc import IntegrityError

from guildgate.store.db import Database

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

    async def insert(self, values: dict[str, Any]) -> None:
        await self._submit(_Op("insert", values))

    async def update(self, record_id: str, values: dict[str, Any]) -> None:
        await self._submit(_Op("update", {"_key": record_id, **values}))

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
                await self._commit(batch)

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

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _settle(op: _Op, *, error: bool = False) -> None:
    if op.done.done():
        return
    if error:
        op.done.set_exception(IntegrityError("record write", None, Exception("constraint")))
    else:
        op.done.set_result(None)
