"""The grants API's input: the bodies of POST and PATCH /api/grants, the times and query values, their rules
with errors that name the field, and the same rules as JSON Schema for the OpenAPI document (what the schema
allows is taken, what it does not is refused).

Rules: a JSON object of at most 16 KiB, no field beyond those named (a typo is an error, not ignored); ``roles``
1-250 role ids (snowflakes; a repeated id counts once); ``ends_at`` and ``as_of`` RFC 3339 times (as the
records' filters take them: a date alone is midnight, no offset is UTC); ``duration`` as ``links create
--expires`` takes it (``90s``, ``30m``, ``12h``, ``30d``, ``2w``; at most 366 days); ``on_end`` one of
``remove_roles``, ``kick``, ``keep``; ``external_ref`` 1-128 printable ASCII, no space at either end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from guildgate.core.errors import InvalidRequestError
from guildgate.core.grants import OnEnd, check_external_ref
from guildgate.core.invites import is_snowflake
from guildgate.core.links import duration_pattern, parse_duration
from guildgate.web.api.records import _TIME_PATTERN, _time

MAX_ROLES = 250
EXTERNAL_REF_PATTERN = r"[!-~](?:[ -~]{0,126}[!-~])?"  # what core.grants.check_external_ref takes
LINK_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_LINK_ID = re.compile(LINK_ID_PATTERN)
M = TypeVar("M", bound=BaseModel)


class GrantIn(BaseModel):
    """POST /api/grants: the types; ``parse_new`` applies the rest of the rules."""

    model_config = ConfigDict(extra="forbid")

    guild_id: StrictStr
    user_id: StrictStr
    roles: list[StrictStr]
    ends_at: StrictStr | None = None
    duration: StrictStr | None = None
    on_end: StrictStr | None = None
    external_ref: StrictStr | None = None
    as_of: StrictStr | None = None


class GrantChangeIn(BaseModel):
    """PATCH /api/grants/{id} and PATCH /api/grants?external_ref=REF: the types. Omitted and ``null`` differ for
    ``ends_at`` (null: open-ended from now on)."""

    model_config = ConfigDict(extra="forbid")

    ends_at: StrictStr | None = None
    roles: list[StrictStr] | None = None
    on_end: StrictStr | None = None
    as_of: StrictStr | None = None


@dataclass(frozen=True)
class NewGrant:
    guild_id: str
    user_id: str
    roles: tuple[str, ...]
    ends_at: datetime | None
    on_end: OnEnd
    external_ref: str | None
    as_of: datetime | None
    starts_at: datetime | None = None  # the instant a duration was counted from


@dataclass(frozen=True)
class GrantChange:
    """What a PATCH changes; a field left out is not in ``given``."""

    given: frozenset[str]
    ends_at: datetime | None = None
    roles: tuple[str, ...] = ()
    on_end: OnEnd = OnEnd.REMOVE_ROLES
    as_of: datetime | None = None


def _validated(model: type[M], data: dict[str, Any], *, nullable: frozenset[str] = frozenset()) -> M:
    """``data`` as ``model``; ``null`` only for the fields in ``nullable`` (elsewhere leave the field out)."""
    for name, value in data.items():
        if value is None and name in model.model_fields and name not in nullable:
            raise InvalidRequestError(f"{name} must not be null: leave it out instead")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        if first["type"] == "missing":
            raise InvalidRequestError(f"{field} is required") from None
        if first["type"] == "extra_forbidden":
            raise InvalidRequestError(f"{field} is not a field of this call") from None
        raise InvalidRequestError(f"{field}: {first['msg']}") from None


def roles_of(values: list[str], *, field: str = "roles") -> tuple[str, ...]:
    if not 1 <= len(values) <= MAX_ROLES:
        raise InvalidRequestError(f"{field}: 1 to {MAX_ROLES} role ids, got {len(values)}")
    for index, role in enumerate(values):
        if not is_snowflake(role):
            raise InvalidRequestError(f"{field}.{index} must be a role id (a snowflake: 17-20 digits)")
    return tuple(dict.fromkeys(values))


def on_end_of(value: str, *, field: str = "on_end") -> OnEnd:
    try:
        return OnEnd(value)
    except ValueError:
        raise InvalidRequestError(f"{field} must be one of {', '.join(o.value for o in OnEnd)}") from None


def time_of(field: str, value: str) -> datetime:
    moment = _time(field, value)
    if moment is None:
        raise InvalidRequestError(f"{field} must be an RFC 3339 time such as 2027-01-05T10:00:00Z")
    return moment


def external_ref_of(value: str, *, field: str = "external_ref") -> str:
    try:
        return check_external_ref(value)
    except ValueError:
        raise InvalidRequestError(
            f"{field} must be 1-128 printable ASCII characters (no space at either end)"
        ) from None


def link_id_of(value: str) -> str:
    if not _LINK_ID.fullmatch(value):
        raise InvalidRequestError("link_id must be a link's id (1-64 of A-Z a-z 0-9 _ -)")
    return value


def parse_new(data: dict[str, Any], *, now: datetime | None = None) -> NewGrant:
    """POST /api/grants's body. A new grant must end in the future: with no ``external_ref`` (which may name an
    active grant, that a past end ends) a past ``ends_at`` is refused here, before anything is sent."""
    body = _validated(GrantIn, data)
    if not is_snowflake(body.guild_id):
        raise InvalidRequestError("guild_id must be a server id (a snowflake: 17-20 digits)")
    if not is_snowflake(body.user_id):
        raise InvalidRequestError("user_id must be a user id (a snowflake: 17-20 digits)")
    roles = roles_of(body.roles)
    if body.ends_at is not None and body.duration is not None:
        raise InvalidRequestError("give ends_at or duration, not both (neither: open-ended)")
    now = now or datetime.now(UTC)
    ends_at = None
    if body.ends_at is not None:
        ends_at = time_of("ends_at", body.ends_at)
    elif body.duration is not None:
        try:
            ends_at = now + parse_duration(body.duration)
        except ValueError as exc:
            raise InvalidRequestError(f"duration: {exc}") from None
    external_ref = None if body.external_ref is None else external_ref_of(body.external_ref)
    if ends_at is not None and ends_at <= now and external_ref is None:
        raise InvalidRequestError("ends_at is in the past: a new grant must end in the future")
    return NewGrant(
        guild_id=body.guild_id,
        user_id=body.user_id,
        roles=roles,
        ends_at=ends_at,
        on_end=OnEnd.REMOVE_ROLES if body.on_end is None else on_end_of(body.on_end),
        external_ref=external_ref,
        as_of=None if body.as_of is None else time_of("as_of", body.as_of),
        starts_at=now,
    )


def parse_change(data: dict[str, Any]) -> GrantChange:
    """PATCH's body: at least one of ends_at, roles, on_end (as_of alone changes nothing)."""
    body = _validated(GrantChangeIn, data, nullable=frozenset({"ends_at"}))
    given = body.model_fields_set
    if not given & {"ends_at", "roles", "on_end"}:
        raise InvalidRequestError("nothing to change: give ends_at, roles or on_end")
    return GrantChange(
        given=frozenset(given - {"as_of"}),
        ends_at=None if body.ends_at is None else time_of("ends_at", body.ends_at),
        roles=roles_of(body.roles) if body.roles is not None else (),
        on_end=on_end_of(body.on_end) if body.on_end is not None else OnEnd.REMOVE_ROLES,
        as_of=None if body.as_of is None else time_of("as_of", body.as_of),
    )


