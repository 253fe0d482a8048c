"""The outbox: each event is written in the database transaction of the change it reports, so a crash loses
none and none reports a change that was not committed (``../shared/spec/access.md``, "Webhooks").

``event_values`` makes the row (its id, ``evt_`` and 26 base32 characters, and the body's exact bytes, sent as
they are on every attempt and replay); ``add_event`` writes it through an ``AsyncSession`` (grants, links),
``add_event_sync`` through the synchronous ``Connection`` a group-writer batch runs in (joins' records),
``add_events_sync`` several at once. Each also writes, in the same transaction, one delivery row for every
endpoint of the app subscribed to the event's type (``pending``; ``skipped`` for a disabled endpoint): so an
endpoint receives exactly the events made after it was added, and none of a change that was rolled back."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from guildgate.core.webhooks import DeliveryState, subscribed
from guildgate.store.models import EventRow, WebhookDeliveryRow, WebhookEndpointRow

MAX_BODY = 20_000  # bytes (the contract: a body is at most 20 KB)


def new_event_id() -> str:
    """``evt_`` + 26 characters of RFC 4648 base32 (lower case, no padding): 130 random bits, never a ``.``."""
    return "evt_" + base64.b32encode(secrets.token_bytes(17)).decode("ascii").lower()[:26]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_values(*, app_id: str, type: str, data: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The outbox row for one event: ``{"id", "type", "timestamp", "data"}`` serialised once."""
    moment = now or datetime.now(UTC)
    event_id = new_event_id()
    body = json.dumps(
        {"id": event_id, "type": type, "timestamp": rfc3339(moment), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    if len(body) > MAX_BODY:
        raise ValueError(f"a {type} event's body is {len(body)} bytes; at most {MAX_BODY}")
    return {"id": event_id, "app_id": app_id, "type": type, "body": body, "created_at": moment}


def _endpoints(app_ids: Iterable[str]) -> Select[str, str, str | None, datetime | None]:
    e = WebhookEndpointRow
    return select(e.id, e.app_id, e.events, e.disabled_at).where(e.app_id.in_(sorted(set(app_ids))))


def deliveries_for(
    rows: Sequence[dict[str, Any]],
    endpoints: Sequence[tuple[str, str, str | None, datetime | None]],
    *,
    only: str | None = None,
    exclude: str | None = None,
) -> list[dict[str, Any]]:
    """The delivery rows of ``rows`` (events) for ``endpoints`` (id, app_id, events JSON, disabled_at): every
    endpoint of the event's app subscribed to its type, or ``only`` that one (webhook.test), never ``exclude``
    (the endpoint a webhook.endpoint_disabled is about)."""
    found = []
    for event in rows:
        for endpoint_id, app_id, types, disabled_at in endpoints:
            if app_id != event["app_id"] or endpoint_id == exclude:
                continue
            if only is not None:
                if endpoint_id != only:
                    continue
            elif not subscribed(None if types is None else tuple(json.loads(types)), event["type"]):
                continue
            found.append(
                {
                    "event_id": event["id"],
                    "endpoint_id": endpoint_id,
                    "app_id": app_id,
                    "state": (DeliveryState.PENDING if disabled_at is None else DeliveryState.SKIPPED).value,
                    "attempts": 0,
                    "tries": 0,
                    "next_at": event["created_at"] if disabled_at is None else None,
                    "created_at": event["created_at"],
                }
            )
    return found


async def add_event(
    session: AsyncSession,
    *,
    app_id: str,
    type: str,
    data: dict[str, Any],
    only: str | None = None,
    exclude: str | None = None,
) -> str:
    """Write one event in ``session``'s transaction (committed, or rolled back, with the change it reports), and
    its deliveries. ``only``/``exclude``: an endpoint id (see ``deliveries_for``)."""
    values = event_values(app_id=app_id, type=type, data=data)
    await session.execute(insert(EventRow), [values])
    endpoints = (await session.execute(_endpoints([app_id]))).all()
    deliveries = deliveries_for([values], endpoints, only=only, exclude=exclude)
    if deliveries:
        await session.execute(insert(WebhookDeliveryRow), deliveries)
    return str(values["id"])


def add_event_sync(
    conn: Connection,
    *,
    app_id: str,
    type: str,
    data: dict[str, Any],
    only: str | None = None,
    exclude: str | None = None,
) -> str:
    return add_events_sync(conn, [(app_id, type, data)], only=only, exclude=exclude)[0]


def add_events_sync(
    conn: Connection,
    events: Sequence[tuple[str, str, dict[str, Any]]],
    *,
    only: str | None = None,
    exclude: str | None = None,
) -> list[str]:
    """Write ``events`` ((app_id, type, data) each) and their deliveries in ``conn``'s transaction: one
    statement each for the endpoints, the events and the deliveries, however many events."""
    if not events:
        return []
    rows = [event_values(app_id=app_id, type=type, data=data) for app_id, type, data in events]
    conn.execute(insert(EventRow), rows)
    endpoints = conn.execute(_endpoints(r["app_id"] for r in rows)).all()
    deliveries = deliveries_for(rows, endpoints, only=only, exclude=exclude)
    if deliveries:
        conn.execute(insert(WebhookDeliveryRow), deliveries)
    return [str(r["id"]) for r in rows]
