"""Discord's objects as the sandbox answers them, with every field Discord documents for the route that returns
them (discord-api-docs: resources/user.mdx, guild.mdx, invite.mdx, application.mdx, topics/permissions.mdx
"Role Object"), so that any Discord library pointed at the sandbox parses them as it parses Discord's answers.

The sandbox has no channels, emojis, stickers, banners or icons beyond the fixture's guild icon: those fields
are present with their empty value (null, [] or 0), as on a plain new server.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guildgate.sandbox.fixture import Application
    from guildgate.sandbox.state import GuildState, Member, World

APP_OWNER_ID = "1000000000000000001"  # the owner of every application and (unless the fixture says) of every guild
DISCORD_EPOCH_MS = 1420070400000


def bot_role_id(guild_id: str, app_id: str) -> str:
    """A stable snowflake for a bot's managed role in a guild."""
    return str(10**17 + int(hashlib.sha256(f"{guild_id}:{app_id}".encode()).hexdigest()[:14], 16))


def verify_key(app_id: str) -> str:
    """An application's public key, as 64 hex characters (stable per application)."""
    return hashlib.sha256(f"verify-key:{app_id}".encode()).hexdigest()


# ---- users ------------------------------------------------------------------------------------------------
def user_object(world: World, user_id: str) -> dict[str, Any]:
    """The user object as other people see it (in a member, an application's ``bot``, ...)."""
    bot = next((a for a in world.apps.values() if a.bot_user_id == user_id), None)
    user = world.users.get(user_id)
    if bot is not None:
        username, global_name = bot.name.lower().replace(" ", "_"), None
    elif user is not None:
        username, global_name = user.username, user.global_name
    else:
        username, global_name = ("owner" if user_id == APP_OWNER_ID else f"user{user_id[-4:]}"), None
    body: dict[str, Any] = {
        "id": user_id,
        "username": username,
        "discriminator": "0001" if bot is not None else "0",
        "global_name": global_name,
        "avatar": None,
        "avatar_decoration_data": None,
        "collectibles": None,
        "primary_guild": None,
        "banner": None,
        "accent_color": None,
        "public_flags": 0,
        "flags": 0,
    }
    if bot is not None:
        body["bot"] = True
    return body


def own_user_object(world: World, user_id: str, scopes: list[str] | None) -> dict[str, Any]:
    """Get Current User: the user object with the fields only its owner sees (``mfa_enabled``, ``locale``,
    ``premium_type``), plus ``verified`` and ``email`` with the ``email`` scope. ``scopes`` None: a bot, which
    gets ``verified`` true and a null ``email``."""
    body = user_object(world, user_id)
    user = world.users.get(user_id)
    body.update(
        {
            "mfa_enabled": user.mfa_enabled if user else False,
            "locale": user.locale if user else "en-US",
            "premium_type": user.premium_type if user else 0,
        }
    )
    if scopes is None:
        body.update({"verified": True, "email": None})
    elif "email" in scopes:
        body.update({"verified": user.verified if user else True, "email": user.email if user else None})
    return body


# ---- guilds -----------------------------------------------------------------------------------------------
def _role(role_id: str, name: str, position: int, permissions: int, fields: dict[str, Any]) -> dict[str, Any]:
    color = int(fields.get("color", 0))
    return {
        "id": role_id,
        "name": name,
        "color": color,
        "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
        "hoist": bool(fields.get("hoist", False)),
        "icon": None,
        "unicode_emoji": fields.get("unicode_emoji"),
        "position": position,
        "permissions": str(permissions),
        "managed": bool(fields.get("managed", False)),
        "mentionable": bool(fields.get("mentionable", False)),
        "flags": 0,
    }


