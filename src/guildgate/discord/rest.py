"""DiscordPort over a pooled keep-alive HTTP client (``wire.py``; aiohttp through an operator's egress proxy),
through the rate limiter, with bounded retries.

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
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, Protocol, TypeGuard
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from guildgate import __version__
from guildgate.core.errors import DiscordRefused, DiscordUnavailable, JoinError, RateLimited
from guildgate.core.outcomes import Outcome
from guildgate.core.ports import Added, AppCredentials, GuildRef, MemberOptions, Ticket, UserRef
from guildgate.core.secret import Secret
from guildgate.discord.codes import discord_text, refusal
from guildgate.discord.ratelimit import Heading, Limiter, Permit, RateLimitHeaders, RouteKey
from guildgate.discord.wire import MAX_ANSWER, BadAnswer, Wire, WireError

log = logging.getLogger("guildgate.discord")

USER_AGENT: Final = f"DiscordBot (https://github.com/guildgate/guildgate, {__version__}) guildgate/{__version__}"
MAX_ATTEMPTS: Final = 4
INVITE_TTL: Final = 300.0
INVITE_NEGATIVE_TTL: Final = 30.0
INVITE_BUDGET: Final = 200  # lookups per 10 minutes; Discord has banned bots at 251 (ratelimits.md)
ATTEMPT_TIMEOUT: Final = 10.0  # Discord answers in well under a second; a silent attempt is retried after this
RETRY_STATUSES: Final = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})


MEMBER: Final = "/guilds/{guild_id}/members/{user_id}"
_UNRESERVED: Final = re.compile(r"[A-Za-z0-9_.~-]+")  # what urllib's quote(safe="") never changes
BOT_KEYS: Final = 4096  # the bot's route keys kept made (a server each); all are dropped when there are more
ADMISSION_MARGIN: Final = 1.0  # seconds kept after a rate-limit wait for the record and the Add Guild Member call


@dataclass(slots=True)
class _Slot:
    permit: Permit | None


class _Admission:
    """``DiscordRest.admission``: the bucket and global slot together, after all waiting and just before the
    call; given back unused (nothing sent) if the block ends without the call having taken it. A class rather
    than an ``asynccontextmanager``: every join enters one, and the generator machinery cost more than the rest."""

    __slots__ = ("_by", "_key", "_limiter", "_slot", "_ticket")

    def __init__(self, limiter: Limiter, key: RouteKey, by: float, ticket: Ticket | None) -> None:
        self._limiter, self._key, self._by, self._ticket = limiter, key, by, ticket
        self._slot: _Slot | None = None

    async def __aenter__(self) -> _Slot:
        try:
            permit = await self._limiter.acquire(self._key, deadline=self._by)
        finally:
            if self._ticket is not None:
                self._ticket.close()
        self._slot = _Slot(permit)
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


class DiscordRest:
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
        self._wire = Wire(self.api_base, user_agent=USER_AGENT)
        self._session: aiohttp.ClientSession | None = None
        self._bot_keys: dict[tuple[str, str, str, str], RouteKey] = {}

    def _proxied(self) -> aiohttp.ClientSession:
        # For calls through an operator's egress proxy only (the wire speaks to the API base alone). Made on
        # first use, inside the running loop (aiohttp binds a session to its loop). No proxy from the
        # environment (trust_env off). No cookie jar: a bot keeps no cookies (Cloudflare's included).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=0, keepalive_timeout=30.0),
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
                auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        await self._wire.aclose()
        if self._session is not None:
            await self._session.close()

    # ---- the port -----------------------------------------------------------------------------------
    async def resolve_invite(self, code: str, *, app: AppCredentials, deadline: float) -> GuildRef:
        store = self.limiter.backend
        cached = await store.kv_get(f"invite:{code}")
        if cached is not None:
            value = json.loads(cached)
            if "refused" in value:
                raise _refusal_from(value["refused"])
            return GuildRef(id=value["id"], name=value.get("name"))
        wait = await store.window_take("invite-lookups", INVITE_BUDGET, 600.0)
        if wait is not None:
            raise RateLimited("the invite-lookup budget is spent; use guild_id or retry later", retry_after=wait)
        answer = await self.call(
            "GET",
            "/invites/{invite_code}",
            {"invite_code": code},
            auth=("Bot", app.bot_token),
            deadline=deadline,
            query={"with_counts": "false"},
        )
        if answer.status == 200 and isinstance(answer.body, dict) and isinstance(answer.body.get("guild"), dict):
            guild = answer.body["guild"]
            guild_id = guild.get("id")
            if not _is_id(guild_id):
                raise DiscordUnavailable("Discord answered Get Invite without a server id", discord_status=200)
            ref = GuildRef(id=guild_id, name=discord_text(guild.get("name")))
            await store.kv_set(f"invite:{code}", json.dumps({"id": ref.id, "name": ref.name}), INVITE_TTL)
            return ref
        if answer.status == 200:  # a group-DM or friend invite: no server to join
            error = DiscordRefused(
                "the invite is not for a server",
                outcome=Outcome.UNKNOWN_INVITE,
                discord_status=200,
                discord_code=None,
            )
        else:
            error = refusal(answer.status, answer.body, route="GET /invites/{invite_code}")
        if error.outcome is Outcome.UNKNOWN_INVITE:
            await store.kv_set(f"invite:{code}", json.dumps({"refused": _refusal_dict(error)}), INVITE_NEGATIVE_TTL)
        raise error

    async def current_user(
        self, token: Secret, *, app: AppCredentials, deadline: float, proxy: str | None = None
    ) -> UserRef:
        fingerprint = _remembered_as(app, token)
        remembered = await self.limiter.bad_token(fingerprint)
        if remembered is not None:
            # Discord refused this token moments ago: do not spend another invalid request on it.
            raise _refusal_from(json.loads(remembered))
        answer = await self.call("GET", "/users/@me", {}, auth=("Bearer", token), deadline=deadline, proxy=proxy)
        if answer.status == 200 and isinstance(answer.body, dict) and _is_id(answer.body.get("id")):
            return UserRef(id=answer.body["id"], username=discord_text(answer.body.get("username"), limit=100))
        if answer.status == 200:
            raise DiscordUnavailable("Discord answered Get Current User without a user id", discord_status=200)
        error = refusal(answer.status, answer.body, route="GET /users/@me")
        if answer.status == 401:
            await self.limiter.mark_bad_token(fingerprint, json.dumps(_refusal_dict(error)))
        raise error

    def _admission(self, app: AppCredentials, guild_id: str, deadline: float) -> tuple[RouteKey, float]:
        """The Add Guild Member key, and by when its slot must come: early enough to note the record and add
        the member before the request's deadline."""
        margin = min(ADMISSION_MARGIN, max(deadline - time.monotonic(), 0.0) / 4)
        return self._key("PUT", MEMBER, ("Bot", app.bot_token), guild_id), deadline - margin

    def precheck(self, *, app: AppCredentials, guild_id: str, deadline: float) -> Heading:
        key, by = self._admission(app, guild_id, deadline)
        return self.limiter.head(key, deadline=by)

    def admission(
        self, *, app: AppCredentials, guild_id: str, deadline: float, ticket: Ticket | None = None
    ) -> _Admission:
        key, by = self._admission(app, guild_id, deadline)
        return _Admission(self.limiter, key, by, ticket)

    async def add_member(
        self,
        *,
        app: AppCredentials,
        guild_id: str,
        user_id: str,
        token: Secret,
        options: MemberOptions,
        deadline: float,
        proxy: str | None = None,
        slot: object | None = None,
    ) -> Added:
        payload: dict[str, Any] = {"access_token": token.reveal()}
        if options.roles is not None:
            payload["roles"] = list(options.roles)
        if options.nick is not None:
            payload["nick"] = options.nick
        if options.mute is not None:
            payload["mute"] = options.mute
        if options.deaf is not None:
            payload["deaf"] = options.deaf
        answer = await self.call(
            "PUT",
            MEMBER,
            {"guild_id": guild_id, "user_id": user_id},
            auth=("Bot", app.bot_token),
            deadline=deadline,
            json_body=payload,
            proxy=proxy,
            major=guild_id,
            slot=slot if isinstance(slot, _Slot) else None,
        )
        if answer.status == 201:
            return Added(joined=True, status=201)
        if answer.status == 204:
            # "Already a member" — unless an earlier attempt of this call added them and its answer was lost
            joined = answer.earlier_sent is not None and await self._added_by_earlier_attempt(
                app=app, guild_id=guild_id, user_id=user_id, answer=answer, deadline=deadline
            )
            return Added(joined=joined, status=204)
        if answer.status in (200, 202):
            # Not a documented answer for this route; treat a 2xx as added, say so in the log.
            log.warning("Add Guild Member answered %s; treating it as added", answer.status)
            return Added(joined=True, status=answer.status)
        error = refusal(answer.status, answer.body, route="PUT /guilds/{guild_id}/members/{user_id}")
        if error.discord_code in (50025, 50026):
            await self.limiter.mark_bad_token(_remembered_as(app, token), json.dumps(_refusal_dict(error)))
        raise error

    async def _added_by_earlier_attempt(
        self, *, app: AppCredentials, guild_id: str, user_id: str, answer: Answer, deadline: float
    ) -> bool:
        """After a 5xx or a lost answer, a retried Add Guild Member answers 204 whether the person was a member
        before or the lost attempt added them. Get Guild Member's ``joined_at`` tells them apart: on Discord's
        own clock (the 204's ``Date``, whole seconds), did they join after that attempt was sent? False when
        it cannot be told (no ``Date``, no ``joined_at``, the lookup failed): never reported joined on a guess."""
        assert answer.earlier_sent is not None
        try:
            discord_now = parsedate_to_datetime(answer.headers.get("date", ""))
        except (TypeError, ValueError):
            return False
        if discord_now.tzinfo is None:
            return False
        since = discord_now - timedelta(seconds=time.monotonic() - answer.earlier_sent + 1.0)
        # The member was added or already there: this lookup must not cost the join its answer. It ends well
        # before the request's deadline (the margin the admission keeps), in 2 s at most.
        by = min(deadline - ADMISSION_MARGIN, time.monotonic() + 2.0)
        if by <= time.monotonic():
            return False
        try:
            found = await self._get_member(app=app, guild_id=guild_id, user_id=user_id, deadline=by)
        except JoinError:
            return False
        joined_at = found.body.get("joined_at") if found.status == 200 and isinstance(found.body, dict) else None
        try:
            joined = datetime.fromisoformat(joined_at) if isinstance(joined_at, str) else None
        except ValueError:
            return False
        return joined is not None and joined.tzinfo is not None and joined >= since

    async def get_member(self, *, app: AppCredentials, guild_id: str, user_id: str, deadline: float) -> bool | None:
        """True when the user is a member, False when not, None when Discord would not say."""
        answer = await self._get_member(app=app, guild_id=guild_id, user_id=user_id, deadline=deadline)
        if answer.status == 200:
            return True
        if answer.status == 404 and isinstance(answer.body, dict) and answer.body.get("code") == 10007:
            return False
        return None

    async def _get_member(self, *, app: AppCredentials, guild_id: str, user_id: str, deadline: float) -> Answer:
        return await self.call(
            "GET",
            "/guilds/{guild_id}/members/{user_id}",
            {"guild_id": guild_id, "user_id": user_id},
            auth=("Bot", app.bot_token),
            deadline=deadline,
            major=guild_id,
        )

    async def add_member_role(
        self, *, app: AppCredentials, guild_id: str, user_id: str, role_id: str, deadline: float
    ) -> None:
        """Give an existing member a role (Add Guild Member Role); Add Guild Member ignores roles for members."""
        answer = await self.call(
            "PUT",
            "/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
            {"guild_id": guild_id, "user_id": user_id, "role_id": role_id},
            auth=("Bot", app.bot_token),
            deadline=deadline,
            major=guild_id,
        )
        if answer.status not in (200, 204):
            raise refusal(answer.status, answer.body, route="PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}")

    async def bot_get(self, template: str, params: dict[str, str], *, app: AppCredentials, deadline: float) -> Answer:
        """A read with the bot's token (the doctor's lookups); the caller decides what the answer means."""
        return await self.call(
            "GET", template, params, auth=("Bot", app.bot_token), deadline=deadline, major=params.get("guild_id", "")
        )

    # ---- plumbing -----------------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        template: str,
        params: dict[str, str],
        *,
        auth: tuple[str, Secret],
        deadline: float,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        proxy: str | None = None,
        major: str = "",
        slot: _Slot | None = None,
    ) -> Answer:
        """One Discord call with rate limiting and retries. Returns the final answer (2xx or 4xx).
        ``slot``: a permit taken beforehand (``admission``) for the first attempt."""
        scheme, secret = auth
        key = self._key(method, template, auth, major)
        path = template.format(**{name: _segment(value) for name, value in params.items()})
        if query:
            path += "?" + urlencode(query)
        if proxy is not None and proxy not in self.egress_proxies:
            raise ValueError("proxy is not one of the operator's egress proxies")  # checked at the API already
        headers = {"Authorization": f"{scheme} {secret.reveal()}"}
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
                if proxy is None:
                    reply = await self._wire.request(
                        method,
                        path,
                        headers=headers,
                        body=payload,
                        content_type=content_type,
                        within=attempt_timeout(remaining),
                    )
                    status, raw, answer_headers = reply.status, reply.body, reply.headers
                else:
                    status, raw, answer_headers = await self._send_proxied(
                        method, path, headers, payload, content_type, proxy, attempt_timeout(remaining)
                    )
                answered = time.monotonic()
            except (TimeoutError, WireError, aiohttp.ClientError) as exc:
                # A connection that could not be made carried nothing; anything later may have reached Discord.
                unsent = (isinstance(exc, WireError) and not exc.sent) or (
                    isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(exc, TimeoutError)
                )
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
            except ValueError as exc:  # a header or path the wire will not write (a line break): nothing was sent
                await self.limiter.release(permit, None, sent=False)
                raise DiscordUnavailable(f"refused to send the call: {exc}") from None
            except BaseException:
                await self.limiter.release(permit, None, sent=True)
                raise
            body = _decode(raw, answer_headers.get("content-type", ""))
            limits = RateLimitHeaders.parse(answer_headers, body)
            self.observer.answered(template, method, status, limits.scope)
            if status == 429 and (not isinstance(body, dict) or body.get("code") == 40333 or "retry_after" not in body):
                await self.limiter.release(permit, limits, status=status, ban=True, answered=answered)
                log.error("Discord answered a ban (429 without Discord's JSON); sending stopped")
                raise DiscordUnavailable(
                    "Discord is blocking this deployment (Cloudflare ban answer)", http_status=503, discord_status=429
                )
            try:
                await self.limiter.release(permit, limits, status=status, answered=answered)
            except DiscordUnavailable as exc:  # the shared store went away after the call: the answer stands
                log.warning("the rate limiter could not learn from %s's answer: %s", key.route, exc)
            if status == 429:
                rate_limit_retries += 1
                log.warning(
                    "429 from Discord on %s scope=%s retry_after=%s", key.route, limits.scope, limits.retry_after
                )
                wait = limits.retry_after or 1.0
                if time.monotonic() + wait > deadline or rate_limit_retries > 3:
                    raise RateLimited("Discord asked to slow down", retry_after=wait)
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
            return Answer(status=status, headers=answer_headers, body=body, earlier_sent=earlier_sent)
        raise DiscordUnavailable(
            f"{last_problem} after {attempt} attempt(s)",
            http_status=504 if timed_out else 502,
            discord_status=last_status,
        )

    async def _send_proxied(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        payload: bytes | None,
        content_type: str,
        proxy: str,
        within: float,
    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        if payload is not None:
            headers = {**headers, "Content-Type": content_type}
        async with self._proxied().request(
            method,
            self.api_base + path,
            headers=headers,
            data=payload,
            proxy=proxy,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=within),
        ) as response:
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(65536):  # decompressed, as it comes
                size += len(chunk)
                if size > MAX_ANSWER:
                    raise BadAnswer("the answer is too large")
                chunks.append(chunk)
            return response.status, b"".join(chunks), response.headers

    def _key(self, method: str, template: str, auth: tuple[str, Secret], major: str) -> RouteKey:
        scheme, secret = auth
        fingerprint = secret.fingerprint()
        if scheme != "Bot":  # a user's token: its key is made for its one join
            return RouteKey(identity=f"{scheme.lower()}:{fingerprint}", method=method, template=template, major=major)
        # a bot's: the same few (route, server) keys again and again, three a join — made once each
        cache_key = (method, template, fingerprint, major)
        key = self._bot_keys.get(cache_key)
        if key is None:
            if len(self._bot_keys) >= BOT_KEYS:
                self._bot_keys.clear()
            key = self._bot_keys[cache_key] = RouteKey(
                identity=f"bot:{fingerprint}", method=method, template=template, major=major
            )
        return key

    async def _backoff(self, attempt: int, deadline: float) -> None:
        delay = min(0.1 * 2 ** (attempt - 1), 2.0) * (0.5 + random.random())
        if time.monotonic() + delay < deadline - 0.1 and attempt < self.max_attempts:
            await asyncio.sleep(delay)