# ---- the same rules as JSON Schema -------------------------------------------------------------------------

_MONTH = "(?:0[1-9]|1[0-2])"
_DAY = "(?:0[1-9]|1[0-9]|2[0-8])"  # what a pattern can say without a calendar
_CLOCK = _TIME_PATTERN[_TIME_PATTERN.index("(?:[Tt ]") : -1]  # the time of day and offset after the date


def _above(digits: str) -> list[str]:
    """Patterns of the strings of ``len(digits)`` ASCII digits greater than ``digits``."""
    out = []
    for i, digit in enumerate(digits):
        if digit != "9":
            rest = len(digits) - i - 1
            tail = "" if rest == 0 else f"[0-9]{{{rest}}}"
            low = int(digit) + 1
            out.append(f"{digits[:i]}{low if low == 9 else f'[{low}-9]'}{tail}")
    return out


def later_time_pattern(now: datetime) -> str:
    """RFC 3339 times (the grammar of ``_time``) written with a date at least two days after ``now`` (UTC): later
    than ``now`` whatever their offset (at most a day), for a day or more after the schema was made."""
    first = (now.astimezone(UTC) + timedelta(days=2)).date()
    year, month, day = f"{first.year:04d}", f"{first.month:02d}", first.day
    dates = [f"(?:{y})-{_MONTH}-{_DAY}" for y in _above(year)]
    dates += [f"{year}-{m:02d}-{_DAY}" for m in range(int(month) + 1, 13)]
    dates += [f"{year}-{month}-{d:02d}" for d in range(day, 29)]
    return f"^(?:{'|'.join(dates)}){_CLOCK}$"


