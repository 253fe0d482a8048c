"""The Redis backend against a real redis-server: what several workers share."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from guildgate.core.errors import DiscordUnavailableError, RateLimitedError
from guildgate.discord.ratelimit import Limiter, MemoryBackend, RateLimitHeaders, RouteKey
from guildgate.discord.ratelimit.model import MAX_COUNT, MAX_WAIT
from guildgate.discord.ratelimit.redis import MAX_CONNECTIONS, RedisBackend
from guildgate.discord.ratelimit.stores import RedisCache, RedisWindows
from tests.servers import Server, free_port

PUT = dict(method="PUT", template="/guilds/{guild_id}/members/{user_id}")


@pytest.fixture
def url(redis_server: Server) -> str:
    redis.Redis.from_url(redis_server.url).flushall()
    return redis_server.url


def workers(url: str, n: int = 2, **kwargs: int) -> list[Limiter]:
    return [Limiter(RedisBackend(url), **kwargs) for _ in range(n)]


async def close(limiters: list[Limiter]) -> None:
    for lim in limiters:
        await lim.backend.aclose()


async def test_discovery_is_single_flight_across_workers_then_shared(url: str) -> None:
    a, b = workers(url)
    key = RouteKey(identity="bot:1", major="G1", **PUT)
    first = await a.acquire(key, deadline=time.monotonic() + 5)
    other = asyncio.ensure_future(b.acquire(key, deadline=time.monotonic() + 5))
    await asyncio.sleep(0.2)
    assert not other.done()  # the bucket is unknown: one request in flight, across workers
    await a.release(first, RateLimitHeaders(limit=3, remaining=2, reset_after=5.0, bucket="hashA"), status=201)
    second = await asyncio.wait_for(other, 2)
    third = await b.acquire(key, deadline=time.monotonic() + 5)  # learned: both in flight together
    await b.release(second, RateLimitHeaders(limit=3, remaining=1, reset_after=4.9, bucket="hashA"), status=201)
    await b.release(third, RateLimitHeaders(limit=3, remaining=0, reset_after=4.9, bucket="hashA"), status=201)
    with pytest.raises(RateLimitedError) as limited:
        await a.acquire(key, deadline=time.monotonic() + 1)  # the other worker knows the bucket is spent
    assert 4 < limited.value.retry_after <= 5
    other_guild = RouteKey(identity="bot:1", major="G2", **PUT)
    assert await a.acquire(other_guild, deadline=time.monotonic() + 1)
    await close([a, b])


async def test_global_limit_across_workers_counts_until_a_second_after_each_answer(url: str) -> None:
    limiters = workers(url, 3, global_limit=5)
    answered: list[float] = []

    async def one(i: int) -> None:
        lim = limiters[i % 3]
        key = RouteKey(identity="bot:g", method="GET", template="/x", major=str(i))
        permit = await lim.acquire(key, deadline=time.monotonic() + 10)
        sent = time.monotonic()
        await asyncio.sleep(0.01)
        answered.append(sent)
        await lim.release(permit, RateLimitHeaders(), status=200)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(15)))
    elapsed = time.monotonic() - started
    answered.sort()
    # no 1 s window holds more than 5 sends
    assert all(answered[i + 5] - answered[i] >= 1.0 for i in range(len(answered) - 5))
    assert 2.0 <= elapsed < 4.0  # 15 at 5 per ~1.01 s: three rounds, no more
    await close(limiters)


async def test_global_429_pauses_every_worker(url: str) -> None:
    a, b = workers(url)
    key = RouteKey(identity="bot:p", method="GET", template="/x")
    permit = await a.acquire(key, deadline=time.monotonic() + 1)
    await a.release(permit, RateLimitHeaders(is_global=True, retry_after=0.6, scope="global"), status=429)
    with pytest.raises(RateLimitedError) as limited:
        await b.acquire(RouteKey(identity="bot:p", method="GET", template="/y"), deadline=time.monotonic() + 0.3)
    assert 0.3 < limited.value.retry_after <= 0.6
    started = time.monotonic()
    assert await b.acquire(RouteKey(identity="bot:p", method="GET", template="/y"), deadline=started + 2)
    assert time.monotonic() - started < 0.7  # resumes as soon as the pause ends
    await close([a, b])


async def test_invalid_budget_is_shared_and_counts_requests_in_flight(url: str) -> None:
    a, b = workers(url, invalid_limit=3)
    keys = [RouteKey(identity=f"bearer:{i}", method="GET", template="/users/@me") for i in range(5)]
    p0 = await a.acquire(keys[0], deadline=time.monotonic() + 1)
    await a.release(p0, RateLimitHeaders(), status=401)
    p1 = await b.acquire(keys[1], deadline=time.monotonic() + 1)
    await b.release(p1, RateLimitHeaders(), status=403)
    in_flight = await a.acquire(keys[2], deadline=time.monotonic() + 1)  # 2 invalid + 1 in flight = 3
    with pytest.raises(DiscordUnavailableError) as stopped:
        await b.acquire(keys[3], deadline=time.monotonic() + 1)
    assert stopped.value.http_status == 503
    await a.release(in_flight, RateLimitHeaders(), status=200)
    assert await b.acquire(keys[4], deadline=time.monotonic() + 1)
    assert await a.invalid_used() == 2
    await close([a, b])


async def test_ban_answer_stops_every_worker(url: str) -> None:
    a, b = workers(url)
    permit = await a.acquire(RouteKey(identity="bot:b", method="GET", template="/x"), deadline=time.monotonic() + 1)
    await a.release(permit, None, status=429, ban=True)
    with pytest.raises(DiscordUnavailableError):
        await b.acquire(RouteKey(identity="bot:c", method="GET", template="/z"), deadline=time.monotonic() + 1)
    await close([a, b])


async def test_every_key_has_a_ttl(url: str) -> None:
    (lim,) = workers(url, 1)
    for i in range(50):
        key = RouteKey(identity=f"bearer:{i}", major=str(i), **PUT)
        permit = await lim.acquire(key, deadline=time.monotonic() + 1)
        await lim.release(permit, RateLimitHeaders(limit=5, remaining=4, reset_after=1.0, bucket="h"), status=201)
    redis_client = lim.backend.redis  # type: ignore[attr-defined]
    await RedisCache(redis_client).set("badtoken:fp", "{}", 600)
    await RedisWindows(redis_client).window_take("quota:k", 5, 60)
    await close([lim])

    r = redis.Redis.from_url(url)
    keys = list(r.scan_iter("*"))
    assert len(keys) > 50
    assert [k for k in keys if r.pttl(k) < 0] == []


async def test_redis_down_fails_closed_within_the_deadline() -> None:
    lim = Limiter(RedisBackend(f"redis://127.0.0.1:{free_port()}/0", timeout=0.3))
    started = time.monotonic()
    with pytest.raises(DiscordUnavailableError) as down:
        await lim.acquire(RouteKey(identity="bot:x", method="GET", template="/x"), deadline=started + 5)
    assert down.value.http_status == 503 and "Redis" in str(down.value)
    assert time.monotonic() - started < 2
    await lim.backend.aclose()


async def test_a_burst_past_the_connection_pool_waits_instead_of_failing(url: str) -> None:
    backend = RedisBackend(url)
    try:
        # More calls at once than the pool has connections (redis-py's default pool raised
        # MaxConnectionsError past 100): they wait their turn and all get answers.
        others = len(await backend.redis.client_list()) - 1  # clients of other tests' servers, if any
        cache = RedisCache(backend.redis)  # on the backend's pool
        answers = await asyncio.gather(*(cache.get(f"k{i}") for i in range(600)))
        assert answers == [None] * 600
        # ...on a bounded number of connections: the pool does not open one per waiting call.
        ours = len(await backend.redis.client_list()) - others
        assert ours <= MAX_CONNECTIONS, ours
    finally:
        await backend.aclose()


async def test_a_request_sent_without_an_answer_keeps_its_global_slot_past_a_second(url: str) -> None:
    answered, lost = workers(url, 2, global_limit=5)
    a = await answered.acquire(
        RouteKey(identity="bot:u", method="GET", template="/x", major="1"), deadline=time.monotonic() + 5
    )
    b = await lost.acquire(
        RouteKey(identity="bot:u", method="GET", template="/x", major="2"), deadline=time.monotonic() + 5
    )
    await answered.release(a, RateLimitHeaders(), status=200)
    await lost.release(b, None, sent=True)  # timed out
    await asyncio.sleep(1.2)
    assert await answered.backend.global_used("bot:u") == 1  # the answered one's second is over; not the lost one
    await close([answered, lost])


async def test_a_late_release_holds_the_global_slot_a_second_from_the_answer_on_redis_clock(url: str) -> None:
    (lim,) = workers(url, 1, global_limit=5)
    key = RouteKey(identity="bot:late", method="GET", template="/x", major="1")
    permit = await lim.acquire(key, deadline=time.monotonic() + 5)
    answered = time.monotonic()
    await asyncio.sleep(0.4)  # the release reaches Redis well after the answer (a busy worker)
    await lim.release(permit, RateLimitHeaders(), status=200, answered=answered)
    client = redis.Redis.from_url(url)
    held_until = client.zscore("gg:g:bot:late", permit.id)
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    assert held_until is not None and permit.granted is not None
    # a second from the answer (Redis's grant instant + what this process saw elapse), not from the release
    assert permit.granted * 1000 + 1000 <= held_until <= now_ms + 1000 - 350
    await close([lim])


async def test_a_sliding_bucket_learned_by_one_worker_lets_another_use_each_slot_as_it_comes_back(url: str) -> None:
    a, b = workers(url)
    key = RouteKey(identity="bot:s", major="G1", **PUT)

    def sliding(left: int) -> RateLimitHeaders:  # 5 per 5 s, sliding: a slot back every second
        return RateLimitHeaders(limit=5, remaining=left, reset_after=(5 - left) * 0.999, bucket="hashS")

    first = await a.acquire(key, deadline=time.monotonic() + 5)
    await a.release(first, sliding(4), status=201, answered=time.monotonic())
    rest = [await a.acquire(key, deadline=time.monotonic() + 5) for _ in range(4)]
    answered = time.monotonic()
    for left, permit in zip((3, 2, 1, 0), rest, strict=True):
        await a.release(permit, sliding(left), status=201, answered=answered)
    with pytest.raises(RateLimitedError):
        await b.acquire(key, deadline=time.monotonic() + 0.3)  # empty: the first slot is a second away
    # Had the bucket been taken for fixed, the wait would be the full 5 s reset and this would be refused.
    permit = await b.acquire(key, deadline=time.monotonic() + 2.5)
    await b.release(permit, sliding(0), status=201, answered=time.monotonic())
    await close([a, b])


async def test_a_fixed_bucket_is_never_taken_for_sliding_across_workers(url: str) -> None:
    a, b = workers(url)
    key = RouteKey(identity="bot:f", major="G1", **PUT)
    end = time.monotonic() + 3.0  # a fixed window: every answer names this same reset moment

    def fixed(left: int) -> RateLimitHeaders:
        return RateLimitHeaders(limit=5, remaining=left, reset_after=end - time.monotonic(), bucket="hashF")

    first = await a.acquire(key, deadline=time.monotonic() + 5)
    await a.release(first, fixed(4), status=201, answered=time.monotonic())
    rest = [await a.acquire(key, deadline=time.monotonic() + 5) for _ in range(4)]
    for left, permit in zip((3, 2, 1, 0), rest, strict=True):
        await a.release(permit, fixed(left), status=201, answered=time.monotonic())
    with pytest.raises(RateLimitedError):
        await b.acquire(key, deadline=time.monotonic() + 2.0)  # nothing comes back before the window's end
    await close([a, b])


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_an_answer_asking_for_years_holds_its_route_and_the_bot_an_hour_at_most(backend: str, url: str) -> None:
    """A broken or hostile answer's wait (1e15 s, finite) is held to MAX_WAIT: Redis took the release's PX as an
    error, so a member Discord had added was recorded as unavailable; in memory the route stayed shut for years."""

    lim = Limiter(MemoryBackend()) if backend == "memory" else Limiter(RedisBackend(url))
    spent = RouteKey(identity="bot:h", major="G1", **PUT)
    permit = await lim.acquire(spent, deadline=time.monotonic() + 2)
    added = RateLimitHeaders.parse(
        {"x-ratelimit-limit": "5", "x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "1e15"}
    )
    await lim.release(permit, added, status=201)  # raised DiscordUnavailableError on Redis
    with pytest.raises(RateLimitedError) as shut:
        await lim.acquire(spent, deadline=time.monotonic() + 1)
    assert MAX_WAIT - 5 < shut.value.retry_after <= MAX_WAIT

    permit = await lim.acquire(RouteKey(identity="bot:h", major="G2", **PUT), deadline=time.monotonic() + 2)
    body = {"message": "You are being rate limited.", "retry_after": 1e15, "global": True}
    paused = RateLimitHeaders.parse({"x-ratelimit-global": "true", "x-ratelimit-scope": "global"}, body)
    await lim.release(permit, paused, status=429)
    with pytest.raises(RateLimitedError) as stopped:  # the whole bot is paused, an hour at most
        await lim.acquire(RouteKey(identity="bot:h", major="G3", **PUT), deadline=time.monotonic() + 1)
    assert MAX_WAIT - 5 < stopped.value.retry_after <= MAX_WAIT
    assert await lim.acquire(RouteKey(identity="bot:other", major="G3", **PUT), deadline=time.monotonic() + 1)
    await lim.backend.aclose()


def test_waits_and_counts_outside_their_range_are_held_to_it() -> None:
    parsed = RateLimitHeaders.parse(
        {
            "x-ratelimit-limit": "1e300",
            "x-ratelimit-remaining": "-3",
            "x-ratelimit-reset-after": "-5",
            "retry-after": "1e9",
        }
    )
    assert (parsed.limit, parsed.remaining, parsed.reset_after, parsed.retry_after) == (MAX_COUNT, 0, 0.0, MAX_WAIT)
    assert RateLimitHeaders.parse({"x-ratelimit-reset-after": "nan", "retry-after": "inf"}).reset_after is None
