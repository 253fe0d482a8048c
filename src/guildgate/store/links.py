"""Join links and the OAuth2 states of their consent flows. Uses and states change with single conditional
UPDATEs, so several workers (or hosts on one PostgreSQL) can never overshoot ``max_uses`` or use a state twice."""

from __future__ import annotations

import builtins
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, func, or_, select, update

from guildgate.core.links import Link, LinkRole
from guildgate.store.base import NotFoundError, add_for_app, could_be_id
from guildgate.store.db import Database
from guildgate.store.events import add_event_sync
from guildgate.store.models import LinkRow, OAuthStateRow, RecordRow, utcnow

_LINKS: Table = LinkRow.__table__  # type: ignore[assignment]
_STATES: Table = OAuthStateRow.__table__  # type: ignore[assignment]
# A started flow's signed state is dead after ten minutes (web/links/flow.py): its row is kept an hour, and every
# PRUNE_STATES_EVERY flows a process starts, the older rows go (a link opened over and over, or flooded, keeps
# an hour's rows, not every one since the last ``guildgate records prune``).
STATES_KEPT_FOR = timedelta(hours=1)
PRUNE_STATES_EVERY = 200


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


class LinkRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._starts = 0

    async def create(
        self,
        *,
        app_id: str,
        guild_id: str,
        guild_name: str | None,
        guild_icon: str | None,
        roles: builtins.list[LinkRole],
        title: str | None,
        max_uses: int | None,
        expires_at: datetime | None,
    ) -> Link:
        row = LinkRow(
            id="lnk_" + secrets.token_hex(6),
            slug=secrets.token_urlsafe(9),
            app_id=app_id,
            guild_id=guild_id,
            guild_name=guild_name,
            guild_icon=guild_icon,
            roles=json.dumps([{"id": r.id, "name": r.name} for r in roles]),
            title=title,
            max_uses=max_uses,
            uses=0,
            opens=0,
            sends=0,
            expires_at=expires_at,
            created_at=utcnow(),
        )
        await add_for_app(self.db, row, app_id=app_id)
        return _link(row)

    async def list(self, *, app_id: str | None = None) -> builtins.list[Link]:
        query = select(LinkRow).order_by(LinkRow.created_at.desc())
        if app_id is not None:
            if not could_be_id(app_id):
                return []
            query = query.where(LinkRow.app_id == app_id)
        async with self.db.session() as s:
            return [_link(r) for r in (await s.scalars(query)).all()]

    async def get(self, id_or_slug: str, *, app_id: str | None = None) -> Link:
        if not could_be_id(id_or_slug):
            raise NotFoundError(f"no link with id {id_or_slug[:64]!r}")
        async with self.db.session() as s:
            row = await s.scalar(select(LinkRow).where(or_(LinkRow.id == id_or_slug, LinkRow.slug == id_or_slug)))
        if row is None or (app_id is not None and row.app_id != app_id):
            raise NotFoundError(f"no link with id {id_or_slug}")
        return _link(row)

    async def disable(self, id_or_slug: str, *, app_id: str | None = None) -> Link:
        link = await self.get(id_or_slug, app_id=app_id)
        await self._run(
            update(_LINKS).where(_LINKS.c.id == link.id, _LINKS.c.disabled_at.is_(None)).values(disabled_at=utcnow())
        )
        return await self.get(link.id)

    async def opened(self, link_id: str) -> None:
        await self._run(update(_LINKS).where(_LINKS.c.id == link_id).values(opens=_LINKS.c.opens + 1))

    async def start_flow(self, link_id: str, *, count: bool = True) -> str:
        """A new single-use nonce for a consent flow of this link; ``count``: counted as 'sent to Discord' (a
        visitor's first start, web/links/consent.py)."""
        nonce = secrets.token_urlsafe(24)
        self._starts += 1
        prune = self._starts % PRUNE_STATES_EVERY == 0

        def fn(conn: Any) -> None:
            now = utcnow()
            conn.execute(_STATES.insert().values(nonce=nonce, link_id=link_id, created_at=_naive(now)))
            if count:
                conn.execute(update(_LINKS).where(_LINKS.c.id == link_id).values(sends=_LINKS.c.sends + 1))
            if prune:
                conn.execute(_STATES.delete().where(_STATES.c.created_at < _naive(now - STATES_KEPT_FOR)))

        await self.db.run(fn)
        return nonce

    async def use_state(self, nonce: str, *, max_age: timedelta) -> str | None:
        """Mark the nonce used. Its link id when it was unused and young enough; None when unknown, used or old."""
        oldest = _naive(utcnow() - max_age)

        def fn(conn: Any) -> str | None:
            done = conn.execute(
                update(_STATES)
                .where(_STATES.c.nonce == nonce, _STATES.c.used_at.is_(None), _STATES.c.created_at >= oldest)
                .values(used_at=_naive(utcnow()))
            )
            if done.rowcount != 1:
                return None
            value = conn.execute(select(_STATES.c.link_id).where(_STATES.c.nonce == nonce)).scalar()
            return str(value) if value is not None else None

        return await self.db.run(fn)

    async def state_used(self, nonce: str) -> bool:
        """Whether this nonce's flow already came back (read only)."""
        query = select(_STATES.c.used_at).where(_STATES.c.nonce == nonce)
        return await self.db.run(lambda conn: conn.execute(query).scalar() is not None)

    async def claim_use(self, link_id: str) -> bool:
        """Take one use of the link if it is usable now: enabled, not expired, uses left. Atomic."""
        now = _naive(utcnow())
        statement = (
            update(_LINKS)
            .where(
                _LINKS.c.id == link_id,
                _LINKS.c.disabled_at.is_(None),
                or_(_LINKS.c.expires_at.is_(None), _LINKS.c.expires_at > now),
                or_(_LINKS.c.max_uses.is_(None), _LINKS.c.uses < _LINKS.c.max_uses),
            )
            .values(uses=_LINKS.c.uses + 1)
            .returning(_LINKS.c.uses, _LINKS.c.max_uses, _LINKS.c.app_id, _LINKS.c.guild_id)
        )
        return await self.db.run(lambda conn: _claimed(conn, statement, link_id))

    async def release_use(self, link_id: str) -> None:
        """Give a claimed use back (the person did not get in)."""
        await self._run(update(_LINKS).where(_LINKS.c.id == link_id, _LINKS.c.uses > 0).values(uses=_LINKS.c.uses - 1))

    async def outcomes(self, link_ids: builtins.list[str]) -> dict[str, dict[str, int]]:
        """Per link: record count by outcome code (the end of the funnel)."""
        if not link_ids:
            return {}
        query = (
            select(RecordRow.link_id, RecordRow.code, func.count())
            .where(RecordRow.link_id.in_(link_ids))
            .group_by(RecordRow.link_id, RecordRow.code)
        )
        async with self.db.session() as s:
            rows = (await s.execute(query)).all()
        found: dict[str, dict[str, int]] = {}
        for link_id, code, count in rows:
            found.setdefault(str(link_id), {})[code or "pending"] = int(count)
        return found

    async def prune_states(self, *, older_than: timedelta) -> int:
        cutoff = _naive(utcnow() - older_than)
        return int(
            await self.db.run(lambda c: c.execute(_STATES.delete().where(_STATES.c.created_at < cutoff)).rowcount)
        )

    async def _run(self, statement: Any) -> None:
        await self.db.run(lambda conn: conn.execute(statement))


def _claimed(conn: Connection, statement: Any, link_id: str) -> bool:
    """Run the claim; the use that reaches ``max_uses`` writes ``link.used_up`` in its transaction."""
    row = conn.execute(statement).first()
    if row is None:
        return False
    if row.max_uses is not None and row.uses >= row.max_uses:
        data = {"link_id": link_id, "app_id": row.app_id, "guild_id": row.guild_id, "uses": row.uses}
        add_event_sync(conn, app_id=row.app_id, type="link.used_up", data=data)
    return True


def _link(row: LinkRow) -> Link:
    roles = tuple(LinkRole(id=str(r["id"]), name=str(r.get("name") or r["id"])) for r in json.loads(row.roles or "[]"))
    return Link(
        id=row.id,
        slug=row.slug,
        app_id=row.app_id,
        guild_id=row.guild_id,
        guild_name=row.guild_name,
        guild_icon=row.guild_icon,
        roles=roles,
        title=row.title,
        max_uses=row.max_uses,
        uses=row.uses,
        opens=row.opens,
        sends=row.sends,
        expires_at=row.expires_at,
        disabled_at=row.disabled_at,
        created_at=row.created_at,
    )
