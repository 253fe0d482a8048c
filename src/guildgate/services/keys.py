"""API keys, as both the CLI and the dashboard create, list and revoke them."""

from __future__ import annotations

from typing import Any

from guildgate.core.secret import Secret
from guildgate.store.repos import KeyInfo, KeyRepo, NotFoundError

MAX_QUOTA = 1_000_000  # requests per minute: the most a key may be given


class KeyInputError(ValueError):
    """The key asked for cannot be made; the message names the field and why."""


async def create_key(
    keys: KeyRepo, *, app_id: str, name: str | None, quota_per_minute: int | None
) -> tuple[KeyInfo, Secret]:
    """A new key for an app; the secret is shown once. store.repos.NotFoundError when the app does not exist;
    ValueError (``KeyInputError`` among them) naming the field when a value is refused."""
    if quota_per_minute is not None and not 1 <= quota_per_minute <= MAX_QUOTA:
        raise KeyInputError(f"quota: a whole number from 1 to {MAX_QUOTA}")
    return await keys.create(app_id=app_id, name=name, quota_per_minute=quota_per_minute)


async def revoke_key(keys: KeyRepo, key: str) -> KeyInfo:
    """Revoke a key at once, named by its id (``key_…``) or by the key itself (``gg_…``, never shown back).
    store.repos.NotFoundError when none matches."""
    key_id = key
    if key.startswith("gg_"):
        found = await keys.authenticate(key)
        if found is None:
            raise NotFoundError("no API key in use matches the key given (it may be revoked already: see keys list)")
        key_id = found.id
    return await keys.revoke(key_id)


def key_dict(info: KeyInfo, *, secret: Secret | None = None) -> dict[str, Any]:
    """A key as listed: never the key itself, except ``secret`` (the new key, in ``key``) right after creating it."""
    return {
        "id": info.id,
        "prefix": info.prefix,
        "app_id": info.app_id,
        "name": info.name,
        "quota_per_minute": info.quota_per_minute,
        "created_at": info.created_at,
        "revoked_at": info.revoked_at,
    } | ({} if secret is None else {"key": secret.reveal()})
