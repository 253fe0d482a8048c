"""One Discord call: a route from ``routes.py`` through the rate limiter and ``transport.py``, with bounded retries.

Every call: take a limiter permit (bucket + global + invalid budget) -> send -> learn from the headers ->
decide. 5xx, timeouts and connection errors are retried with backoff and jitter while the deadline allows;
401/403/404 never are. A 429 is waited out through the limiter (which now knows the bucket) or, when the
wait would pass the deadline, answered at once as ``rate_limited``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlencode

import orjson
from multidict import CIMultiDictProxy

from guildgate import __version__
from guildgate.core.errors import DiscordUnavailableError, RateLimitedError
from guildgate.core.ports import Ticket
from guildgate.core.secret import Secret
from guildgate.discord.ratelimit import Limiter, Permit, RateLimitHeaders, RouteKey
from guildgate.discord.ratelimit.shares import note_answer
from guildgate.discord.routes import Route
from guildgate.discord.transport import Transport, TransportError

log = logging.getLogger("guildgate.discord")

USER_AGENT: Final = f"DiscordBot (https://github.com/guildgate/guildgate, {__version__}) guildgate/{__version__}"
MAX_ATTEMPTS: Final = 4
ATTEMPT_TIMEOUT: Final = 10.0  # Discord answers in well under a second; a silent attempt is retried after this
RETRY_STATUSES: Final = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})
BOT_KEYS: Final = 4096  # the bot's route keys kept made (a server each); all are dropped when there are more


@dataclass(slots=True)
class Slot:
    permit: Permit | None


class Admission:
    """``DiscordRest.admission``: the bucket and global slot together, after all waiting and just before the
    call; given back unused (nothing sent) if the block ends without the call having taken it. A class rather
    than an ``asynccontextmanager``: every join enters one, and the generator machinery cost more than the rest."""

    __slots__ = ("_by", "_key", "_limiter", "_slot", "_ticket")

    def __init__(self, limiter: Limiter, key: RouteKey, by: float, ticket: Ticket | None) -> None:
        self._limiter, self._key, self._by, self._ticket = limiter, key, by, ticket
        self._slot: Slot | None = None

    async def __aenter__(self) -> Slot:
        try:
            permit = await self._limiter.acquire(self._key, deadline=self._by)
        finally:
            if self._ticket is not None:
                self._ticket.close()
        self._slot = Slot(permit)
        return self._slot

    async def __aexit__(self, *exc: object) -> None:
        slot = self._slot
        if slot is not None and slot.permit is not None:  # never used: nothing was sent with it
            await self._limiter.release(slot.permit, None, sent=False)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, made on every call
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any
    # When the first earlier attempt that may have reached Discord was sent (a 5xx, a timeout or a dropped
    # connection after sending; monotonic), or None: this answer may then describe what that attempt did.
    earlier_sent: float | None = None


class CallObserver(Protocol):
    """Told of every answer from Discord (metrics plug in here)."""

    def answered(self, template: str, method: str, status: int, scope: str | None) -> None: ...


class _Unobserved:
    def answered(self, template: str, method: str, status: int, scope: str | None) -> None:
        pass


class Caller:
    """Calls to one API base through one transport and one limiter (``DiscordRest`` is the port over it)."""

    def __init__(
        self,
        *,
        api_base: str,
        limiter: Limiter,
        egress_proxies: tuple[str, ...] = (),
        max_attempts: int = MAX_ATTEMPTS,
        observer: CallObserver | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.observer: CallObserver = observer or _Unobserved()
        self.egress_proxies = frozenset(egress_proxies)
        self.transport = Transport(self.api_base, user_agent=USER_AGENT)
        self._bot_keys: dict[tuple[Route, str, str], RouteKey] = {}

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def call(
        self,
        route: Route,
        params: dict[str, str],
        *,
        auth: tuple[str, Secret],
        deadline: float,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        proxy: str | None = None,
        slot: Slot | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Answer:
        """One Discord call with rate limiting and retries. Returns the final answer (2xx, 3xx or 4xx).
        ``slot``: a permit taken beforehand (``admission``) for the first attempt. ``extra_headers``: sent as they
        are (``X-Audit-Log-Reason``)."""
        scheme, secret = auth
        key = self.key(route, auth, route.major_value(params))
        path = route.path(params)
        if query:
            path += "?" + urlencode(query)
        if proxy is not None and proxy not in self.egress_proxies:
            raise ValueError("proxy is not one of the operator's egress proxies")  # checked at the API already
        headers = {"Authorization": f"{scheme} {secret.reveal()}"}
        if extra_headers:
            headers.update(extra_headers)
        payload, content_type = _payload(json_body, form)
        last_problem, last_status, timed_out = "no attempt was made", None, False
        attempt = rate_limit_retries = 0
        earlier_sent: float | None = None
        while attempt < self.max_attempts:
            if slot is not None and slot.permit is not None:
                permit, slot.permit = slot.permit, None
            else:
                permit = await self.limiter.acquire(key, deadline=deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                await self.limiter.release(permit, None, sent=False)
                break
            sent_at = time.monotonic()
            try:
                reply = await self.transport.request(
                    route.method,
                    path,
                    headers=headers,
                    body=payload,
                    content_type=content_type,
                    within=attempt_timeout(remaining),
                    proxy=proxy,
                )
                answered = time.monotonic()
            except (TimeoutError, TransportError) as exc:
                # A connection that could not be made carried nothing; anything later may have reached Discord.
                unsent = isinstance(exc, TransportError) and not exc.sent
                await self.limiter.release(permit, None, sent=not unsent)
                if not unsent and earlier_sent is None:
                    earlier_sent = sent_at
                attempt += 1
                timed_out = isinstance(exc, TimeoutError)
                last_status = None
                last_problem = (
                    "Discord did not answer in time" if timed_out else f"could not reach Discord ({type(exc).__name__})"
                )
                await self._backoff(attempt, deadline)
                continue
            except ValueError as exc:  # a header or path the transport will not write (a line break): nothing sent
                await self.limiter.release(permit, None, sent=False)
                raise DiscordUnavailableError(f"refused to send the call: {exc}") from None
            except BaseException:
                await self.limiter.release(permit, None, sent=True)
                raise
            status = reply.status
            body = _decode(reply.body, reply.headers.get("content-type", ""))
            limits = RateLimitHeaders.parse(reply.headers, body)
            self.observer.answered(route.template, route.method, status, limits.scope)
            note_answer(status, limits.scope)  # against the share of the key (or the links) this call is for
            if status == 429 and (not isinstance(body, dict) or body.get("code") == 40333 or "retry_after" not in body):
                await self.limiter.release(permit, limits, status=status, ban=True, answered=answered)
                log.error("Discord answered a ban (429 without Discord's JSON); sending stopped")
                raise DiscordUnavailableError(
                    "Discord is blocking this deployment (Cloudflare ban answer)", http_status=503, discord_status=429
                )
            try:
                await self.limiter.release(permit, limits, status=status, answered=answered)
            except DiscordUnavailableError as exc:  # the shared store went away after the call: the answer stands
                log.warning("the rate limiter could not learn from %s's answer: %s", route.name, exc)
            if status == 429:
                rate_limit_retries += 1
                log.warning(
                    "429 from Discord on %s scope=%s retry_after=%s", route.name, limits.scope, limits.retry_after
                )
                wait = limits.retry_after or 1.0
                if time.monotonic() + wait > deadline or rate_limit_retries > 3:
                    raise RateLimitedError("Discord asked to slow down", retry_after=wait)
                if limits.scope == "shared":
                    await asyncio.sleep(wait)  # not ours to model: just obey it
                continue
            if status in RETRY_STATUSES:
                if earlier_sent is None:
                    earlier_sent = sent_at
                attempt += 1
                last_problem, last_status, timed_out = f"Discord answered {status}", status, False
                await self._backoff(attempt, deadline)
                continue
            return Answer(status=status, headers=reply.headers, body=body, earlier_sent=earlier_sent)
        raise DiscordUnavailableError(
            f"{last_problem} after {attempt} attempt(s)",
            http_status=504 if timed_out else 502,
            discord_status=last_status,
        )

    def key(self, route: Route, auth: tuple[str, Secret], major: str) -> RouteKey:
        """The rate-limit key of a call: who calls (a fingerprint of the token), the route, its major value."""
        scheme, secret = auth
        fingerprint = secret.fingerprint()
        if scheme != "Bot":  # a user's token: its key is made for its one join
            return RouteKey(
                identity=f"{scheme.lower()}:{fingerprint}", method=route.method, template=route.template, major=major
            )
        # a bot's: the same few (route, server) keys again and again, three a join — made once each
        cache_key = (route, fingerprint, major)
        key = self._bot_keys.get(cache_key)
        if key is None:
            if len(self._bot_keys) >= BOT_KEYS:
                self._bot_keys.clear()
            key = self._bot_keys[cache_key] = RouteKey(
                identity=f"bot:{fingerprint}", method=route.method, template=route.template, major=major
            )
        return key

    async def _backoff(self, attempt: int, deadline: float) -> None:
        delay = min(0.1 * 2 ** (attempt - 1), 2.0) * (0.5 + random.random())
        if time.monotonic() + delay < deadline - 0.1 and attempt < self.max_attempts:
            await asyncio.sleep(delay)


def attempt_timeout(remaining: float) -> float:
    """How long one attempt may wait: at most half of what is left (so a hung attempt leaves room for a retry),
    at most ATTEMPT_TIMEOUT, at least half a second, never past the deadline."""
    return max(min(ATTEMPT_TIMEOUT, remaining / 2), min(0.5, remaining))


def _payload(json_body: Any, form: dict[str, str] | None) -> tuple[bytes | None, str]:
    if json_body is not None:
        return orjson.dumps(json_body), "application/json"
    if form is not None:
        return urlencode(form).encode(), "application/x-www-form-urlencoded"
    return None, "application/json"


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "json" in content_type:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(raw)  # what orjson refuses (a number past 64 bits, say) but is still JSON
        except (ValueError, RecursionError):  # not JSON, a number past 4300 digits, nesting past the stack
            pass
    return raw.decode("utf-8", "replace")[:500]
