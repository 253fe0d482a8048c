"""Grants: access that lasts and ends (``../shared/spec/access.md``, "Grants"). No SQL, no HTTP.

A ``Grant`` says: this user holds these roles in this server until ``ends_at`` (or open-ended), and when it
ends, ``on_end`` is done. ``GrantTerms`` are what a caller asks for (a duration is turned into ``ends_at`` by the
caller, from the join's time). ``end_plan`` is the overlap rule: what an end does at Discord, given the other
active grants of the same server and user (any app's).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

MAX_ROLES = 250
_EXTERNAL_REF = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?")  # 1-128 printable ASCII
_GRANT_ID = re.compile(r"grt_[0-9a-f]{16}")


class GrantState(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    END_FAILED = "end_failed"


class OnEnd(StrEnum):
    REMOVE_ROLES = "remove_roles"
    KICK = "kick"
    KEEP = "keep"


class EndReason(StrEnum):
    EXPIRED = "expired"
    REVOKED = "revoked"


class EndAction(StrEnum):
    ROLES_REMOVED = "roles_removed"
    KICKED = "kicked"
    NONE = "none"


def rfc3339(moment: datetime | None) -> str | None:
    """A time as the contract shows it: UTC with ``Z``, whole seconds unless it has a fraction."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class Grant:
    id: str
    app_id: str
    guild_id: str
    user_id: str
    roles: tuple[str, ...]
    state: GrantState
    starts_at: datetime
    ends_at: datetime | None
    on_end: OnEnd
    external_ref: str | None
    source: str  # "api" | "link"
    link_id: str | None
    record_id: str | None
    roles_preexisting: tuple[str, ...]
    absent_since: datetime | None
    revision: int
    as_of: datetime | None
    ended_at: datetime | None
    end_reason: EndReason | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    end_action: EndAction | None = None  # what the end did (the grant.ended event's ``action``); not in as_json

    @property
    def active(self) -> bool:
        return self.state is GrantState.ACTIVE

    def due(self, now: datetime) -> bool:
        return self.active and self.ends_at is not None and self.ends_at <= now

    def as_json(self) -> dict[str, Any]:
        """Exactly the contract's grant object."""
        return {
            "id": self.id,
            "app_id": self.app_id,
            "guild_id": self.guild_id,
            "user_id": self.user_id,
            "roles": list(self.roles),
            "state": self.state.value,
            "starts_at": rfc3339(self.starts_at),
            "ends_at": rfc3339(self.ends_at),
            "on_end": self.on_end.value,
            "external_ref": self.external_ref,
            "source": self.source,
            "link_id": self.link_id,
            "record_id": self.record_id,
            "roles_preexisting": list(self.roles_preexisting),
            "absent_since": rfc3339(self.absent_since),
            "revision": self.revision,
            "as_of": rfc3339(self.as_of),
            "ended_at": rfc3339(self.ended_at),
            "end_reason": self.end_reason.value if self.end_reason is not None else None,
            "last_error": self.last_error,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


@dataclass(frozen=True)
class GrantTerms:
    """What a caller asks of a grant. ``ends_at`` None: open-ended. ``starts_at``: the instant a duration was
    counted from (a new grant starts then, so that ``ends_at`` is exactly ``starts_at`` + the duration); None: when
    the grant is made."""

    ends_at: datetime | None
    on_end: OnEnd = OnEnd.REMOVE_ROLES
    external_ref: str | None = None
    as_of: datetime | None = None
    starts_at: datetime | None = None


def new_grant(
    *,
    grant_id: str,
    app_id: str,
    guild_id: str,
    user_id: str,
    roles: tuple[str, ...],
    terms: GrantTerms,
    source: str,
    link_id: str | None,
    record_id: str | None,
    held: tuple[str, ...],
    now: datetime,
) -> Grant:
    """A grant as it is made: active, revision 1, starting at ``terms.starts_at`` (or ``now``)."""
    return Grant(
        id=grant_id,
        app_id=app_id,
        guild_id=guild_id,
        user_id=user_id,
        roles=roles,
        state=GrantState.ACTIVE,
        starts_at=terms.starts_at or now,
        ends_at=terms.ends_at,
        on_end=terms.on_end,
        external_ref=terms.external_ref,
        source=source,
        link_id=link_id,
        record_id=record_id,
        roles_preexisting=held,
        absent_since=None,
        revision=1,
        as_of=terms.as_of,
        ended_at=None,
        end_reason=None,
        last_error=None,
        created_at=now,
        updated_at=now,
    )


def new_grant_id() -> str:
    """``grt_`` + 16 hex digits."""
    return "grt_" + secrets.token_hex(8)


def could_be_grant_id(value: str) -> bool:
    return _GRANT_ID.fullmatch(value) is not None


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``2027-01-05T10:00:00Z``, or with an offset) as a UTC datetime. ValueError naming the
    problem: not a time, or without a time zone."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40 or not text.isascii():
        raise ValueError(f"{str(text)[:40]!r} is not an RFC 3339 time, like 2027-01-05T10:00:00Z")
    raw = text.strip()
    if raw[-1:] in ("z", "Z"):
        raw = raw[:-1] + "+00:00"
    if len(raw) < 11 or raw[10] not in "Tt ":
        raise ValueError(f"{text!r} is not an RFC 3339 time (a date and a time), like 2027-01-05T10:00:00Z")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time, like 2027-01-05T10:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: end it with Z (UTC) or an offset like +02:00")
    return moment.astimezone(UTC)


