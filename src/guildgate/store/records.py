"""Records: one per join attempt (API or link), written on the hot path through the group writer
(store/writer.py), read for the API, the dashboard and the CLI."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from sqlalchemy import Connection, Row, Table, case, func, literal_column, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from guildgate.core.outcomes import Outcome, RecordState
from guildgate.core.ports import NewRecord, PendingRecord, RecordUpdate
from guildgate.store.base import NotFoundError, could_be_id
from guildgate.store.db import Database
from guildgate.store.joinevents import records_finished
from guildgate.store.models import RecordRow, UsageDayRow, utcnow
from guildgate.store.writer import GroupWriter

IDEMPOTENCY_WINDOW = timedelta(hours=24)


def new_record_id() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())`` writes it, without making a
    ``uuid.UUID`` on the way: the join path ran that conversion for nothing."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class ConflictError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class RecordFilters:
    state: str | None = None
    code: str | None = None
    guild_id: str | None = None
    developer_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None
    link_id: str | None = None


class RecordRepo:
    """Implements core.ports.RecordStore, plus reads for the API and the CLI."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._writer: GroupWriter | None = None
        self._under_way = 0  # joins whose record is created and not yet finished (in this process)
        self._settled: asyncio.Event | None = None  # set when none is under way, once aclose waits for it

    @property
    def writer(self) -> GroupWriter:
        if self._writer is None:
            self._writer = GroupWriter(self.db, _RECORDS, finished=records_finished)
        return self._writer

    async def aclose(self, *, within: float = 5.0) -> None:
        """At shutdown: give the joins under way up to ``within`` seconds to finish their records (a join
        cancelled by the server's shutdown still writes its outcome as it unwinds), then stop the writer once
        it has written what is queued. What is left pending is settled at the next start."""
        if self._under_way:
            self._settled = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), within)
        if self._writer is not None:
            await self._writer.aclose(within=within)

    # The hot path (create, sending, finish) writes Core statements through the group writer: no ORM unit of work.
    async def create(self, new: NewRecord, *, finished: RecordUpdate | None = None) -> str:
        record_id = new_record_id()
        now = utcnow()
        values: dict[str, Any] = {
            "id": record_id,
            "app_id": new.app_id,
            "key_id": new.key_id,
            "source": new.source.value,
            "state": RecordState.PENDING.value,
            "developer_id": new.developer_id,
            "guild_id": new.guild_id,
            "guild_name": new.guild_name,
            "idempotency_key": new.idempotency_key,
            "request_hash": new.request_hash,
            "link_id": new.link_id,
            "grant_id": new.grant_id,
            "created_at": now,
        }
        if finished is not None:
            values.update(_finished_values(finished, now))
        try:
            await self.writer.insert(values)
        except IntegrityError:
            raise ConflictError("idempotency key already used") from None
        if finished is None:
            self._under_way += 1
        return record_id

    async def finish(self, record_id: str, update_: RecordUpdate) -> None:
        try:
            await self.writer.update(record_id, _finished_values(update_, utcnow()))
        finally:
            self._under_way = max(self._under_way - 1, 0)
            if not self._under_way and self._settled is not None:
                self._settled.set()

    async def sending(self, record_id: str, *, guild_id: str, guild_name: str | None, user_id: str) -> None:
        values: dict[str, Any] = {"guild_id": guild_id, "user_id": user_id}
        if guild_name is not None:
            values["guild_name"] = guild_name[:200]
        await self.writer.update(record_id, values)

    async def pending(self, *, limit: int, older_than: timedelta = timedelta(0)) -> builtins.list[PendingRecord]:
        """Records still pending (oldest first), created at least ``older_than`` ago."""
        cutoff = (utcnow() - older_than).astimezone(UTC).replace(tzinfo=None)
        query = (
            select(RecordRow.id, RecordRow.app_id, RecordRow.guild_id, RecordRow.user_id)
            # The state as a literal, not a bound parameter: only then can SQLite and PostgreSQL use the
            # partial index of pending records (migration 0003).
            .where(RecordRow.state == literal_column(f"'{RecordState.PENDING.value}'"), RecordRow.created_at <= cutoff)
            .order_by(RecordRow.created_at)
            .limit(limit)
        )
        async with self.db.session() as s:
            rows = (await s.execute(query)).all()
        return [PendingRecord(id=i, app_id=a, guild_id=g, user_id=u) for i, a, g, u in rows]

    async def prune(self, *, before: datetime, batch: int = 5000, progress: Callable[[int], None] | None = None) -> int:
        """Delete finished records created before ``before``, in batches (pending ones are never deleted), each
        its own transaction, so that a service running meanwhile waits at most one batch for the database.
        ``progress`` is told the count deleted so far after each batch."""
        cutoff = before.astimezone(UTC).replace(tzinfo=None)
        ids = (
            select(_RECORDS.c.id)
            .where(_RECORDS.c.created_at < cutoff, _RECORDS.c.state != RecordState.PENDING.value)
            .limit(batch)
        )
        statement = _RECORDS.delete().where(_RECORDS.c.id.in_(ids.scalar_subquery()))
        deleted = 0
        while True:
            count = int(await self.db.run(lambda conn: conn.execute(statement).rowcount))
            deleted += count
            if progress is not None:
                progress(deleted)
            if count < batch:
                return deleted

    async def count_before(self, *, before: datetime) -> int:
        cutoff = before.astimezone(UTC).replace(tzinfo=None)
        query = select(func.count()).where(
            _RECORDS.c.created_at < cutoff, _RECORDS.c.state != RecordState.PENDING.value
        )
        return int(await self.db.run(lambda conn: conn.execute(query).scalar() or 0))

    async def settle(self, record_id: str, update_: RecordUpdate) -> bool:
        """Finish a record found pending, unless its own request finished it meanwhile (that answer wins)."""
        values = _finished_values(update_, utcnow())
        statement = (
            update(_RECORDS)
            .where(_RECORDS.c.id == record_id, _RECORDS.c.state == RecordState.PENDING.value)
            .values(**values)
        )

        def settle(conn: Connection) -> bool:
            if conn.execute(statement).rowcount != 1:
                return False
            records_finished(conn, [record_id])  # its event and its count, in the same transaction
            return True

        return await self.db.run(settle)

    async def save_response(self, record_id: str, response: StoredResponse) -> None:
        async with self.db.session() as s:
            await s.execute(
                update(RecordRow)
                .where(RecordRow.id == record_id)
                .values(
                    response_status=response.status,
                    response_body=response.body,
                    response_headers=json.dumps(response.headers),
                )
            )
            await s.commit()

    async def idempotent(self, *, key_id: str, idempotency_key: str) -> RecordRow | None:
        """The live record for this key's idempotency key, or None; an expired one is released."""
        async with self.db.session() as s:
            row = await s.scalar(
                select(RecordRow).where(RecordRow.key_id == key_id, RecordRow.idempotency_key == idempotency_key)
            )
            if row is None:
                return None
            if row.created_at < utcnow() - IDEMPOTENCY_WINDOW:
                row.idempotency_key = None
                await s.commit()
                return None
            return row

    async def get(self, record_id: str, *, app_id: str | None) -> RecordRow:
        if not could_be_id(record_id):
            raise NotFoundError("no such record")
        async with self.db.session() as s:
            row = await s.get(RecordRow, record_id)
        if row is None or (app_id is not None and row.app_id != app_id):
            raise NotFoundError("no such record")
        return row

    async def list(
        self, *, app_id: str | None, filters: RecordFilters, limit: int, cursor: str | None
    ) -> tuple[builtins.list[Row[Any]], str | None]:
        """A page of records, newest first, as plain result rows (a record's columns as attributes, as on
        ``RecordRow``; no ORM object is built for each: a page of 500 is read in about half the time)."""
        query = select(_RECORDS)
        if app_id is not None:
            query = query.where(RecordRow.app_id == app_id)
        for column, value in (
            (RecordRow.state, filters.state),
            (RecordRow.code, filters.code),
            (RecordRow.guild_id, filters.guild_id),
            (RecordRow.developer_id, filters.developer_id),
            (RecordRow.source, filters.source),
            (RecordRow.link_id, filters.link_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if filters.since is not None:
            query = query.where(RecordRow.created_at >= filters.since.astimezone(UTC).replace(tzinfo=None))
        if filters.until is not None:
            query = query.where(RecordRow.created_at < filters.until.astimezone(UTC).replace(tzinfo=None))
        if cursor is not None:
            at, last_id = decode_cursor(cursor)
            naive = at.replace(tzinfo=None)
            # a row comparison: SQLite and PostgreSQL both seek it in (app_id,) created_at, id order
            query = query.where(tuple_(RecordRow.created_at, RecordRow.id) < tuple_(naive, last_id))
        query = query.order_by(RecordRow.created_at.desc(), RecordRow.id.desc()).limit(limit + 1)
        async with self.db.session() as s:
            rows = list((await s.execute(query)).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return rows, next_cursor

    async def usage(self, *, app_id: str, since: datetime) -> builtins.list[tuple[str, str, int]]:
        """(day, code, count) of the app's finished records since ``since``'s day, day as YYYY-MM-DD (UTC): from
        the roll-up (store/usage.py), a row per day, outcome, key and developer id at most."""
        u = UsageDayRow
        query = (
            select(u.day, u.code, func.sum(u.count))
            .where(u.app_id == app_id, u.day >= since.astimezone(UTC).date().isoformat())
            .group_by(u.day, u.code)
            .order_by(u.day)
        )
        async with self.db.session() as s:
            rows = (await s.execute(query)).all()
        return [(str(d), str(c), int(n)) for d, c, n in rows]

    async def per_hour(self, *, first: datetime, hours: int, sample: int = 2001) -> builtins.list[HourOfRecords]:
        """Finished records in each of ``hours`` hours from ``first`` (the start of an hour, UTC), oldest first:
        how many, how many joined or were already members (both counted in the database, exactly, however many
        there are), and the cost of the hour's newest ``sample`` at most, for its median."""
        start = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=hours)
        if self.db.is_sqlite:
            hour = func.strftime("%Y-%m-%d %H", RecordRow.created_at)
        else:
            hour = func.to_char(func.date_trunc("hour", RecordRow.created_at), "YYYY-MM-DD HH24")
        good = (Outcome.JOINED.value, Outcome.ALREADY_MEMBER.value)
        finished = (RecordRow.created_at >= start, RecordRow.created_at < end, RecordRow.code.is_not(None))
        counts = (
            select(hour, func.count(), func.sum(case((RecordRow.code.in_(good), 1), else_=0)))
            .where(*finished)
            .group_by(hour)
        )
        result = [HourOfRecords(start=start + timedelta(hours=i)) for i in range(hours)]
        index = {h.start.strftime("%Y-%m-%d %H"): h for h in result}
        async with self.db.session() as s:
            for label, total, succeeded in (await s.execute(counts)).all():
                if (h := index.get(str(label))) is not None:
                    h.total, h.succeeded = int(total), int(succeeded or 0)
            for h in result:
                if h.total:
                    costs = (
                        select(RecordRow.cost_ms)
                        .where(RecordRow.created_at >= h.start, RecordRow.created_at < h.start + timedelta(hours=1))
                        .where(RecordRow.code.is_not(None))
                        .order_by(RecordRow.created_at.desc())
                        .limit(sample)
                    )
                    h.costs = [float(c or 0.0) for c in (await s.scalars(costs)).all()]
        return result


@dataclass
class HourOfRecords:
    """One hour of finished records (``RecordRepo.per_hour``)."""

    start: datetime
    total: int = 0
    succeeded: int = 0
    costs: builtins.list[float] = field(default_factory=list)


_RECORDS: Table = RecordRow.__table__  # type: ignore[assignment]
# a record as read: the ORM row (``get``) or a plain result row with the same attributes (``list``)
RecordView: TypeAlias = RecordRow | Row[Any]


def _finished_values(u: RecordUpdate, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "state": u.state.value,
        "code": u.code.value,
        "detail": u.detail[:400] if u.detail else None,
        "finished_at": now,
        "cost_ms": round(u.cost_ms, 2) if u.cost_ms is not None else None,
        "discord_status": u.discord_status,
        "discord_code": u.discord_code,
    }
    for name in ("guild_id", "user_id"):
        if getattr(u, name) is not None:
            values[name] = getattr(u, name)
    if u.guild_name is not None:
        values["guild_name"] = u.guild_name[:200]
    return values


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A page's cursor: the last record's time (microseconds since 1970, UTC) and id. Plain enough for the OpenAPI
# schema to describe exactly (web/api/records.py), so whatever matches the pattern is a cursor this service takes.
CURSOR_PATTERN = r"[0-9]{1,16}\.[0-9A-Za-z_-]{1,36}"  # a record id: a UUID as this service makes them
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(at: datetime, record_id: str) -> str:
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return f"{(aware - _EPOCH) // timedelta(microseconds=1)}.{record_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not _CURSOR.fullmatch(cursor):
        raise ValueError("cursor is not one this service gave out")
    micros, record_id = cursor.split(".")
    return _EPOCH + timedelta(microseconds=int(micros)), record_id


def record_dict(row: RecordView, *, msg: str) -> dict[str, Any]:
    def ts(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": row.id,
        "state": row.state,
        "code": row.code,
        "msg": msg,
        "guild_id": row.guild_id,
        "guild_name": row.guild_name,
        "user_id": row.user_id,
        "developer_id": row.developer_id,
        "cost_ms": row.cost_ms,
        "discord_status": row.discord_status,
        "discord_code": row.discord_code,
        "created_at": ts(row.created_at),
        "finished_at": ts(row.finished_at),
        "source": row.source,
        "link_id": row.link_id,
    }
