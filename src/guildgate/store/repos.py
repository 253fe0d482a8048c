"""Repositories over the tables: apps, API keys, records. Keyword-only arguments throughout."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeAlias

from sqlalchemy import Row, Table, case, func, literal_column, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from guildgate.core.outcomes import Outcome, RecordState
from guildgate.core.ports import AppCredentials, NewRecord, PendingRecord, RecordUpdate
from guildgate.core.secret import Secret
from guildgate.core.text import has_control
from guildgate.store.crypto import SecretBox, hash_api_key, new_api_key
from guildgate.store.db import Database
from guildgate.store.models import ApiKeyRow, AppRow, RecordRow, utcnow
from guildgate.store.writer import GroupWriter

IDEMPOTENCY_WINDOW = timedelta(hours=24)
# Joins under way (record created, not finished) up to which a record write is committed at once rather than
# queued for a shared transaction (store/writer.py): about 0.3 ms less CPU a join one at a time, where with more
# joins under way the shared transactions save more (docs/performance.md).
ALONE_JOINS = 4


class NotFound(LookupError):
    pass


def new_record_id() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())`` writes it, without making a
    ``uuid.UUID`` on the way: that took 250 of the join path's Python steps (``bench/join_opcodes.py``)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def checked_name(value: str | None, what: str) -> str | None:
    """An operator's name for an app or a key as it may be stored on every backend: at most 100 characters and no
    control characters (PostgreSQL's text holds no NUL). ValueError naming ``what`` otherwise."""
    if value is not None and (len(value) > 100 or has_control(value)):
        raise ValueError(f"{what}: at most 100 characters, without control characters (line breaks, tabs, NUL)")
    return value


def could_be_id(value: str) -> bool:
    """Whether ``value`` could name a row: this service's ids and slugs and Discord's snowflakes are printable
    ASCII of at most 64 characters. Anything else (a NUL, which PostgreSQL's text cannot even hold, a line break,
    a 2,000-character path) is not looked up: it is not found."""
    return len(value) <= 64 and value.isascii() and value.isprintable()


class Conflict(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AppInfo:
    client_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    app_id: str
    name: str | None
    prefix: str
    quota_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None


async def add_for_app(db: Database, row: Any, *, app_id: str) -> None:
    """Insert a row that belongs to an app (an API key, a link), refusing an app that was never added."""
    async with db.session() as s:
        if not could_be_id(app_id) or await s.get(AppRow, app_id) is None:
            raise NotFound(f"no app with client id {app_id}: add it first with 'guildgate apps add'")
        s.add(row)
        await s.commit()


class AppRepo:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db, self.box = db, box
        self._cache: dict[str, tuple[float, AppCredentials]] = {}

    async def add(self, *, client_id: str, name: str, client_secret: Secret, bot_token: Secret) -> AppInfo:
        checked_name(name, "name")
        row = AppRow(
            client_id=client_id,
            name=name,
            client_secret_enc=self.box.seal(client_secret),
            bot_token_enc=self.box.seal(bot_token),
            created_at=utcnow(),
        )
        async with self.db.session() as s:
            existing = await s.get(AppRow, client_id)
            if existing is not None:
                existing.name = name
                existing.client_secret_enc = row.client_secret_enc
                existing.bot_token_enc = row.bot_token_enc
                row = existing
            else:
                s.add(row)
            await s.commit()
        self._cache.pop(client_id, None)
        return AppInfo(client_id=row.client_id, name=row.name, created_at=row.created_at)

    async def list(self) -> list[AppInfo]:
        async with self.db.session() as s:
            rows = (await s.scalars(select(AppRow).order_by(AppRow.created_at))).all()
        return [AppInfo(client_id=r.client_id, name=r.name, created_at=r.created_at) for r in rows]

    async def rotate(self, old: SecretBox) -> tuple[int, int]:
        """Re-encrypt every app's secrets from ``old`` to this repo's box, in one transaction.
        Returns (re-encrypted, already under the new key); raises ValueError naming an app neither key opens."""
        moved = kept = 0
        async with self.db.session() as s:
            for row in (await s.scalars(select(AppRow).order_by(AppRow.client_id))).all():
                try:
                    secret, token = old.open(row.client_secret_enc), old.open(row.bot_token_enc)
                except ValueError:
                    try:
                        self.box.open(row.client_secret_enc), self.box.open(row.bot_token_enc)
                    except ValueError:
                        raise ValueError(
                            f"app {row.client_id}: neither the old nor the new key opens its secrets"
                        ) from None
                    kept += 1
                    continue
                row.client_secret_enc, row.bot_token_enc = self.box.seal(secret), self.box.seal(token)
                moved += 1
            await s.commit()
        self._cache.clear()
        return moved, kept

    async def credentials(self, client_id: str) -> AppCredentials:
        cached = self._cache.get(client_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if not could_be_id(client_id):
            raise NotFound(f"no app with client id {client_id!r}")
        async with self.db.session() as s:
            row = await s.get(AppRow, client_id)
        if row is None:
            raise NotFound(f"no app with client id {client_id}")
        creds = AppCredentials(
            client_id=row.client_id,
            client_secret=self.box.open(row.client_secret_enc),
            bot_token=self.box.open(row.bot_token_enc),
        )
        self._cache[client_id] = (time.monotonic() + 30.0, creds)
        return creds


class KeyRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, *, app_id: str, name: str | None, quota_per_minute: int | None) -> tuple[KeyInfo, Secret]:
        key = new_api_key()
        row = ApiKeyRow(
            id="key_" + secrets.token_hex(6),
            app_id=app_id,
            name=checked_name(name, "name"),
            key_hash=hash_api_key(key.reveal()),
            prefix=key.reveal()[:7],
            quota_per_minute=quota_per_minute,
            created_at=utcnow(),
        )
        await add_for_app(self.db, row, app_id=app_id)
        return _key_info(row), key

    async def authenticate(self, key: str) -> KeyInfo | None:
        table = ApiKeyRow.__table__
        digest = hash_api_key(key)
        # every request looks its key up: the statement compiled once, run without SQLAlchemy's per-call work
        if self.db.fast is not None:
            found = self.db.fast.fetch_one(self.db.fast.query(table, "key_hash"), digest)  # type: ignore[arg-type]
        else:
            assert self.db.pg_fast is not None
            found = await self.db.pg_fast.fetch_one(self.db.pg_fast.query(table, "key_hash"), digest)  # type: ignore[arg-type]
        if found is None or found["revoked_at"] is not None:
            return None
        return _key_info(SimpleNamespace(**found))

    async def list(self) -> list[KeyInfo]:
        async with self.db.session() as s:
            rows = (await s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))).all()
        return [_key_info(r) for r in rows]

    async def revoke(self, key_id: str) -> KeyInfo:
        if not could_be_id(key_id):
            raise NotFound(f"no API key with id {key_id!r}")
        async with self.db.session() as s:
            row = await s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key with id {key_id}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            await s.commit()
        return _key_info(row)


