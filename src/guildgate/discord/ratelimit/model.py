"""The limiter's vocabulary: route keys, what an answer says about its limits, a backend's decisions and
permits, and the interface of the backend that holds the limiter's state (``memory.py``, ``redis.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

POLL = 0.02  # seconds between looks while waiting for answers in flight
HOLD = 35.0  # seconds a slot stays taken when its request never reports back (a crashed worker)
GLOBAL_WINDOW = 1.0  # Discord counts a bot's requests in any 1 s, as it receives them
# A request sent without an answer (a timeout, a dropped connection) may still reach Discord after the client
# gave up on it — a loaded server reads it late — so its global slot stays taken this long, not one second.
UNANSWERED_HOLD = 5.0
INVALID_WINDOW = 600.0
RATE_WINDOW = 2.0  # seconds over which a process measures its share of a bot's global limit
SLIDE_SHIFT = 0.25  # seconds a bucket's reset moment must move, at least, to show that the bucket slides


@dataclass(frozen=True, slots=True)
class RouteKey:
    identity: str  # a fingerprint of the auth ("bot:…", "bearer:…"), never the token
    method: str
    template: str  # the route template, e.g. "/guilds/{guild_id}/members/{user_id}"
    major: str = ""  # the major parameter's value (guild id), or ""
    route: str = field(init=False, repr=False, compare=False)  # "METHOD template", made once (read often)

    def __post_init__(self) -> None:
        object.__setattr__(self, "route", f"{self.method} {self.template}")


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, made on every call
class RateLimitHeaders:
    limit: int | None = None
    remaining: int | None = None
    reset_after: float | None = None
    bucket: str | None = None
    scope: str | None = None
    is_global: bool = False
    retry_after: float | None = None

    @property
    def complete(self) -> bool:
        return self.limit is not None and self.remaining is not None and self.reset_after is not None

    @classmethod
    def parse(cls, headers: Mapping[str, str], body: object | None = None) -> RateLimitHeaders:
        """What an answer says about its limits. A value that is not a finite number counts as absent (a hostile or
        broken answer's ``NaN`` or ``1e999`` must not reach the limiter's arithmetic); a wait is held to
        ``0..MAX_WAIT`` seconds and a count to ``0..MAX_COUNT``, so that one answer cannot stop a route or the bot
        for years, nor hand the shared store a time it refuses (Redis's PX)."""
        get = headers.get
        data = body if isinstance(body, dict) else {}
        said = data.get("retry_after")
        retry_after = _seconds(said) if isinstance(said, int | float) else None
        if retry_after is None:
            retry_after = _seconds(get("retry-after"))
        is_global = get("x-ratelimit-global", "").lower() == "true" or data.get("global") is True
        return cls(
            limit=_count(get("x-ratelimit-limit")),
            remaining=_count(get("x-ratelimit-remaining")),
            reset_after=_seconds(get("x-ratelimit-reset-after")),
            bucket=get("x-ratelimit-bucket"),
            scope=_scope(get("x-ratelimit-scope")),
            is_global=is_global,
            retry_after=retry_after,
        )


SCOPES = frozenset({"user", "global", "shared"})  # X-RateLimit-Scope's documented values


def _scope(raw: str | None) -> str | None:
    """The scope as documented, or "other": it labels a metric, and an answer must not make up new labels."""
    return raw if raw is None or raw in SCOPES else "other"


# The longest wait an answer can set: a Cloudflare ban's hour (discord-api-facts.md). Discord's documented waits
# are seconds to about 20 minutes (a shared limit's 1336.57); a longer one is a broken or hostile answer, and if
# Discord meant it, the cost of asking again after an hour is one more 429.
MAX_WAIT = 3600.0
MAX_COUNT = 1_000_000  # requests in one bucket's window: Discord's are tens


def _finite(raw: str | float | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _seconds(raw: str | float | None) -> float | None:
    value = _finite(raw)
    return None if value is None else min(max(value, 0.0), MAX_WAIT)


def _count(raw: str | None) -> int | None:
    value = _finite(raw)
    return None if value is None else int(min(max(value, 0.0), MAX_COUNT))


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, made on every call
class Decision:
    ok: bool
    reason: str = ""  # "bucket", "discovery", "inflight", "global", "paused", "invalid", "banned"
    wait: float = 0.0  # seconds until a retry can succeed (predicted)
    poll: bool = False  # the wait depends on answers in flight: look again soon
    bucket_id: str = ""
    at: float | None = None  # the backend's clock when it decided (seconds)


@dataclass(slots=True)
class Permit:
    key: RouteKey
    bucket_id: str
    id: str
    released: bool = False
    asked: float = 0.0  # this process's clock just before the backend was asked for the slot
    granted: float | None = None  # the backend's clock when it granted the slot


def answered_by(permit: Permit, answered: float | None) -> float | None:
    """The latest the answer to ``permit``'s request can have come, on the backend's clock: it granted the
    slot after it was asked, so its grant instant plus the time this process saw pass between asking and the
    answer is never early. None when either instant is unknown.

    A slot counts in the global window until a second after this instant, not after the release reaches the
    backend: under load a release waits behind other work (an event loop's queue, a Redis connection), and a
    slot held for that wait is limit lost."""
    if answered is None or permit.granted is None:
        return None
    return permit.granted + max(answered - permit.asked, 0.0)


class Backend(Protocol):
    """Where limiter state lives: this process (MemoryBackend) or Redis, shared by every worker and host. The
    limiter's state only: quotas and caches have their own interfaces (``stores.py``)."""

    async def try_acquire(
        self, key: RouteKey, permit_id: str, *, global_limit: int, invalid_limit: int
    ) -> Decision: ...

    async def release(
        self,
        permit: Permit,
        headers: RateLimitHeaders | None,
        *,
        status: int | None,
        sent: bool,
        ban: bool,
        answered: float | None = None,
    ) -> None:
        """``answered``: the latest the answer can have come, on this backend's clock (``answered_by``); the
        release's own time when None."""
        ...

    async def invalid_used(self) -> int: ...

    async def global_used(self, identity: str) -> int: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...
