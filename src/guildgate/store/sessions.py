"""Dashboard sessions held in the database: a row per logged-in browser, deleted at logout. The cookie carries
the session id (web/dashboard/session.py signs it); the row holds only its SHA-256, so the table names no usable
session."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, delete, select

from guildgate.store.db import Database
from guildgate.store.models import AdminSessionRow, utcnow

_SESSIONS: Table = AdminSessionRow.__table__  # type: ignore[assignment]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, *, lifetime: timedelta) -> str:
        """A new session id, valid for ``lifetime``; the expired rows go at the same time."""
        session_id = secrets.token_urlsafe(24)
        now = utcnow()

        def fn(conn: Any) -> None:
            conn.execute(_SESSIONS.delete().where(_SESSIONS.c.expires_at < now.replace(tzinfo=None)))
            conn.execute(
                _SESSIONS.insert().values(
                    id_hash=_hash(session_id),
                    created_at=now.replace(tzinfo=None),
                    expires_at=(now + lifetime).replace(tzinfo=None),
                )
            )

        await self.db.run(fn)
        return session_id

    async def active(self, session_id: str) -> bool:
        """Whether the session exists and has not expired."""
        now = utcnow().replace(tzinfo=None)

        def fn(conn: Any) -> bool:
            found = conn.execute(
                select(_SESSIONS.c.id_hash).where(
                    _SESSIONS.c.id_hash == _hash(session_id), _SESSIONS.c.expires_at >= now
                )
            ).first()
            return found is not None

        return await self.db.run(fn)

    async def end(self, session_id: str) -> None:
        await self.db.run(lambda conn: conn.execute(delete(_SESSIONS).where(_SESSIONS.c.id_hash == _hash(session_id))))
