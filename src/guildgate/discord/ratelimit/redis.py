"""The Redis backend: the limiter's state shared by all workers on all hosts (quotas and caches beside it,
on the same connection pool: ``stores.py``).

Each decision is one Lua script (atomic), so acquiring is one round trip and releasing is one more. The
clock is Redis ``TIME``, so hosts whose clocks disagree still agree on every window. Every key has a TTL;
slots of requests that never report back (a crashed worker) expire on their own after ``HOLD`` seconds.
If Redis is slow or down the limiter fails closed: requests get ``discord_unavailable`` (503) in time,
never an unguarded call to Discord.
"""

from __future__ import annotations

import math
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from guildgate.core.errors import DiscordUnavailableError
from guildgate.discord.ratelimit.model import (
    HOLD,
    SLIDE_SHIFT,
    UNANSWERED_HOLD,
    Decision,
    Permit,
    RateLimitHeaders,
    RouteKey,
)

NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

ACQUIRE = (
    NOW
    + """
local p, ident, route, major, pid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local glimit, ilimit, hold, unanswered = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local ban = redis.call('PTTL', p .. 'ban')
if ban > 0 then return {'banned', ban, '', 0} end
redis.call('ZREMRANGEBYSCORE', p .. 'inv', '-inf', now - 600000)
redis.call('ZREMRANGEBYSCORE', p .. 'fly', '-inf', now)
if redis.call('ZCARD', p .. 'inv') + redis.call('ZCARD', p .. 'fly') >= ilimit then
  local oldest = redis.call('ZRANGE', p .. 'inv', 0, 0, 'WITHSCORES')
  local wait = 1000
  if oldest[2] then wait = tonumber(oldest[2]) + 600000 - now end
  return {'invalid', wait, '', 0}
end
local paused = tonumber(redis.call('GET', p .. 'pause:' .. ident) or '0')
if paused > now then return {'paused', paused - now, '', 0} end
local rid = redis.call('GET', p .. 'route:' .. route) or route
local bid = ident .. ':' .. rid .. ':' .. major
local bk, bf = p .. 'b:' .. bid, p .. 'bf:' .. bid
redis.call('ZREMRANGEBYSCORE', bf, '-inf', now)
local inflight = redis.call('ZCARD', bf)
if rid ~= route then
  -- requests sent before the bucket's hash was learned still count against it
  local pf = p .. 'bf:' .. ident .. ':' .. route .. ':' .. major
  redis.call('ZREMRANGEBYSCORE', pf, '-inf', now)
  inflight = inflight + redis.call('ZCARD', pf)
end
local st = redis.call('HMGET', bk, 'known', 'unlimited', 'limit', 'remaining', 'reset_at', 'period', 'since')
if st[1] ~= '1' then
  if inflight > 0 then return {'discovery', 50, bid, 1} end
elseif st[2] ~= '1' then
  local limit, remaining, reset_at = tonumber(st[3]), tonumber(st[4]), tonumber(st[5])
  local period, since = tonumber(st[6] or '0'), tonumber(st[7] or '0')
  if reset_at > 0 and now >= reset_at then
    remaining, reset_at, since = limit, 0, now
    redis.call('HSET', bk, 'remaining', limit, 'reset_at', 0, 'since', now)
  end
  local avail = remaining
  if period > 0 and reset_at > 0 then  -- sliding: a slot back every period since the answer
    avail = math.min(limit, remaining + math.floor((now - since) / period))
  end
  if avail - inflight <= 0 then
    if reset_at > now then
      local poll = 0
      if inflight > 0 then poll = 1 end
      local wait = reset_at - now
      if period > 0 then wait = math.min(wait, math.ceil(since + (inflight - remaining + 1) * period - now)) end
      return {'bucket', wait, bid, poll}
    end
    return {'inflight', 50, bid, 1}
  end
end
local gk = p .. 'g:' .. ident
redis.call('ZREMRANGEBYSCORE', gk, '-inf', now)
if redis.call('ZCARD', gk) >= glimit then
  local first = redis.call('ZRANGE', gk, 0, 0, 'WITHSCORES')
  local wait = tonumber(first[2]) - now
  -- past the longest a released slot is kept: the oldest is still in flight, its end unknown
  if wait > unanswered then return {'global', 20, bid, 1} end
  return {'global', wait, bid, 0}
end
local expiry = now + hold
for _, k in ipairs({gk, bf, p .. 'fly'}) do
  redis.call('ZADD', k, expiry, pid)
  redis.call('PEXPIRE', k, hold + 2000)
end
return {'ok', 0, bid, 0, now}
"""
)