def _key_info(row: Any) -> KeyInfo:  # an ApiKeyRow or a Core row with the same columns
    return KeyInfo(
        id=row.id,
        app_id=row.app_id,
        name=row.name,
        prefix=row.prefix,
        quota_per_minute=row.quota_per_minute,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


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
            self._writer = GroupWriter(self.db, _RECORDS)
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

    # The hot path (create, finish, authenticate) uses Core statements on one connection: no ORM unit of work.
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
            "created_at": now,
        }
        if finished is not None:
            values.update(_finished_values(finished, now))
        try:
            await self.writer.insert(values, alone=self._alone())
        except IntegrityError:
            raise Conflict("idempotency key already used") from None
        if finished is None:
            self._under_way += 1
        return record_id

    async def finish(self, record_id: str, update_: RecordUpdate) -> None:
        try:
            await self.writer.update(record_id, _finished_values(update_, utcnow()), alone=self._alone())
        finally:
            self._under_way = max(self._under_way - 1, 0)
            if not self._under_way and self._settled is not None:
                self._settled.set()

    def _alone(self) -> bool:
        """Few joins under way: a write now will hardly ever find another to share its transaction with."""
        return self._under_way <= ALONE_JOINS

    async def sending(self, record_id: str, *, guild_id: str, guild_name: str | None, user_id: str) -> None:
        values: dict[str, Any] = {"guild_id": guild_id, "user_id": user_id}
        if guild_name is not None:
            values["guild_name"] = guild_name[:200]
        await self.writer.update(record_id, values, alone=self._alone())

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
        return bool(await self.db.run(lambda conn: conn.execute(statement).rowcount == 1))

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
            raise NotFound("no such record")
        async with self.db.session() as s:
            row = await s.get(RecordRow, record_id)
        if row is None or (app_id is not None and row.app_id != app_id):
            raise NotFound("no such record")
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
        """(day, code, count) for the app since ``since``, day as YYYY-MM-DD (UTC)."""
        day = func.date(RecordRow.created_at)
        query = (
            select(day, RecordRow.code, func.count())
            .where(RecordRow.app_id == app_id, RecordRow.created_at >= since.astimezone(UTC).replace(tzinfo=None))
            .group_by(day, RecordRow.code)
            .order_by(day)
        )
        async with self.db.session() as s:
            rows = (await s.execute(query)).all()
        return [(str(d), c or "pending", int(n)) for d, c, n in rows]

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
# schema to describe exactly (web/records.py), so whatever matches the pattern is a cursor this service takes.
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