def _is_id(value: object) -> TypeGuard[str]:
    """A snowflake as Discord's answers carry one: a string of at most 20 ASCII digits. An id goes into the next
    call's path and into the record: anything else in its place is an answer without one."""
    return isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdecimal()


def _segment(value: str) -> str:
    """A path parameter as one path segment: percent-encoded unless it is all unreserved characters (a
    snowflake, an invite code), which quoting leaves as they are."""
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


def attempt_timeout(remaining: float) -> float:
    """How long one attempt may wait: at most half of what is left (so a hung attempt leaves room for a retry),
    at most ATTEMPT_TIMEOUT, at least half a second, never past the deadline."""
    return max(min(ATTEMPT_TIMEOUT, remaining / 2), min(0.5, remaining))


def _remembered_as(app: AppCredentials, token: Secret) -> str:
    """What a refused token is remembered under: its fingerprint together with the app it was sent for.
    Discord refuses a token granted to another application (403 50025) that is fine for its own: a refusal
    through one app must not stop the same person's join through the app the token was granted to."""
    return f"{app.client_id}:{token.fingerprint()}"


def _refusal_dict(error: DiscordRefused) -> dict[str, Any]:
    return {
        "detail": error.detail,
        "outcome": error.outcome.value,
        "status": error.discord_status,
        "code": error.discord_code,
    }


def _refusal_from(value: dict[str, Any]) -> DiscordRefused:
    return DiscordRefused(
        value["detail"], outcome=Outcome(value["outcome"]), discord_status=value["status"], discord_code=value["code"]
    )


class CallObserver(Protocol):
    """Told of every answer from Discord (metrics plug in here)."""

    def answered(self, template: str, method: str, status: int, scope: str | None) -> None: ...


class _Unobserved:
    def answered(self, template: str, method: str, status: int, scope: str | None) -> None:
        pass


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
