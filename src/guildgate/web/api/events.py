"""GET /api/events and GET /api/events/{id}: the API key's app's events, so a receiver that was down can catch up
by itself (``../shared/spec/access.md``, "Webhooks"). Each event is its webhook body (``id``, ``type``,
``timestamp``, ``data``) and how its deliveries stand: ``deliveries`` [{``endpoint_id``, ``state`` (pending,
delivered, failed, skipped), ``attempts``}]. Newest first, cursor-paged like /api/records; reads count against
``GUILDGATE_READS_PER_MINUTE`` like record reads.

    curl -s -H "User-Token: $KEY" "$URL/api/events?type=join.succeeded&delivery=failed&limit=100"
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from guildgate.core.errors import InvalidRequestError
from guildgate.core.webhooks import EVENT_TYPES, DeliveryState
from guildgate.services.webhooks import MAX_PAGE
from guildgate.web.api.records import _TIME_PATTERN, _time
from guildgate.web.api.schemas import Envelope
from guildgate.web.deps import authenticate, services
from guildgate.web.i18n import OK_MSG, pick_language

router = APIRouter()

ENDPOINT_ID_PATTERN = r"whe_[0-9a-f]{16}"
EVENT_ID_PATTERN = r"evt_[a-z2-7]{26}"
# A cursor as this API gives it out, like /api/records': the last event's time (microseconds since 1970, UTC), ".",
# its id; so the schema can say exactly which are taken. The service's own cursor is made from the same two.
CURSOR_PATTERN = r"[0-9]{1,16}\.evt_[a-z2-7]{26}"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DELIVERY_FILTERS = (DeliveryState.FAILED.value, DeliveryState.SKIPPED.value)


class EventDelivery(BaseModel):
    endpoint_id: str = Field(description="The endpoint (whe_...)")
    state: DeliveryState = Field(description="pending, delivered, failed (retries ran out) or skipped (disabled)")
    attempts: int = Field(description="Attempts made so far")


class Event(BaseModel):
    """An event: the very body its webhooks carry, and how its deliveries stand. New fields may appear."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(description="evt_ and 26 base32 characters: the webhook-id header's value")
    type: str = Field(description="join.succeeded, grant.ended, ... (docs/webhooks.md)")
    timestamp: str = Field(description="When it was made, RFC 3339")
    data: dict[str, Any] = Field(description="The event's fields (docs/webhooks.md)")
    deliveries: list[EventDelivery]


class EventAnswer(BaseModel):
    status: int
    msg: str
    data: Event


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: str | None


class EventsAnswer(BaseModel):
    status: int
    msg: str
    data: EventPage


_ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": Envelope} for status in (400, 401, 404, 429)}


@router.get("/api/events", response_model=EventsAnswer, responses=_ERRORS)
async def list_events(
    request: Request,
    limit: int = Query(default=50, ge=1, le=MAX_PAGE),
    cursor: str | None = None,
    type: str | None = Query(default=None, description="Only events of this type"),
    since: str | None = Query(default=None, description="Only events made at or after this time (RFC 3339)"),
    endpoint_id: str | None = Query(default=None, description="Only events for this endpoint"),
    delivery: str | None = Query(default=None, description="failed or skipped: only events whose delivery is"),
    user_token: str | None = Header(default=None, alias="User-Token"),
    accept_language: str | None = Header(default=None, alias="Accept-Language"),
) -> dict[str, Any]:
    """This API key's app's events, newest first, cursor-paged. Example: ``/api/events?delivery=failed``."""
    key = await authenticate(request)
    svc = services(request)
    await svc.quotas.take_read(key)
    lang = pick_language(accept_language)
    type, endpoint_id, delivery = type or None, endpoint_id or None, delivery or None  # "" counts as absent
    if type is not None and type not in EVENT_TYPES:
        raise InvalidRequestError(f"type must be one of {', '.join(EVENT_TYPES)}")
    if endpoint_id is not None and not _full(ENDPOINT_ID_PATTERN, endpoint_id):
        raise InvalidRequestError("endpoint_id must be an endpoint's id: whe_ and 16 hex digits")
    if delivery is not None and delivery not in DELIVERY_FILTERS:
        raise InvalidRequestError("delivery must be failed or skipped")
    if cursor and not _full(CURSOR_PATTERN, cursor):
        raise InvalidRequestError("cursor is not one this service gave out (next_cursor of a page)")
    try:
        events, next_cursor = await svc.webhooks.events_page(
            app_id=key.app_id,
            type=type,
            since=_time("since", since),
            endpoint_id=endpoint_id,
            delivery=delivery,  # type: ignore[arg-type]
            cursor=_inner(cursor) if cursor else None,
            limit=limit,
        )
    except ValueError as exc:
        raise InvalidRequestError(f"cursor: {exc}") from None
    return {
        "status": 1,
        "msg": OK_MSG[lang],
        "data": {"events": [e.as_json() for e in events], "next_cursor": _outer(next_cursor)},
    }


@router.get("/api/events/{event_id}", response_model=EventAnswer, responses=_ERRORS)
async def get_event(
    request: Request,
    event_id: str,
    user_token: str | None = Header(default=None, alias="User-Token"),
    accept_language: str | None = Header(default=None, alias="Accept-Language"),
) -> dict[str, Any]:
    """One event of this API key's app (404 ``unknown_event`` for another app's). Example: ``/api/events/evt_...``."""
    key = await authenticate(request)
    svc = services(request)
    await svc.quotas.take_read(key)
    lang = pick_language(accept_language)
    event = await svc.webhooks.event(app_id=key.app_id, event_id=event_id)
    return {"status": 1, "msg": OK_MSG[lang], "data": event.as_json()}


def _inner(cursor: str) -> str:
    """The service's cursor (services/webhooks.py: base64url of "ISO time|id") for one of this API's."""
    micros, event_id = cursor.split(".", 1)
    at = _EPOCH + timedelta(microseconds=int(micros))
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{event_id}".encode()).decode().rstrip("=")


def _outer(cursor: str | None) -> str | None:
    """This API's cursor for one of the service's."""
    if cursor is None:
        return None
    at, event_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|", 1)
    moment = datetime.fromisoformat(at)
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{(moment - _EPOCH) // timedelta(microseconds=1)}.{event_id}"


def _full(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def time_schema() -> dict[str, Any]:
    """A time as ``_time`` takes it (web/api/records.py): what the schema can say of it; "" counts as absent."""
    return {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
            {"type": "string", "pattern": _TIME_PATTERN},
            {"type": "string", "maxLength": 0},
        ],
        "description": "RFC 3339 (2026-01-31T12:00:00Z), or a date, or without seconds or offset (UTC)",
    }


def describe_events(schema: dict[str, Any]) -> None:
    """Every filter of GET /api/events as this service takes it ("" counts as absent), into ``schema``."""
    exact: dict[str, dict[str, Any]] = {
        "cursor": {"type": "string", "pattern": f"^(?:{CURSOR_PATTERN})?$"},
        "type": {"type": "string", "enum": ["", *EVENT_TYPES]},
        "endpoint_id": {"type": "string", "pattern": f"^(?:{ENDPOINT_ID_PATTERN})?$"},
        "delivery": {"type": "string", "enum": ["", *DELIVERY_FILTERS]},
        "since": time_schema(),
    }
    for parameter in schema["paths"]["/api/events"]["get"]["parameters"]:
        if parameter["in"] == "query" and parameter["name"] in exact:
            title = parameter["schema"].get("title")
            parameter["schema"] = {**exact[parameter["name"]], **({"title": title} if title else {})}
