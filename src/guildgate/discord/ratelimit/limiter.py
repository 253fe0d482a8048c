"""The part of the limiter that runs in each process: acquire a permit before each Discord request (deadlines,
FIFO per bucket within the process, the bot's global gate, metrics), release it with the answer."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import time
from collections.abc import Callable
from typing import Protocol

from guildgate.core.errors import DiscordUnavailableError, RateLimitedError
from guildgate.discord.ratelimit.model import (
    POLL,
    RATE_WINDOW,
    Backend,
    Decision,
    Permit,
    RateLimitHeaders,
    RouteKey,
    answered_by,
)


class _Turn:
    """A FIFO lock (``asyncio.Lock``) that counts those waiting for it: a bucket's queue in this process, or a
    bot's global gate. The count says how long the queue is, and when the lock can be forgotten."""

    __slots__ = ("_lock", "waiting")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.waiting = 0

    def locked(self) -> bool:
        return self._lock.locked()

    async def acquire(self) -> None:
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._lock.release()

    @property
    def idle(self) -> bool:
        """Nobody holds it and nobody waits for it (one woken but not yet running still counts as waiting)."""
        return not self._lock.locked() and not self.waiting


class Heading:
    """A request between its precheck and its slot (identifying the user, writing its record): counted, so a
    newcomer's precheck sees every request of this process ahead of it, not only those already queued at the
    global gate. ``close`` when the slot is granted or the request gives up."""

    __slots__ = ("_counts", "identity", "open")

    def __init__(self, counts: dict[str, int], identity: str) -> None:
        self._counts, self.identity, self.open = counts, identity, True
        counts[identity] = counts.get(identity, 0) + 1

    def close(self) -> None:
        if self.open:
            self.open = False
            left = self._counts[self.identity] - 1
            if left:
                self._counts[self.identity] = left
            else:
                del self._counts[self.identity]


class LimiterObserver(Protocol):
    def waited(self, route: str, seconds: float) -> None: ...

    def queue(self, route: str, delta: int) -> None: ...


class _NoObserver:
    def waited(self, route: str, seconds: float) -> None:
        pass

    def queue(self, route: str, delta: int) -> None:
        pass