RELEASE = (
    NOW
    + """
local p, ident, bid, pid, route, major = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local status, sent, ban = tonumber(ARGV[7]), ARGV[8] == '1', ARGV[9] == '1'
local has, limit, remaining, reset_after = ARGV[10] == '1', tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local bhash, scope, is_global, retry = ARGV[14], ARGV[15], ARGV[16] == '1', tonumber(ARGV[17])
local unanswered, answered, granted = tonumber(ARGV[18]), tonumber(ARGV[19]), tonumber(ARGV[20])
local slide_shift = tonumber(ARGV[21])
-- when the answer came (never later than now: a release that arrives late learns and holds no later)
local at = now
if answered >= 0 and answered < now then at = answered end
redis.call('ZREM', p .. 'fly', pid)
redis.call('ZREM', p .. 'bf:' .. bid, pid)
local gk = p .. 'g:' .. ident
if sent and status < 0 then
  redis.call('ZADD', gk, 'XX', now + unanswered, pid)  -- no answer: it may yet reach Discord (key TTL: HOLD)
elseif sent then
  redis.call('ZADD', gk, 'XX', at + 1000, pid)  -- counted until a second after the answer came
else
  redis.call('ZREM', gk, pid)
end
if ban then
  local ms = 3600000
  if retry > ms then ms = retry end
  redis.call('SET', p .. 'ban', '1', 'PX', ms)
end
if status == 401 or status == 403 or (status == 429 and scope ~= 'shared') then
  redis.call('ZADD', p .. 'inv', now, pid)
  redis.call('PEXPIRE', p .. 'inv', 601000)
end
if status < 0 then
  -- no answer: assume Discord counted it against the bucket
  local bk = p .. 'b:' .. bid
  if sent and redis.call('HGET', bk, 'known') == '1' and redis.call('HGET', bk, 'unlimited') ~= '1' then
    redis.call('HINCRBY', bk, 'remaining', -1)
  end
  return 0
end
if status == 429 and is_global then
  local key = p .. 'pause:' .. ident
  local untilv = at + retry
  local cur = tonumber(redis.call('GET', key) or '0')
  if untilv > cur then redis.call('SET', key, untilv, 'PX', retry + 1000) end
  return 0
end
local target = bid
if bhash ~= '' then
  redis.call('SET', p .. 'route:' .. route, bhash, 'EX', 86400)
  target = ident .. ':' .. bhash .. ':' .. major
end
local tk = p .. 'b:' .. target
local st = redis.call('HMGET', tk, 'known', 'reset_at', 'remaining', 'period', 'since', 'reset_lo', 'reset_hi', 'limit')
local known, cur_reset, cur_remaining = st[1] == '1', tonumber(st[2] or '0'), tonumber(st[3] or '0')
if has then
  local reset_at = at + reset_after
  local lo = at + reset_after
  if granted >= 0 then lo = granted + reset_after end
  local period, since = tonumber(st[4] or '0'), tonumber(st[5] or '0')
  local prev_lo, prev_hi = tonumber(st[6] or '0'), tonumber(st[7] or '0')
  local used = limit - remaining
  -- sliding or fixed (memory.py's learn says how): a later reset named before the last one's came
  if known and used > 0 and at < prev_lo and reset_after % 1000 ~= 0
    and lo - prev_hi >= math.max(slide_shift, reset_after / used / 2) then
    period = reset_after / used
  end
  local r = remaining
  if period > 0 and cur_reset > 0 then
    local avail = math.min(tonumber(st[8] or limit), cur_remaining + math.floor((at - since) / period))
    if remaining <= avail then since = at else r = cur_remaining end
    if used > 0 then period = reset_after / used end
  elseif not known or cur_reset == 0 or reset_at > cur_reset + 500 then
    since = at
  elseif cur_remaining < r then
    r = cur_remaining
  end
  if cur_reset > reset_at then reset_at = cur_reset end
  redis.call('HSET', tk, 'known', 1, 'unlimited', 0, 'limit', limit, 'remaining', r, 'reset_at', reset_at,
    'period', period, 'since', since, 'reset_lo', lo, 'reset_hi', at + reset_after)
  redis.call('PEXPIRE', tk, reset_at - now + 60000)
  known, cur_reset = true, reset_at
elseif status < 500 and status ~= 429 and not known then
  redis.call('HSET', tk, 'known', 1, 'unlimited', 1)
  redis.call('EXPIRE', tk, 3600)
end
if status == 429 and scope ~= 'shared' then
  local reset_at = at + retry
  if cur_reset > reset_at then reset_at = cur_reset end
  redis.call('HSET', tk, 'known', 1, 'unlimited', 0, 'remaining', 0, 'reset_at', reset_at, 'period', 0)
  if not has then redis.call('HSETNX', tk, 'limit', 1) end
  redis.call('PEXPIRE', tk, reset_at - now + 60000)
end
return 0
"""
)

