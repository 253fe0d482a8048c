"""What a running service holds: settings, database, repositories, the Discord adapter, the quota counter."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from guildgate.core.errors import QuotaExceededError, VelocityCappedError
from guildgate.core.secret import derive_key
from guildgate.discord.guilds import DiscordLookups
from guildgate.discord.oauth import DiscordConsent
from guildgate.discord.ratelimit import Limiter, Stores, Windows
from guildgate.discord.rest import DiscordRest
from guildgate.settings import Settings
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.links import LinkRepo
from guildgate.store.repos import AppRepo, KeyInfo, KeyRepo, RecordRepo
from guildgate.web import metrics


@dataclass
class Quotas:
    """Per-API-key requests per minute, in a sliding 60 s window, shared by every worker (this process's
    windows, or Redis's)."""

    windows: Windows

    async def take(self, key: KeyInfo) -> None:
        if key.quota_per_minute is None:
            return
        wait = await self.windows.window_take(f"quota:{key.id}", key.quota_per_minute, 60.0)
        if wait is not None:
            raise QuotaExceededError(f"{key.quota_per_minute} requests per minute", retry_after=max(wait, 0.001))

    async def used(self, key_id: str) -> int:
        return await self.windows.window_count(f"quota:{key_id}", 60.0)


STARTS_PER_JOIN = 10  # consent flows a link may start per minute, per join its cap allows


@dataclass
class Caps:
    """The operator's velocity caps (core.ports.JoinCaps): joins per minute to one server, and through one link,
    in sliding 60 s windows shared by every worker. 0 turns a cap off. A link may also start at most
    STARTS_PER_JOIN times its join cap of consent flows a minute (each writes a sign-in state and counts as
    sent to Discord; many are abandoned, so the headroom), so that a flood of starts on a leaked link stays
    bounded."""

    windows: Windows
    per_guild: int
    per_link: int

    async def take(self, *, guild_id: str, link_id: str | None) -> None:
        if self.per_guild:
            wait = await self.windows.window_take(f"cap-guild:{guild_id}", self.per_guild, 60.0)
            if wait is not None:
                raise VelocityCappedError(
                    f"{self.per_guild} joins per minute to this server", retry_after=max(wait, 0.001)
                )
        if link_id is not None and self.per_link:
            wait = await self.windows.window_take(f"cap-link:{link_id}", self.per_link, 60.0)
            if wait is not None:
                raise VelocityCappedError(
                    f"{self.per_link} joins per minute through this link", retry_after=max(wait, 0.001)
                )

    async def take_start(self, link_id: str) -> float | None:
        """Count one consent flow started through a link: None when under its cap, else seconds to wait."""
        if not self.per_link:
            return None
        wait = await self.windows.window_take(f"cap-start:{link_id}", self.per_link * STARTS_PER_JOIN, 60.0)
        return None if wait is None else max(wait, 0.001)


@dataclass
class Services:
    settings: Settings
    db: Database
    apps: AppRepo
    keys: KeyRepo
    records: RecordRepo
    discord: DiscordRest
    limiter: Limiter
    quotas: Quotas
    caps: Caps
    windows: Windows  # the sliding windows behind quotas and caps (admin login attempts use them too)
    hash_key: bytes
    links: LinkRepo
    consent: DiscordConsent
    lookups: DiscordLookups

    @classmethod
    def build(cls, settings: Settings) -> Services:
        db = Database(settings.database_url)
        secret_key = settings.secret_key_value()
        stores = Stores.open(settings.redis_url)
        limiter = Limiter(
            stores.backend,
            global_limit=settings.global_rate_limit,
            invalid_limit=settings.invalid_request_limit,
            observer=metrics.LimiterMetrics(),
        )
        discord = DiscordRest(
            api_base=settings.discord_api_base,
            limiter=limiter,
            egress_proxies=settings.egress_proxies,
            observer=metrics.CallMetrics(),
            cache=stores.cache,
            windows=stores.windows,
        )
        return cls(
            settings=settings,
            db=db,
            apps=AppRepo(db, SecretBox(secret_key)),
            keys=KeyRepo(db),
            records=RecordRepo(db),
            discord=discord,
            limiter=limiter,
            quotas=Quotas(stores.windows),
            caps=Caps(stores.windows, settings.guild_joins_per_minute, settings.link_joins_per_minute),
            windows=stores.windows,
            hash_key=derive_key(secret_key, b"request hash v1"),
            links=LinkRepo(db),
            consent=DiscordConsent(discord),
            lookups=DiscordLookups(discord),
        )

    async def close(self) -> None:
        await self.records.aclose()
        await self.discord.aclose()
        await self.limiter.backend.aclose()
        await self.db.dispose()

    def request_hash(self, canonical: bytes) -> str:
        return hmac.new(self.hash_key, canonical, hashlib.sha256).hexdigest()
