"""DiscordPort over ``calls.Caller``: the calls a join, a join link and the doctor make (a member's roles, the
kick: ``members.py``), what their answers mean, and what is remembered between them — the invite cache
(``INVITE_TTL``; a refusal for ``INVITE_NEGATIVE_TTL``), the invite-lookup budget, and refused tokens, by
fingerprint (``Cache``, ``Windows``: this process's or Redis's, beside the limiter)."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeGuard

from guildgate.core.errors import DiscordRefusedError, DiscordUnavailableError, JoinError, RateLimitedError
from guildgate.core.outcomes import Outcome
from guildgate.core.ports import Added, AppCredentials, GuildRef, MemberOptions, Ticket, UserRef
from guildgate.core.secret import Secret
from guildgate.discord import routes
from guildgate.discord.calls import Admission, Answer, CallObserver, Slot
from guildgate.discord.codes import discord_text, refusal
from guildgate.discord.members import MemberCalls
from guildgate.discord.ratelimit import Cache, Heading, Limiter, MemoryCache, MemoryWindows, RouteKey, Windows
from guildgate.discord.routes import Route

log = logging.getLogger("guildgate.discord")

INVITE_TTL: Final = 300.0
INVITE_NEGATIVE_TTL: Final = 30.0
INVITE_BUDGET: Final = 200  # lookups per 10 minutes; Discord has banned bots at 251 (ratelimits.md)
REFUSED_TOKEN_TTL: Final = 600.0  # a token Discord refused is not sent again for this long
ADMISSION_MARGIN: Final = 1.0  # seconds kept after a rate-limit wait for the record and the Add Guild Member call


class DiscordRest(MemberCalls):
    def __init__(
        self,
        *,
        api_base: str,
        limiter: Limiter,
        egress_proxies: tuple[str, ...] = (),
        observer: CallObserver | None = None,
        cache: Cache | None = None,
        windows: Windows | None = None,
    ) -> None:
        super().__init__(api_base=api_base, limiter=limiter, egress_proxies=egress_proxies, observer=observer)
        self.cache: Cache = cache if cache is not None else MemoryCache()
        self.windows: Windows = windows if windows is not None else MemoryWindows()

    async def resolve_invite(self, code: str, *, app: AppCredentials, deadline: float) -> GuildRef:
        cached = await self.cache.get(f"invite:{code}")
        if cached is not None:
            value = json.loads(cached)
            if "refused" in value:
                raise _refusal_from(value["refused"])
            return GuildRef(id=value["id"], name=value.get("name"))
        wait = await self.windows.window_take("invite-lookups", INVITE_BUDGET, 600.0)
        if wait is not None:
            raise RateLimitedError("the invite-lookup budget is spent; use guild_id or retry later", retry_after=wait)
        answer = await self.call(
            routes.GET_INVITE,
            {"invite_code": code},
            auth=("Bot", app.bot_token),
            deadline=deadline,
            query={"with_counts": "false"},
        )
        if answer.status == 200 and isinstance(answer.body, dict) and isinstance(answer.body.get("guild"), dict):
            guild = answer.body["guild"]
            guild_id = guild.get("id")
            if not _is_id(guild_id):
                raise DiscordUnavailableError("Discord answered Get Invite without a server id", discord_status=200)
            ref = GuildRef(id=guild_id, name=discord_text(guild.get("name")))
            await self.cache.set(f"invite:{code}", json.dumps({"id": ref.id, "name": ref.name}), INVITE_TTL)
            return ref
        if answer.status == 200:  # a group-DM or friend invite: no server to join
            error = DiscordRefusedError(
                "the invite is not for a server",
                outcome=Outcome.UNKNOWN_INVITE,
                discord_status=200,
                discord_code=None,
            )
        else:
            error = refusal(answer.status, answer.body, route=routes.GET_INVITE)
        if error.outcome is Outcome.UNKNOWN_INVITE:
            await self.cache.set(f"invite:{code}", json.dumps({"refused": _refusal_dict(error)}), INVITE_NEGATIVE_TTL)
        raise error

    async def current_user(
        self, token: Secret, *, app: AppCredentials, deadline: float, proxy: str | None = None
    ) -> UserRef:
        fingerprint = _remembered_as(app, token)
        remembered = await self.cache.get(f"badtoken:{fingerprint}")
        if remembered is not None:
            # Discord refused this token moments ago: do not spend another invalid request on it.
            raise _refusal_from(json.loads(remembered))
        answer = await self.call(routes.GET_CURRENT_USER, {}, auth=("Bearer", token), deadline=deadline, proxy=proxy)
        if answer.status == 200 and isinstance(answer.body, dict) and _is_id(answer.body.get("id")):
            return UserRef(id=answer.body["id"], username=discord_text(answer.body.get("username"), limit=100))
        if answer.status == 200:
            raise DiscordUnavailableError("Discord answered Get Current User without a user id", discord_status=200)
        error = refusal(answer.status, answer.body, route=routes.GET_CURRENT_USER)
        if answer.status == 401:
            await self._remember_refused(fingerprint, error)
        raise error

    def _admission(self, app: AppCredentials, guild_id: str, deadline: float) -> tuple[RouteKey, float]:
        """The Add Guild Member key, and by when its slot must come: early enough to note the record and add
        the member before the request's deadline."""
        margin = min(ADMISSION_MARGIN, max(deadline - time.monotonic(), 0.0) / 4)
        return self.key(routes.ADD_GUILD_MEMBER, ("Bot", app.bot_token), guild_id), deadline - margin

    def precheck(self, *, app: AppCredentials, guild_id: str, deadline: float) -> Heading:
        key, by = self._admission(app, guild_id, deadline)
        return self.limiter.head(key, deadline=by)

    def admission(
        self, *, app: AppCredentials, guild_id: str, deadline: float, ticket: Ticket | None = None
    ) -> Admission:
        key, by = self._admission(app, guild_id, deadline)
        return Admission(self.limiter, key, by, ticket)

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
            routes.ADD_GUILD_MEMBER,
            {"guild_id": guild_id, "user_id": user_id},
            auth=("Bot", app.bot_token),
            deadline=deadline,
            json_body=payload,
            proxy=proxy,
            slot=slot if isinstance(slot, Slot) else None,
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
        error = refusal(answer.status, answer.body, route=routes.ADD_GUILD_MEMBER)
        if error.discord_code in (50025, 50026):
            await self._remember_refused(_remembered_as(app, token), error)
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
            routes.GET_GUILD_MEMBER,
            {"guild_id": guild_id, "user_id": user_id},
            auth=("Bot", app.bot_token),
            deadline=deadline,
        )

    async def bot_get(self, route: Route, params: dict[str, str], *, app: AppCredentials, deadline: float) -> Answer:
        """A read with the bot's token (the doctor's lookups); the caller decides what the answer means."""
        return await self.call(route, params, auth=("Bot", app.bot_token), deadline=deadline)

    async def _remember_refused(self, fingerprint: str, error: DiscordRefusedError) -> None:
        """Remember a refused token by its hash (never the token) so it is not sent again for a while."""
        await self.cache.set(f"badtoken:{fingerprint}", json.dumps(_refusal_dict(error)), REFUSED_TOKEN_TTL)


def _is_id(value: object) -> TypeGuard[str]:
    """A snowflake as Discord's answers carry one: a string of at most 20 ASCII digits. An id goes into the next
    call's path and into the record: anything else in its place is an answer without one."""
    return isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdecimal()


def _remembered_as(app: AppCredentials, token: Secret) -> str:
    """What a refused token is remembered under: its fingerprint together with the app it was sent for.
    Discord refuses a token granted to another application (403 50025) that is fine for its own: a refusal
    through one app must not stop the same person's join through the app the token was granted to."""
    return f"{app.client_id}:{token.fingerprint()}"


def _refusal_dict(error: DiscordRefusedError) -> dict[str, Any]:
    return {
        "detail": error.detail,
        "outcome": error.outcome.value,
        "status": error.discord_status,
        "code": error.discord_code,
    }


def _refusal_from(value: dict[str, Any]) -> DiscordRefusedError:
    return DiscordRefusedError(
        value["detail"], outcome=Outcome(value["outcome"]), discord_status=value["status"], discord_code=value["code"]
    )
