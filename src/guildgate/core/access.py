"""What a join asks of a grant (the join API's ``grant`` field, a link's access options), and the RFC 3339 times
they take: one regular expression that Python and the OpenAPI schema read alike (no named groups, no flags).

``GrantAsk`` is the request's side: an end (a fixed time, a duration counted from the join, or none), what to do
at the end, the caller's reference and the time of its fact. ``terms`` turns it into the engine's ``GrantTerms``
once the join's time is known. ``future_time_pattern`` is the schema's picture of "a time later than now".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, Protocol

from guildgate.core.errors import JoinError
from guildgate.core.grants import Grant, GrantTerms, OnEnd
from guildgate.core.ports import AppCredentials

log = logging.getLogger("guildgate.grants")

ON_END_VALUES: tuple[str, ...] = ("remove_roles", "kick", "keep")

# 1-128 printable ASCII, no space at either end (core/grants.py's rule for external_ref)
EXTERNAL_REF_PATTERN = r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?"

# RFC 3339 date-time (section 5.6), every date valid in the Gregorian calendar (29 February in leap years only),
# no leap second (Python's datetime has none), 1-9 digits of fraction, "Z" or an offset up to 23:59.
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_MONTH_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_DATE = rf"(?!0000)(?:[0-9]{{4}}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
_FRACTION = r"(?:\.[0-9]{1,9})?"
_OFFSET = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_ZONE = rf"(?:[Zz]|[+-]{_OFFSET})"
TIME_PATTERN = rf"{_DATE}[Tt]{_CLOCK}{_FRACTION}{_ZONE}"
"""An RFC 3339 time, as ``parse_time`` takes it (no anchors)."""

_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_FULL = re.compile(TIME_PATTERN)
EXAMPLE_TIME = "2027-01-05T10:00:00Z"


def parse_time(text: str, *, field: str) -> datetime:
    """An RFC 3339 time (``2027-01-05T10:00:00Z``, or with an offset like ``+08:00``) as a UTC datetime; a
    fraction past microseconds is cut. ValueError naming ``field`` and the problem."""
    if not _FULL.fullmatch(text):
        raise ValueError(f"{field}: {text[:40]!r} is not an RFC 3339 time, like {EXAMPLE_TIME}")
    match = _TIME.fullmatch(text)
    assert match is not None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    zone = UTC
    if sign is not None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(-offset if sign == "-" else offset)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=zone)
    try:
        return local.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first moment datetime holds
        raise ValueError(f"{field}: {text[:40]!r} is out of range") from None


def _digits_above(threshold: str) -> str:
    """Strings shaped like ``threshold`` (digits and separators; ``T`` in either case) whose digits, read as one
    number, are larger: the local times later than ``threshold``, to the second."""

    def lit(chars: str) -> str:
        return "".join("[Tt]" if c == "T" else (c if c.isdigit() else re.escape(c)) for c in chars)

    def rest(chars: str) -> str:
        return "".join("[0-9]" if c.isdigit() else lit(c) for c in chars)

    parts = [
        lit(threshold[:i]) + (f"[{int(c) + 1}-9]" if c != "8" else "9") + rest(threshold[i + 1 :])
        for i, c in enumerate(threshold)
        if c.isdigit() and c != "9"
    ]
    return "(?:" + "|".join(parts) + ")"


def future_time_pattern(now: datetime) -> str:
    """The RFC 3339 times the schema shows as later than ``now`` (no anchors): exact to the second for ``Z``,
    ``+00:00`` and ``-00:00``; a time with a negative offset counts when its local clock is past ``now`` in UTC,
    one with a positive offset when it is past ``now`` plus a day (an offset is less than a day). ``parse_time``
    and the check against the clock decide the rest: a time with an offset, less than a day ahead, is taken too.
    """
    moment = now.astimezone(UTC).replace(microsecond=0)
    utc = _digits_above(moment.strftime("%Y-%m-%dT%H:%M:%S"))
    ahead = _digits_above((moment + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    zero = r"(?:[Zz]|[+-]00:00)"
    return rf"(?={TIME_PATTERN}$)(?:{utc}{_FRACTION}(?:{zero}|-{_OFFSET})|{ahead}{_FRACTION}\+{_OFFSET})"


@dataclass(frozen=True, slots=True)
class GrantAsk:
    """The join API's ``grant`` field, checked: at most one of ``ends_at`` (later than when it was read) and
    ``duration`` (from the join); neither is open-ended."""

    ends_at: datetime | None = None
    duration: timedelta | None = None
    on_end: OnEnd = OnEnd.REMOVE_ROLES
    external_ref: str | None = None
    as_of: datetime | None = None

    def terms(self, *, joined_at: datetime) -> GrantTerms:
        ends_at = self.ends_at if self.duration is None else joined_at + self.duration
        return GrantTerms(
            ends_at=ends_at, on_end=self.on_end, external_ref=self.external_ref, as_of=self.as_of, starts_at=joined_at
        )


def link_terms(
    *,
    access_for: timedelta | None,
    access_until: datetime | None,
    access_open: bool,
    on_end: OnEnd,
    joined_at: datetime,
) -> GrantTerms | None:
    """A link's access options as the terms of the grant a join through it makes; None: the link makes none."""
    if access_for is not None:
        return GrantTerms(ends_at=joined_at + access_for, on_end=on_end, starts_at=joined_at)
    if access_until is not None:
        return GrantTerms(ends_at=access_until, on_end=on_end, starts_at=joined_at)
    if access_open:
        return GrantTerms(ends_at=None, on_end=on_end, starts_at=joined_at)
    return None