def check_external_ref(value: str) -> str:
    """1-128 printable ASCII characters (no leading or trailing space). ValueError otherwise."""
    if not isinstance(value, str) or _EXTERNAL_REF.fullmatch(value) is None:
        raise ValueError("external_ref must be 1-128 printable ASCII characters")
    return value


def check_roles(roles: Iterable[str], *, allow_empty: bool = False) -> tuple[str, ...]:
    """Role ids as a grant holds them: snowflakes, each once, in the order given, at most MAX_ROLES."""
    result: list[str] = []
    for role in roles:
        if not isinstance(role, str) or not role.isascii() or not role.isdecimal() or not 0 < len(role) <= 20:
            raise ValueError(f"roles: {str(role)[:30]!r} is not a role id (a snowflake)")
        if role not in result:
            result.append(role)
    if len(result) > MAX_ROLES:
        raise ValueError(f"roles: at most {MAX_ROLES}")
    if not result and not allow_empty:
        raise ValueError("roles: at least one role")
    return tuple(result)


@dataclass(frozen=True)
class EndPlan:
    """What ending one grant does at Discord: the roles to take away, or a kick, or nothing."""

    kick: bool
    remove: tuple[str, ...]

    @property
    def nothing(self) -> bool:
        return not self.kick and not self.remove


def end_plan(grant: Grant, *, on_end: OnEnd, others: Iterable[Grant]) -> EndPlan:
    """The overlap rule. ``others``: the other *active* grants of the same server and user, any app's.
    A role is removed only if no other active grant gives it, and never one the person held before the grant;
    a kick only when no other active grant exists in that server (else this grant's roles are removed)."""
    if on_end is OnEnd.KEEP:
        return EndPlan(kick=False, remove=())
    rest = [g for g in others if g.id != grant.id and g.active]
    if on_end is OnEnd.KICK and not rest:
        return EndPlan(kick=True, remove=())
    kept = {role for g in rest for role in g.roles}
    kept.update(grant.roles_preexisting)
    return EndPlan(kick=False, remove=tuple(r for r in grant.roles if r not in kept))


def stale(stored: datetime | None, incoming: datetime | None) -> bool:
    """Late facts lose: a change carrying ``as_of`` older than the stored one changes nothing."""
    return stored is not None and incoming is not None and incoming < stored
