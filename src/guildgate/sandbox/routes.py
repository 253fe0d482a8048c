"""The REST routes the sandbox serves, with Discord's checks in the order of discord-api-facts.md §10."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from guildgate.core.invites import is_snowflake
from guildgate.sandbox.calls import (
    Call,
    Handler,
    bot_guild_call,
    check_ids,
    guild_for_bot,
    parse_auth,
    unauthorized,
)
from guildgate.sandbox.fixture import PERMISSIONS
from guildgate.sandbox.members import delete_member_role, get_member, kick_member, put_member_role, role_info
from guildgate.sandbox.objects import (
    application_object,
    guild_object,
    invite_object,
    member_object,
    own_user_object,
    partial_application,
    user_object,
)
from guildgate.sandbox.responses import djson, error, form_error, not_snowflake
from guildgate.sandbox.state import GuildState, Member, UserState

__all__ = ["ROUTES", "Call", "Route", "parse_auth"]


def _flag(call: Call, name: str) -> bool:
    """A boolean query parameter: true/True/1 (reference.mdx)."""
    return call.request.query_params.get(name, "").lower() in ("true", "1")


async def users_me(call: Call) -> Response:
    auth = call.auth
    if auth.kind == "bot" and auth.app is not None:
        return djson(own_user_object(call.world, auth.app.bot_user_id, None))
    if auth.kind != "bearer" or auth.grant is None:
        return unauthorized()
    if "identify" not in auth.grant.scopes:
        if call.world.fixture.options.users_me_without_identify == "50026":
            return error(403, 50026, "Missing required OAuth2 scope")
        return unauthorized()
    return djson(own_user_object(call.world, auth.grant.user_id, auth.grant.scopes))


async def oauth2_me(call: Call) -> Response:
    grant = call.auth.grant
    if call.auth.kind != "bearer" or grant is None:
        return unauthorized()
    app = call.world.apps[grant.app_id]
    body: dict[str, Any] = {
        "application": partial_application(app),
        "scopes": grant.scopes,
        "expires": datetime.fromtimestamp(grant.expires_at, UTC).isoformat(),
    }
    if "identify" in grant.scopes:
        body["user"] = user_object(call.world, grant.user_id)
    return djson(body)


async def get_guild(call: Call) -> Response:
    guild = bot_guild_call(call)
    if isinstance(guild, Response):
        return guild
    return djson(guild_object(call.world, guild, with_counts=_flag(call, "with_counts")))


async def current_application(call: Call) -> Response:
    """Get Current Application (``/applications/@me``) and the older Get Current Bot Application Information
    (``/oauth2/applications/@me``): bot auth only."""
    if call.auth.kind != "bot" or call.auth.app is None:
        return unauthorized()
    return djson(application_object(call.world, call.auth.app))


async def get_invite(call: Call) -> Response:
    if call.auth.kind != "none" and call.auth.app is None and call.auth.grant is None:
        return unauthorized()
    code = call.params["invite_code"]
    guild_id = call.world.invites.get(code)
    guild = call.world.guilds.get(guild_id) if guild_id else None
    if guild is None:
        return error(404, 10006, "Unknown Invite")
    return djson(invite_object(call.world, code, guild, with_counts=_flag(call, "with_counts")))


def _perm_problem(guild: GuildState, app_id: str, body: dict[str, Any]) -> Response | None:
    bits = guild.bots.get(app_id, 0)
    admin = bool(bits & PERMISSIONS["ADMINISTRATOR"])
    needed = ["CREATE_INSTANT_INVITE"]
    needed += ["MANAGE_NICKNAMES"] if "nick" in body else []
    needed += ["MANAGE_ROLES"] if body.get("roles") else []
    needed += ["MUTE_MEMBERS"] if "mute" in body else []
    needed += ["DEAFEN_MEMBERS"] if "deaf" in body else []
    if not admin and any(not bits & PERMISSIONS[n] for n in needed):
        return error(403, 50013, "Missing Permissions")
    for role_id in body.get("roles") or []:
        role = role_info(guild, role_id)
        if role is None:
            return error(404, 10011, "Unknown Role")
        position, managed = role
        if position >= guild.bot_role_position or managed:
            return error(403, 50013, "Missing Permissions")
    return None


def _read_json(call: Call, raw: bytes) -> dict[str, Any] | Response:
    ctype = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return (
            form_error(
                "_errors",
                "CONTENT_TYPE_INVALID",
                "Expected \"Content-Type\" header to be one of {'application/json'}.",
            )
            if raw
            else {}
        )
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return error(400, 50109, "The request body contains invalid JSON.")
    if not isinstance(value, dict):
        return form_error("_errors", "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    return value


async def put_member(call: Call) -> Response:
    # 1. bot auth
    if call.auth.kind != "bot" or call.auth.app is None:
        return unauthorized()
    # 2. path snowflakes
    problem = check_ids(call.params)
    if problem is not None:
        return problem
    # 3. body
    body = _read_json(call, await call.request.body())
    if isinstance(body, Response):
        return body
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        return form_error("access_token", "BASE_TYPE_REQUIRED", "This field is required")
    roles = body.get("roles")
    if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
        return form_error("roles", "BASE_TYPE_ARRAY", "Must be an array of snowflakes.")
    for index, role_id in enumerate(roles or []):
        if not is_snowflake(role_id):
            return not_snowflake(f"roles.{index}", role_id)
    nick = body.get("nick")
    if nick is not None and (not isinstance(nick, str) or not 1 <= len(nick.strip()) <= 32):
        return form_error("nick", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
    for flag in ("mute", "deaf"):
        if flag in body and not isinstance(body[flag], bool):
            return form_error(flag, "BASE_TYPE_BOOLEAN", "Must be either true or false.")
    # 4. guild exists and the bot is in it
    guild = guild_for_bot(call, call.params["guild_id"])
    if isinstance(guild, Response):
        return guild
    # 5. the token: valid, guilds.join, same application, same user as the path
    user_id = call.params["user_id"]
    grant = call.world.grants.get(token)
    if (
        grant is None
        or not grant.valid
        or "guilds.join" not in grant.scopes
        or grant.app_id != call.auth.app.id
        or grant.user_id != user_id
    ):
        return error(403, 50025, "Invalid OAuth2 access token")
    # 6. permissions for the call and for each field sent, with role hierarchy
    problem = _perm_problem(guild, call.auth.app.id, body)
    if problem is not None:
        return problem
    # 7. ban
    if user_id in guild.bans:
        return error(403, 40007, "The user is banned from this guild")
    # 8. already a member (before the guild-count check: api-docs #6888)
    if user_id in guild.members:
        return Response(status_code=204, headers={"Via": "1.1 google"})
    # 9. the user's server limit
    user = call.world.users.setdefault(
        user_id,
        UserState(id=user_id, username=f"user{user_id[-4:]}", global_name=None, guild_count=0, max_guilds=100),
    )
    if user.guild_count >= user.max_guilds:
        return error(400, 30001, f"Maximum number of guilds reached ({user.max_guilds})")
    # 10. added
    member = Member(
        user_id=user_id,
        roles=list(dict.fromkeys(roles or [])),
        nick=" ".join(nick.split()) if isinstance(nick, str) else None,
        mute=bool(body.get("mute", False)),
        deaf=bool(body.get("deaf", False)),
        pending=guild.screening,
        flags=1 if user_id in guild.left else 0,
    )
    guild.members[user_id] = member
    user.guild_count += 1
    return djson(member_object(call.world, member), 201)


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    major: str | None = None

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template)) + "$")


ROUTES: list[Route] = [
    Route("GET", "/users/@me", users_me),
    Route("GET", "/oauth2/@me", oauth2_me),
    Route("GET", "/invites/{invite_code}", get_invite),
    Route("GET", "/applications/@me", current_application),
    Route("GET", "/oauth2/applications/@me", current_application),
    Route("GET", "/guilds/{guild_id}", get_guild, major="guild_id"),
    Route("PUT", "/guilds/{guild_id}/members/{user_id}", put_member, major="guild_id"),
    Route("GET", "/guilds/{guild_id}/members/{user_id}", get_member, major="guild_id"),
    Route("DELETE", "/guilds/{guild_id}/members/{user_id}", kick_member, major="guild_id"),
    Route("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", put_member_role, major="guild_id"),
    Route("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", delete_member_role, major="guild_id"),
]
