"""API keys: stored as their SHA-256 only. Every request reads its key, so a key found valid is remembered in
the process for ``KEY_CACHED_FOR`` seconds; revoking it through this process forgets it at once. A key revoked
elsewhere (another worker, the CLI, another host) is refused by this process at most ``KEY_CACHED_FOR``
seconds after the revocation is committed (docs/security.md)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import Any

from sqlalchemy import Table, bindparam, select

from guildgate.core.secret import Secret
from guildgate.store.base import NotFoundError, add_for_app, checked_name, could_be_id
from guildgate.store.crypto import hash_api_key, new_api_key
from guildgate.store.db import Database
from guildgate.store.models import ApiKeyRow, utcnow

KEY_CACHED_FOR = 5.0  # seconds a key found valid is taken without reading the database again
KEYS_CACHED = 10_000  # keys remembered at most; past that, the expired ones are dropped (or all, if none is)

_KEYS: Table = ApiKeyRow.__table__  # type: ignore[assignment]
_BY_HASH = select(_KEYS).where(_KEYS.c.key_hash == bindparam("digest"))


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    app_id: str
    name: str | None
    prefix: str
    quota_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None


class KeyRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._valid: dict[str, tuple[float, KeyInfo]] = {}  # key hash -> (valid until, monotonic; the key)
        self._revocations = 0  # revocations made through this process

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
        """The key's details if it exists and is not revoked, else None."""
        digest = hash_api_key(key)
        now = monotonic()  # taken before the read: the entry expires at most KEY_CACHED_FOR after it
        cached = self._valid.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        revocations = self._revocations
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(_BY_HASH, {"digest": digest})).first()
        if row is None or row.revoked_at is not None:
            self._valid.pop(digest, None)
            return None
        info = _key_info(row)
        if revocations == self._revocations:  # else a revocation came while reading: that read may predate it
            self._remember(digest, info, now + KEY_CACHED_FOR)
        return info

    def _remember(self, digest: str, info: KeyInfo, until: float) -> None:
        if len(self._valid) >= KEYS_CACHED and digest not in self._valid:
            now = monotonic()
            self._valid = {d: entry for d, entry in self._valid.items() if entry[0] > now}
            if len(self._valid) >= KEYS_CACHED:
                self._valid.clear()
        self._valid[digest] = (until, info)

    async def list(self) -> list[KeyInfo]:
        async with self.db.session() as s:
            rows = (await s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))).all()
        return [_key_info(r) for r in rows]

    async def revoke(self, key_id: str) -> KeyInfo:
        if not could_be_id(key_id):
            raise NotFoundError(f"no API key with id {key_id!r}")
        async with self.db.session() as s:
            row = await s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"no API key with id {key_id}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            await s.commit()
        self._revocations += 1
        self._valid = {d: entry for d, entry in self._valid.items() if entry[1].id != key_id}
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
