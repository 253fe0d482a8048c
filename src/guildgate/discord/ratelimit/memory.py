"""The in-process backend: the same decisions as the Redis scripts, for one process (the default).

Times are seconds on an injectable monotonic clock, so the timing logic can be tested exactly."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from guildgate.discord.ratelimit.model import (
    GLOBAL_WINDOW,
    HOLD,
    INVALID_WINDOW,
    SLIDE_SHIFT,
    UNANSWERED_HOLD,
    Decision,
    Permit,
    RateLimitHeaders,
    RouteKey,
)

MAX_BUCKETS = 200_000
SLOTS_PRUNED_FROM = 64  # an identity's global slot map drops its expired slots at 64, 128, 256, … entries


@dataclass(slots=True)
class _Bucket:
    known: bool = False
    unlimited: bool = False
    limit: int = 1
    remaining: int = 1
    reset_at: float = 0.0
    inflight: dict[str, float] = field(default_factory=dict)  # permit id -> expiry
    expires: float = 0.0
    # A sliding bucket (learned, see ``learn``): a slot comes back every ``period`` s after ``since``.
    period: float = 0.0
    since: float = 0.0
    # The last answer's reset moment, as bounds: its request reached Discord between grant and answer.
    reset_lo: float = 0.0
    reset_hi: float = 0.0


def _live(slots: dict[str, float], now: float) -> int:
    for pid in [p for p, until in slots.items() if until <= now]:
        del slots[pid]
    return len(slots)


def _forgettable(bucket: _Bucket, now: float) -> bool:
    """Nothing in flight, and nothing that makes the next request wait: its time is up, or it is unlimited
    (a route answered without rate-limit headers — every user's Get Current User, with some Discords). Forgetting
    it costs at most a rediscovery: the next request on it goes alone and its answer teaches the bucket again."""
    return (bucket.expires <= now or bucket.unlimited) and not _live(bucket.inflight, now)


class MemoryBackend:
    release_never_suspends = True  # Limiter.release may call it without a shielding task

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._route_hash: dict[str, str] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._global: dict[str, dict[str, float]] = {}
        self._fly: dict[str, float] = {}
        self._invalid: deque[float] = deque()
        self._paused: dict[str, float] = {}
        self._banned_until = 0.0
        self._sweep_at = MAX_BUCKETS  # map size that sets off the next sweep (see _sweep)

    def _bucket_id(self, key: RouteKey) -> str:
        return f"{key.identity}:{self._route_hash.get(key.route, key.route)}:{key.major}"

    def _bucket(self, bucket_id: str, now: float) -> _Bucket:
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at or len(self._global) >= self._sweep_at:
                self._sweep(now)
            bucket = self._buckets[bucket_id] = _Bucket()
        return bucket

    def _sweep(self, now: float) -> None:
        for bid in [b for b, v in self._buckets.items() if _forgettable(v, now)]:
            del self._buckets[bid]
        # every user's token is an identity with its own global window: forget those with no slot left
        for identity in [i for i, slots in self._global.items() if not _live(slots, now)]:
            del self._global[identity]
        for identity in [i for i, until in self._paused.items() if until <= now]:  # global 429s, one per token
            del self._paused[identity]
        # A sweep looks at every entry. The next comes only when the maps have grown by as many again as are
        # left (and reached MAX_BUCKETS): however many must be kept, each new entry pays O(1) for the sweeps.
        largest = max(len(self._buckets), len(self._global))
        self._sweep_at = max(MAX_BUCKETS, 2 * largest)

    def _invalid_used(self, now: float) -> int:
        while self._invalid and self._invalid[0] <= now - INVALID_WINDOW:
            self._invalid.popleft()
        return len(self._invalid)

    async def try_acquire(self, key: RouteKey, permit_id: str, *, global_limit: int, invalid_limit: int) -> Decision:
        return self.decide(key, permit_id, global_limit=global_limit, invalid_limit=invalid_limit)

    def decide(self, key: RouteKey, permit_id: str, *, global_limit: int, invalid_limit: int) -> Decision:
        """``try_acquire`` without the coroutine: this backend never waits to decide (``Limiter.acquire`` asks
        it directly when nothing of this process is queued for the bucket). A refusal takes nothing."""
        now = self._clock()
        if self._banned_until > now:
            return Decision(ok=False, reason="banned", wait=self._banned_until - now)
        # len() of a slot map is an upper bound of what is live: the expired are swept only when it matters.
        used = self._invalid_used(now)
        if used + len(self._fly) >= invalid_limit and used + _live(self._fly, now) >= invalid_limit:
            wait = (self._invalid[0] + INVALID_WINDOW - now) if self._invalid else 1.0
            return Decision(ok=False, reason="invalid", wait=wait)
        paused = self._paused.get(key.identity, 0.0)
        if paused > now:
            return Decision(ok=False, reason="paused", wait=paused - now)
        bucket_id = self._bucket_id(key)
        bucket = self._bucket(bucket_id, now)
        placeholder = f"{key.identity}:{key.route}:{key.major}"
        # requests sent before the bucket's hash was learned still count against it
        early = self._buckets.get(placeholder) if placeholder != bucket_id else None
        inflight = len(bucket.inflight) + (len(early.inflight) if early is not None else 0)
        if inflight and (not bucket.known or (not bucket.unlimited and bucket.remaining - inflight <= 0)):
            inflight = _live(bucket.inflight, now) + (_live(early.inflight, now) if early is not None else 0)
        if not bucket.known:
            if inflight > 0:
                return Decision(ok=False, reason="discovery", wait=POLL_HINT, poll=True, bucket_id=bucket_id)
        elif not bucket.unlimited:
            if bucket.reset_at and now >= bucket.reset_at:
                bucket.remaining, bucket.reset_at, bucket.since = bucket.limit, 0.0, now
            if available(bucket, now) - inflight <= 0:
                if bucket.reset_at > now:
                    wait = bucket.reset_at - now
                    if bucket.period:  # the slot this request needs comes back before the bucket is full
                        wait = min(wait, bucket.since + (inflight - bucket.remaining + 1) * bucket.period - now)
                    return Decision(ok=False, reason="bucket", wait=wait, poll=inflight > 0, bucket_id=bucket_id)
                return Decision(ok=False, reason="inflight", wait=POLL_HINT, poll=True, bucket_id=bucket_id)
        expiry = now + HOLD
        full = self._global_full(key.identity, global_limit, now)
        if full is not None:
            return Decision(ok=False, reason="global", wait=full[0], poll=full[1], bucket_id=bucket_id)
        self._global.setdefault(key.identity, {})[permit_id] = expiry
        bucket.inflight[permit_id] = expiry
        bucket.expires = max(bucket.expires, expiry)
        self._fly[permit_id] = expiry
        return Decision(ok=True, bucket_id=bucket_id, at=now)

    def _global_full(self, identity: str, global_limit: int, now: float) -> tuple[float, bool] | None:
        """None when a global slot is free, else (wait, poll)."""
        slots = self._global.setdefault(identity, {})
        size = len(slots)
        if size >= SLOTS_PRUNED_FROM and not size & (size - 1):
            # At 64, 128, 256, … slots the expired go, whatever the limit: a user's token (its own identity) or a
            # bot under a high limit would otherwise keep every slot it ever had (a few per join, for good). Each
            # slot pays O(1) for these walks.
            size = _live(slots, now)
        if size < global_limit or _live(slots, now) < global_limit:
            return None
        first = min(slots.values())
        if first - now > UNANSWERED_HOLD:  # longer than a released slot is kept: the oldest is still in flight
            return POLL_HINT, True
        return first - now, False

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
        now = self._clock()
        # when the answer came: what it says about the bucket and the global window counts from then
        at = min(now, answered) if answered is not None else now
        key = permit.key
        self._fly.pop(permit.id, None)
        bucket = self._bucket(permit.bucket_id, now)
        bucket.inflight.pop(permit.id, None)
        slots = self._global.setdefault(key.identity, {})
        if sent and status is None:
            slots[permit.id] = now + UNANSWERED_HOLD  # no answer: it may yet arrive
        elif sent:
            # Discord received it at the latest when its answer came: it counts in its window until a second later.
            slots[permit.id] = at + GLOBAL_WINDOW
        else:
            slots.pop(permit.id, None)
        if ban:
            retry = headers.retry_after if headers and headers.retry_after else 0.0
            self._banned_until = max(self._banned_until, now + max(retry, 3600.0))
        if status in (401, 403) or (status == 429 and (headers is None or headers.scope != "shared")):
            self._invalid.append(now)
        if headers is None or status is None:
            if sent and bucket.known and not bucket.unlimited:
                bucket.remaining -= 1  # no answer: assume Discord counted it
            return
        if status == 429 and headers.is_global:
            pause = headers.retry_after if headers.retry_after is not None else 1.0
            self._paused[key.identity] = max(self._paused.get(key.identity, 0.0), at + pause)
            return
        target = bucket
        if headers.bucket:
            self._route_hash[key.route] = headers.bucket
            target = self._bucket(f"{key.identity}:{headers.bucket}:{key.major}", now)
        learn(target, headers, status, at, permit.granted)

    async def invalid_used(self) -> int:
        return self._invalid_used(self._clock())

    async def global_used(self, identity: str) -> int:
        return _live(self._global.get(identity, {}), self._clock())

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


POLL_HINT = 0.05


def available(bucket: _Bucket, now: float) -> int:
    """Slots the bucket has at ``now`` (before subtracting those in flight)."""
    if bucket.period and bucket.reset_at:
        return min(bucket.limit, bucket.remaining + int((now - bucket.since) / bucket.period + 1e-9))
    return bucket.remaining


def learn(target: _Bucket, h: RateLimitHeaders, status: int, now: float, granted: float | None = None) -> None:
    """What an answer teaches about its bucket (the Redis release script does the same). ``now``: when the
    answer came; ``granted``: when its request's slot was granted (it reached Discord in between)."""
    if h.complete:
        assert h.limit is not None and h.remaining is not None and h.reset_after is not None
        reset_at = now + h.reset_after
        reset_lo = (granted if granted is not None else now) + h.reset_after
        # Sliding or fixed? In a fixed window every answer names the same reset moment. This answer came before
        # the last one's reset (the same window, were it fixed), yet names a later reset: the bucket slides — a
        # slot comes back every reset_after / used (ratelimits.md). The move must be a good part of a slot's
        # period and at least SLIDE_SHIFT (more than any rounding of Reset-After to a tenth would explain), and
        # Reset-After must carry its milliseconds (a server that rounds it to whole seconds never proves it).
        used = h.limit - h.remaining
        if (
            target.known
            and used > 0
            and now < target.reset_lo
            and h.reset_after != int(h.reset_after)
            and reset_lo - target.reset_hi >= max(SLIDE_SHIFT, h.reset_after / used / 2)
        ):
            target.period = h.reset_after / used
        if target.period and target.reset_at:
            # sliding: take the answer when it shows no more room than was predicted for its time (an older
            # answer overtaken by a newer one shows more: the prediction stands)
            if h.remaining <= available(target, now):
                target.remaining, target.since = h.remaining, now
            if used > 0:
                target.period = h.reset_after / used
        elif not target.known or target.reset_at == 0.0 or reset_at > target.reset_at + 0.5:
            target.remaining, target.since = h.remaining, now  # a new window
        else:
            target.remaining = min(target.remaining, h.remaining)  # answers of one window arrive out of order
        target.reset_lo, target.reset_hi = reset_lo, reset_at
        target.limit = h.limit
        target.reset_at = max(target.reset_at, reset_at)
        target.known, target.unlimited = True, False
        target.expires = max(target.expires, reset_at + 60.0)
    elif status < 500 and status != 429 and not target.known:
        target.known, target.unlimited = True, True
        target.expires = now + 3600.0
    if status == 429 and h.scope != "shared":
        retry = h.retry_after if h.retry_after is not None else (h.reset_after or 1.0)
        target.known, target.unlimited = True, False
        target.remaining, target.period = 0, 0.0  # the model was wrong: wait the whole retry, slide no more
        target.reset_at = max(target.reset_at, now + retry)
        target.expires = max(target.expires, target.reset_at + 60.0)
