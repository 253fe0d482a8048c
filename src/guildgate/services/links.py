"""Creating and listing links and running the doctor: shared by ``guildgate links``/``doctor``, the admin JSON
API and the dashboard. Input problems raise ``LinkInputError`` naming the field."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from guildgate.core.access import ON_END_VALUES, parse_time
from guildgate.core.doctor import Report, diagnose
from guildgate.core.errors import JoinError
from guildgate.core.grants import OnEnd
from guildgate.core.invites import is_snowflake, parse_invite
from guildgate.core.links import ACCESS_MAX_DAYS, Link, LinkRole, parse_duration
from guildgate.core.outcomes import Outcome
from guildgate.core.ports import AppCredentials
from guildgate.core.text import has_control
from guildgate.services.runtime import Services
from guildgate.store.links import LinkRepo
from guildgate.store.repos import NotFoundError

LOOKUP_SECONDS = 15.0
ACCESS_FOR_LENGTH = 16  # characters, white space included (the column holds 16)


class LinkInputError(ValueError):
    """A bad field for a link or a doctor run; the message names the field. ``status``: what the admin API answers
    (400 for the field itself; 404 for an app or invite that does not exist; 429 or 502 when Discord would not
    say)."""

    def __init__(self, message: str, *, status: int = 400, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error  # the admin API's error code, when not the one its status implies


class ChecksFailedError(LinkInputError):
    """The doctor found the bot missing or short of a permission the link needs: no link is made. ``report``
    is the doctor's whole report."""

    def __init__(self, report: Report) -> None:
        failed = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in report.blocking)
        super().__init__(
            f"the doctor's checks failed, so no link was made: {failed}. Fix it and try again, or skip the checks",
            status=409,
            error="checks_failed",
        )
        self.report = report


ON_END = tuple(o.value for o in OnEnd)  # what a grant does when it ends


async def run_doctor(
    svc: Services, *, app_id: str, guild_id: str, roles: list[str], on_end: str | None = None
) -> Report:
    """The doctor's checks for adding people to ``guild_id`` with ``roles``; with ``on_end`` ``kick``, Kick Members
    too (access that ends with a kick)."""
    if on_end is not None and on_end not in ON_END:
        raise LinkInputError(f"on_end: {on_end[:40]!r} is not one of {', '.join(ON_END)}")
    if not is_snowflake(guild_id):
        raise LinkInputError(f"guild: {guild_id!r} is not a Discord id (a snowflake of 17 to 20 digits)")
    for role in roles:
        if not is_snowflake(role):
            raise LinkInputError(f"role: {role!r} is not a Discord id (a snowflake of 17 to 20 digits)")
    app = await _credentials(svc, app_id)
    deadline = time.monotonic() + LOOKUP_SECONDS
    return await diagnose(
        svc.lookups, app=app, guild_id=guild_id, roles=roles, deadline=deadline, kick=on_end == "kick"
    )


async def run_link_doctor(svc: Services, *, link_id: str) -> tuple[Link, Report]:
    """The doctor's checks for a link as it is: its app, server and roles, and Kick Members when its access
    ends with a kick. An unknown link raises LinkInputError (404)."""
    try:
        link = await svc.links.get(link_id)
    except NotFoundError as exc:
        raise LinkInputError(f"link: {exc}", status=404) from None
    roles = [r.id for r in link.roles]
    report = await run_doctor(svc, app_id=link.app_id, guild_id=link.guild_id, roles=roles, on_end=link.on_end)
    return link, report


