"""The in-process limiter's timing logic, with an injected clock (exact, fast)."""

from __future__ import annotations

import asyncio
import collections
import tracemalloc
from typing import Any

import pytest

from guildgate.core.errors import DiscordUnavailableError, RateLimitedError
from guildgate.discord.ratelimit import Limiter, MemoryBackend, MemoryCache, MemoryWindows, RateLimitHeaders, RouteKey
from guildgate.discord.ratelimit.memory import GLOBAL_WINDOW
from tests.helpers import Clock

KEY_A = RouteKey(identity="bot:x", method="PUT", template="/guilds/{guild_id}/members/{user_id}", major="A")
KEY_B = RouteKey(identity="bot:x", method="PUT", template="/guilds/{guild_id}/members/{user_id}", major="B")
KEY_C = RouteKey(identity="bot:x", method="PUT", template="/guilds/{guild_id}/members/{user_id}", major="C")


def limiter(clock: Clock, **kwargs: int) -> Limiter:
    return Limiter(MemoryBackend(clock=clock), clock=clock, **kwargs)


def headers(limit: int, remaining: int, reset_after: float, bucket: str = "h1") -> RateLimitHeaders:
    return RateLimitHeaders(limit=limit, remaining=remaining, reset_after=reset_after, bucket=bucket)


async def test_unknown_bucket_sends_one_at_a_time_then_uses_remaining() -> None:
    clock = Clock()
    lim = limiter(clock)
    first = await lim.acquire(KEY_A, deadline=clock.now + 10)
    second = asyncio.ensure_future(lim.acquire(KEY_A, deadline=clock.now + 10))
    await asyncio.sleep(0.01)
    assert not second.done()  # discovery: one in flight
    await lim.release(first, headers(5, 4, 10.0), status=201)
    permits = [await second]
    permits += [await lim.acquire(KEY_A, deadline=clock.now + 10) for _ in range(3)]
    assert len(permits) == 4  # four in flight at once: remaining was 4
    blocked = asyncio.ensure_future(lim.acquire(KEY_A, deadline=clock.now + 100))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    for p in permits:
        await lim.release(p, headers(5, 0, 9.0), status=201)
    with pytest.raises(RateLimitedError) as limited:
        await lim.acquire(KEY_A, deadline=clock.now + 5)
    assert 8.9 <= limited.value.retry_after <= 10  # answered at once, with the wait
    blocked.cancel()


async def test_other_guilds_are_not_blocked_by_a_full_bucket() -> None:
    clock = Clock()
    lim = limiter(clock)
    p = await lim.acquire(KEY_A, deadline=clock.now + 1)
    await lim.release(p, headers(1, 0, 60.0), status=201)
    other = await asyncio.wait_for(lim.acquire(KEY_B, deadline=clock.now + 1), 1)
    await lim.release(other, headers(1, 0, 60.0), status=201)


async def test_global_limit_never_exceeded_in_the_window() -> None:
    clock = Clock()
    lim = limiter(clock, global_limit=3)
    keys = [RouteKey(identity="bot:x", method="GET", template="/x", major=str(i)) for i in range(5)]
    got = [await lim.acquire(key, deadline=clock.now + 0.5) for key in keys[:3]]
    clock.now += 0.2  # answers come back 0.2 s later: each slot is held until a second after its answer
    for permit in got:
        await lim.release(permit, RateLimitHeaders(), status=200)
    with pytest.raises(RateLimitedError) as limited:
        await lim.acquire(keys[3], deadline=clock.now + 0.5)
    assert limited.value.retry_after == pytest.approx(1.0)
    clock.now += 0.99
    with pytest.raises(RateLimitedError):
        await lim.acquire(keys[3], deadline=clock.now + 0.001)
    clock.now += 0.02
    assert await lim.acquire(keys[4], deadline=clock.now + 0.5)


async def test_a_permit_never_sent_gives_its_global_slot_back() -> None:
    clock = Clock()
    lim = limiter(clock, global_limit=1)
    first = await lim.acquire(KEY_A, deadline=clock.now + 1)
    await lim.release(first, None, sent=False)
    assert await lim.acquire(KEY_B, deadline=clock.now + 1)


