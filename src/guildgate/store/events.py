"""The outbox: each event is written in the database transaction of the change it reports, so a crash loses
none and none reports a change that was not committed (``../shared/spec/access.md``, "Webhooks").

``event_values`` makes the row (its id, ``evt_`` and 26 base32 characters, and the body's exact bytes, sent as
they are on every attempt and replay); ``add_event`` writes it through an ``AsyncSession`` (grants, links),
``add_event_sync`` through the synchronous ``Connection`` a group-writer batch runs in (joins' records)."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import AsyncSession

from guildgate.store.models import EventRow

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


async def add_event(session: AsyncSession, *, app_id: str, type: str, data: dict[str, Any]) -> str:
    """Write one event in ``session``'s transaction (committed, or rolled back, with the change it reports)."""
    values = event_values(app_id=app_id, type=type, data=data)
    await session.execute(insert(EventRow), [values])
    return str(values["id"])


def add_event_sync(conn: Connection, *, app_id: str, type: str, data: dict[str, Any]) -> str:
    values = event_values(app_id=app_id, type=type, data=data)
    conn.execute(insert(EventRow), [values])
    return str(values["id"])