def role_objects(world: World, guild: GuildState) -> list[dict[str, Any]]:
    """@everyone (id = guild id, position 0, no permissions here), the fixture's roles (no permissions), and each
    bot's managed role at ``bot_role_position`` carrying the bot's permissions, tagged with its ``bot_id``."""
    roles: list[dict[str, Any]] = [_role(guild.id, "@everyone", 0, 0, {})]
    for r in guild.roles.values():
        role = _role(r["id"], r["name"], r["position"], 0, r)
        if role["managed"]:
            role["tags"] = {"integration_id": bot_role_id(guild.id, r["id"])}
        roles.append(role)
    for app_id, bits in guild.bots.items():
        app = world.apps.get(app_id)
        role = _role(
            bot_role_id(guild.id, app_id), app.name if app else "bot", guild.bot_role_position, bits, {"managed": True}
        )
        role["tags"] = {"bot_id": app.bot_user_id if app else app_id}
        roles.append(role)
    return roles


def guild_object(world: World, guild: GuildState, *, with_counts: bool = False) -> dict[str, Any]:
    """Get Guild: the guild object (``with_counts`` adds the approximate member and presence counts)."""
    body: dict[str, Any] = {
        "id": guild.id,
        "name": guild.name,
        "icon": guild.icon,
        "splash": None,
        "discovery_splash": None,
        "owner_id": guild.owner_id,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": 1,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": role_objects(world, guild),
        "emojis": [],
        "features": ["MEMBER_VERIFICATION_GATE_ENABLED"] if guild.screening else [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "max_presences": None,
        "max_members": 500000,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "nsfw_level": 0,
        "stickers": [],
        "premium_progress_bar_enabled": False,
        "safety_alerts_channel_id": None,
        "incidents_data": None,
    }
    if with_counts:
        body["approximate_member_count"] = len(guild.members)
        body["approximate_presence_count"] = 0
    return body


def member_object(world: World, member: Member) -> dict[str, Any]:
    return {
        "user": user_object(world, member.user_id),
        "nick": member.nick,
        "avatar": None,
        "banner": None,
        "roles": list(member.roles),
        "joined_at": member.joined_at,
        "premium_since": None,
        "deaf": member.deaf,
        "mute": member.mute,
        "flags": member.flags,
        "pending": member.pending,
        "communication_disabled_until": None,
        "avatar_decoration_data": None,
    }


def invite_object(world: World, code: str, guild: GuildState, *, with_counts: bool) -> dict[str, Any]:
    """Get Invite: the invite with its partial guild (the eleven fields of invite.mdx's example) and channel."""
    body: dict[str, Any] = {
        "type": 0,
        "code": code,
        "expires_at": None,
        "flags": 0,
        "guild": {
            "id": guild.id,
            "name": guild.name,
            "splash": None,
            "banner": None,
            "description": None,
            "icon": guild.icon,
            "features": ["MEMBER_VERIFICATION_GATE_ENABLED"] if guild.screening else [],
            "verification_level": 1,
            "vanity_url_code": None,
            "nsfw_level": 0,
            "premium_subscription_count": 0,
        },
        "channel": {"id": guild.id, "name": "general", "type": 0},
    }
    if with_counts:
        body["approximate_member_count"] = len(guild.members)
        body["approximate_presence_count"] = 0
    return body


# ---- applications -----------------------------------------------------------------------------------------
def partial_application(app: Application) -> dict[str, Any]:
    """The application as Get Current Authorization Information shows it."""
    return {
        "id": app.id,
        "name": app.name,
        "icon": None,
        "description": "",
        "hook": True,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": verify_key(app.id),
        "flags": 0,
    }


def application_object(world: World, app: Application) -> dict[str, Any]:
    """Get Current Application: the application object with its ``bot`` and ``owner``."""
    return {
        **partial_application(app),
        "bot": user_object(world, app.bot_user_id),
        "owner": user_object(world, APP_OWNER_ID),
        "team": None,
        "redirect_uris": list(app.redirect_uris),
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "event_webhooks_url": None,
        "event_webhooks_status": 1,
        "approximate_guild_count": sum(1 for g in world.guilds.values() if app.id in g.bots),
        "approximate_user_install_count": 0,
        "approximate_user_authorization_count": sum(
            1 for g in {g.id: g for g in world.grants.values() if g.app_id == app.id}.values() if g.valid
        ),
        "integration_types_config": {"0": {}},
    }
