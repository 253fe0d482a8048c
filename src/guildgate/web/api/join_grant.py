"""The join body's optional ``grant`` field: parsing, and its JSON Schema with the same rules.

``{"ends_at": TIME | "duration": DURATION | neither (open-ended), "on_end": "remove_roles"|"kick"|"keep",
"external_ref": 1-128 printable ASCII, "as_of": TIME}``. As everywhere in the body, "" and null count as absent
and unknown fields are ignored. Both ``ends_at`` and ``duration``: refused; an ``ends_at`` that is not later than
now: refused (a new grant whose end is past is refused, access.md). Each error names the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from guildgate.core.access import (
    EXAMPLE_TIME,
    EXTERNAL_REF_PATTERN,
    ON_END_VALUES,
    TIME_PATTERN,
    GrantAsk,
    future_time_pattern,
    parse_time,
)
from guildgate.core.errors import InvalidRequestError
from guildgate.core.grants import OnEnd
from guildgate.core.links import duration_pattern, parse_duration

MAX_DURATION = 32  # characters as sent, white space included
_EXTERNAL_REF = re.compile(EXTERNAL_REF_PATTERN)


def _present(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    return None if value == "" else value


def _string(data: dict[str, Any], name: str, what: str) -> str | None:
    value = _present(data, name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequestError(f"grant.{name} must be a string ({what})")
    return value


def parse_grant(data: dict[str, Any], *, now: datetime | None = None) -> GrantAsk:
    """The ``grant`` object, checked. InvalidRequestError naming the field."""
    ends_text = _string(data, "ends_at", f"an RFC 3339 time like {EXAMPLE_TIME}")
    duration_text = _string(data, "duration", "a number and a unit: 90s, 30m, 12h, 30d, 2w")
    on_end_text = _string(data, "on_end", "remove_roles, kick or keep")
    external_ref = _string(data, "external_ref", "1-128 printable ASCII characters")
    as_of_text = _string(data, "as_of", f"an RFC 3339 time like {EXAMPLE_TIME}")
    if ends_text is not None and duration_text is not None:
        raise InvalidRequestError("grant: give at most one of ends_at and duration (neither: no end)")
    ask: dict[str, Any] = {}
    if ends_text is not None:
        try:
            ends_at = parse_time(ends_text, field="grant.ends_at")
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        if ends_at <= (now or datetime.now(UTC)):
            raise InvalidRequestError("grant.ends_at is not in the future: a new grant must end later than now")
        ask["ends_at"] = ends_at
    if duration_text is not None:
        if len(duration_text) > MAX_DURATION:
            raise InvalidRequestError(f"grant.duration: at most {MAX_DURATION} characters")
        try:
            ask["duration"] = parse_duration(duration_text)
        except ValueError as exc:
            raise InvalidRequestError(f"grant.duration: {exc}") from None
    if on_end_text is not None:
        if on_end_text not in ON_END_VALUES:
            raise InvalidRequestError("grant.on_end must be remove_roles, kick or keep")
        ask["on_end"] = OnEnd(on_end_text)
    if external_ref is not None:
        if not _EXTERNAL_REF.fullmatch(external_ref):
            raise InvalidRequestError(
                "grant.external_ref must be 1-128 printable ASCII characters, not starting or ending with a space"
            )
        ask["external_ref"] = external_ref
    if as_of_text is not None:
        try:
            ask["as_of"] = parse_time(as_of_text, field="grant.as_of")
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
    return GrantAsk(**ask)


def grant_schema(*, now: datetime) -> dict[str, Any]:
    """``grant`` as JSON Schema: what parse_grant takes at ``now`` (times with a positive offset less than a day
    ahead are taken but not shown: core.access.future_time_pattern)."""
    empty: dict[str, Any] = {"type": "null"}
    blank = {"type": "string", "maxLength": 0}

    def optional(schema: dict[str, Any]) -> dict[str, Any]:
        return {"anyOf": [schema, blank, empty]}

    filled = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "description": "Make a grant with the request's roles when the join succeeds: ends at ends_at, duration "
        "after the join, or never (neither). With an external_ref already active for the app in that server, that "
        "grant is updated instead.",
        "properties": {
            "ends_at": optional(
                {
                    "type": "string",
                    "pattern": f"^{future_time_pattern(now)}$",
                    "description": f"RFC 3339 time later than now, like {EXAMPLE_TIME}",
                }
            ),
            "duration": optional(
                {
                    "type": "string",
                    "pattern": f"^{duration_pattern()}$",
                    "maxLength": MAX_DURATION,
                    "description": "From the join: a number and s, m, h, d or w (up to 366 days)",
                }
            ),
            "on_end": optional({"type": "string", "enum": list(ON_END_VALUES)}),
            "external_ref": optional(
                {"type": "string", "pattern": f"^{EXTERNAL_REF_PATTERN}$", "description": "Your own id, 1-128 ASCII"}
            ),
            "as_of": optional({"type": "string", "pattern": f"^{TIME_PATTERN}$"}),
        },
        "not": {"required": ["ends_at", "duration"], "properties": {"ends_at": filled, "duration": filled}},
    }
