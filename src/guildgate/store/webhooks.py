"""Webhook endpoints and the event log's reads (services/webhooks.py holds the rules; this the SQL).

An endpoint's secrets are sealed together (store/crypto.py's ``SecretBox``, under GUILDGATE_SECRET_KEY, like the
apps' secrets): a JSON list, newest first, of ``{"secret", "retired_at"}``; a previous secret signs for
``PREVIOUS_VALID_FOR`` from its own ``retired_at``, and at most ``SECRETS_KEPT`` previous ones are kept."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, exists, or_, select, update

from guildgate.core.secret import Secret
from guildgate.core.webhooks import PREVIOUS_VALID_FOR, SECRETS_KEPT, DeliveryState
from guildgate.store.crypto import SecretBox
from guildgate.store.deliveries import ATTEMPTS, DELIVERIES, ENDPOINTS, EVENTS, db_now


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def seal_secrets(box: SecretBox, entries: Sequence[dict[str, Any]]) -> str:
    return box.seal(Secret(json.dumps(list(entries))))


def open_secrets(box: SecretBox, sealed: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(box.open(sealed).reveal())
    return entries


def valid_secrets(entries: Sequence[dict[str, Any]], now: datetime) -> list[str]:
    """The secrets that sign a message sent at ``now`` (aware UTC), newest first."""
    found = []
    for entry in entries:
        retired = entry.get("retired_at")
        if retired is None or datetime.fromisoformat(retired) + timedelta(seconds=PREVIOUS_VALID_FOR) > now:
            found.append(str(entry["secret"]))
    return found


def rotated(entries: Sequence[dict[str, Any]], new: str, now: datetime) -> list[dict[str, Any]]:
    """``entries`` with ``new`` as the current secret: the one it replaces retires now; expired ones go, and at
    most ``SECRETS_KEPT`` previous ones stay."""
    previous = []
    for entry in entries:
        retired = entry.get("retired_at") or now.isoformat()
        if datetime.fromisoformat(retired) + timedelta(seconds=PREVIOUS_VALID_FOR) > now:
            previous.append({"secret": entry["secret"], "retired_at": retired})
    return [{"secret": new, "retired_at": None}, *previous[:SECRETS_KEPT]]


@dataclass(frozen=True)
class EventFilters:
    app_id: str
    type: str | None = None
    since: datetime | None = None
    endpoint_id: str | None = None
    delivery: str | None = None  # failed | skipped


def endpoint_row(conn: Connection, endpoint_id: str, app_id: str | None) -> Row[Any] | None:
    query = select(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id)
    if app_id is not None:
        query = query.where(ENDPOINTS.c.app_id == app_id)
    return conn.execute(query).first()


def endpoint_rows(conn: Connection, app_id: str | None) -> Sequence[Row[Any]]:
    query = select(ENDPOINTS).order_by(ENDPOINTS.c.created_at, ENDPOINTS.c.id)
    if app_id is not None:
        query = query.where(ENDPOINTS.c.app_id == app_id)
    return conn.execute(query).all()


def set_enabled(conn: Connection, endpoint_id: str) -> None:
    e = ENDPOINTS.c
    conn.execute(
        update(ENDPOINTS).where(e.id == endpoint_id).values(disabled_at=None, disabled_reason=None, failing_since=None)
    )


def attempt_rows(conn: Connection, endpoint_id: str, *, failed_only: bool, limit: int) -> Sequence[Row[Any]]:
    a = ATTEMPTS.c
    query = (
        select(ATTEMPTS, EVENTS.c.type)
        .join(EVENTS, EVENTS.c.id == a.event_id, isouter=True)
        .where(a.endpoint_id == endpoint_id)
        .order_by(a.id.desc())
        .limit(limit)
    )
    if failed_only:
        query = query.where(or_(a.status.is_(None), a.status < 200, a.status >= 300))
    return conn.execute(query).all()


def replay(conn: Connection, event_id: str) -> list[str]:
    """Queue the event again for each of its endpoints that is enabled (a fresh retry schedule; one already
    waiting stays as it is); their ids."""
    now = db_now(conn)
    d, e = DELIVERIES.c, ENDPOINTS.c
    rows = conn.execute(
        select(d.id, d.endpoint_id, d.state)
        .join(ENDPOINTS, e.id == d.endpoint_id)
        .where(d.event_id == event_id, e.disabled_at.is_(None))
        .order_by(d.endpoint_id)
    ).all()
    again = [r.id for r in rows if r.state != DeliveryState.PENDING.value]
    if again:
        conn.execute(
            update(DELIVERIES)
            .where(d.id.in_(again), d.state != DeliveryState.PENDING.value)
            .values(
                state=DeliveryState.PENDING.value,
                tries=0,
                next_at=now,
                lease_token=None,
                lease_until=None,
                finished_at=None,
            )
        )
    return [str(r.endpoint_id) for r in rows]


def recover(conn: Connection, endpoint_id: str, since: datetime) -> int:
    """Queue again every delivery of the endpoint made since ``since`` that failed or was skipped."""
    now = db_now(conn)
    d = DELIVERIES.c
    done = conn.execute(
        update(DELIVERIES)
        .where(
            d.endpoint_id == endpoint_id,
            d.created_at >= _naive(since),
            d.state.in_([DeliveryState.FAILED.value, DeliveryState.SKIPPED.value]),
        )
        .values(
            state=DeliveryState.PENDING.value,
            tries=0,
            next_at=now,
            lease_token=None,
            lease_until=None,
            finished_at=None,
        )
    )
    return int(done.rowcount)


def event_rows(
    conn: Connection, filters: EventFilters, *, after: tuple[datetime, str] | None, limit: int
) -> Sequence[Row[Any]]:
    """The app's events, newest first, after the cursor's (created_at, id)."""
    ev, d = EVENTS.c, DELIVERIES.c
    query = select(EVENTS).where(ev.app_id == filters.app_id)
    if filters.type is not None:
        query = query.where(ev.type == filters.type)
    if filters.since is not None:
        query = query.where(ev.created_at >= _naive(filters.since))
    if filters.endpoint_id is not None or filters.delivery is not None:
        conditions = [d.event_id == ev.id]
        if filters.endpoint_id is not None:
            conditions.append(d.endpoint_id == filters.endpoint_id)
        if filters.delivery is not None:
            conditions.append(d.state == filters.delivery)
        query = query.where(exists().where(and_(*conditions)))
    if after is not None:
        at, event_id = _naive(after[0]), after[1]
        query = query.where(or_(ev.created_at < at, and_(ev.created_at == at, ev.id < event_id)))
    return conn.execute(query.order_by(ev.created_at.desc(), ev.id.desc()).limit(limit)).all()


def event_row(conn: Connection, event_id: str, app_id: str | None) -> Row[Any] | None:
    query = select(EVENTS).where(EVENTS.c.id == event_id)
    if app_id is not None:
        query = query.where(EVENTS.c.app_id == app_id)
    return conn.execute(query).first()


def delivery_rows(conn: Connection, event_ids: Sequence[str]) -> Sequence[Any]:
    if not event_ids:
        return []
    d = DELIVERIES.c
    return conn.execute(
        select(d.event_id, d.endpoint_id, d.state, d.attempts)
        .where(d.event_id.in_(list(event_ids)))
        .order_by(d.endpoint_id)
    ).all()


def reseal_all(conn: Connection, *, old: SecretBox, new: SecretBox) -> tuple[int, int]:
    """Re-encrypt every endpoint's secrets from ``old`` to ``new`` (``guildgate secrets rotate``); (re-encrypted,
    already under the new key). ValueError naming an endpoint neither key opens."""
    moved = kept = 0
    for endpoint_id, sealed in conn.execute(select(ENDPOINTS.c.id, ENDPOINTS.c.secrets_enc).order_by(ENDPOINTS.c.id)):
        try:
            entries = open_secrets(old, sealed)
        except ValueError:
            try:
                open_secrets(new, sealed)
            except ValueError:
                raise ValueError(
                    f"webhook endpoint {endpoint_id}: neither the old nor the new key opens its secrets"
                ) from None
            kept += 1
            continue
        conn.execute(
            update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id).values(secrets_enc=seal_secrets(new, entries))
        )
        moved += 1
    return moved, kept
