"""/_sandbox/ controls that change the world by hand, as a server's staff would in Discord's client: a member
leaves or comes in, a role is taken away or given, the bot's permissions or the role order change. None of
them counts as an API call (stats' ``role_removals`` / ``kicks`` count only what a bot did), and none writes
an audit entry. Also the audit list of the member changes bots made, with their ``X-Audit-Log-Reason``."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from guildgate.core.invites import is_snowflake
from guildgate.sandbox.fixture import PERMISSIONS, Role
from guildgate.sandbox.members import remove_member, role_info
from guildgate.sandbox.objects import guild_object, member_object
from guildgate.sandbox.responses import djson
from guildgate.sandbox.state import GuildState, Member, UserState, World


def _problem(status: int, message: str) -> Response:
    return djson({"error": message}, status)


async def _body(request: Request) -> dict[str, Any] | Response:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return _problem(400, "the body is not JSON")
    if not isinstance(value, dict):
        return _problem(400, "the body must be a JSON object")
    return value


def _guild(world: World, request: Request) -> GuildState | Response:
    guild = world.guilds.get(request.path_params["guild_id"])
    return guild if guild is not None else _problem(404, f"unknown guild {request.path_params['guild_id']}")


def _role_ids(world: World, guild: GuildState, value: object) -> list[str] | Response:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        return _problem(400, "roles must be a list of role ids")
    unknown = [r for r in value if role_info(guild, r) is None]
    if unknown:
        return _problem(400, f"roles: unknown role(s) {unknown} in guild {guild.id}")
    return list(dict.fromkeys(value))


async def audit(world: World, request: Request) -> Response:
    """The member changes bots made (newest last), each with its decoded ``X-Audit-Log-Reason`` (or null);
    ``?guild_id=`` / ``?target_id=`` filter."""
    entries = [
        e
        for e in world.audit
        if all(request.query_params.get(k) in (None, e.get(k)) for k in ("guild_id", "target_id", "action_type"))
    ]
    return djson({"entries": entries})


async def put_member(world: World, request: Request) -> Response:
    """The user is a member (joined by hand: not counted, no audit entry); ``{"roles": [...]}`` sets the roles."""
    guild = _guild(world, request)
    if isinstance(guild, Response):
        return guild
    user_id = request.path_params["user_id"]
    if not is_snowflake(user_id):
        return _problem(400, f"user id {user_id!r} is not a snowflake")
    body = await _body(request)
    if isinstance(body, Response):
        return body
    roles = _role_ids(world, guild, body.get("roles", []))
    if isinstance(roles, Response):
        return roles
    member = guild.members.get(user_id)
    if member is None:
        guild.members[user_id] = Member(user_id=user_id, roles=roles, flags=1 if user_id in guild.left else 0)
        user = world.users.setdefault(
            user_id,
            UserState(id=user_id, username=f"user{user_id[-4:]}", global_name=None, guild_count=0, max_guilds=100),
        )
        user.guild_count += 1
    elif "roles" in body:
        member.roles = roles
    return djson(member_object(world, guild.members[user_id]))


async def delete_member(world: World, request: Request) -> Response:
    """The member leaves the guild by themselves (not a kick: not counted)."""
    guild = _guild(world, request)
    if isinstance(guild, Response):
        return guild
    user_id = request.path_params["user_id"]
    if user_id not in guild.members:
        return _problem(404, f"{user_id} is not a member of guild {guild.id}")
    remove_member(world, guild, user_id)
    return djson({"ok": True})


async def member_role(world: World, request: Request) -> Response:
    """PUT gives the member the role, DELETE takes it away, by hand (no permission or hierarchy check)."""
    guild = _guild(world, request)
    if isinstance(guild, Response):
        return guild
    user_id, role_id = request.path_params["user_id"], request.path_params["role_id"]
    member = guild.members.get(user_id)
    if member is None:
        return _problem(404, f"{user_id} is not a member of guild {guild.id}")
    if role_info(guild, role_id) is None:
        return _problem(404, f"unknown role {role_id} in guild {guild.id}")
    if request.method == "PUT" and role_id not in member.roles:
        member.roles.append(role_id)
    if request.method == "DELETE" and role_id in member.roles:
        member.roles.remove(role_id)
    return djson(member_object(world, member))


async def patch_guild(world: World, request: Request) -> Response:
    """Change a guild by hand; any of ``bots`` ({app id: [permission names]}: replaces those bots' permissions),
    ``bot_role_position``, ``owner_id``, ``roles`` ({role id: {position?, name?, managed?, ...}}: changes a
    role, or adds one when it has a ``name``)."""
    guild = _guild(world, request)
    if isinstance(guild, Response):
        return guild
    body = await _body(request)
    if isinstance(body, Response):
        return body
    unknown = sorted(set(body) - {"bots", "bot_role_position", "owner_id", "roles"})
    if unknown:
        return _problem(400, f"unknown field(s) {unknown}; known: bots, bot_role_position, owner_id, roles")
    bots = body.get("bots", {})
    if not isinstance(bots, dict):
        return _problem(400, "bots must be an object: {application id: [permission names]}")
    new_bits: dict[str, int] = {}
    for app_id, names in bots.items():
        if app_id not in guild.bots:
            return _problem(400, f"bots: application {app_id} is not in guild {guild.id}")
        if not isinstance(names, list) or any(n not in PERMISSIONS for n in names):
            return _problem(400, f"bots.{app_id}: a list of permission names from {sorted(PERMISSIONS)}")
        new_bits[app_id] = 0
        for name in names:
            new_bits[app_id] |= PERMISSIONS[name]
    position = body.get("bot_role_position", guild.bot_role_position)
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        return _problem(400, "bot_role_position must be an integer ≥ 1")
    owner_id = body.get("owner_id", guild.owner_id)
    if not isinstance(owner_id, str) or not is_snowflake(owner_id):
        return _problem(400, "owner_id must be a snowflake")
    roles = body.get("roles", {})
    if not isinstance(roles, dict):
        return _problem(400, "roles must be an object: {role id: {position, ...}}")
    new_roles: dict[str, dict[str, Any]] = {}
    for role_id, change in roles.items():
        if not isinstance(change, dict):
            return _problem(400, f"roles.{role_id} must be an object")
        current = guild.roles.get(role_id)
        if current is None and "name" not in change:
            return _problem(400, f"roles.{role_id}: unknown role in guild {guild.id} (give a name to add it)")
        try:
            new_roles[role_id] = Role.model_validate({**(current or {"id": role_id}), **change}).model_dump()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
            return _problem(400, f"roles.{role_id}: {problems}")
    guild.bots.update(new_bits)
    guild.bot_role_position, guild.owner_id = position, owner_id
    guild.roles.update(new_roles)
    return djson(guild_object(world, guild))
