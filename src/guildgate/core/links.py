"""Join links: what a link is, when it can be used, and the consent join it ends in.

A link names one server (and optional roles). The person's consent arrives as an OAuth2 code; ``consent_join``
trades it for a token, runs the ordinary join pipeline with the link's roles (source ``link``), gives the roles
to someone who was already a member, and revokes the token whatever happened, so it lives for this one join.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from guildgate.core.errors import JoinError
from guildgate.core.joins import JoinOutcome, JoinRequest, join
from guildgate.core.outcomes import Outcome, Source
from guildgate.core.patterns import SPACE, positive_at_most
from guildgate.core.ports import AppCredentials, DiscordPort, JoinCaps, MemberOptions, NewRecord, RecordStore
from guildgate.core.secret import Secret

log = logging.getLogger("guildgate.links")

STATE_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class LinkRole:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Link:
    id: str
    slug: str
    app_id: str
    guild_id: str
    guild_name: str | None
    guild_icon: str | None
    roles: tuple[LinkRole, ...]
    title: str | None
    max_uses: int | None
    uses: int
    opens: int
    sends: int
    expires_at: datetime | None
    disabled_at: datetime | None
    created_at: datetime

    def problem(self, now: datetime) -> Outcome | None:
        """Why the link cannot be used now, or None."""
        if self.disabled_at is not None:
            return Outcome.LINK_DISABLED
        if self.expires_at is not None and self.expires_at <= now:
            return Outcome.LINK_EXPIRED
        if self.max_uses is not None and self.uses >= self.max_uses:
            return Outcome.LINK_USED_UP
        return None

    @property
    def icon_url(self) -> str | None:
        if not self.guild_icon:
            return None
        return f"https://cdn.discordapp.com/icons/{self.guild_id}/{self.guild_icon}.png?size=128"


_DURATION = re.compile(rf"{SPACE}*([0-9]+){SPACE}*([smhdw]){SPACE}*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_pattern(*, max_days: int = 366) -> str:
    """What parse_duration takes, as one regular expression (the admin API's OpenAPI schema shows it)."""
    longest = max_days * 86400
    units = "|".join(rf"{positive_at_most(longest // size)}{SPACE}*{unit}" for unit, size in _UNITS.items())
    return rf"{SPACE}*(?:{units}){SPACE}*"


def parse_duration(text: str, *, max_days: int = 366) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` (or seconds: ``90s``). Raises ValueError naming the problem."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, like 30m, 12h, 7d or 2w")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("the duration must be longer than zero")
    if seconds > max_days * 86400:
        raise ValueError(f"the duration must be at most {max_days}d")
    return timedelta(seconds=seconds)


class ConsentPort(Protocol):
    """Discord's OAuth2 token endpoint and the one member call the consent join needs beyond DiscordPort."""

    async def exchange_code(
        self, *, app: AppCredentials, code: str, redirect_uri: str, verifier: str, deadline: float
    ) -> Secret: ...

    async def revoke(self, *, app: AppCredentials, token: Secret, deadline: float) -> bool: ...

    async def add_member_role(
        self, *, app: AppCredentials, guild_id: str, user_id: str, role_id: str, deadline: float
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ConsentResult:
    join: JoinOutcome
    roles_given: tuple[str, ...] = ()
    roles_failed: tuple[str, ...] = ()
    revoked: bool = False


async def consent_join(
    *,
    link: Link,
    app: AppCredentials,
    code: str,
    redirect_uri: str,
    verifier: str,
    discord: DiscordPort,
    consent: ConsentPort,
    records: RecordStore,
    deadline: float,
    started: float,
    caps: JoinCaps | None = None,
) -> ConsentResult:
    """Exchange the code, join with the link's roles, fix up roles for an existing member, revoke the token.

    Raises RecordedJoinError (from the join) or JoinError (the exchange failed: no token, nothing to revoke).
    """
    token = await consent.exchange_code(
        app=app, code=code, redirect_uri=redirect_uri, verifier=verifier, deadline=deadline
    )
    role_ids = tuple(r.id for r in link.roles)
    try:
        result = await join(
            JoinRequest(authorization=token, guild_id=link.guild_id, options=MemberOptions(roles=role_ids or None)),
            app=app,
            new_record=NewRecord(
                app_id=link.app_id,
                key_id=None,
                source=Source.LINK,
                guild_id=link.guild_id,
                guild_name=link.guild_name,
                link_id=link.id,
            ),
            discord=discord,
            records=records,
            deadline=deadline,
            started=started,
            caps=caps,
        )
        given: list[str] = list(role_ids) if result.joined else []
        failed: list[str] = []
        if result.outcome is Outcome.ALREADY_MEMBER:
            given, failed = await _give_roles(consent, app=app, link=link, user_id=result.user_id, deadline=deadline)
    except BaseException:
        await _revoke(consent, app=app, token=token)
        raise
    revoked = await _revoke(consent, app=app, token=token)
    return ConsentResult(join=result, roles_given=tuple(given), roles_failed=tuple(failed), revoked=revoked)


async def _give_roles(
    consent: ConsentPort, *, app: AppCredentials, link: Link, user_id: str, deadline: float
) -> tuple[list[str], list[str]]:
    # Add Guild Member ignores roles for someone already in the server: give them one by one.
    given: list[str] = []
    failed: list[str] = []
    for role in link.roles:
        try:
            await consent.add_member_role(
                app=app, guild_id=link.guild_id, user_id=user_id, role_id=role.id, deadline=deadline
            )
            given.append(role.id)
        except JoinError as exc:
            log.warning("could not give role %s to an existing member: %s", role.id, exc.detail)
            failed.append(role.id)
    return given, failed


async def _revoke(consent: ConsentPort, *, app: AppCredentials, token: Secret) -> bool:
    # Its own short deadline: the join's may be spent, and the token must not outlive the join.
    try:
        revoked = await asyncio.shield(consent.revoke(app=app, token=token, deadline=time.monotonic() + 10.0))
    except (JoinError, asyncio.CancelledError):
        revoked = False
    if not revoked:
        log.warning("could not revoke a link's token; Discord expires it on its own (7 days)")
    return revoked
