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
from datetime import UTC, datetime, timedelta
from typing import Protocol

from guildgate.core.access import GrantsPort, link_terms, settle_join
from guildgate.core.errors import AccessEndedError, JoinError
from guildgate.core.grants import Grant, GrantTerms, OnEnd
from guildgate.core.joins import JoinOutcome, JoinRequest, join
from guildgate.core.outcomes import Outcome, Source
from guildgate.core.patterns import SPACE, positive_at_most
from guildgate.core.ports import AppCredentials, DiscordPort, JoinCaps, MemberOptions, NewRecord, RecordStore
from guildgate.core.secret import Secret

log = logging.getLogger("guildgate.links")

STATE_TTL = timedelta(minutes=10)
ACCESS_MAX_DAYS = 366  # --access-for: as long as a grant's duration (the grants API's, parse_duration's default)


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
    # how long the access of each person who gets in lasts (at most one of the three; none: no grant is made)
    access_for: str | None = None  # a DURATION as given ("30d"), counted from each person's join
    access_until: datetime | None = None  # a fixed end
    access_open: bool = False  # a grant that never ends by itself
    on_end: OnEnd = OnEnd.REMOVE_ROLES

    @property
    def makes_grant(self) -> bool:
        return self.access_for is not None or self.access_until is not None or self.access_open

    def terms(self, *, joined_at: datetime) -> GrantTerms | None:
        """The terms of the grant a join through this link at ``joined_at`` makes; None: it makes none."""
        return link_terms(
            access_for=parse_duration(self.access_for, max_days=ACCESS_MAX_DAYS) if self.access_for else None,
            access_until=self.access_until,
            access_open=self.access_open,
            on_end=self.on_end,
            joined_at=joined_at,
        )

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
    grant: Grant | None = None  # the grant the join made or renewed (a link with an access option)


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
    grants: GrantsPort | None = None,
) -> ConsentResult:
    """Exchange the code, join with the link's roles, fix up roles for an existing member, revoke the token.

    With ``grants``: once the person is known and before anything is added, a person whose grant through this
    link ended is refused (AccessEndedError, ``access_ended``: nothing is added at Discord); after the join, the
    grants hear of it (``after_join``: an absent person's roles come back; a link with an access option makes the
    person's grant, or renews it: one grant per link and person).

    Raises RecordedJoinError (from the join) or JoinError (the exchange failed: no token, nothing to revoke).
    """
    token = await consent.exchange_code(
        app=app, code=code, redirect_uri=redirect_uri, verifier=verifier, deadline=deadline
    )
    role_ids = tuple(r.id for r in link.roles)
    noted: list[str] = []

    async def admit(guild_id: str, user_id: str) -> str | None:
        if grants is None or not link.makes_grant:
            return None
        if link.access_until is not None and link.access_until <= datetime.now(UTC):
            # every grant through this link has ended: a join now would give roles only to take them at once
            raise AccessEndedError("the access this link gives ended at its access_until")
        await grants.check_link_access(link_id=link.id, user_id=user_id)
        grant_id = await grants.prepare(
            app_id=link.app_id, guild_id=guild_id, external_ref=None, link_id=link.id, user_id=user_id
        )
        noted.append(grant_id)
        return grant_id

    grant: Grant | None = None
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
            admit=admit,
        )
        given: list[str] = list(role_ids) if result.joined else []
        failed: list[str] = []

        async def give(roles: tuple[str, ...]) -> tuple[list[str], list[str]]:
            return await give_roles(
                consent, app=app, guild_id=link.guild_id, user_id=result.user_id, roles=roles, deadline=deadline
            )

        if grants is None:
            if result.outcome is Outcome.ALREADY_MEMBER:
                given, failed = await give(role_ids)
        else:
            settled = await settle_join(
                grants=grants,
                give=give,
                app=app,
                app_id=link.app_id,
                guild_id=link.guild_id,
                user_id=result.user_id,
                joined=result.joined,
                roles=role_ids,
                terms=link.terms(joined_at=datetime.now(UTC)),
                source="link",
                link_id=link.id,
                record_id=result.record_id,
                grant_id=noted[0] if noted else None,
            )
            grant, given, failed = settled.grant, list(settled.given), list(settled.failed)
            if settled.error is not None:
                log.warning(
                    "a link's join succeeded but its grant could not be made or renewed: %s", settled.error.detail
                )
    except BaseException:
        await _revoke(consent, app=app, token=token)
        raise
    revoked = await _revoke(consent, app=app, token=token)
    return ConsentResult(
        join=result, roles_given=tuple(given), roles_failed=tuple(failed), revoked=revoked, grant=grant
    )


async def give_roles(
    consent: ConsentPort, *, app: AppCredentials, guild_id: str, user_id: str, roles: tuple[str, ...], deadline: float
) -> tuple[list[str], list[str]]:
    """Give ``roles`` to someone already in the server, one by one (Add Guild Member ignores roles for a
    member): the roles given, and those Discord refused."""
    given: list[str] = []
    failed: list[str] = []
    for role in roles:
        try:
            await consent.add_member_role(app=app, guild_id=guild_id, user_id=user_id, role_id=role, deadline=deadline)
            given.append(role)
        except JoinError as exc:
            log.warning("could not give role %s to an existing member: %s", role, exc.detail)
            failed.append(role)
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
