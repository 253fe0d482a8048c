"""The preflight doctor: can this app's bot add people to this server with these roles?

It asks Discord (through a ``GuildLookups`` port) for the bot's application, the server with its roles, and the
bot's own member, then checks what Add Guild Member needs: the bot is in the server, has Create Invite (and
Manage Roles when roles are given), every role exists and sits below the bot's highest role, and the app's
client id is the bot's application; asked about access that ends with a kick (``kick``: a link or role whose
``on_end`` is ``kick``), also Kick Members. Each check is one line with the fix when it fails. When Discord cannot be
reached, or its API is not at GUILDGATE_DISCORD_API_BASE (a 404 that is not Discord's), the doctor says so,
naming the URL it tried, instead of a fix for the bot or the server. A failed check that ``blocks`` (the bot
missing, a permission the link needs, nothing checkable) stops ``create_link`` unless its checks are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from guildgate.core.errors import DiscordRefusedError, DiscordUnavailableError, JoinError
from guildgate.core.ports import AppCredentials

CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
ADMINISTRATOR = 1 << 3
MANAGE_ROLES = 1 << 28


@dataclass(frozen=True, slots=True)
class Role:
    id: str
    name: str
    position: int
    permissions: int
    managed: bool = False


@dataclass(frozen=True, slots=True)
class GuildInfo:
    id: str
    name: str
    icon: str | None
    owner_id: str | None
    roles: tuple[Role, ...]

    def role(self, role_id: str) -> Role | None:
        return next((r for r in self.roles if r.id == role_id), None)

    @property
    def icon_url(self) -> str | None:
        if not self.icon:
            return None
        return f"https://cdn.discordapp.com/icons/{self.id}/{self.icon}.png?size=128"


@dataclass(frozen=True, slots=True)
class BotApplication:
    id: str
    name: str
    bot_user_id: str | None


class GuildLookups(Protocol):
    api_base: str  # where the lookups go (GUILDGATE_DISCORD_API_BASE), for a check to name the URL it tried

    async def application(self, app: AppCredentials, *, deadline: float) -> BotApplication: ...

    async def bot_user_id(self, app: AppCredentials, *, deadline: float) -> str: ...

    async def guild(self, app: AppCredentials, guild_id: str, *, deadline: float) -> GuildInfo: ...

    async def member_roles(self, app: AppCredentials, guild_id: str, user_id: str, *, deadline: float) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    # failed, it stops a link from being made (the bot is not there, lacks a permission the link needs, or nothing
    # could be checked); a failed check that does not block is a warning
    blocks: bool = False


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]
    guild: GuildInfo | None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def blocking(self) -> tuple[Check, ...]:
        """The failed checks that stop a link from being made."""
        return tuple(c for c in self.checks if not c.ok and c.blocks)

    def role_names(self, role_ids: Sequence[str]) -> list[str]:
        found = [self.guild.role(r) if self.guild else None for r in role_ids]
        return [r.name if r else rid for r, rid in zip(found, role_ids, strict=True)]


def invite_bot_url(client_id: str, with_roles: bool, *, kick: bool = False) -> str:
    permissions = CREATE_INSTANT_INVITE | (MANAGE_ROLES if with_roles else 0) | (KICK_MEMBERS if kick else 0)
    return f"https://discord.com/oauth2/authorize?client_id={client_id}&scope=bot&permissions={permissions}"


async def diagnose(
    lookups: GuildLookups,
    *,
    app: AppCredentials,
    guild_id: str,
    roles: Sequence[str],
    deadline: float,
    kick: bool = False,
) -> Report:
    """Run every check that can run; a failed lookup fails its check and skips the ones that need it. ``kick``:
    the access ends with a kick, so Kick Members is checked too."""
    checks: list[Check] = []
    application: BotApplication | None = None
    try:
        application = await lookups.application(app, deadline=deadline)
    except JoinError as exc:
        if _unreachable(exc):
            return Report((_api_check(lookups, "/applications/@me", exc),), None)
        if isinstance(exc, DiscordRefusedError) and exc.discord_status == 401:
            fix = "reset the bot token in the Developer Portal (Bot tab), then run 'guildgate apps add' again"
            checks.append(Check("bot token", False, f"Discord refused the bot token: {_why(exc)}", fix, blocks=True))
            return Report(tuple(checks), None)
        # Not a refusal of the token (an API without the route, a hiccup): check the rest anyway.
        fix = "run the doctor again; if it persists, check the app's id in the Developer Portal"
        checks.append(Check("application", False, f"could not read the bot's application: {_why(exc)}", fix))
    if application is not None:
        checks.append(Check("bot token", True, f"accepted (application {application.name})"))
        if application.id == app.client_id:
            checks.append(Check("application", True, f"the bot belongs to application {app.client_id}"))
        else:
            checks.append(
                Check(
                    "application",
                    False,
                    f"the bot token belongs to application {application.id}, not {app.client_id}",
                    "store this app's own bot token: 'guildgate apps add' with the Bot tab's token of the same app",
                )
            )
    try:
        guild = await lookups.guild(app, guild_id, deadline=deadline)
    except JoinError as exc:
        if _unreachable(exc):
            checks.append(_api_check(lookups, f"/guilds/{guild_id}", exc))
            return Report(tuple(checks), None)
        fix = f"invite the bot to the server: {invite_bot_url(app.client_id, bool(roles), kick=kick)}"
        checks.append(
            Check("bot in server", False, f"the bot cannot see server {guild_id}: {_why(exc)}", fix, blocks=True)
        )
        return Report(tuple(checks), None)
    checks.append(Check("bot in server", True, f"the bot is in {guild.name}"))
    try:
        bot_id = (application.bot_user_id if application else None) or await lookups.bot_user_id(app, deadline=deadline)
        bot_role_ids = await lookups.member_roles(app, guild_id, bot_id, deadline=deadline)
    except JoinError as exc:
        if _unreachable(exc):
            checks.append(_api_check(lookups, f"/guilds/{guild_id}/members/…", exc))
            return Report(tuple(checks), guild)
        checks.append(
            Check("bot roles", False, f"could not read the bot's roles: {_why(exc)}", "run doctor again", blocks=True)
        )
        return Report(tuple(checks), guild)
    checks += _permission_checks(guild, bot_id, bot_role_ids, roles, kick=kick)
    return Report(tuple(checks), guild)


def _permission_checks(
    guild: GuildInfo, bot_id: str, bot_role_ids: list[str], wanted: Sequence[str], *, kick: bool
) -> list[Check]:
    everyone = guild.role(guild.id)
    own = [r for r in (guild.role(rid) for rid in bot_role_ids) if r is not None]
    permissions = (everyone.permissions if everyone else 0) | _union(own)
    is_owner = guild.owner_id == bot_id
    admin = is_owner or bool(permissions & ADMINISTRATOR)
    top = max((r.position for r in own), default=0)
    top_name = max(own, key=lambda r: r.position).name if own else "@everyone"
    checks = [_permission("Create Invite", admin or bool(permissions & CREATE_INSTANT_INVITE), top_name)]
    if wanted:
        checks.append(_permission("Manage Roles", admin or bool(permissions & MANAGE_ROLES), top_name))
    if kick:
        checks.append(_kick_check(admin or bool(permissions & KICK_MEMBERS), top_name))
    for role_id in wanted:
        role = guild.role(role_id)
        if role is None:
            checks.append(
                Check(
                    f"role {role_id}", False, "no such role in this server", "copy the role id again (Developer Mode)"
                )
            )
        elif role.id == guild.id or role.managed:
            kind = "@everyone" if role.id == guild.id else "a role managed by an integration"
            checks.append(Check(f"role {role.name}", False, f"{kind} cannot be given", "pick another role"))
        elif role.position < top or is_owner:
            checks.append(Check(f"role {role.name}", True, f"below the bot's highest role ({top_name})"))
        else:
            fix = f"in Server Settings → Roles, drag {top_name} above {role.name}"
            checks.append(
                Check(f"role {role.name}", False, f"{role.name} is not below the bot's highest role ({top_name})", fix)
            )
    return checks


def _permission(name: str, ok: bool, role_name: str) -> Check:
    if ok:
        return Check(name, True, "granted")
    return Check(name, False, "missing", f"in Server Settings → Roles → {role_name}, turn on {name}", blocks=True)


def _kick_check(ok: bool, role_name: str) -> Check:
    """Kick Members, which an end with ``kick`` needs; Discord also refuses to kick a member whose highest role is
    not below the bot's, which no check made before the end can know. A warning, as a role above the bot's is:
    people still get in, and an end that Discord refuses is ``end_failed`` with the reason, ended again once
    fixed."""
    if ok:
        detail = f"granted (Discord kicks only members whose highest role is below the bot's, {role_name})"
        return Check("Kick Members", True, detail)
    fix = (
        f"in Server Settings → Roles → {role_name}, turn on Kick Members (or end this access with remove_roles): "
        "without it every end with kick fails (end_failed)"
    )
    return Check("Kick Members", False, "missing: the access ends with a kick", fix)


def _unreachable(error: JoinError) -> bool:
    """Discord did not answer (no connection, a timeout, 5xx), or what answered at the API base is not Discord's
    API: a 404 without Discord's code for a missing thing (Unknown Guild is 10004; a path Discord does not know
    is code 0), which is what a wrong GUILDGATE_DISCORD_API_BASE gets."""
    if isinstance(error, DiscordUnavailableError):
        return True
    return isinstance(error, DiscordRefusedError) and error.discord_status == 404 and not error.discord_code


def _api_check(lookups: GuildLookups, path: str, error: JoinError) -> Check:
    """The check that says Discord could not be asked, with the URL tried and what to look at: not a fix for
    the bot or the server, which could not be checked."""
    url = lookups.api_base + path
    if isinstance(error, DiscordRefusedError):
        detail = f"GET {url} answered 404 ({_why(error)}): Discord's API is not at that address"
        fix = (
            "check GUILDGATE_DISCORD_API_BASE: Discord's is https://discord.com/api/v10 (the sandbox's: "
            "http://127.0.0.1:PORT/api/v10)"
        )
    else:
        detail = f"could not reach Discord at GET {url}: {_why(error)}"
        fix = (
            "check that this host can reach that address (DNS, firewall, an outbound proxy) and that "
            "GUILDGATE_DISCORD_API_BASE is right; then run the doctor again"
        )
    return Check("Discord API", False, detail, fix, blocks=True)


def _union(roles: list[Role]) -> int:
    bits = 0
    for role in roles:
        bits |= role.permissions
    return bits


def _why(error: JoinError) -> str:
    if isinstance(error, DiscordRefusedError) and error.discord_status is not None:
        code = f", code {error.discord_code}" if error.discord_code is not None else ""
        return f"{error.detail or error.outcome.value} (HTTP {error.discord_status}{code})"
    return error.detail or error.outcome.value
