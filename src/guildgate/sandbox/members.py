"""The member routes: Get Guild Member, Add / Remove Guild Member Role, Remove Guild Member (kick).

Checks, in order: bot auth (401/0) -> path snowflakes (400/50035) -> the guild with the bot in it (404/10004)
-> the member (404/10007) -> the role (404/10011) -> the permission (MANAGE_ROLES or KICK_MEMBERS;
ADMINISTRATOR grants all) -> the hierarchy (a role or member strictly below the bot's highest role; managed
roles and the owner are out of reach) (403/50013). Every successful change answers 204 with no body.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from guildgate.sandbox.calls import Call, audit_reason, member_call
from guildgate.sandbox.fixture import PERMISSIONS
from guildgate.sandbox.objects import bot_role_id, member_object
from guildgate.sandbox.responses import VIA, djson, error
from guildgate.sandbox.state import GuildState, Member, World

AUDIT_KEEP = 10_000  # the newest audit entries kept for /_sandbox/audit
MEMBER_KICK, MEMBER_ROLE_UPDATE = 20, 25  # audit-log.mdx action types


def has_permission(guild: GuildState, app_id: str, name: str) -> bool:
    bits = guild.bots.get(app_id, 0)
    return bool(bits & PERMISSIONS["ADMINISTRATOR"] or bits & PERMISSIONS[name])


def role_info(guild: GuildState, role_id: str) -> tuple[int, bool] | None:
    """(position, managed) of a role of the guild that can be given; None when unknown (@everyone included)."""
    role = guild.roles.get(role_id)
    if role is not None:
        return int(role["position"]), bool(role.get("managed", False))
    if any(bot_role_id(guild.id, app_id) == role_id for app_id in guild.bots):
        return guild.bot_role_position, True
    return None


def top_position(guild: GuildState, member: Member) -> int:
    """The position of a member's highest role (0: only @everyone)."""
    positions = [info[0] for r in member.roles if (info := role_info(guild, r)) is not None]
    return max(positions, default=0)


def _no_content() -> Response:
    return Response(status_code=204, headers=dict(VIA))


def _record(call: Call, guild: GuildState, member: Member, action: int, **extra: Any) -> None:
    world = call.world
    assert call.auth.app is not None
    world.audit.append(
        {
            "action_type": action,
            "guild_id": guild.id,
            "user_id": call.auth.app.bot_user_id,
            "target_id": member.user_id,
            "reason": audit_reason(call.request),
            "at": time.time(),
            **extra,
        }
    )
    del world.audit[:-AUDIT_KEEP]


async def get_member(call: Call) -> Response:
    found = member_call(call)
    if isinstance(found, Response):
        return found
    return djson(member_object(call.world, found[1]))


def _role_call(call: Call) -> tuple[GuildState, Member, str] | Response:
    found = member_call(call)
    if isinstance(found, Response):
        return found
    guild, member = found
    assert call.auth.app is not None
    role_id = call.params["role_id"]
    info = role_info(guild, role_id)
    if info is None:
        return error(404, 10011, "Unknown Role")
    position, managed = info
    if not has_permission(guild, call.auth.app.id, "MANAGE_ROLES"):
        return error(403, 50013, "Missing Permissions")
    if managed or position >= guild.bot_role_position:
        return error(403, 50013, "Missing Permissions")
    return guild, member, role_id


async def put_member_role(call: Call) -> Response:
    found = _role_call(call)
    if isinstance(found, Response):
        return found
    guild, member, role_id = found
    changed = role_id not in member.roles
    if changed:
        member.roles.append(role_id)
    call.world.role_additions[f"{guild.id}/{member.user_id}/{role_id}"] += 1
    _record(call, guild, member, MEMBER_ROLE_UPDATE, role_id=role_id, change="$add", changed=changed)
    return _no_content()


async def delete_member_role(call: Call) -> Response:
    found = _role_call(call)
    if isinstance(found, Response):
        return found
    guild, member, role_id = found
    changed = role_id in member.roles
    if changed:
        member.roles.remove(role_id)
    # Every successful call counts, whether or not the member held the role (Discord answers 204 either way).
    call.world.role_removals[f"{guild.id}/{member.user_id}/{role_id}"] += 1
    _record(call, guild, member, MEMBER_ROLE_UPDATE, role_id=role_id, change="$remove", changed=changed)
    return _no_content()


async def kick_member(call: Call) -> Response:
    found = member_call(call)
    if isinstance(found, Response):
        return found
    guild, member = found
    assert call.auth.app is not None
    if not has_permission(guild, call.auth.app.id, "KICK_MEMBERS"):
        return error(403, 50013, "Missing Permissions")
    if member.user_id == guild.owner_id or top_position(guild, member) >= guild.bot_role_position:
        return error(403, 50013, "Missing Permissions")
    remove_member(call.world, guild, member.user_id)
    call.world.kicks[f"{guild.id}/{member.user_id}"] += 1
    _record(call, guild, member, MEMBER_KICK, changed=True)
    return _no_content()


def remove_member(world: World, guild: GuildState, user_id: str) -> None:
    """The member is no longer in the guild (kicked or left): a later join is a rejoin (flags DID_REJOIN)."""
    if guild.members.pop(user_id, None) is None:
        return
    guild.left.add(user_id)
    user = world.users.get(user_id)
    if user is not None and user.guild_count > 0:
        user.guild_count -= 1