async def create_link(
    svc: Services,
    *,
    app_id: str,
    guild_id: str | None,
    invite: str | None,
    roles: list[str],
    max_uses: int | None,
    expires: str | None,
    title: str | None,
    skip_checks: bool = False,
    access_for: str | None = None,
    access_until: str | None = None,
    access_open: bool = False,
    on_end: str | None = None,
) -> tuple[Link, Report]:
    """Resolve the server, run the doctor, store the link. A failed check that blocks (the bot is not in the
    server, or lacks Create Invite, or Manage Roles when the link gives roles; Discord could not be asked)
    raises ChecksFailedError and no link is made, unless ``skip_checks`` (then the report says what is wrong); a
    check that does not block (a role above the bot's) is a warning in the report. Bad input, or a server that
    cannot be named, raises LinkInputError. ``access_for`` (a DURATION), ``access_until`` (an RFC 3339 time) or
    ``access_open``: each person who gets in gets a grant (at most one of them); ``on_end``: what its end does."""
    access = check_access(access_for=access_for, access_until=access_until, access_open=access_open, on_end=on_end)
    if (guild_id is None) == (invite is None):
        raise LinkInputError("give exactly one of guild (a server id) and invite (a code or URL)")
    if max_uses is not None and not 1 <= max_uses <= 1_000_000:
        raise LinkInputError("max_uses: must be a whole number from 1 to 1000000")
    if title is not None and len(title) > 200:
        raise LinkInputError("title: at most 200 characters")
    if title is not None and has_control(title):
        raise LinkInputError("title: no control characters (line breaks, tabs, NUL)")
    if len(roles) > 20:
        raise LinkInputError("role: at most 20 roles")
    expires_at = None
    invite_name: str | None = None
    if expires:
        try:
            expires_at = datetime.now(UTC) + parse_duration(expires)
        except ValueError as exc:
            raise LinkInputError(f"expires: {exc}") from None
    if invite is not None:
        code = parse_invite(invite)
        if code is None:
            raise LinkInputError(f"invite: {invite!r} is not an invite code or discord.gg / discord.com/invite URL")
        app = await _credentials(svc, app_id)
        try:
            ref = await svc.discord.resolve_invite(code, app=app, deadline=time.monotonic() + 15)
            guild_id, invite_name = ref.id, ref.name
        except JoinError as exc:
            status = {Outcome.UNKNOWN_INVITE: 404, Outcome.RATE_LIMITED: 429}.get(exc.outcome, 502)
            detail = f"invite: Discord could not resolve it ({exc.outcome.value}: {exc.detail})"
            raise LinkInputError(detail, status=status) from None
    assert guild_id is not None
    unique = list(dict.fromkeys(roles))
    report = await run_doctor(svc, app_id=app_id, guild_id=guild_id, roles=unique, on_end=access.on_end)
    if report.blocking and not skip_checks:
        raise ChecksFailedError(report)
    guild = report.guild
    link_roles = [LinkRole(id=r, name=n) for r, n in zip(roles, report.role_names(roles), strict=True)]
    link = await svc.links.create(
        app_id=app_id,
        guild_id=guild_id,
        guild_name=guild.name if guild else invite_name,  # the invite names the server when Get Guild cannot
        guild_icon=guild.icon if guild else None,
        roles=list({r.id: r for r in link_roles}.values()),
        title=title or None,
        max_uses=max_uses,
        expires_at=expires_at,
        access_for=access.access_for,
        access_until=access.access_until,
        access_open=access.access_open,
        on_end=access.on_end,
    )
    return link, report


@dataclass(frozen=True, slots=True)
class Access:
    access_for: str | None = None
    access_until: datetime | None = None
    access_open: bool = False
    on_end: OnEnd | None = None


