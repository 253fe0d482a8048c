"""What a running service holds: settings, database, repositories, the Discord adapter, the quota counter."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from dataclasses import dataclass, field

from fastapi import Request

from guildgate.core.errors import InvalidApiKey, QuotaExceeded
from guildgate.discord.ratelimit import MemoryLimiter
from guildgate.discord.rest import DiscordRest
from guildgate.settings import Settings
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.repos import AppRepo, KeyInfo, KeyRepo, RecordRepo


@dataclass
class Quotas:
    """Per-API-key requests per minute, in a sliding 60 s window (this process)."""

    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def _window(self, key_id: str) -> deque[float]:
        seen = self._seen.setdefault(key_id, deque())
        cutoff = time.monotonic() - 60.0
        while seen and seen[0] <= cutoff:
            seen.popleft()
        return seen

    def take(self, key: KeyInfo) -> None:
        if key.quota_per_minute is None:
            return
        seen = self._window(key.id)
        if len(seen) >= key.quota_per_minute:
            retry = seen[0] + 60.0 - time.monotonic()
            raise QuotaExceeded(f"{key.quota_per_minute} requests per minute", retry_after=max(retry, 0.001))
        seen.append(time.monotonic())

    def used(self, key_id: str) -> int:
        return len(self._window(key_id))


@dataclass
class Services:
    settings: Settings
    db: Database
    apps: AppRepo
    keys: KeyRepo
    records: RecordRepo
    discord: DiscordRest
    limiter: MemoryLimiter
    quotas: Quotas
    hash_key: bytes

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.database_url)
        secret_key = settings.secret_key_value()
        limiter = MemoryLimiter(global_limit=settings.global_rate_limit, invalid_limit=settings.invalid_request_limit)
        discord = DiscordRest(
            api_base=settings.discord_api_base, limiter=limiter, egress_proxies=settings.egress_proxies
        )
        return cls(
            settings=settings,
            db=db,
            apps=AppRepo(db, SecretBox(secret_key)),
            keys=KeyRepo(db),
            records=RecordRepo(db),
            discord=discord,
            limiter=limiter,
            quotas=Quotas(),
            hash_key=hashlib.sha256(b"request-hash:" + secret_key.encode()).digest(),
        )

    async def close(self) -> None:
        await self.discord.aclose()
        await self.db.dispose()

    def request_hash(self, canonical: bytes) -> str:
        return hmac.new(self.hash_key, canonical, hashlib.sha256).hexdigest()


def services(request: Request) -> Services:
    svc = request.app.state.services
    assert isinstance(svc, Services)
    return svc


async def authenticate(request: Request) -> KeyInfo:
    value = request.headers.get("user-token", "").strip()
    if not value:
        raise InvalidApiKey("the User-Token header is missing")
    key = await services(request).keys.authenticate(value)
    if key is None:
        raise InvalidApiKey("unknown or revoked API key")
    return key
