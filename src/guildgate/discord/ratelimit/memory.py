"""The in-process limiter: one event loop's view of every bucket, the global limit and the invalid budget.

See the package docstring for the model. Time comes from an injectable monotonic clock so the timing logic
can be tested exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from guildgate.core.errors import DiscordUnavailable, RateLimited

INVALID_WINDOW = 600.0
GLOBAL_WINDOW = 1.05  # seconds: a little over 1 s, because requests sent evenly may arrive bunched
MAX_BUCKETS = 100_000


@dataclass(frozen=True, slots=True)
class RouteKey:
    identity: str  # a fingerprint of the auth, never the token
    method: str
    template: str  # the route template, e.g. "/guilds/{guild_id}/members/{user_id}"
    major: str = ""  # the major parameter's value (guild id), or ""

    @property
    def route(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    limit: int | None = None
    remaining: int | None = None
    reset_after: float | None = None
    bucket: str | None = None
    scope: str | None = None
    is_global: bool = False
    retry_after: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str], body: object | None = None) -> RateLimitHeaders:
        def num(name: str) -> float | None:
            raw = headers.get(name)
            try:
                return float(raw) if raw is not None else None
            except ValueError:
                return None

        limit, remaining = num("x-ratelimit-limit"), num("x-ratelimit-remaining")
        retry_after = None
        if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
            retry_after = float(body["retry_after"])
        elif num("retry-after") is not None:
            retry_after = num("retry-after")
        is_global = headers.get("x-ratelimit-global", "").lower() == "true" or (
            isinstance(body, dict) and body.get("global") is True
        )
        return cls(
            limit=int(limit) if limit is not None else None,
            remaining=int(remaining) if remaining is not None else None,
            reset_after=num("x-ratelimit-reset-after"),
            bucket=headers.get("x-ratelimit-bucket"),
            scope=headers.get("x-ratelimit-scope"),
            is_global=is_global,
            retry_after=retry_after,
        )


@dataclass(slots=True)
class _Bucket:
    known: bool = False
    unlimited: bool = False
    limit: int = 1
    remaining: int = 1
    reset_at: float = 0.0
    inflight: int = 0
    alias: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass(slots=True)
class Permit:
    key: RouteKey
    bucket_id: str
    released: bool = False


class MemoryLimiter:
    def __init__(
        self,
        *,
        global_limit: int = 50,
        invalid_limit: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.global_limit = global_limit
        self.invalid_limit = invalid_limit
        self._clock = clock
        self._route_hash: dict[str, str] = {}
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._sent: dict[str, deque[float]] = {}
        self._global_lock: dict[str, asyncio.Lock] = {}
        self._paused_until: dict[str, float] = {}
        self._invalid: deque[float] = deque()
        self._inflight_total = 0
        self._banned_until = 0.0
        self._bad_tokens: dict[str, tuple[float, object]] = {}
        self.waits: list[float] = []  # recent limiter waits, for metrics

    # ---- keys ---------------------------------------------------------------------------------------
    def _bucket_id(self, key: RouteKey) -> str:
        route_id = self._route_hash.get(key.route, key.route)
        return f"{key.identity}:{route_id}:{key.major}"

    def _bucket(self, bucket_id: str) -> _Bucket:
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            bucket = self._buckets[bucket_id] = _Bucket()
            if len(self._buckets) > MAX_BUCKETS:
                self._evict()
        else:
            self._buckets.move_to_end(bucket_id)
        return bucket

    def _evict(self) -> None:
        now = self._clock()
        for bucket_id in list(self._buckets)[: len(self._buckets) - MAX_BUCKETS + 1000]:
            b = self._buckets[bucket_id]
            if b.inflight == 0 and not b.lock.locked() and b.reset_at <= now:
                del self._buckets[bucket_id]

    # ---- guards -------------------------------------------------------------------------------------
    def bad_token(self, fingerprint: str) -> object | None:
        """What Discord said of this token (by fingerprint) when it refused it recently, else None."""
        entry = self._bad_tokens.get(fingerprint)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._bad_tokens[fingerprint]
            return None
        return entry[1]

    def mark_bad_token(self, fingerprint: str, refusal: object, seconds: float = 600.0) -> None:
        """Remember a refused token (a hash of it, never the token) so it is not sent again for a while."""
        if len(self._bad_tokens) > 100_000:
            now = self._clock()
            self._bad_tokens = {k: v for k, v in self._bad_tokens.items() if v[0] > now}
        self._bad_tokens[fingerprint] = (self._clock() + seconds, refusal)

    def invalid_used(self) -> int:
        cutoff = self._clock() - INVALID_WINDOW
        while self._invalid and self._invalid[0] <= cutoff:
            self._invalid.popleft()
        return len(self._invalid)

    def _check_open(self, *, counted: int = 0) -> None:
        """Refuse when banned, or when the invalid answers plus the requests in flight (``counted`` of them
        being this request's own) could reach the budget."""
        now = self._clock()
        if self._banned_until > now:
            raise DiscordUnavailable(
                "Discord has blocked this deployment (a ban answer was seen); not sending",
                http_status=503,
                retry_after=self._banned_until - now,
            )
        if self.invalid_used() + self._inflight_total - counted >= self.invalid_limit:
            retry = (self._invalid[0] + INVALID_WINDOW - now) if self._invalid else 1.0
            raise DiscordUnavailable(
                "the invalid-request budget is spent (401/403/429 answers in the last 10 minutes); "
                "not sending until it recovers",
                http_status=503,
                retry_after=max(retry, 1.0),
            )

    # ---- acquire / release --------------------------------------------------------------------------
    async def acquire(self, key: RouteKey, *, deadline: float) -> Permit:
        """Wait for a slot in the key's bucket and in the global window; raise RateLimited when the wait
        would pass ``deadline`` (a monotonic instant)."""
        self._check_open()
        start = self._clock()
        while True:
            bucket_id = self._bucket_id(key)
            bucket = self._bucket(bucket_id)
            while bucket.alias is not None:
                bucket_id = bucket.alias
                bucket = self._bucket(bucket_id)
            self._refuse_hopeless(bucket, deadline)
            try:
                async with asyncio.timeout(max(deadline - self._clock(), 0.0)):
                    await bucket.lock.acquire()
            except TimeoutError:
                raise RateLimited(
                    "queued behind other requests for this bucket until the deadline",
                    retry_after=max(bucket.reset_at - self._clock(), 1.0),
                ) from None
            try:
                if not await self._wait_bucket(bucket, deadline):
                    continue  # the bucket was learned under its hash meanwhile: queue there
                bucket.inflight += 1
                self._inflight_total += 1
                break
            finally:
                bucket.lock.release()
        permit = Permit(key=key, bucket_id=bucket_id)
        try:
            await self._wait_global(key.identity, deadline)
            self._check_open(counted=1)
        except BaseException:
            self.release(permit, None)
            raise
        self.waits.append(self._clock() - start)
        if len(self.waits) > 10_000:
            del self.waits[:5_000]
        return permit

    def _refuse_hopeless(self, bucket: _Bucket, deadline: float) -> None:
        """Answer at once when the bucket is spent and resets after the deadline (no queueing to find out)."""
        now = self._clock()
        if bucket.known and not bucket.unlimited and self._available(bucket, now) <= 0:
            reset_at = bucket.reset_at if bucket.reset_at > now else now
            if reset_at > deadline:
                raise RateLimited("the bucket resets after the deadline", retry_after=reset_at - now)

    async def _wait_bucket(self, bucket: _Bucket, deadline: float) -> bool:
        while True:
            now = self._clock()
            if bucket.alias is not None:
                return False
            if bucket.known and (bucket.unlimited or self._available(bucket, now) > 0):
                return True
            if not bucket.known and bucket.inflight == 0:
                return True
            # Wait for an answer (which may free or teach the bucket) or for the reset, whichever is first.
            until = bucket.reset_at if bucket.known and bucket.reset_at > now else deadline
            if bucket.known and bucket.inflight == 0 and until > deadline:
                raise RateLimited("the bucket resets after the deadline", retry_after=until - now)
            if now >= deadline:
                raise RateLimited(
                    "still waiting for a rate-limit slot at the deadline",
                    retry_after=max(bucket.reset_at - now, 1.0),
                )
            event = bucket.changed
            try:
                async with asyncio.timeout(max(min(until, deadline) - now, 0.0)):
                    await event.wait()
            except TimeoutError:
                pass

    def _available(self, bucket: _Bucket, now: float) -> int:
        if bucket.reset_at and now >= bucket.reset_at:
            bucket.remaining = bucket.limit
            bucket.reset_at = 0.0
        return bucket.remaining - bucket.inflight

    async def _wait_global(self, identity: str, deadline: float) -> None:
        lock = self._global_lock.setdefault(identity, asyncio.Lock())
        sent = self._sent.setdefault(identity, deque())
        async with lock:
            while True:
                now = self._clock()
                paused = self._paused_until.get(identity, 0.0)
                while sent and sent[0] <= now - GLOBAL_WINDOW:
                    sent.popleft()
                wait = 0.0
                if paused > now:
                    wait = paused - now
                elif len(sent) >= self.global_limit:
                    wait = sent[0] + GLOBAL_WINDOW - now
                if wait <= 0:
                    sent.append(now)
                    return
                if now + wait > deadline:
                    raise RateLimited("the global rate limit has no room before the deadline", retry_after=wait)
                await asyncio.sleep(wait)

    def release(
        self,
        permit: Permit,
        headers: RateLimitHeaders | None,
        *,
        status: int | None = None,
        ban: bool = False,
    ) -> None:
        """Give the slot back and learn from the answer (``headers`` None: nothing reached Discord)."""
        if permit.released:
            return
        permit.released = True
        self._inflight_total -= 1
        bucket = self._buckets.get(permit.bucket_id) or self._bucket(permit.bucket_id)
        bucket.inflight = max(bucket.inflight - 1, 0)
        now = self._clock()
        if ban:
            self._banned_until = max(
                self._banned_until, now + max(headers.retry_after or 0, 3600.0) if headers else now + 3600.0
            )
        if status in (401, 403) or (status == 429 and (headers is None or headers.scope != "shared")):
            self._invalid.append(now)
        if headers is not None and status is not None:
            self._learn(permit, bucket, headers, status, now)
        bucket.notify()

    def _learn(self, permit: Permit, bucket: _Bucket, h: RateLimitHeaders, status: int, now: float) -> None:
        if status == 429 and h.is_global:
            pause = h.retry_after if h.retry_after is not None else 1.0
            key = permit.key.identity
            self._paused_until[key] = max(self._paused_until.get(key, 0.0), now + pause)
            return
        target = bucket
        if h.bucket and self._route_hash.get(permit.key.route) != h.bucket:
            self._route_hash[permit.key.route] = h.bucket
            target_id = self._bucket_id(permit.key)
            target = self._bucket(target_id)
            if target is not bucket:
                bucket.alias = target_id
        if h.limit is not None and h.remaining is not None and h.reset_after is not None:
            reset_at = now + h.reset_after
            if not target.known or target.reset_at == 0.0 or reset_at > target.reset_at + 0.5:
                target.remaining = h.remaining
            else:
                target.remaining = min(target.remaining, h.remaining)
            target.limit = h.limit
            target.reset_at = max(target.reset_at, reset_at)
            target.known, target.unlimited = True, False
        elif status < 500 and status != 429 and not target.known:
            target.known, target.unlimited = True, True
        if status == 429 and h.scope != "shared":
            retry = h.retry_after if h.retry_after is not None else (h.reset_after or 1.0)
            target.known = True
            target.unlimited = False
            target.remaining = 0
            target.reset_at = max(target.reset_at, now + retry)
        if target is not bucket:
            target.notify()
