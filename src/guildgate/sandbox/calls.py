"""What every sandbox route handler gets (the call: request, world, path parameters, auth) and the checks
the guild routes share: bot auth, path snowflakes, the guild with the bot in it, the member."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from guildgate.core.invites import is_snowflake
from guildgate.sandbox.fixture import Application
from guildgate.sandbox.responses import error, http_error, not_snowflake
from guildgate.sandbox.state import Grant, GuildState, Member, World


@dataclass(frozen=True)
class Auth:
    kind: str  # "bot", "bearer" or "none"
    raw: str
    app: Application | None = None
    grant: Grant | None = None


@dataclass(frozen=True)
class Call:
    request: Request
    world: World
    params: dict[str, str]
    auth: Auth


Handler = Callable[[Call], Awaitable[Response]]


def parse_auth(world: World, header: str | None) -> Auth:
    if not header:
        return Auth(kind="none", raw="")
    scheme, _, value = header.partition(" ")
    if scheme == "Bot":
        return Auth(kind="bot", raw=header, app=world.bots.get(value.strip()))
    if scheme == "Bearer":
        grant = world.grants.get(value.strip())
        return Auth(kind="bearer", raw=header, grant=grant if grant is not None and grant.valid else None)
    return Auth(kind="invalid", raw=header)


def unauthorized() -> Response:
    return http_error(401, "Unauthorized")


def guild_for_bot(call: Call, guild_id: str) -> GuildState | Response:
    guild = call.world.guilds.get(guild_id)
    assert call.auth.app is not None
    if guild is None or call.auth.app.id not in guild.bots:
        if call.world.fixture.options.bot_not_in_guild == "50001" and guild is not None:
            return error(403, 50001, "Missing Access")
        return error(404, 10004, "Unknown Guild")
    return guild


def check_ids(params: dict[str, str]) -> Response | None:
    for name, value in params.items():
        if name.endswith("_id") and not is_snowflake(value):
            return not_snowflake(name, value)
    return None


def bot_guild_call(call: Call) -> GuildState | Response:
    """Bot auth, path ids, and the guild with the bot in it: the shared checks of guild routes."""
    if call.auth.kind != "bot" or call.auth.app is None:
        return unauthorized()
    problem = check_ids(call.params)
    if problem is not None:
        return problem
    return guild_for_bot(call, call.params["guild_id"])


def member_call(call: Call) -> tuple[GuildState, Member] | Response:
    """Bot auth, path ids, the guild (with the bot in it) and the member: the shared checks of member routes."""
    guild = bot_guild_call(call)
    if isinstance(guild, Response):
        return guild
    member = guild.members.get(call.params["user_id"])
    if member is None:
        return error(404, 10007, "Unknown Member")
    return guild, member


def audit_reason(request: Request) -> str | None:
    """``X-Audit-Log-Reason``: URL-encoded UTF-8 (audit-log.mdx), decoded for the sandbox's audit list."""
    raw = request.headers.get("x-audit-log-reason")
    return unquote(raw) if raw else None