INVALID_USED = (
    NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 600000)
return redis.call('ZCARD', KEYS[1])
"""
)

GLOBAL_USED = (
    NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)


# Connections per worker process (Redis allows 10,000 clients); a call holds one for one round trip. Measured
# under 10x load at a 50/s global limit: with 32, a single worker's calls waited past POOL_WAIT for a connection
# (1,100 needless 503s in 20 s); 256 keeps them flowing. Calls past the pool wait their turn (``POOL_WAIT``).
MAX_CONNECTIONS = 256
POOL_WAIT = 2.0  # seconds a call may wait for a free connection before it fails (and the join answers 503)
# Read once: redis-py otherwise looks its own version up in the package metadata for every new connection
# (a profile of a worker under 10x load found that lookup at 7 % of its CPU).
DRIVER = redis.DriverInfo()


def _decision(answer: list[Any]) -> Decision:
    reason, wait_ms, bucket_id, poll = answer[:4]
    return Decision(
        ok=reason == "ok",
        reason=str(reason),
        wait=max(int(wait_ms), 0) / 1000,
        poll=bool(int(poll)),
        bucket_id=str(bucket_id),
        at=int(answer[4]) / 1000 if len(answer) > 4 else None,
    )


def unavailable(exc: Exception) -> DiscordUnavailableError:
    return DiscordUnavailableError(
        f"the shared rate-limit store (Redis) is not answering ({type(exc).__name__}); "
        "not sending to Discord unguarded",
        http_status=503,
        retry_after=1.0,
    )


class RedisBackend:
    def __init__(self, url: str, *, prefix: str = "gg:", timeout: float = 1.0) -> None:
        self.prefix = prefix
        # A blocking pool: under a burst, a call waits (up to POOL_WAIT) for one of the pool's connections
        # instead of failing at once when all are busy (redis-py's plain pool raises MaxConnectionsError at 100,
        # which turned a 10x load into hundreds of needless 503s).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT,
            driver_info=DRIVER,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            health_check_interval=30,
        )
        self.redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._acquire = self.redis.register_script(ACQUIRE)
        self._release = self.redis.register_script(RELEASE)
        self._invalid = self.redis.register_script(INVALID_USED)
        self._global = self.redis.register_script(GLOBAL_USED)

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from None

    async def try_acquire(self, key: RouteKey, permit_id: str, *, global_limit: int, invalid_limit: int) -> Decision:
        args = [
            self.prefix,
            key.identity,
            key.route,
            key.major,
            permit_id,
            global_limit,
            invalid_limit,
            int(HOLD * 1000),
            int(UNANSWERED_HOLD * 1000),
        ]
        return _decision(await self._run(self._acquire, [], args))

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
        h = headers or RateLimitHeaders()
        retry = h.retry_after if h.retry_after is not None else (h.reset_after or 1.0)
        args = [
            self.prefix,
            permit.key.identity,
            permit.bucket_id,
            permit.id,
            permit.key.route,
            permit.key.major,
            status if (status is not None and headers is not None) else -1,
            int(sent),
            int(ban),
            int(h.complete),
            h.limit or 0,
            h.remaining or 0,
            int((h.reset_after or 0) * 1000),
            h.bucket or "",
            h.scope or "",
            int(h.is_global),
            int(retry * 1000),
            int(UNANSWERED_HOLD * 1000),
            # Redis TIME is read in whole milliseconds (the grant may have come up to 1 ms after it): round up
            math.ceil(answered * 1000) + 1 if answered is not None else -1,
            int(permit.granted * 1000) if permit.granted is not None else -1,
            int(SLIDE_SHIFT * 1000),
        ]
        if status is not None and headers is None:
            args[6] = status  # counted (401/403/429) but nothing to learn
        await self._run(self._release, [], args)

    async def invalid_used(self) -> int:
        return int(await self._run(self._invalid, [self.prefix + "inv"], []))

    async def global_used(self, identity: str) -> int:
        return int(await self._run(self._global, [self.prefix + "g:" + identity], []))

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from None

    async def aclose(self) -> None:
        await self.redis.aclose()
