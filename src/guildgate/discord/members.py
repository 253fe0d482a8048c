"""The bot's calls on one member, for grants: give and take a role, kick, read the member's roles
(``../shared/spec/access.md``, "Discord calls"). Each goes through the shared limiter like every other call, and
each may carry an audit-log reason, sent as ``X-Audit-Log-Reason`` (URL-encoded UTF-8, at most 512 characters,
as Discord documents), so the server's audit log says which grant did it and why."""

from __future__ import annotations

import time
from typing import Final, Literal
from urllib.parse import quote

from guildgate.core.errors import DiscordUnavailableError
from guildgate.core.ports import AppCredentials
from guildgate.discord import routes
from guildgate.discord.calls import Admission, Answer, Caller
from guildgate.discord.codes import refusal
from guildgate.discord.routes import Route

UNKNOWN_MEMBER: Final = 10007
UNKNOWN_ROLE: Final = 10011
REASON_LIMIT: Final = 512


def audit_reason(reason: str | None) -> dict[str, str] | None:
    """The ``X-Audit-Log-Reason`` header for ``reason`` (None: no header)."""
    if not reason:
        return None
    return {"X-Audit-Log-Reason": quote(reason[:REASON_LIMIT], safe="")}


def discord_code(answer: Answer) -> int | None:
    code = answer.body.get("code") if isinstance(answer.body, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


class MemberCalls(Caller):
    async def _change(
        self,
        route: Route,
        params: dict[str, str],
        *,
        app: AppCredentials,
        deadline: float,
        reason: str | None,
        answer_within: float | None,
    ) -> Answer:
        """A change to a member. With ``answer_within``, ``deadline`` bounds only the wait for the rate limiter's
        slot, and the call has ``answer_within`` seconds from then: a long wait (a sweep of thousands of grants)
        never leaves the call too little time to be answered, which would send it again (retried after a timeout)
        although the first one may have been done."""
        auth = ("Bot", app.bot_token)
        headers = audit_reason(reason)
        if answer_within is None:
            return await self.call(route, params, auth=auth, deadline=deadline, extra_headers=headers)
        key = self.key(route, auth, route.major_value(params))
        async with Admission(self.limiter, key, deadline, None) as slot:
            return await self.call(
                route,
                params,
                auth=auth,
                deadline=time.monotonic() + answer_within,
                slot=slot,
                extra_headers=headers,
            )

    async def add_member_role(
        self,
        *,
        app: AppCredentials,
        guild_id: str,
        user_id: str,
        role_id: str,
        deadline: float,
        reason: str | None = None,
        answer_within: float | None = None,
    ) -> None:
        """Give an existing member a role (Add Guild Member Role); Add Guild Member ignores roles for members.
        Raises the refusal (10007 Unknown Member: ``not_a_member``; 10011 Unknown Role; 50013)."""
        answer = await self._change(
            routes.ADD_GUILD_MEMBER_ROLE,
            {"guild_id": guild_id, "user_id": user_id, "role_id": role_id},
            app=app,
            deadline=deadline,
            reason=reason,
            answer_within=answer_within,
        )
        if answer.status not in (200, 204):
            error = refusal(answer.status, answer.body, route=routes.ADD_GUILD_MEMBER_ROLE)
            if error.discord_code == UNKNOWN_ROLE:
                error.detail = f"role {role_id}: {error.detail}"
                error.args = (error.detail,)
            raise error

    async def remove_member_role(
        self,
        *,
        app: AppCredentials,
        guild_id: str,
        user_id: str,
        role_id: str,
        deadline: float,
        reason: str | None = None,
        answer_within: float | None = None,
    ) -> Literal["removed", "unknown_role"]:
        """Take a role from a member (Remove Guild Member Role): 204 also when the member does not hold it.
        ``"unknown_role"`` when Discord answers 10011 (the role is gone: counted as removed). Raises the other
        refusals (10007: ``not_a_member``; 50013)."""
        answer = await self._change(
            routes.REMOVE_GUILD_MEMBER_ROLE,
            {"guild_id": guild_id, "user_id": user_id, "role_id": role_id},
            app=app,
            deadline=deadline,
            reason=reason,
            answer_within=answer_within,
        )
        if answer.status in (200, 204):
            return "removed"
        if answer.status == 404 and discord_code(answer) == UNKNOWN_ROLE:
            return "unknown_role"
        raise refusal(answer.status, answer.body, route=routes.REMOVE_GUILD_MEMBER_ROLE)

    async def kick_member(
        self,
        *,
        app: AppCredentials,
        guild_id: str,
        user_id: str,
        deadline: float,
        reason: str | None = None,
        answer_within: float | None = None,
    ) -> None:
        """Remove a member from the server (Remove Guild Member). Raises the refusal (10007: ``not_a_member``;
        50013 without Kick Members or when the member's top role is not below the bot's)."""
        answer = await self._change(
            routes.REMOVE_GUILD_MEMBER,
            {"guild_id": guild_id, "user_id": user_id},
            app=app,
            deadline=deadline,
            reason=reason,
            answer_within=answer_within,
        )
        if answer.status not in (200, 204):
            raise refusal(answer.status, answer.body, route=routes.REMOVE_GUILD_MEMBER)

    async def member_roles(
        self, *, app: AppCredentials, guild_id: str, user_id: str, deadline: float
    ) -> tuple[str, ...] | None:
        """The member's role ids (Get Guild Member), or None when they are not in the server (10007). Raises
        the other refusals."""
        answer = await self.call(
            routes.GET_GUILD_MEMBER,
            {"guild_id": guild_id, "user_id": user_id},
            auth=("Bot", app.bot_token),
            deadline=deadline,
        )
        if answer.status == 200 and isinstance(answer.body, dict):
            roles = answer.body.get("roles")
            if not isinstance(roles, list):
                raise DiscordUnavailableError("Get Guild Member answered without roles", discord_status=200)
            return tuple(str(r) for r in roles)
        if answer.status == 200:
            raise DiscordUnavailableError("Get Guild Member answered 200 without a JSON object", discord_status=200)
        if answer.status == 404 and discord_code(answer) == UNKNOWN_MEMBER:
            return None
        raise refusal(answer.status, answer.body, route=routes.GET_GUILD_MEMBER)
