"""Apps: a Discord application's client id, name and its secrets, sealed at rest (store/crypto.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from guildgate.core.ports import AppCredentials
from guildgate.core.secret import Secret
from guildgate.store.base import NotFoundError, checked_name, could_be_id
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.models import AppRow, utcnow

CREDENTIALS_CACHED_FOR = 30.0  # seconds an app's opened secrets are kept in the process


@dataclass(frozen=True, slots=True)
class AppInfo:
    client_id: str
    name: str
    created_at: datetime


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
            raise NotFoundError(f"no app with client id {client_id!r}")
        async with self.db.session() as s:
            row = await s.get(AppRow, client_id)
        if row is None:
            raise NotFoundError(f"no app with client id {client_id}")
        creds = AppCredentials(
            client_id=row.client_id,
            client_secret=self.box.open(row.client_secret_enc),
            bot_token=self.box.open(row.bot_token_enc),
        )
        self._cache[client_id] = (time.monotonic() + CREDENTIALS_CACHED_FOR, creds)
        return creds