def check_access(*, access_for: str | None, access_until: str | None, access_open: bool, on_end: str | None) -> Access:
    """A link's access options, checked: at most one of the three; ``on_end`` only with one of them. An empty
    string counts as absent. LinkInputError naming the field."""
    access_for, access_until, on_end = access_for or None, access_until or None, on_end or None
    given = [name for name, value in (("access_for", access_for), ("access_until", access_until)) if value]
    if access_open:
        given.append("access_open")
    if len(given) > 1:
        raise LinkInputError(f"give at most one of access_for, access_until and access_open (got {', '.join(given)})")
    if on_end is not None and not given:
        raise LinkInputError("on_end: only with an access option (access_for, access_until or access_open)")
    if on_end is not None and on_end not in ON_END_VALUES:
        raise LinkInputError(f"on_end: {on_end[:40]!r} is not one of remove_roles, kick, keep")
    result = Access(access_open=access_open, on_end=OnEnd(on_end) if on_end else None)
    if access_for is not None:
        if len(access_for) > ACCESS_FOR_LENGTH:
            raise LinkInputError(f"access_for: at most {ACCESS_FOR_LENGTH} characters")
        try:
            parse_duration(access_for, max_days=ACCESS_MAX_DAYS)
        except ValueError as exc:
            raise LinkInputError(f"access_for: {exc}") from None
        result = Access(access_for="".join(access_for.split()), on_end=result.on_end)
    if access_until is not None:
        try:
            until = parse_time(access_until, field="access_until")
        except ValueError as exc:
            raise LinkInputError(str(exc)) from None
        if until <= datetime.now(UTC):
            raise LinkInputError("access_until is not in the future: give a time later than now")
        result = Access(access_until=until, on_end=result.on_end)
    return result


async def _credentials(svc: Services, app_id: str) -> AppCredentials:
    if not is_snowflake(app_id):
        raise LinkInputError(f"app: {app_id!r} is not a Discord id (a snowflake of 17 to 20 digits)")
    try:
        return await svc.apps.credentials(app_id)
    except NotFoundError as exc:
        raise LinkInputError(f"app: {exc}", status=404) from None
    except ValueError as exc:  # secrets stored under another GUILDGATE_SECRET_KEY
        raise LinkInputError(f"app: {exc}", status=409) from None


async def links_with_outcomes(repo: LinkRepo, *, app_id: str | None = None) -> list[tuple[Link, dict[str, int]]]:
    """The links (an app's, or all), each with its joins' outcome counts (outcome code -> number)."""
    links = await repo.list(app_id=app_id)
    outcomes = await repo.outcomes([link.id for link in links])
    return [(link, outcomes.get(link.id, {})) for link in links]


def link_url(public_url: str, link: Link) -> str:
    """The address people open: ``{public_url}/j/{slug}``."""
    return f"{public_url}/j/{link.slug}"


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def link_dict(public_url: str, link: Link, outcomes: dict[str, int] | None = None) -> dict[str, Any]:
    """A link as the admin API answers it and the CLI prints it; with its funnel when ``outcomes`` are given."""
    now = datetime.now(UTC)
    problem = link.problem(now)
    body: dict[str, Any] = {
        "id": link.id,
        "url": link_url(public_url, link),
        "slug": link.slug,
        "app_id": link.app_id,
        "guild_id": link.guild_id,
        "guild_name": link.guild_name,
        "roles": [{"id": r.id, "name": r.name} for r in link.roles],
        "title": link.title,
        "max_uses": link.max_uses,
        "uses": link.uses,
        "expires_at": _ts(link.expires_at),
        "disabled_at": _ts(link.disabled_at),
        "created_at": _ts(link.created_at),
        "status": problem.value if problem else "active",
        "access_for": link.access_for,
        "access_until": _ts(link.access_until),
        "access_open": link.access_open,
        "on_end": link.on_end.value if link.makes_grant else None,
    }
    if outcomes is not None:
        body["funnel"] = funnel(link, outcomes)
    return body


def funnel(link: Link, outcomes: dict[str, int]) -> dict[str, Any]:
    failed = {code: n for code, n in sorted(outcomes.items()) if code not in ("joined", "already_member")}
    return {
        "opened": link.opens,
        "sent_to_discord": link.sends,
        "joined": outcomes.get("joined", 0),
        "already_member": outcomes.get("already_member", 0),
        "failed": failed,
    }


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "checks": [
            {"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix, "blocks": c.blocks} for c in report.checks
        ],
    }
