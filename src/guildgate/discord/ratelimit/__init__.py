"""Discord rate limiting: buckets, the global limit and the invalid-request budget.

Discord's bucket theory, as this module applies it
-------------------------------------------------
* Every request is limited per *identity* (each bot token, each user Bearer token, or the IP for requests
  without auth) and per *bucket*. A bucket is named by the ``X-RateLimit-Bucket`` header, which Discord
  sends on most answers. The same hash can cover several routes; it never includes the top-level resource.
* Buckets are split by the route's *major parameter* (``guild_id``, ``channel_id``, ``webhook_id``), so
  ``PUT /guilds/A/members/x`` and ``PUT /guilds/B/members/y`` are limited independently, while every user
  added to guild A shares A's bucket. Keys are therefore ``identity : bucket hash (or method + route
  template while unknown) : major parameter`` — never a concrete path, never a user id.
* The headers ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset-After`` say how many requests are left
  and when the bucket is full again. Discord refills most buckets gradually (sliding: a slot comes back
  every ``reset_after / used`` seconds) and some all at once (fixed); the headers do not say which. A bucket
  is treated as fixed — nothing comes back before ``Reset-After``, everything after, which is safe for both —
  until its answers prove it slides: an answer that came before the previous answer's reset moment (so, in
  a fixed window, the same window) yet names a reset moment later by at least a quarter second and half a
  slot's period. In a fixed window every answer names the same moment; the comparison uses bounds (a
  request reached Discord between its grant and its answer), so network and scheduling delays never fake
  the proof, and an answer whose ``Reset-After`` has no milliseconds (a server rounding to whole seconds
  moves its moment by up to one) proves nothing. A sliding bucket's slots are then used one by one as
  they come back, not in one burst a whole window later; a 429 on it drops the sliding model.
* While a bucket is unknown (first use of a route for a major parameter), one request at a time goes out:
  its answer teaches the limit. Once known, up to ``remaining`` requests may be in flight together.
* A global limit (50 requests per second per bot, counted as Discord receives them) sits on top. A slot
  is taken when a request is sent and held until one second after its answer came back: Discord received
  it at the latest then, so however the network bunches requests, no 1 s window as Discord sees it holds
  more than the limit. With loopback-fast answers this costs almost nothing (a slot lasts RTT + 1 s); a request
  that got no answer keeps its slot 5 s (a loaded server may read it after the client gave up). Because the
  slot's time is limit spent, a join takes it only just before its Add Guild Member call, and "after its
  answer" means after the answer came, not after the release reached the backend (which, under load, waits
  behind other work): the release carries the answer's time, translated to the backend's clock as the grant
  instant plus what this process saw elapse from asking for the slot to the answer — never early.
* A 429 says its scope: ``user`` (our bucket model was wrong: obey ``retry_after``), ``global`` (pause the
  whole identity for ``retry_after``), ``shared`` (a resource limit that is not ours; does not count as
  invalid). A 429 that is not Discord's JSON, or code 40333, is a Cloudflare ban: stop sending.
* 401, 403 and non-shared 429 answers are *invalid requests*; 10,000 of them in 10 minutes get the IP
  banned. The budget counts them, with requests in flight, and stops sending at the configured limit.

Where the state lives is a backend (``model.Backend``): ``MemoryBackend`` (one process) or ``RedisBackend``
(every worker on every host; one Lua script per decision, Redis ``TIME`` as the clock). It holds the limiter's
state only; the quotas and caches beside it have their own interfaces (``stores.py``: ``Windows``, ``Cache``),
sharing the Redis connection. ``Limiter`` (``limiter.py``) is the part that runs in
each process: it asks the backend, waits (or answers ``rate_limited`` at once when the predicted wait
passes the request's deadline), and keeps requests for one bucket in FIFO order within the process — and the
requests of one bot waiting for its global limit in order behind one gate, so one of them asks the backend
when a slot frees, and a newcomer whose place in that queue is past its deadline is answered at once. The
queue a newcomer sees also counts the requests past that check that have no slot yet (``Heading``): under a
flood they are still identifying their users and will reach the gate first, so refusing the newcomer at once
spares its identify call and keeps the process's CPU for the requests that will be sent.
"""

from guildgate.discord.ratelimit.limiter import Heading, Limiter, LimiterObserver
from guildgate.discord.ratelimit.memory import MemoryBackend
from guildgate.discord.ratelimit.model import Backend, Decision, Permit, RateLimitHeaders, RouteKey
from guildgate.discord.ratelimit.stores import Cache, MemoryCache, MemoryWindows, Stores, Windows

__all__ = [
    "Backend",
    "Cache",
    "Decision",
    "Heading",
    "Limiter",
    "LimiterObserver",
    "MemoryBackend",
    "MemoryCache",
    "MemoryWindows",
    "Permit",
    "RateLimitHeaders",
    "RouteKey",
    "Stores",
    "Windows",
]
