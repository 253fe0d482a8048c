"""GET /api/record/{id}, GET /api/records, GET /api/usage — an API key sees only its own app's records, at most
``GUILDGATE_READS_PER_MINUTE`` reads a minute (429 ``read_quota_exceeded`` past it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Header, Query, Request

from guildgate.core.errors import InvalidRequestError, RecordNotFoundError
from guildgate.core.invites import is_snowflake
from guildgate.core.outcomes import Outcome, RecordState
from guildgate.services.records import shown_record
from guildgate.store.repos import CURSOR_PATTERN, NotFoundError, RecordFilters
from guildgate.web.api.body import DEVELOPER_ID
from guildgate.web.api.schemas import Envelope, RecordAnswer, RecordsAnswer, UsageAnswer
from guildgate.web.deps import authenticate, services
from guildgate.web.i18n import OK_MSG, pick_language

router = APIRouter()


# A time as clients write one: RFC 3339's date-time (section 5.6, what the schema's "format: date-time" means: T and
# Z in any case, a fraction of any length, a numeric offset; 60 seconds only at a leap second, taken as its last
# moment), and what ISO 8601 writers also send: a date alone (midnight), a space for the T, no seconds, no offset
# (UTC). ASCII digits: Python's \d takes other scripts' too.
_TIME = re.compile(
    r"(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?)?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<off_hour>[0-9]{2}):(?P<off_minute>[0-9]{2}))?)?"
)
# The part of _TIME's grammar beyond the two formats that the schema can state without a calendar: days 1-28.
_YEAR = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_TIME_PATTERN = (
    rf"^{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])(?:[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]"
    r"(?::[0-5][0-9](?:\.[0-9]+)?)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?$"
)


def _time(name: str, value: str | None) -> datetime | None:
    """A time in UTC (``_TIME``); "" counts as absent. One beyond what a datetime holds (year 1 or 9999 in another
    offset) stands for the earliest or latest there is."""
    if value is None or value == "":
        return None
    found = _TIME.fullmatch(value)
    problem = f"{name} must be an RFC 3339 time such as 2026-01-31T12:00:00Z (or a date such as 2026-01-31)"
    if found is None:
        raise InvalidRequestError(problem)
    g = found.groupdict()
    hour, minute, second = int(g["hour"] or 0), int(g["minute"] or 0), int(g["second"] or 0)
    off_hour, off_minute, sign = int(g["off_hour"] or 0), int(g["off_minute"] or 0), g["sign"]
    if hour > 23 or minute > 59 or second > 60 or off_hour > 23 or off_minute > 59:
        raise InvalidRequestError(problem)
    offset = timedelta(hours=off_hour, minutes=off_minute)
    if second == 60:  # a leap second is 23:59:60 UTC, with its offset written
        in_utc = (hour * 60 + minute - (offset // timedelta(minutes=1)) * (-1 if sign == "-" else 1)) % 1440
        if g["offset"] is None or in_utc != 23 * 60 + 59:
            raise InvalidRequestError(problem)
    try:
        at = datetime.fromisoformat(g["day"]).replace(hour=hour, minute=minute, second=min(second, 59))
    except ValueError:  # a day the month does not have, year 0
        raise InvalidRequestError(problem) from None
    at = at.replace(microsecond=999_999 if second == 60 else int((g["fraction"] or "0")[:6].ljust(6, "0")), tzinfo=UTC)
    try:
        return at - offset if sign == "+" else at + offset
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if sign == "+" else datetime.max.replace(tzinfo=UTC)


def describe_records(schema: dict[str, Any], *, snowflake: str) -> None:
    """Every filter of GET /api/records as this service takes it ("" counts as absent), into ``schema``."""
    empty = {"type": "string", "maxLength": 0}
    time = {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
            {"type": "string", "pattern": _TIME_PATTERN},
            empty,
        ],
        "description": "RFC 3339 (2026-01-31T12:00:00Z), or a date, or without seconds or offset (UTC)",
    }
    exact: dict[str, dict[str, Any]] = {
        "cursor": {"type": "string", "pattern": f"^(?:{CURSOR_PATTERN})?$"},
        "state": {"type": "string", "enum": ["", *(s.value for s in RecordState)]},
        "code": {"type": "string", "enum": ["", *(o.value for o in Outcome)]},
        "guild_id": {"type": "string", "pattern": f"^(?:{snowflake})?$"},
        "developer_id": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{0,64}$"},
        "since": time,
        "until": time,
    }
    for parameter in schema["paths"]["/api/records"]["get"]["parameters"]:
        if parameter["in"] == "query" and parameter["name"] in exact:
            title = parameter["schema"].get("title")
            parameter["schema"] = {**exact[parameter["name"]], **({"title": title} if title else {})}


@router.get(
    "/api/record/{record_id}",
    response_model=RecordAnswer,
    responses={401: {"model": Envelope}, 404: {"model": Envelope}, 429: {"model": Envelope}},
)
async def get_record(
    request: Request,
    record_id: str,
    user_token: str | None = Header(default=None, alias="User-Token"),
    accept_language: str | None = Header(default=None, alias="Accept-Language"),
) -> dict[str, Any]:
    """One record of this API key's app. Example: ``curl -H 'User-Token: gg_...' /api/record/UUID``."""
    key = await authenticate(request)
    await services(request).quotas.take_read(key)
    lang = pick_language(accept_language)
    try:
        row = await services(request).records.get(record_id, app_id=key.app_id)
    except NotFoundError:
        raise RecordNotFoundError() from None
    return {"status": 1, "msg": OK_MSG[lang], "data": shown_record(row, lang)}