def time_schema(description: str) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
            {"type": "string", "pattern": _TIME_PATTERN},
        ],
        "description": description,
    }


def _roles_schema(snowflake: str, description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_ROLES,
        "items": {"type": "string", "pattern": f"^{snowflake}$"},
        "description": description,
    }


ON_END_SCHEMA = {
    "type": "string",
    "enum": [o.value for o in OnEnd],
    "description": "What the end does: remove_roles (default), kick, or keep (nothing at Discord).",
}


def new_grant_schema(*, snowflake: str, now: datetime) -> dict[str, Any]:
    """POST /api/grants's body as JSON Schema. ``ends_at`` is shown as a time two days or more ahead: a new grant
    must end in the future (a past one is refused with 400); a past ``ends_at`` is also taken when
    ``external_ref`` names an active grant, to end it."""
    return {
        "title": "NewGrant",
        "type": "object",
        "additionalProperties": False,
        "required": ["guild_id", "user_id", "roles"],
        "properties": {
            "guild_id": {"type": "string", "pattern": f"^{snowflake}$", "description": "The server's id."},
            "user_id": {
                "type": "string",
                "pattern": f"^{snowflake}$",
                "description": "The person's user id; they must be in the server already.",
            },
            "roles": _roles_schema(snowflake, "The role ids to give (1-250; the whole set when updating)."),
            "ends_at": {
                "type": "string",
                "pattern": later_time_pattern(now),
                "description": "When the grant ends (RFC 3339). Neither ends_at nor duration: open-ended.",
            },
            "duration": {
                "type": "string",
                "pattern": f"^{duration_pattern()}$",
                "description": "How long from now: 90s, 30m, 12h, 30d, 2w (at most 366d).",
            },
            "on_end": ON_END_SCHEMA,
            "external_ref": {
                "type": "string",
                "pattern": f"^{EXTERNAL_REF_PATTERN}$",
                "description": "Your own id (a subscription, an order): 1-128 printable ASCII. An active grant of "
                "this app in this server with it is updated instead (HTTP 200).",
            },
            "as_of": time_schema(
                "The time of the fact behind this call; an older one than the grant's changes nothing (stale)."
            ),
        },
        "not": {"required": ["ends_at", "duration"]},
    }


def change_schema(*, snowflake: str) -> dict[str, Any]:
    """PATCH's body as JSON Schema."""
    ends_at = time_schema("The new end (RFC 3339): later extends, earlier shortens, past ends the grant now.")
    ends_at["anyOf"].append({"type": "null", "description": "open-ended"})
    return {
        "title": "GrantChange",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ends_at": ends_at,
            "roles": _roles_schema(snowflake, "The new set of role ids (1-250): added or taken away at once."),
            "on_end": ON_END_SCHEMA,
            "as_of": time_schema(
                "The time of the fact behind this call; an older one than the grant's changes nothing (stale)."
            ),
        },
        "anyOf": [{"required": [name]} for name in ("ends_at", "roles", "on_end")],
    }
