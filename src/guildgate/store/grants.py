"""The grants repository: the only way into the ``grants`` table.

Every change bumps ``revision`` and writes its event (``store/events.py``) in the same transaction, so a
webhook never reports a change that was not committed and no change goes unreported.

**Leases.** Whoever acts on a grant at Discord (the sweep ending it, an API call changing it) first takes its
lease: ``lease_token`` (random, the holder's) and ``lease_until`` (at most ``LEASE_SECONDS`` ahead, renewed while
the holder waits on the rate limiter). A lease is free when it is empty or past. Due grants are claimed in one
statement: on PostgreSQL an ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``, so concurrent sweeps
skip each other's rows instead of waiting; on SQLite the same ``UPDATE … RETURNING``, atomic because SQLite
writes one transaction at a time. Every write of a lease holder names its token: a holder whose lease expired
and was taken over by another worker writes nothing (``change`` answers None).
"""

from __future__ import annotations

import builtins
import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from guildgate.core.grants import EndAction, EndReason, Grant, GrantState, OnEnd
from guildgate.store.base import NotFoundError, could_be_id
from guildgate.store.db import Database
from guildgate.store.events import add_event
from guildgate.store.models import GrantRow
from guildgate.store.records import decode_cursor, encode_cursor

LEASE_SECONDS: Final = 60.0


class GrantConflictError(Exception):
    """An insert met the unique rules (an active grant with that external_ref in that server, or the link's
    grant for that person, is already there)."""


def new_lease_token() -> str:
    return secrets.token_hex(16)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _roles(text: str | None) -> tuple[str, ...]:
    return tuple(str(r) for r in json.loads(text or "[]"))


def to_grant(row: GrantRow) -> Grant:
    state = GrantState(row.state)
    return Grant(
        id=row.id,
        app_id=row.app_id,
        guild_id=row.guild_id,
        user_id=row.user_id,
        roles=_roles(row.roles),
        state=state,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        on_end=OnEnd(row.on_end),
        external_ref=row.external_ref,
        source=row.source,
        link_id=row.link_id,
        record_id=row.record_id,
        roles_preexisting=_roles(row.roles_preexisting),
        absent_since=row.absent_since,
        revision=row.revision,
        as_of=row.as_of,
        ended_at=row.ended_at,
        # an active grant may carry the reason it is to end with (a revoke whose end is retried): not shown yet
        end_reason=EndReason(row.end_reason) if row.end_reason and state is not GrantState.ACTIVE else None,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        end_action=EndAction(row.end_action) if row.end_action else None,
    )


def pending_reason(row: GrantRow) -> EndReason:
    return EndReason(row.end_reason) if row.end_reason else EndReason.EXPIRED


def roles_json(roles: tuple[str, ...]) -> str:
    return json.dumps(list(roles))


class GrantRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reads ------------------------------------------------------------------------------------------------
    async def row(self, grant_id: str, *, app_id: str | None = None) -> GrantRow:
        if not could_be_id(grant_id):
            raise NotFoundError("no such grant")
        async with self.db.session() as s:
            row = await s.get(GrantRow, grant_id)
        if row is None or (app_id is not None and row.app_id != app_id):
            raise NotFoundError("no such grant")
        return row

    async def get(self, grant_id: str, *, app_id: str | None = None) -> Grant:
        return to_grant(await self.row(grant_id, app_id=app_id))

    async def _select(self, *where: ColumnElement[bool], order: Any = None, limit: int | None = None) -> list[Grant]:
        query = select(GrantRow).where(*where)
        if order is not None:
            query = query.order_by(*order) if isinstance(order, tuple) else query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        async with self.db.session() as s:
            return [to_grant(r) for r in (await s.scalars(query)).all()]

    async def active_by_ref(self, *, app_id: str, guild_id: str, external_ref: str) -> Grant | None:
        found = await self._select(
            GrantRow.app_id == app_id,
            GrantRow.guild_id == guild_id,
            GrantRow.external_ref == external_ref,
            GrantRow.state == GrantState.ACTIVE.value,
        )
        return found[0] if found else None

    async def by_ref(self, *, app_id: str, external_ref: str) -> list[Grant]:
        """The app's active grants with that reference, in every server."""
        return await self._select(
            GrantRow.app_id == app_id,
            GrantRow.external_ref == external_ref,
            GrantRow.state == GrantState.ACTIVE.value,
            order=GrantRow.created_at,
        )

    async def link_grant(self, *, link_id: str, user_id: str) -> Grant | None:
        found = await self._select(GrantRow.link_id == link_id, GrantRow.user_id == user_id)
        return found[0] if found else None

    async def member_grants(self, *, guild_id: str, user_id: str) -> list[Grant]:
        """The active grants of one person in one server, any app's (the overlap rule)."""
        return await self._select(
            GrantRow.guild_id == guild_id,
            GrantRow.user_id == user_id,
            GrantRow.state == GrantState.ACTIVE.value,
        )

    async def page(
        self,
        *,
        app_id: str | None,
        where: builtins.list[ColumnElement[bool]],
        cursor: str | None,
        limit: int,
    ) -> tuple[builtins.list[Grant], str | None]:
        query = select(GrantRow).where(*where)
        if app_id is not None:
            query = query.where(GrantRow.app_id == app_id)
        if cursor is not None:
            at, last_id = decode_cursor(cursor)
            query = query.where(tuple_(GrantRow.created_at, GrantRow.id) < tuple_(at.replace(tzinfo=None), last_id))
        query = query.order_by(GrantRow.created_at.desc(), GrantRow.id.desc()).limit(limit + 1)
        async with self.db.session() as s:
            rows = list((await s.scalars(query)).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return [to_grant(r) for r in rows], next_cursor

    async def in_state(
        self,
        *,
        state: GrantState,
        app_id: str | None = None,
        guild_id: str | None = None,
        after: str = "",
        limit: int = 500,
    ) -> builtins.list[Grant]:
        """Grants in one state in id order, a batch after ``after`` (sync walks them all this way)."""
        where = [GrantRow.state == state.value, GrantRow.id > after]
        if app_id is not None:
            where.append(GrantRow.app_id == app_id)
        if guild_id is not None:
            where.append(GrantRow.guild_id == guild_id)
        return await self._select(*where, order=GrantRow.id, limit=limit)

    async def count(self, *where: ColumnElement[bool]) -> int:
        async with self.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(GrantRow).where(*where))).scalar_one())

    async def ending_within(self, *, now: datetime, until: datetime, limit: int = 500) -> builtins.list[Grant]:
        return await self._select(
            GrantRow.state == GrantState.ACTIVE.value,
            GrantRow.ends_at.is_not(None),
            GrantRow.ends_at > now,
            GrantRow.ends_at <= until,
            order=GrantRow.ends_at,
            limit=limit,
        )

    async def failures(self, *, limit: int = 500) -> builtins.list[Grant]:
        return await self._select(
            GrantRow.state == GrantState.END_FAILED.value,
            order=(GrantRow.updated_at.desc(), GrantRow.id.desc()),
            limit=limit,
        )

    async def states(self) -> dict[str, int]:
        async with self.db.session() as s:
            rows = (await s.execute(select(GrantRow.state, func.count()).group_by(GrantRow.state))).all()
        return {str(state): int(n) for state, n in rows}

    async def due_count(self, *, now: datetime) -> int:
        return await self.count(
            GrantRow.state == GrantState.ACTIVE.value, GrantRow.ends_at.is_not(None), GrantRow.ends_at <= now
        )

    # -- writes -----------------------------------------------------------------------------------------------
    async def insert(self, grant: Grant, *, lease_token: str | None = None) -> Grant:
        """Write a new grant and its ``grant.started``. GrantConflictError when a unique rule stands in the way."""
        row = GrantRow(
            id=grant.id,
            app_id=grant.app_id,
            guild_id=grant.guild_id,
            user_id=grant.user_id,
            roles=roles_json(grant.roles),
            roles_preexisting=roles_json(grant.roles_preexisting),
            state=grant.state.value,
            starts_at=grant.starts_at,
            ends_at=grant.ends_at,
            on_end=grant.on_end.value,
            external_ref=grant.external_ref,
            source=grant.source,
            link_id=grant.link_id,
            record_id=grant.record_id,
            absent_since=grant.absent_since,
            revision=1,
            as_of=grant.as_of,
            created_at=grant.created_at,
            updated_at=grant.updated_at,
            tries=0,
            reminders="[]",
            lease_token=lease_token,
            lease_until=utcnow() + timedelta(seconds=LEASE_SECONDS) if lease_token else None,
        )
        try:
            async with self.db.session() as s:
                s.add(row)
                await s.flush()
                await add_event(s, app_id=grant.app_id, type="grant.started", data=grant.as_json())
                await s.commit()
        except IntegrityError as exc:
            raise GrantConflictError(str(exc.orig)[:200]) from None
        return replace(grant, revision=1)

    async def change(
        self,
        grant_id: str,
        *,
        values: dict[str, Any],
        event: str | None,
        extra: dict[str, Any] | None = None,
        lease_token: str | None = None,
        release: bool = False,
        bump: bool = True,
    ) -> Grant | None:
        """Update one grant (``values``: column -> value), bump its revision and write ``event`` (the grant's
        JSON with ``extra``) in one transaction. With ``lease_token``: only while that lease is still held
        (None otherwise: another worker took it over, and nothing is written). ``release``: give the lease up."""
        values = dict(values)
        now = utcnow()
        if bump:
            values["revision"] = GrantRow.revision + 1
            values["updated_at"] = now
        if release:
            values["lease_token"] = None
            values["lease_until"] = None
        for name in ("roles", "roles_preexisting"):
            if isinstance(values.get(name), tuple):
                values[name] = roles_json(values[name])
        for name in ("state", "on_end", "end_reason", "end_action"):
            if values.get(name) is not None and not isinstance(values[name], str):
                values[name] = str(values[name])
        statement = update(GrantRow).where(GrantRow.id == grant_id).values(values)
        if lease_token is not None:
            statement = statement.where(GrantRow.lease_token == lease_token)
        statement = statement.execution_options(synchronize_session=False)
        async with self.db.session() as s:
            result = await s.execute(statement)
            if getattr(result, "rowcount", 0) != 1:
                await s.rollback()
                return None
            row = (
                await s.scalars(
                    select(GrantRow).where(GrantRow.id == grant_id).execution_options(populate_existing=True)
                )
            ).one()
            grant = to_grant(row)
            if event is not None:
                await add_event(s, app_id=grant.app_id, type=event, data={**grant.as_json(), **(extra or {})})
            await s.commit()
        return grant

    async def claim(self, grant_id: str, *, token: str, seconds: float = LEASE_SECONDS) -> GrantRow | None:
        """Take one grant's lease if it is free: the row as it is now, or None when another holds it."""
        now = utcnow()
        statement = (
            update(GrantRow)
            .where(GrantRow.id == grant_id, or_(GrantRow.lease_until.is_(None), GrantRow.lease_until < now))
            .values(lease_token=token, lease_until=now + timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as s:
            result = await s.execute(statement)
            if getattr(result, "rowcount", 0) != 1:
                await s.rollback()
                return None
            row = (
                await s.scalars(
                    select(GrantRow).where(GrantRow.id == grant_id).execution_options(populate_existing=True)
                )
            ).one()
            await s.commit()
        return row

    async def claim_due(self, *, token: str, limit: int, seconds: float = LEASE_SECONDS) -> builtins.list[GrantRow]:
        """Claim up to ``limit`` due grants (active, ``ends_at`` past, not held back, lease free), soonest first,
        in one statement (module docstring)."""
        now = utcnow()
        due = (
            select(GrantRow.id)
            .where(
                GrantRow.state == GrantState.ACTIVE.value,
                GrantRow.ends_at.is_not(None),
                GrantRow.ends_at <= now,
                or_(GrantRow.next_try_at.is_(None), GrantRow.next_try_at <= now),
                or_(GrantRow.lease_until.is_(None), GrantRow.lease_until < now),
            )
            .order_by(GrantRow.ends_at)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(GrantRow)
            .where(GrantRow.id.in_(due.scalar_subquery()))
            .values(lease_token=token, lease_until=now + timedelta(seconds=seconds))
            .returning(GrantRow.id)
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as s:
            ids = [str(i) for i in (await s.scalars(statement)).all()]
            await s.commit()
            if not ids:
                return []
            rows = (
                await s.scalars(
                    select(GrantRow)
                    .where(GrantRow.id.in_(ids), GrantRow.lease_token == token)
                    .order_by(GrantRow.ends_at)
                    .execution_options(populate_existing=True)
                )
            ).all()
        return list(rows)

    async def renew(self, ids: builtins.list[str], *, token: str, seconds: float = LEASE_SECONDS) -> int:
        """Push the lease of the grants still held with ``token`` ``seconds`` ahead."""
        if not ids:
            return 0
        statement = (
            update(GrantRow)
            .where(GrantRow.id.in_(ids), GrantRow.lease_token == token)
            .values(lease_until=utcnow() + timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as s:
            result = await s.execute(statement)
            await s.commit()
        return int(getattr(result, "rowcount", 0))

    async def release_all(self, ids: builtins.list[str], *, token: str) -> int:
        """Give up the leases still held with ``token`` (a worker stopping: others take the grants at once)."""
        if not ids:
            return 0
        statement = (
            update(GrantRow)
            .where(GrantRow.id.in_(ids), GrantRow.lease_token == token)
            .values(lease_token=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as s:
            result = await s.execute(statement)
            await s.commit()
        return int(getattr(result, "rowcount", 0))

    async def release(self, grant_id: str, *, token: str, values: dict[str, Any] | None = None) -> bool:
        """Give a lease up without a change worth a revision (``values``: the retry's ``next_try_at``, ``tries``,
        a pending ``end_reason`` or ``ends_at`` of a revoke whose end is retried)."""
        statement = (
            update(GrantRow)
            .where(GrantRow.id == grant_id, GrantRow.lease_token == token)
            .values({**(values or {}), "lease_token": None, "lease_until": None})
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as s:
            result = await s.execute(statement)
            await s.commit()
        return int(getattr(result, "rowcount", 0)) == 1

    async def remind_candidates(self, *, now: datetime, horizon: timedelta) -> builtins.list[tuple[Grant, str]]:
        """Active grants ending within ``horizon``, each with its ``reminders`` as stored."""
        query = select(GrantRow).where(
            GrantRow.state == GrantState.ACTIVE.value,
            GrantRow.ends_at.is_not(None),
            GrantRow.ends_at > now,
            GrantRow.ends_at <= now + horizon,
        )
        async with self.db.session() as s:
            rows = (await s.scalars(query.order_by(GrantRow.ends_at).limit(1000))).all()
        return [(to_grant(r), r.reminders) for r in rows]

    async def remind(self, grant: Grant, *, stored: str, offsets: builtins.list[int], ends_in: int) -> bool:
        """Record that the reminders at ``offsets`` were emitted, and emit one ``grant.ending_soon``: only if
        ``reminders`` is still ``stored`` (another worker that got there first wins; no revision: nothing about
        the grant changed)."""
        statement = (
            update(GrantRow)
            .where(
                and_(
                    GrantRow.id == grant.id,
                    GrantRow.reminders == stored,
                    GrantRow.state == GrantState.ACTIVE.value,
                )
            )
            .values(reminders=json.dumps(sorted(offsets)))
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as s:
            result = await s.execute(statement)
            if getattr(result, "rowcount", 0) != 1:
                await s.rollback()
                return False
            await add_event(
                s, app_id=grant.app_id, type="grant.ending_soon", data={**grant.as_json(), "ends_in": ends_in}
            )
            await s.commit()
        return True