@router.get(
    "/api/records",
    response_model=RecordsAnswer,
    responses={400: {"model": Envelope}, 401: {"model": Envelope}, 429: {"model": Envelope}},
)
async def list_records(
    request: Request,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = None,
    state: str | None = None,
    code: str | None = None,
    guild_id: str | None = None,
    developer_id: str | None = None,
    since: str | None = Query(default=None, description="RFC 3339"),
    until: str | None = Query(default=None, description="RFC 3339"),
    user_token: str | None = Header(default=None, alias="User-Token"),
    accept_language: str | None = Header(default=None, alias="Accept-Language"),
) -> dict[str, Any]:
    """Newest first, cursor-paged. Example: ``/api/records?state=failed&limit=100``."""
    key = await authenticate(request)
    await services(request).quotas.take_read(key)
    lang = pick_language(accept_language)
    state, code = state or None, code or None  # "" counts as absent
    if state is not None and state not in {s.value for s in RecordState}:
        raise InvalidRequestError(f"state must be one of {', '.join(s.value for s in RecordState)}")
    if code is not None and code not in {o.value for o in Outcome}:
        raise InvalidRequestError(f"code {code!r} is not an outcome code")
    if guild_id and not is_snowflake(guild_id):
        raise InvalidRequestError("guild_id must be a server id (a snowflake: 17-20 digits)")
    if developer_id and not DEVELOPER_ID.fullmatch(developer_id):
        raise InvalidRequestError(
            "developer_id must be 1-64 characters of A-Z a-z 0-9 _ - (as the Developer-Id header)"
        )
    filters = RecordFilters(
        state=state,
        code=code,
        guild_id=guild_id or None,
        developer_id=developer_id or None,
        since=_time("since", since),
        until=_time("until", until),
    )
    try:
        rows, next_cursor = await services(request).records.list(
            app_id=key.app_id, filters=filters, limit=limit, cursor=cursor or None
        )
    except ValueError as exc:
        raise InvalidRequestError(f"cursor: {exc}") from None
    return {
        "status": 1,
        "msg": OK_MSG[lang],
        "data": {
            "records": [shown_record(r, lang) for r in rows],
            "next_cursor": next_cursor,
        },
    }


@router.get(
    "/api/usage",
    response_model=UsageAnswer,
    responses={400: {"model": Envelope}, 401: {"model": Envelope}, 429: {"model": Envelope}},
)
async def usage(
    request: Request,
    days: int = Query(default=30, ge=1, le=366),
    user_token: str | None = Header(default=None, alias="User-Token"),
    accept_language: str | None = Header(default=None, alias="Accept-Language"),
) -> dict[str, Any]:
    """Counts per day and outcome for the key's app, and the key's quota. Example: ``/api/usage?days=7``."""
    key = await authenticate(request)
    svc = services(request)
    await svc.quotas.take_read(key)
    lang = pick_language(accept_language)
    since = (datetime.now(UTC) - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await svc.records.usage(app_id=key.app_id, since=since)
    by_day: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for day, code, count in rows:
        by_day.setdefault(day, {})[code] = count
        totals[code] = totals.get(code, 0) + count
    used = await svc.quotas.used(key.id)
    quota = key.quota_per_minute
    return {
        "status": 1,
        "msg": OK_MSG[lang],
        "data": {
            "app_id": key.app_id,
            "key_id": key.id,
            "since": since.date().isoformat(),
            "days": [{"date": d, "counts": c, "total": sum(c.values())} for d, c in sorted(by_day.items())],
            "totals": totals,
            "total": sum(totals.values()),
            "quota": {
                "per_minute": quota,
                "used_last_minute": used,
                "remaining": None if quota is None else max(quota - used, 0),
            },
        },
    }
