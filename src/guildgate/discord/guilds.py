"""The doctor's lookups (core.doctor.GuildLookups) over DiscordRest: Get Current Application, Get Guild, Get
Guild Member, all with the bot's token and through the same limiter as every other call."""

from __future__ import annotations

import re
from typing import Any

from guildgate.core.doctor import BotApplication, GuildInfo, Role
from guildgate.core.errors import DiscordUnavailableError
from guildgate.core.ports import AppCredentials
from guildgate.discord import routes
from guildgate.discord.calls import Answer
from guildgate.discord.codes import discord_text, refusal
from guildgate.discord.rest import DiscordRest
from guildgate.discord.routes import Route

_ICON = re.compile(r"[A-Za-z0-9_]{1,64}")  # an icon hash: 32 hex digits, "a_" before an animated one


class DiscordLookups:
    def __init__(self, rest: DiscordRest) -> None:
        self.rest = rest
        self.api_base = rest.api_base

    async def application(self, app: AppCredentials, *, deadline: float) -> BotApplication:
        answer = await self.rest.bot_get(routes.GET_CURRENT_APPLICATION, {}, app=app, deadline=deadline)
        if answer.status == 404:  # an API without Get Current Application: the older route
            answer = await self.rest.bot_get(routes.GET_CURRENT_APPLICATION_OLD, {}, app=app, deadline=deadline)
        body = _ok(answer, routes.GET_CURRENT_APPLICATION)
        bot = body.get("bot")
        bot_id = bot.get("id") if isinstance(bot, dict) else None
        return BotApplication(
            id=str(body.get("id", "")),
            name=discord_text(body.get("name")) or "",
            bot_user_id=str(bot_id) if bot_id else None,
        )

    async def bot_user_id(self, app: AppCredentials, *, deadline: float) -> str:
        body = _ok(
            await self.rest.bot_get(routes.GET_CURRENT_USER, {}, app=app, deadline=deadline), routes.GET_CURRENT_USER
        )
        return str(body.get("id", ""))

    async def guild(self, app: AppCredentials, guild_id: str, *, deadline: float) -> GuildInfo:
        answer = await self.rest.bot_get(routes.GET_GUILD, {"guild_id": guild_id}, app=app, deadline=deadline)
        body = _ok(answer, routes.GET_GUILD)
        roles = tuple(_role(r) for r in body.get("roles") or [] if isinstance(r, dict))
        owner = body.get("owner_id")
        icon = body.get("icon")
        return GuildInfo(
            id=str(body.get("id", guild_id)),
            name=discord_text(body.get("name")) or guild_id,
            icon=icon if isinstance(icon, str) and _ICON.fullmatch(icon) else None,  # it goes into an image URL
            owner_id=str(owner) if owner else None,
            roles=roles,
        )

    async def member_roles(self, app: AppCredentials, guild_id: str, user_id: str, *, deadline: float) -> list[str]:
        answer = await self.rest.bot_get(
            routes.GET_GUILD_MEMBER, {"guild_id": guild_id, "user_id": user_id}, app=app, deadline=deadline
        )
        body = _ok(answer, routes.GET_GUILD_MEMBER)
        return [str(r) for r in body.get("roles") or []]


def _ok(answer: Answer, route: Route) -> dict[str, Any]:
    if answer.status == 200 and isinstance(answer.body, dict):
        return answer.body
    if answer.status == 200:
        raise DiscordUnavailableError(f"{route.name} answered 200 without a JSON object", discord_status=200)
    raise refusal(answer.status, answer.body, route=route)


def _role(raw: dict[str, Any]) -> Role:
    try:
        permissions = int(str(raw.get("permissions", "0")))
    except ValueError:
        permissions = 0
    position = raw.get("position")
    return Role(
        id=str(raw.get("id", "")),
        name=discord_text(raw.get("name")) or "",
        position=position if isinstance(position, int) else 0,
        permissions=permissions,
        managed=bool(raw.get("managed")),
    )