async def test_global_429_pauses_the_identity() -> None:
    clock = Clock()
    lim = limiter(clock)
    p = await lim.acquire(KEY_A, deadline=clock.now + 1)
    await lim.release(p, RateLimitHeaders(is_global=True, retry_after=30.0, scope="global"), status=429)
    with pytest.raises(RateLimitedError) as limited:
        await lim.acquire(KEY_B, deadline=clock.now + 5)
    assert limited.value.retry_after == pytest.approx(30.0)


async def test_cancelled_waiters_give_their_slot_back() -> None:
    clock = Clock()
    lim = limiter(clock, global_limit=100_000)
    first = await lim.acquire(KEY_A, deadline=clock.now + 10)
    await lim.release(first, headers(2, 2, 10.0), status=201)
    for _ in range(1000):
        waiter = asyncio.ensure_future(lim.acquire(KEY_A, deadline=clock.now + 10))
        await asyncio.sleep(0)
        waiter.cancel()
        try:
            permit = await waiter
        except asyncio.CancelledError:
            continue
        await lim.release(permit, None, sent=False)
    a = await asyncio.wait_for(lim.acquire(KEY_A, deadline=clock.now + 10), 1)
    b = await asyncio.wait_for(lim.acquire(KEY_A, deadline=clock.now + 10), 1)
    assert a and b  # both slots still there after 1000 cancellations


async def test_invalid_request_budget_stops_sending() -> None:
    clock = Clock()
    lim = limiter(clock, invalid_limit=3)
    for i in range(3):
        key = RouteKey(identity=f"bearer:{i}", method="GET", template="/users/@me")
        p = await lim.acquire(key, deadline=clock.now + 1)
        await lim.release(p, RateLimitHeaders(), status=401)
    with pytest.raises(DiscordUnavailableError) as stopped:
        await lim.acquire(KEY_A, deadline=clock.now + 1)
    assert stopped.value.http_status == 503 and stopped.value.retry_after
    clock.now += 601
    p = await lim.acquire(KEY_A, deadline=clock.now + 1)
    assert p


async def test_shared_429_is_not_invalid_and_ban_stops_everything() -> None:
    clock = Clock()
    lim = limiter(clock, invalid_limit=2)
    for _ in range(3):
        p = await lim.acquire(KEY_A, deadline=clock.now + 1)
        await lim.release(p, RateLimitHeaders(scope="shared", retry_after=0.0), status=429)
    assert await lim.invalid_used() == 0
    p = await lim.acquire(KEY_B, deadline=clock.now + 1)
    await lim.release(p, None, status=429, ban=True)
    with pytest.raises(DiscordUnavailableError):
        await lim.acquire(KEY_B, deadline=clock.now + 1)


async def test_bucket_hash_is_learned_per_route_not_per_path() -> None:
    clock = Clock()
    lim = limiter(clock)
    p = await lim.acquire(KEY_A, deadline=clock.now + 1)
    await lim.release(p, headers(10, 9, 10.0, bucket="abc"), status=201)
    users = [await lim.acquire(KEY_A, deadline=clock.now + 1) for _ in range(9)]
    assert len(users) == 9
    for permit in users:
        await lim.release(permit, headers(10, 0, 9.9, bucket="abc"), status=201)
    with pytest.raises(RateLimitedError):
        await lim.acquire(KEY_A, deadline=clock.now + 1)
    assert len(lim.backend._buckets) <= 2  # type: ignore[attr-defined]