class Limiter:
    """Acquire a permit before each Discord request; release it with the answer."""

    def __init__(
        self,
        backend: Backend,
        *,
        global_limit: int = 50,
        invalid_limit: int = 5000,
        clock: Callable[[], float] = time.monotonic,
        observer: LimiterObserver | None = None,
    ) -> None:
        self.backend = backend
        self.global_limit = global_limit
        self.invalid_limit = invalid_limit
        self._clock = clock
        self._locks: dict[tuple[str, str, str], _Turn] = {}
        # When the request at the head of a bucket's local queue expects to be sent (monotonic): lets the
        # requests behind it answer at once when even the head cannot go before their deadline.
        self._eta: dict[tuple[str, str, str], float] = {}
        # One gate per bot identity: while a request of this process waits for the bot's global limit, the
        # others that need a global slot queue behind it in order, instead of every bucket's head asking the
        # backend at once (with Redis, a round trip each) whenever a slot frees.
        self._gates: dict[str, _Turn] = {}
        self._grants: dict[str, collections.deque[float]] = {}  # when this process got its recent slots
        self._heading: dict[str, int] = {}  # per bot identity: requests past their precheck without a slot yet
        self.observer: LimiterObserver = observer or _NoObserver()
        # Permit ids: unique across processes and hosts sharing a backend, without a uuid per request.
        self._id_prefix = os.urandom(6).hex() + "-"
        self._ids = itertools.count()
        # A backend whose release never suspends (this process's) cannot be interrupted half-way by a
        # cancellation; one that talks to Redis is shielded so the slot is always given back.
        self._release_inline = bool(getattr(backend, "release_never_suspends", False))
        # A backend that decides without waiting (this process's) is asked directly when nothing of this process
        # is queued for the bucket or at the bot's gate: no lock, no coroutine, the same decision.
        self._decide: Callable[..., Decision] | None = getattr(backend, "decide", None)

    async def acquire(self, key: RouteKey, *, deadline: float) -> Permit:
        """Wait for room in the key's bucket and the global window; raise RateLimitedError at once when the
        predicted wait passes ``deadline`` (a monotonic instant), DiscordUnavailableError when sending must stop."""
        start = self._clock()
        local = (key.identity, key.route, key.major)
        lock = self._locks.get(local)
        if lock is None and self._decide is not None:
            permit = self._acquire_now(key)
            if permit is not None:
                self.observer.waited(key.route, self._clock() - start)
                return permit
        if lock is None:
            lock = self._locks[local] = _Turn()
        queued = lock.locked()
        if queued:
            self.check_queue(key, deadline=deadline)
            self.observer.queue(key.route, 1)
        try:
            if queued:
                try:
                    async with asyncio.timeout(max(deadline - self._clock(), 0.0)):
                        await lock.acquire()  # FIFO within this process for one bucket
                except TimeoutError:
                    raise RateLimitedError(
                        "queued behind other requests for this bucket until the deadline",
                        retry_after=max(self._eta.get(local, 0.0) - self._clock(), 1.0),
                    ) from None
                finally:
                    self.observer.queue(key.route, -1)
            else:
                await lock.acquire()  # free: taken without waiting
            try:
                return await self._acquire_locked(key, deadline, local)
            finally:
                self._eta.pop(local, None)
                lock.release()
                if lock.idle:
                    self._locks.pop(local, None)
        finally:
            self.observer.waited(key.route, self._clock() - start)

    def head(self, key: RouteKey, *, deadline: float) -> Heading:
        """``check_queue``, then count the request as heading for a slot of ``key`` until the Heading is closed."""
        self.check_queue(key, deadline=deadline)
        return Heading(self._heading, key.identity)

    def check_queue(self, key: RouteKey, *, deadline: float) -> None:
        """Raise RateLimitedError when the request at the head of this process's queue for the key's bucket is not
        expected to go before ``deadline`` (so one behind it cannot either). Never waits."""
        local = (key.identity, key.route, key.major)
        lock = self._locks.get(local)
        if lock is not None and lock.locked():
            eta = self._eta.get(local, 0.0)
            if eta > deadline:
                raise RateLimitedError(
                    "the requests queued ahead for this bucket cannot go before the deadline",
                    retry_after=eta - self._clock(),
                )
        self.check_gate(key.identity, deadline)

    def check_gate(self, identity: str, deadline: float) -> None:
        """The requests of this process waiting for the bot's global limit go in order (the global gate), and
        they get slots at the rate this process has been getting them (its share of the limit: with four
        workers busy, about a quarter): with W ahead, a newcomer waits about W / that rate. W counts the
        requests past their precheck too (``Heading``): they will reach the gate before the newcomer does. With
        none at the gate yet, those W at the whole limit: a burst larger than the limit can send before the
        deadline is refused at once, before its identify calls."""
        gate = self._gates.get(identity)
        heading = self._heading.get(identity, 0)
        if gate is not None and gate.locked():
            # ahead: those at the gate, or (more, under a flood) every request past its precheck without a slot
            waiting = max(1 + gate.waiting, heading)
            rate = self._global_rate(identity)
        elif heading:
            # none at the gate yet (a burst has just begun): even the whole limit sends only so many in time
            waiting, rate = heading, float(self.global_limit)
        else:
            return
        wait = waiting / rate
        if self._clock() + wait > deadline:
            raise RateLimitedError(
                f"{waiting} requests of this bot are already waiting for Discord's global limit",
                retry_after=wait,
            )

    def _acquire_now(self, key: RouteKey) -> Permit | None:
        """The slot at once, when nobody of this process waits at the bot's gate and the backend grants it; None
        otherwise (nothing taken: the full path decides)."""
        assert self._decide is not None
        gate = self._gates.get(key.identity)
        if gate is not None and gate.locked():
            return None
        permit_id = f"{self._id_prefix}{next(self._ids)}"
        asked = self._clock()
        decision = self._decide(key, permit_id, global_limit=self.global_limit, invalid_limit=self.invalid_limit)
        return self._permit(key, permit_id, asked, decision) if decision.ok else None

    def _permit(self, key: RouteKey, permit_id: str, asked: float, decision: Decision) -> Permit:
        """The permit for a slot the backend granted."""
        if key.identity.startswith("bot:"):  # the bots' global limits (one per app); not each user's
            self._granted(key.identity)
        return Permit(key=key, bucket_id=decision.bucket_id, id=permit_id, asked=asked, granted=decision.at)

    async def _acquire_locked(self, key: RouteKey, deadline: float, local: tuple[str, str, str]) -> Permit:
        gate = self._gates.get(key.identity)
        holding: _Turn | None = None
        try:
            if gate is not None and gate.locked():  # others of this bot are waiting for the global limit
                holding = await self._enter_gate(key.identity, deadline)
            while True:
                permit_id = f"{self._id_prefix}{next(self._ids)}"
                asked = self._clock()
                decision = await self.backend.try_acquire(
                    key,
                    permit_id,
                    global_limit=self.global_limit,
                    invalid_limit=self.invalid_limit,
                )
                if decision.ok:
                    return self._permit(key, permit_id, asked, decision)
                if decision.reason == "global" and holding is None:
                    holding = await self._enter_gate(key.identity, deadline)
                    continue
                if decision.reason != "global" and holding is not None:
                    self._leave_gate(key.identity, holding)  # waiting on something else: let the next one try
                    holding = None
                await self._wait(decision, deadline, local)
        finally:
            if holding is not None:
                self._leave_gate(key.identity, holding)

    def _granted(self, identity: str) -> None:
        times = self._grants.get(identity)
        if times is None:
            times = self._grants[identity] = collections.deque(maxlen=max(self.global_limit * 2, 8))
        now = self._clock()
        while times and times[0] <= now - RATE_WINDOW:  # only the last RATE_WINDOW is ever read
            times.popleft()
        times.append(now)

    def _global_rate(self, identity: str) -> float:
        """Global slots this process got per second over the last two seconds; the whole limit until it has
        seen enough to tell (a newcomer is refused only on evidence)."""
        times = self._grants.get(identity)
        now = self._clock()
        recent = sum(1 for t in times if t > now - RATE_WINDOW) if times else 0
        if recent < 4:
            return float(self.global_limit)
        return min(float(self.global_limit), recent / RATE_WINDOW)

    async def _enter_gate(self, identity: str, deadline: float) -> _Turn:
        gate = self._gates.get(identity)
        if gate is None:
            gate = self._gates[identity] = _Turn()
        if gate.locked():
            self.check_gate(identity, deadline)
        try:
            async with asyncio.timeout(max(deadline - self._clock(), 0.0)):
                await gate.acquire()
        except TimeoutError:
            raise RateLimitedError(
                "queued for Discord's global limit until the deadline",
                retry_after=max(1.0, gate.waiting / self.global_limit),
            ) from None
        return gate

    def _leave_gate(self, identity: str, gate: _Turn) -> None:
        gate.release()
        if gate.idle and self._gates.get(identity) is gate:
            del self._gates[identity]

    async def _wait(self, decision: Decision, deadline: float, local: tuple[str, str, str]) -> None:
        """Sleep as the decision says, or raise when waiting cannot help before ``deadline``."""
        if decision.reason == "banned":
            raise DiscordUnavailableError(
                "Discord has blocked this deployment (a ban answer was seen); not sending",
                http_status=503,
                retry_after=max(decision.wait, 1.0),
            )
        if decision.reason == "invalid":
            raise DiscordUnavailableError(
                "the invalid-request budget is spent (401/403/429 answers in the last 10 minutes); "
                "not sending until it recovers",
                http_status=503,
                retry_after=max(decision.wait, 1.0),
            )
        remaining = deadline - self._clock()
        if decision.wait > remaining and not decision.poll:
            raise RateLimitedError(
                f"Discord's {decision.reason} limit has no room before the deadline", retry_after=decision.wait
            )
        if remaining <= 0:
            raise RateLimitedError(
                f"still waiting on Discord's {decision.reason} limit at the deadline",
                retry_after=max(decision.wait, 1.0),
            )
        pause = min(decision.wait, POLL) if decision.poll else decision.wait
        self._eta[local] = self._clock() + decision.wait
        self.observer.queue(local[1], 1)
        try:
            await asyncio.sleep(max(min(pause, remaining), 0.001))
        finally:
            self.observer.queue(local[1], -1)

    async def release(
        self,
        permit: Permit,
        headers: RateLimitHeaders | None,
        *,
        status: int | None = None,
        sent: bool = True,
        ban: bool = False,
        answered: float | None = None,
    ) -> None:
        """Give the slot back and learn from the answer. ``sent`` False: nothing reached Discord (the global
        slot is refunded); ``headers`` None: no answer came (the slot is held longer, ``UNANSWERED_HOLD``).
        ``answered``: when the answer came, on this limiter's clock (the slot is held a second from then)."""
        if permit.released:
            return
        permit.released = True
        by = answered_by(permit, answered)
        if self._release_inline:
            await self.backend.release(permit, headers, status=status, sent=sent, ban=ban, answered=by)
        else:
            await asyncio.shield(self.backend.release(permit, headers, status=status, sent=sent, ban=ban, answered=by))

    async def invalid_used(self) -> int:
        return await self.backend.invalid_used()
