"""What a running service holds: settings, database, repositories, the Discord adapter, the quota counter."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from guildgate.core.errors import DiscordUnavailableError, QuotaExceededError, ReadsExceededError, VelocityCappedError
from guildgate.core.secret import derive_key
from guildgate.discord.guilds import DiscordLookups
from guildgate.discord.oauth import DiscordConsent
from guildgate.discord.ratelimit import Limiter, Stores, Windows
from guildgate.discord.ratelimit.shares import InvalidShares
from guildgate.discord.rest import DiscordRest
from guildgate.services.webhooks import WebhookService
from guildgate.settings import Settings
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.links import LinkRepo
from guildgate.store.repos import AppRepo, KeyInfo, KeyRepo, RecordRepo
from guildgate.web import metrics


@dataclass
class Quotas:
    """Per-API-key joins per minute (the key's own quota) and reads per minute (``GUILDGATE_READS_PER_MINUTE``,
    every key: record and usage reads), each in a sliding 60 s window shared by every worker (this process's
    windows, or Redis's)."""

    windows: Windows
    reads_per_minute: int = 120

    async def take(self, key: KeyInfo) -> None:
        if key.quota_per_minute is None:
            return
        wait = await self.windows.window_take(f"quota:{key.id}", key.quota_per_minute, 60.0)
        if wait is not None:
            raise QuotaExceededError(f"{key.quota_per_minute} requests per minute", retry_after=max(wait, 0.001))

    async def used(self, key_id: str) -> int:
        return await self.windows.window_count(f"quota:{key_id}", 60.0)

    async def take_read(self, key: KeyInfo) -> None:
        """Count one read: at most a sixth of the reads per minute in any 10 s, so no 60 s holds more than the
        limit, and a burst of readers cannot take a whole minute's reads at once (against the database, while
        joins wait for it). Under 6 a minute: the limit in any 60 s. Without the shared store (Redis down) reads are
        not limited: they need only the database, unlike the joins, which fail closed."""
        per, window = (
            (self.reads_per_minute // 6, 10.0) if self.reads_per_minute >= 6 else (self.reads_per_minute, 60.0)
        )
        try:
            wait = await self.windows.window_take(f"reads:{key.id}", per, window)
        except DiscordUnavailableError:  # Redis is down: reads need only the database, so they go on unlimited
            return
        if wait is not None:
            raise ReadsExceededError(
                f"{self.reads_per_minute} reads per minute, at most {per} in {window:g} s", retry_after=max(wait, 0.001)
            )


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
    shares: InvalidShares  # each key's (and the links') share of the invalid-request budget
    windows: Windows  # the sliding windows behind quotas and caps (admin login attempts use them too)
    hash_key: bytes
    links: LinkRepo
    consent: DiscordConsent
    lookups: DiscordLookups
    webhooks: WebhookService

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
            quotas=Quotas(stores.windows, settings.reads_per_minute),
            caps=Caps(stores.windows, settings.guild_joins_per_minute, settings.link_joins_per_minute),
            shares=InvalidShares(
                stores.windows, limit=settings.invalid_request_limit, share=settings.invalid_request_share
            ),
            windows=stores.windows,
            hash_key=derive_key(secret_key, b"request hash v1"),
            links=LinkRepo(db),
            consent=DiscordConsent(discord),
            lookups=DiscordLookups(discord),
            webhooks=WebhookService(db, SecretBox(secret_key), settings),
        )

    async def close(self) -> None:
        await self.records.aclose()
        await self.discord.aclose()
        await self.limiter.backend.aclose()
        await self.db.dispose()

    def request_hash(self, canonical: bytes) -> str:
        return hmac.new(self.hash_key, canonical, hashlib.sha256).hexdigest()