async def test_requests_sent_before_the_hash_was_learned_still_count() -> None:
    clock = Clock()
    lim = limiter(clock)
    other = RouteKey(identity="bot:x", method="PUT", template=KEY_A.template, major="Z")
    learner = await lim.acquire(other, deadline=clock.now + 1)
    early = await lim.acquire(KEY_A, deadline=clock.now + 1)  # guild A's discovery, hash not yet known
    await lim.release(learner, headers(10, 9, 10.0, bucket="H"), status=201)  # now the route's hash is known
    # Under the hash, guild A's bucket is new, but its discovery request is still in flight: wait for it.
    probe = asyncio.ensure_future(lim.acquire(KEY_A, deadline=clock.now + 1))
    await asyncio.sleep(0.2)
    assert not probe.done()
    await lim.release(early, headers(2, 1, 10.0, bucket="H"), status=201)
    second = await asyncio.wait_for(probe, 1)
    await lim.release(second, headers(2, 0, 10.0, bucket="H"), status=201)
    with pytest.raises(RateLimitedError):  # limit 2: both used
        await lim.acquire(KEY_A, deadline=clock.now + 1)


async def test_requests_waiting_for_the_global_limit_queue_in_order_with_one_asking() -> None:
    clock = Clock()
    backend = MemoryBackend(clock=clock)
    asked = 0
    try_acquire = backend.try_acquire

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal asked
        asked += 1
        return await try_acquire(*args, **kwargs)

    backend.try_acquire = counting  # type: ignore[method-assign]
    lim = Limiter(backend, clock=clock, global_limit=1)
    keys = [RouteKey(identity="bot:x", method="PUT", template="/m", major=str(i)) for i in range(5)]
    first = await lim.acquire(keys[0], deadline=clock.now + 10)
    await lim.release(first, RateLimitHeaders(), status=201)  # its slot is held a second after the answer
    done: list[int] = []

    async def wait_for(i: int) -> None:
        permit = await lim.acquire(keys[i], deadline=clock.now + 10)
        done.append(i)
        await lim.release(permit, None, sent=False)  # not sent: the slot is free again at once

    asked = 0
    waiters = [asyncio.ensure_future(wait_for(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0.05)
    assert asked == 2  # the first waiter asks (twice: before and after taking the gate); the others queue
    # A newcomer with 3 requests ahead (3 s at 1/s) and 0.5 s to go is answered at once.
    with pytest.raises(RateLimitedError) as limited:
        lim.check_queue(keys[4], deadline=clock.now + 0.5)
    assert "3 requests" in str(limited.value) and limited.value.retry_after == pytest.approx(3.0)
    clock.now += 1.0  # the held slot's second passes
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert done == [1, 2, 3]  # in the order they came


async def test_a_request_sent_without_an_answer_keeps_its_global_slot_longer() -> None:
    clock = Clock()
    lim = limiter(clock, global_limit=1)
    lost = await lim.acquire(KEY_A, deadline=clock.now + 10)
    await lim.release(lost, None, sent=True)  # timed out: Discord may still read it later
    clock.now += 1.5  # past the second an answered request holds its slot
    with pytest.raises(RateLimitedError):
        await lim.acquire(KEY_B, deadline=clock.now + 0.01)
    clock.now += 3.6  # past UNANSWERED_HOLD (5 s)
    assert await lim.acquire(KEY_B, deadline=clock.now + 0.01)


async def test_a_global_slot_counts_from_when_the_answer_came_not_from_a_late_release() -> None:
    clock = Clock()
    lim = limiter(clock, global_limit=1)
    first = await lim.acquire(KEY_A, deadline=clock.now + 10)
    answered = clock.now + 0.1
    clock.now += 0.6  # the release reaches the backend half a second after the answer (a busy process)
    await lim.release(first, headers(5, 4, 10.0), status=201, answered=answered)
    clock.now = answered + 0.99
    with pytest.raises(RateLimitedError):  # within the second after the answer: still counted
        await lim.acquire(KEY_B, deadline=clock.now + 0.005)
    clock.now = answered + 1.0  # a second after the answer, not after the release
    assert await lim.acquire(KEY_B, deadline=clock.now + 0.005)


async def test_an_answer_time_after_the_release_is_never_trusted() -> None:
    clock = Clock()
    lim = limiter(clock, global_limit=1)
    first = await lim.acquire(KEY_A, deadline=clock.now + 10)
    released = clock.now + 0.2
    clock.now = released
    await lim.release(first, RateLimitHeaders(), status=201, answered=released + 5.0)
    clock.now = released + 0.99
    with pytest.raises(RateLimitedError):
        await lim.acquire(KEY_B, deadline=clock.now + 0.005)
    clock.now = released + 1.0
    assert await lim.acquire(KEY_B, deadline=clock.now + 0.005)


async def test_a_buckets_reset_counts_from_when_the_answer_came() -> None:
    clock = Clock()
    lim = limiter(clock)
    first = await lim.acquire(KEY_A, deadline=clock.now + 10)
    answered = clock.now
    clock.now += 0.5
    await lim.release(first, headers(1, 0, 2.0), status=201, answered=answered)
    clock.now = answered + 1.99
    with pytest.raises(RateLimitedError):
        await lim.acquire(KEY_A, deadline=clock.now + 0.005)
    clock.now = answered + 2.0  # Reset-After from the answer (Discord's reset came no later)
    assert await lim.acquire(KEY_A, deadline=clock.now + 0.005)


async def test_a_precheck_counts_the_joins_already_past_it_that_have_no_slot_yet() -> None:
    clock = Clock()
    lim = limiter(clock, global_limit=2)
    held = [await lim.acquire(key, deadline=clock.now + 10) for key in (KEY_A, KEY_C)]
    # A third request waits for the global limit: this process's requests now queue at its gate.
    waiting = asyncio.ensure_future(lim.acquire(KEY_B, deadline=clock.now + 10))
    await asyncio.sleep(0.02)
    by = clock.now + 2.9
    # Few grants seen yet, so the process is assumed to get the whole limit (2/s): 2.9 s holds 5 ahead.
    tickets = [lim.head(KEY_B, deadline=by) for _ in range(6)]  # 0.5 s ... 2.5 s ahead: all accepted
    with pytest.raises(RateLimitedError) as limited:
        lim.head(KEY_B, deadline=by)  # six past their precheck (identifying users) are ahead: 3 s
    assert "6 requests" in str(limited.value)
    tickets[0].close()
    tickets[0].close()  # closing twice counts once
    tickets.append(lim.head(KEY_B, deadline=by))  # one gave up: room again
    with pytest.raises(RateLimitedError):
        lim.head(KEY_B, deadline=by)
    for ticket in tickets:
        ticket.close()
    assert lim.head(KEY_B, deadline=by)  # only the one at the gate is ahead now
    waiting.cancel()
    for permit in held:
        await lim.release(permit, None, sent=False)


async def fill_bucket(lim: Limiter, clock: Clock, resets: list[float]) -> None:
    """One request discovers a 5-slot bucket, then four go together; answers say what ``resets`` say."""
    first = await lim.acquire(KEY_A, deadline=clock.now + 10)
    clock.now += 0.01
    await lim.release(first, headers(5, 4, resets[0]), status=201, answered=clock.now)
    clock.now += 0.01
    rest = [await lim.acquire(KEY_A, deadline=clock.now + 10) for _ in range(4)]
    clock.now += 0.01
    for left, (permit, reset) in enumerate(zip(rest, resets[1:], strict=True)):
        await lim.release(permit, headers(5, 3 - left, reset), status=201, answered=clock.now)


async def test_a_sliding_bucket_is_learned_and_its_slots_used_as_they_come_back() -> None:
    clock = Clock()
    lim = limiter(clock)
    start = clock.now
    # Sliding (5 per 5 s): each use moves the moment the bucket is full again one second later.
    await fill_bucket(lim, clock, [0.999, 1.998, 2.997, 3.996, 4.995])
    last_answer = clock.now
    with pytest.raises(RateLimitedError):
        await lim.acquire(KEY_A, deadline=clock.now + 0.5)  # empty: the first slot is a second away
    clock.now = last_answer + 1.0  # one slot back (reset_after / used = 1 s), long before the full reset
    permit = await lim.acquire(KEY_A, deadline=clock.now + 0.005)
    clock.now += 0.01
    await lim.release(permit, headers(5, 0, 4.995), status=201, answered=clock.now)
    with pytest.raises(RateLimitedError):
        await lim.acquire(KEY_A, deadline=clock.now + 0.5)  # only that one came back
    clock.now += 1.0
    assert await lim.acquire(KEY_A, deadline=clock.now + 0.005)  # and the next a second later
    assert clock.now - start < 3.0


async def test_a_fixed_bucket_is_never_taken_for_sliding() -> None:
    clock = Clock()
    lim = limiter(clock)
    # Fixed (5 per 5 s): every answer names the same reset moment, 5 s after the first request.
    await fill_bucket(lim, clock, [4.99, 4.97, 4.97, 4.97, 4.97])
    clock.now += 2.0
    with pytest.raises(RateLimitedError):
        await lim.acquire(KEY_A, deadline=clock.now + 0.5)
    clock.now += 3.0  # the window's end (answer + reset_after)
    assert await lim.acquire(KEY_A, deadline=clock.now + 0.005)


async def test_a_burst_past_what_the_global_limit_can_send_in_time_is_refused_before_anyone_waits() -> None:
    clock = Clock()
    lim = limiter(clock, global_limit=4)
    by = clock.now + 1.9
    # Nobody waits at the global gate yet; at four a second, a ninth would wait 2 s behind the eight ahead.
    tickets = [
        lim.head(RouteKey(identity="bot:x", method="PUT", template="/m", major=str(i)), deadline=by) for i in range(8)
    ]
    with pytest.raises(RateLimitedError):
        lim.head(RouteKey(identity="bot:x", method="PUT", template="/m", major="9"), deadline=by)
    assert lim.head(RouteKey(identity="bot:y", method="PUT", template="/m", major="9"), deadline=by)  # other bot
    tickets.pop().close()
    assert lim.head(RouteKey(identity="bot:x", method="PUT", template="/m", major="9"), deadline=by)


async def test_a_fixed_bucket_whose_reset_after_is_rounded_is_never_taken_for_sliding() -> None:
    clock = Clock()
    lim = limiter(clock)
    start = clock.now
    # A fixed window of 5 per 5 s from a server that rounds Reset-After up to whole seconds: the moment it
    # names jumps later as the window goes on (4.1 s left reads 5), as a sliding bucket's would.
    uses = [(0.0, 4), (0.02, 3), (0.02, 2), (0.9, 1), (0.92, 0)]
    for at, left in uses:
        clock.now = start + at
        permit = await lim.acquire(KEY_A, deadline=clock.now + 10)
        clock.now += 0.01
        await lim.release(permit, headers(5, left, 5.0), status=201, answered=clock.now)
    clock.now = start + 2.5
    with pytest.raises(RateLimitedError):
        await lim.acquire(KEY_A, deadline=clock.now + 0.5)  # nothing back before the window's end


async def test_the_memory_backend_forgets_users_whose_slots_have_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every user's token is its own identity with its own global window: a long-running server that has seen
    many users keeps state only for those with a slot still live, not one entry per user it ever saw. A slot
    still in its window is kept through the sweeps."""
    import guildgate.discord.ratelimit.memory as memory

    monkeypatch.setattr(memory, "MAX_BUCKETS", 50)

    clock = Clock()
    backend = MemoryBackend(clock=clock)
    lim = Limiter(backend, clock=clock)

    async def identify(user: int) -> None:
        key = RouteKey(identity=f"bearer:{user}", method="GET", template="/users/@me")
        permit = await lim.acquire(key, deadline=clock.now + 10)
        if user % 2:  # every other user's token met a global 429: paused for a second
            limited = RateLimitHeaders(is_global=True, retry_after=1.0, scope="global")
            await lim.release(permit, limited, status=429, answered=clock.now)
        else:
            await lim.release(permit, headers(5, 4, 1.0, bucket="me"), status=200, answered=clock.now)

    for user in range(300):
        await identify(user)
        clock.now += 100.0  # long past its bucket's reset and its global window
    identities, buckets, paused = len(backend._global), len(backend._buckets), len(backend._paused)
    await identify(1000)  # its global slot counts for the next second...
    for user in range(2000, 2100):
        await identify(user)  # ...through the sweeps these newcomers set off
    live = await backend.global_used("bearer:1000")

    assert identities <= 51 and buckets <= 51 and paused <= 51, (identities, buckets, paused)  # not 300 (150)
    assert live == 1


async def test_a_full_bucket_map_is_not_swept_again_for_every_new_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that has seen more users than the map holds, within the hour, against a Discord that sends no
    rate-limit headers for Get Current User (each user's bucket is then remembered as unlimited for an hour):
    a sweep is a pass over the whole map, and it must not come once per new user — at 200,000 users that
    was 20 ms of blocked event loop a join. Buckets holding slots in flight cannot be forgotten at all: the
    sweeps must still come ever more rarely. A bucket that makes its next request wait is never forgotten."""
    import guildgate.discord.ratelimit.memory as memory

    monkeypatch.setattr(memory, "MAX_BUCKETS", 100)
    sweeps = 0
    sweep = MemoryBackend._sweep

    def counted(self: MemoryBackend, now: float) -> None:
        nonlocal sweeps
        sweeps += 1
        sweep(self, now)

    monkeypatch.setattr(MemoryBackend, "_sweep", counted)

    clock = Clock()
    backend = MemoryBackend(clock=clock)
    lim = Limiter(backend, clock=clock)
    put = RouteKey(identity="bot:b", method="PUT", template="/guilds/{guild_id}/members/{user_id}", major="g")
    permit = await lim.acquire(put, deadline=clock.now + 10)
    await lim.release(permit, headers(10, 0, 600.0, bucket="put"), status=201, answered=clock.now)

    def me(user: int) -> RouteKey:
        return RouteKey(identity=f"bearer:{user}", method="GET", template="/users/@me")

    for user in range(2000):  # answered without rate-limit headers, 50 a second: all within the hour
        permit = await lim.acquire(me(user), deadline=clock.now + 10)
        await lim.release(permit, RateLimitHeaders(), status=200, answered=clock.now)
        clock.now += 0.02
    answered_sweeps, answered_buckets = sweeps, len(backend._buckets)
    for user in range(10_000, 11_000):  # sent, never answered: their slots stay in flight
        await lim.acquire(me(user), deadline=clock.now + 10)
    waiting = backend.decide(put, "after", global_limit=50, invalid_limit=10_000)
    in_flight_sweeps, buckets, reason = sweeps - answered_sweeps, len(backend._buckets), waiting.reason

    assert answered_sweeps <= 40, answered_sweeps  # about one per 100 new users, not one per user past 100
    assert answered_buckets <= 100, answered_buckets  # an unlimited bucket with nothing in flight is forgotten
    assert in_flight_sweeps <= 10, in_flight_sweeps  # all 1,000 kept: each sweep waits for twice as many
    assert buckets >= 1000
    assert reason == "bucket"  # the bot's exhausted bucket survived every sweep: no request before its reset


async def test_velocity_windows_of_servers_no_longer_joined_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a per-server cap, every server a join names gets a 60 s window: a caller naming a new server id every
    second for a long time must not leave one entry per id ever named. A window still counting is kept."""
    import guildgate.discord.ratelimit.stores as stores

    monkeypatch.setattr(stores, "MAX_BUCKETS", 50)

    clock = Clock()
    windows = MemoryWindows(clock=clock)
    for guild in range(500):
        if guild == 450:
            assert await windows.window_take("cap-guild:kept", 1, 60.0) is None
        assert await windows.window_take(f"cap-guild:{guild}", 1, 60.0) is None
        clock.now += 0.1 if guild < 100 else 1.0
    size = len(windows._windows)
    windows._sweep(clock.now)  # 50 s after "kept" was taken: inside its window
    wait = await windows.window_take("cap-guild:kept", 1, 60.0)

    assert size <= 150, size  # not 501
    assert wait is not None  # the kept window's join still counts against its cap


async def test_a_long_running_server_keeps_only_the_global_slots_still_in_their_window() -> None:
    """Under a global limit above what the bot ever reaches (an operator's GUILDGATE_GLOBAL_RATE_LIMIT), the
    expired slots of a bot and of returning users' tokens went only when the limit was reached: one entry per
    call, for good (a soak of 356,000 joins grew the worker from 123 to 188 MB). Now the memory stays flat."""

    answered: collections.deque[float] = collections.deque(maxlen=300)  # the last 3 s of answers

    clock = Clock()
    lim = Limiter(MemoryBackend(clock=clock), clock=clock, global_limit=100_000)

    async def joins(n: int) -> None:
        for i in range(n):
            for identity in (f"bearer:{i % 40}", "bot:b"):  # 40 users coming back, one bot
                key = RouteKey(identity=identity, method="GET", template="/x", major=str(i % 7))
                permit = await lim.acquire(key, deadline=clock.now + 5)
                await lim.release(permit, RateLimitHeaders(), status=200, answered=clock.now)
            answered.append(clock.now)
            clock.now += 0.01  # a hundred joins a second

    await joins(2_000)
    tracemalloc.start()
    await joins(10_000)
    first, _ = tracemalloc.get_traced_memory()
    await joins(20_000)
    then, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # nothing still in its window was dropped: a slot counts until a second after its answer
    live = sum(1 for at in answered if at + GLOBAL_WINDOW > clock.now)
    assert await lim.backend.global_used("bot:b") == live
    grown, user_live = then - first, await lim.backend.global_used("bearer:0")

    assert grown < 50_000, f"{grown} bytes more after 20,000 more joins"  # it was 4.4 MB
    assert live >= 99 and user_live in (2, 3)


async def test_a_buckets_queue_is_forgotten_once_everyone_in_it_has_gone() -> None:
    """The limiter counts who waits in a bucket's queue itself: a queue whose waiters all left — cancelled, or past
    their deadline — is dropped, so the queues of servers no longer joined leave nothing behind; and while
    the queue is there, a newcomer whose deadline the head cannot make is refused at once."""

    clock = Clock()
    lim = limiter(clock, global_limit=100_000)
    for i in range(10):
        key = RouteKey(identity="bot:x", method="PUT", template="/m", major=str(i))
        first = await lim.acquire(key, deadline=clock.now + 10)
        await lim.release(first, headers(1, 0, 30.0, bucket=f"b{i}"), status=201)  # empty for 30 s
        head = asyncio.ensure_future(lim.acquire(key, deadline=clock.now + 60))  # waits for the reset
        cancelled = asyncio.ensure_future(lim.acquire(key, deadline=clock.now + 60))
        late = asyncio.ensure_future(lim.acquire(key, deadline=clock.now + 0.05))
        await asyncio.sleep(0.01)
        with pytest.raises(RateLimitedError):
            lim.check_queue(key, deadline=clock.now + 5)  # the head itself goes in 30 s
        cancelled.cancel()
        with pytest.raises(RateLimitedError):
            await late
        head.cancel()  # (the wait is real time; the test's clock is not)
        for gone in (head, cancelled):
            with pytest.raises(asyncio.CancelledError):
                await gone
    assert lim._locks == {} and lim._gates == {}
    clock.now += 30.0
    served = await asyncio.wait_for(lim.acquire(key, deadline=clock.now + 1), 1)  # the bucket is full again
    await lim.release(served, None, sent=False)
    assert lim._locks == {}


async def test_the_in_process_cache_forgets_what_has_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused tokens and invites are remembered for minutes: a long-running server that has seen many must keep
    only those still within their time, and a value is gone once its time is up."""
    import guildgate.discord.ratelimit.stores as stores

    monkeypatch.setattr(stores, "MAX_BUCKETS", 50)

    clock = Clock()
    cache = MemoryCache(clock=clock)
    await cache.set("badtoken:kept", "{}", 600.0)
    for i in range(500):
        await cache.set(f"badtoken:{i}", "{}", 10.0)
        clock.now += 1.0
    kept = await cache.get("badtoken:kept")
    clock.now += 600.0
    size, expired = len(cache._values), await cache.get("badtoken:kept")

    assert size <= 100, size  # not 501
    assert kept == "{}" and expired is None
