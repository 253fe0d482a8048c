"""Quotas and caches beside the limiter, each with its own small interface, in this process or in Redis.

* ``Windows``: uses counted in sliding windows — the per-key joins and reads per minute, the velocity caps, admin
  login attempts, the invite-lookup budget, each key's share of the invalid-request budget (``shares.py``: a use
  taken under a name of its own can be given back).
* ``Cache``: short-lived values — the invite cache and the memory of refused tokens.

With Redis they share the limiter backend's connection pool (``Stores.open``), under the same key prefix, so
every worker on every host sees the same counts; Redis ``TIME`` is their clock. Without Redis they live in
this process. If Redis fails, they fail closed like the limiter: ``DiscordUnavailableError``.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from guildgate.discord.ratelimit.memory import MAX_BUCKETS, MemoryBackend
from guildgate.discord.ratelimit.model import Backend
from guildgate.discord.ratelimit.redis import NOW, RedisBackend, unavailable


class Windows(Protocol):
    async def window_take(self, key: str, limit: int, window: float, *, use: str | None = None) -> float | None:
        """Take one use in a sliding ``window`` (seconds) of at most ``limit``: None when taken, else seconds until
        one is free. ``use``: a name for it, unique, to give it back with ``window_give_back``."""
        ...

    async def window_give_back(self, key: str, use: str) -> None:
        """Forget the use taken as ``use`` (nothing if it is gone)."""
        ...

    async def window_count(self, key: str, window: float) -> int:
        """Uses taken in the last ``window`` seconds."""
        ...


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Stores:
    backend: Backend
    windows: Windows
    cache: Cache

    @classmethod
    def open(cls, redis_url: str | None) -> Stores:
        """The limiter's backend, the windows and the cache: all in Redis (one connection pool) when a URL is
        given, else all in this process."""
        if not redis_url:
            return cls(backend=MemoryBackend(), windows=MemoryWindows(), cache=MemoryCache())
        backend = RedisBackend(redis_url)
        return cls(
            backend=backend,
            windows=RedisWindows(backend.redis, prefix=backend.prefix),
            cache=RedisCache(backend.redis, prefix=backend.prefix),
        )


class MemoryWindows:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}
        self._named: dict[tuple[str, str], float] = {}  # a use taken with a name: when
        self._longest = 0.0  # of the windows asked for: a window's entries older than this count nowhere
        self._sweep_at = MAX_BUCKETS  # map size that sets off the next sweep

    async def window_take(self, key: str, limit: int, window: float, *, use: str | None = None) -> float | None:
        now = self._clock()
        seen = self._windows.get(key)
        if seen is None:
            if len(self._windows) >= self._sweep_at:
                self._sweep(now)
            self._longest = max(self._longest, window)
            seen = self._windows[key] = deque()
        while seen and seen[0] <= now - window:
            seen.popleft()
        if len(seen) >= limit:
            return seen[0] + window - now
        seen.append(now)
        if use is not None:
            self._named[(key, use)] = now
        return None

    async def window_give_back(self, key: str, use: str) -> None:
        at = self._named.pop((key, use), None)
        seen = self._windows.get(key)
        if at is not None and seen is not None and at in seen:
            seen.remove(at)  # the uses taken at that same instant are alike: any one of them

    async def window_count(self, key: str, window: float) -> int:
        now = self._clock()
        seen = self._windows.get(key, deque())
        while seen and seen[0] <= now - window:
            seen.popleft()
        return len(seen)

    def _sweep(self, now: float) -> None:
        """A window per server and per link with a velocity cap: forget those with nothing left in any window. The
        next sweep comes when the map has grown by as many again as are left: each new key pays O(1) for them."""
        for key in [k for k, seen in self._windows.items() if not seen or seen[-1] <= now - self._longest]:
            del self._windows[key]
        for named in [n for n, at in self._named.items() if at <= now - self._longest]:
            del self._named[named]
        self._sweep_at = max(MAX_BUCKETS, 2 * len(self._windows))


class MemoryCache:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[float, str]] = {}
        self._sweep_at = MAX_BUCKETS

    async def get(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None or entry[0] <= self._clock():
            self._values.pop(key, None)
            return None
        return entry[1]

    async def set(self, key: str, value: str, ttl: float) -> None:
        now = self._clock()
        if len(self._values) >= self._sweep_at:
            for stale in [k for k, (until, _) in self._values.items() if until <= now]:
                del self._values[stale]
            self._sweep_at = max(MAX_BUCKETS, 2 * len(self._values))
        self._values[key] = (now + ttl, value)


WINDOW_TAKE = (
    NOW
    + """
local k, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
if redis.call('ZCARD', k) >= limit then
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  return tonumber(first[2]) + window - now
end
redis.call('ZADD', k, now, ARGV[3])
redis.call('PEXPIRE', k, window + 1000)
return -1
"""
)

WINDOW_COUNT = (
    NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
return redis.call('ZCARD', KEYS[1])
"""
)


class RedisWindows:
    """Sliding windows as sorted sets (one Lua script a take, atomic), keys ``<prefix>w:<key>``."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "gg:") -> None:
        self.prefix = prefix
        self._redis = redis
        self._take = redis.register_script(WINDOW_TAKE)
        self._count = redis.register_script(WINDOW_COUNT)

    async def _run(self, script: Any, key: str, args: list[Any]) -> int:
        try:
            return int(await script(keys=[self.prefix + "w:" + key], args=args))
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from None

    async def window_take(self, key: str, limit: int, window: float, *, use: str | None = None) -> float | None:
        wait = await self._run(self._take, key, [limit, int(window * 1000), use or uuid.uuid4().hex])
        return None if wait < 0 else max(wait, 1) / 1000

    async def window_give_back(self, key: str, use: str) -> None:
        try:
            await self._redis.zrem(self.prefix + "w:" + key, use)
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from None

    async def window_count(self, key: str, window: float) -> int:
        return await self._run(self._count, key, [int(window * 1000)])


class RedisCache:
    """Values with a time to live, keys ``<prefix>kv:<key>``."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "gg:") -> None:
        self.prefix = prefix
        self._redis = redis

    async def get(self, key: str) -> str | None:
        try:
            value = await self._redis.get(self.prefix + "kv:" + key)
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from None
        return None if value is None else str(value)

    async def set(self, key: str, value: str, ttl: float) -> None:
        try:
            await self._redis.set(self.prefix + "kv:" + key, value, px=max(int(ttl * 1000), 1))
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from None