class GrantsPort(Protocol):
    """What a join needs of the grants (services/grants.py's GrantService)."""

    async def prepare(
        self, *, app_id: str, guild_id: str, external_ref: str | None, link_id: str | None, user_id: str | None
    ) -> str: ...

    async def check_link_access(self, *, link_id: str, user_id: str) -> None: ...

    async def read_roles(self, *, app: AppCredentials, guild_id: str, user_id: str) -> tuple[str, ...] | None: ...

    async def after_join(
        self,
        *,
        app: AppCredentials,
        app_id: str,
        guild_id: str,
        user_id: str,
        joined: bool,
        roles: tuple[str, ...],
        terms: GrantTerms | None,
        source: Literal["api", "link"],
        link_id: str | None,
        record_id: str,
        grant_id: str | None,
        preexisting: tuple[str, ...] | None = None,
    ) -> Grant | None: ...


async def settle_join(
    *,
    grants: GrantsPort,
    give: Callable[[tuple[str, ...]], Awaitable[tuple[list[str], list[str]]]],
    app: AppCredentials,
    app_id: str,
    guild_id: str,
    user_id: str,
    joined: bool,
    roles: tuple[str, ...],
    terms: GrantTerms | None,
    source: Literal["api", "link"],
    link_id: str | None,
    record_id: str,
    grant_id: str | None,
) -> Settled:
    """After a successful join: someone already in the server gets ``roles`` one by one (``give``; Add Guild
    Member ignores roles for a member), after the roles they held are read when a grant is to be made (they are
    never the grant's to take); then the grants hear of the join (an absent person's roles come back; with
    ``terms`` the grant is made or renewed). A JoinError of the grants is returned in ``error``, with the roles
    given all the same."""
    given: list[str] = list(roles) if joined else []
    failed: list[str] = []
    preexisting: tuple[str, ...] | None = None
    error: JoinError | None = None
    if not joined and roles:
        if terms is not None:
            try:
                preexisting = await grants.read_roles(app=app, guild_id=guild_id, user_id=user_id)
            except JoinError as exc:
                error = exc
        given, failed = await give(roles)
    if error is not None:
        return Settled(grant=None, given=tuple(given), failed=tuple(failed), error=error)
    try:
        grant = await grants.after_join(
            app=app,
            app_id=app_id,
            guild_id=guild_id,
            user_id=user_id,
            joined=joined,
            roles=roles,
            terms=terms,
            source=source,
            link_id=link_id,
            record_id=record_id,
            grant_id=grant_id if terms is not None else None,
            preexisting=preexisting,
        )
    except JoinError as exc:
        return Settled(grant=None, given=tuple(given), failed=tuple(failed), error=exc)
    except Exception:  # the join succeeded and is recorded: its answer must say so, whatever broke here
        log.exception("a join succeeded but its grants could not be updated")
        return Settled(grant=None, given=tuple(given), failed=tuple(failed))
    return Settled(grant=grant, given=tuple(given), failed=tuple(failed))


@dataclass(frozen=True, slots=True)
class Settled:
    grant: Grant | None
    given: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    error: JoinError | None = None
