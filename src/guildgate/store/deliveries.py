"""Webhook deliveries: claimed with a lease, their attempts' results written under that lease
(``../shared/spec/access.md``, "Delivery"). Each function takes the synchronous ``Connection`` of one transaction
(``Database.run``). Every time here is the database's clock (``db_now``), so senders on several hosts agree.

A claim goes endpoint by endpoint: each enabled endpoint with work due gets up to ``MAX_IN_FLIGHT`` leases less
those already out (any worker's), so one endpoint's slowness or failures never hold back another's events."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnClause, Connection, Table, and_, func, literal_column, or_, select, text, update

from guildgate.core.webhooks import DISABLE_AFTER, MAX_IN_FLIGHT, DeliveryState, retry_delay
from guildgate.store.events import add_event_sync
from guildgate.store.models import EventRow, WebhookAttemptRow, WebhookDeliveryRow, WebhookEndpointRow

DELIVERIES: Table = WebhookDeliveryRow.__table__  # type: ignore[assignment]
ENDPOINTS: Table = WebhookEndpointRow.__table__  # type: ignore[assignment]
ATTEMPTS: Table = WebhookAttemptRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
# a literal, not a bound parameter: only then can SQLite and PostgreSQL use the partial index of waiting rows
PENDING: ColumnClause[Any] = literal_column(f"'{DeliveryState.PENDING.value}'")
CLAIM_AT_MOST = 200  # deliveries one claim takes, over every endpoint


def db_now(conn: Connection) -> datetime:
    """The database's time (naive UTC, as the tables store it)."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(text("SELECT (now() AT TIME ZONE 'UTC')")).scalar()
    else:
        value = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar()
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=None)


@dataclass(frozen=True)
class Claim:
    id: int
    token: str
    event_id: str
    endpoint_id: str
    app_id: str
    url: str
    secrets_enc: str
    body: bytes
    type: str
    attempt: int  # this attempt's number (1-based, over the delivery's life)
    tries: int  # failed attempts before this one in this round


@dataclass(frozen=True)
class Result:
    """What one attempt came to."""

    at: datetime  # when it started (aware UTC)
    status: int | None
    duration_ms: int
    error: str | None
    answer: str | None
    retry_after: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _free(now: datetime) -> Any:
    d = DELIVERIES.c
    return and_(d.state == PENDING, d.next_at <= now, or_(d.lease_until.is_(None), d.lease_until < now))


def claim(conn: Connection, *, lease_seconds: float, first: int = 0) -> list[Claim]:
    """Lease the deliveries due now, endpoint by endpoint (starting at the ``first``-th endpoint with work, so
    successive claims take turns when ``CLAIM_AT_MOST`` binds)."""
    now = db_now(conn)
    d, e = DELIVERIES.c, ENDPOINTS.c
    due: dict[str, int] = dict(
        conn.execute(
            select(d.endpoint_id, func.count()).where(_free(now)).group_by(d.endpoint_id).order_by(d.endpoint_id)
        ).all()
    )
    if not due:
        return []
    busy: dict[str, int] = dict(
        conn.execute(
            select(d.endpoint_id, func.count())
            .where(d.state == PENDING, d.lease_until >= now, d.endpoint_id.in_(list(due)))
            .group_by(d.endpoint_id)
        ).all()
    )
    wanted = [endpoint for endpoint in due if busy.get(endpoint, 0) < MAX_IN_FLIGHT]
    if not wanted:
        return []
    # Lock the endpoints (rows on PostgreSQL, in id order so that two senders never wait for each other; the write
    # lock on SQLite), then count their leases: two senders claiming for one endpoint at once take turns, so
    # together they stay within MAX_IN_FLIGHT.
    enabled = select(e.id).where(e.id.in_(wanted), e.disabled_at.is_(None)).order_by(e.id)
    if conn.dialect.name == "postgresql":
        unlocked = set(conn.execute(enabled.with_for_update()).scalars())
    else:
        conn.execute(update(ENDPOINTS).where(e.id.in_(wanted)).values(disabled_at=e.disabled_at))
        unlocked = set(conn.execute(enabled).scalars())
    order = [endpoint for endpoint in wanted if endpoint in unlocked]
    if not order:
        return []
    first %= len(order)
    order = order[first:] + order[:first]
    token = secrets.token_hex(16)
    until = now + timedelta(seconds=lease_seconds)
    taken = 0
    for endpoint_id in order:
        out = conn.execute(
            select(func.count()).where(d.endpoint_id == endpoint_id, d.state == PENDING, d.lease_until >= now)
        ).scalar()
        room = min(MAX_IN_FLIGHT - int(out or 0), CLAIM_AT_MOST - taken)
        if room <= 0:
            continue
        ids = list(
            conn.execute(
                select(d.id).where(d.endpoint_id == endpoint_id, _free(now)).order_by(d.next_at, d.id).limit(room)
            ).scalars()
        )
        if ids:
            done = conn.execute(
                update(DELIVERIES).where(d.id.in_(ids), _free(now)).values(lease_token=token, lease_until=until)
            )
            taken += int(done.rowcount)
        if taken >= CLAIM_AT_MOST:
            break
    if not taken:
        return []
    rows = conn.execute(
        select(
            d.id,
            d.event_id,
            d.endpoint_id,
            d.app_id,
            d.attempts,
            d.tries,
            e.url,
            e.secrets_enc,
            EVENTS.c.body,
            EVENTS.c.type,
        )
        .join(ENDPOINTS, e.id == d.endpoint_id)
        .join(EVENTS, EVENTS.c.id == d.event_id)
        .where(d.lease_token == token)
        .order_by(d.next_at, d.id)
    ).all()
    return [
        Claim(
            id=r.id,
            token=token,
            event_id=r.event_id,
            endpoint_id=r.endpoint_id,
            app_id=r.app_id,
            url=r.url,
            secrets_enc=r.secrets_enc,
            body=bytes(r.body),
            type=r.type,
            attempt=int(r.attempts) + 1,
            tries=int(r.tries),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Recorded:
    kept: bool  # False: the lease was taken over meanwhile, nothing was written
    state: DeliveryState | None = None
    disabled: tuple[str, str] | None = None  # (endpoint id, reason) when this attempt disabled its endpoint


def record(conn: Connection, claimed: Claim, result: Result, *, schedule: tuple[float, ...], jitter: bool) -> Recorded:
    """Write one attempt's result under its lease: the delivery's new state (delivered; pending again at its next
    retry; failed when the retries ran out) and the attempt's log line. 410 disables the endpoint at once."""
    now = db_now(conn)
    d = DELIVERIES.c
    values: dict[str, Any] = {"attempts": claimed.attempt, "lease_token": None, "lease_until": None}
    gone = result.status == 410
    if result.delivered:
        state = DeliveryState.DELIVERED
        values.update(state=state.value, next_at=None, finished_at=now, tries=0)
    else:
        tries = claimed.tries + 1
        delay = None
        if not gone:
            delay = retry_delay(
                tries=tries, schedule=schedule, jitter=jitter, status=result.status, retry_after=result.retry_after
            )
        if delay is None:
            state = DeliveryState.FAILED
            values.update(state=state.value, next_at=None, finished_at=now, tries=tries)
        else:
            state = DeliveryState.PENDING
            values.update(next_at=now + timedelta(seconds=delay), tries=tries)
    done = conn.execute(
        update(DELIVERIES)
        .where(d.id == claimed.id, d.lease_token == claimed.token, d.state == PENDING)
        .values(**values)
    )
    if done.rowcount != 1:
        return Recorded(kept=False)
    conn.execute(
        ATTEMPTS.insert(),
        [
            {
                "event_id": claimed.event_id,
                "endpoint_id": claimed.endpoint_id,
                "attempt": claimed.attempt,
                "at": result.at,
                "status": result.status,
                "duration_ms": result.duration_ms,
                "error": result.error[:400] if result.error else None,
                "answer": result.answer,
            }
        ],
    )
    e = ENDPOINTS.c
    if result.delivered:
        conn.execute(
            update(ENDPOINTS).where(e.id == claimed.endpoint_id).values(last_success_at=now, failing_since=None)
        )
    elif state is DeliveryState.FAILED:
        conn.execute(
            update(ENDPOINTS).where(e.id == claimed.endpoint_id, e.failing_since.is_(None)).values(failing_since=now)
        )
    disabled = None
    if gone:
        reason = "the endpoint answered 410 Gone"
        if disable(conn, endpoint_id=claimed.endpoint_id, reason=reason, now=now, announce=True):
            disabled = (claimed.endpoint_id, reason)
    return Recorded(kept=True, state=state, disabled=disabled)


def disable(conn: Connection, *, endpoint_id: str, reason: str, now: datetime | None = None, announce: bool) -> bool:
    """Disable an endpoint (if enabled): its waiting deliveries become ``skipped`` (``recover`` sends them after
    ``enable``). ``announce``: a ``webhook.endpoint_disabled`` event to the app's other endpoints."""
    now = now or db_now(conn)
    e, d = ENDPOINTS.c, DELIVERIES.c
    row = conn.execute(select(e.app_id, e.url).where(e.id == endpoint_id, e.disabled_at.is_(None))).first()
    if row is None:
        return False
    conn.execute(update(ENDPOINTS).where(e.id == endpoint_id).values(disabled_at=now, disabled_reason=reason[:200]))
    conn.execute(
        update(DELIVERIES)
        .where(d.endpoint_id == endpoint_id, d.state == PENDING)
        .values(state=DeliveryState.SKIPPED.value, lease_token=None, lease_until=None, next_at=None)
    )
    if announce:
        data = {"endpoint_id": endpoint_id, "url": row.url, "reason": reason}
        add_event_sync(conn, app_id=row.app_id, type="webhook.endpoint_disabled", data=data, exclude=endpoint_id)
    return True


def disable_failing(conn: Connection) -> list[tuple[str, str]]:
    """Disable every endpoint with no success for ``DISABLE_AFTER`` since a delivery of it ran out of retries;
    (endpoint id, reason) of each."""
    now = db_now(conn)
    e = ENDPOINTS.c
    cutoff = now - timedelta(seconds=DISABLE_AFTER)
    stale = conn.execute(select(e.id).where(e.disabled_at.is_(None), e.failing_since <= cutoff)).scalars().all()
    reason = "no successful delivery for 5 days after a delivery ran out of retries"
    return [(str(i), reason) for i in stale if disable(conn, endpoint_id=str(i), reason=reason, now=now, announce=True)]


def stats(conn: Connection) -> tuple[int, float | None, int]:
    """(deliveries waiting, the oldest waiting one's age in seconds or None, endpoints disabled)."""
    now = db_now(conn)
    d, e = DELIVERIES.c, ENDPOINTS.c
    waiting, oldest = conn.execute(select(func.count(), func.min(d.created_at)).where(d.state == PENDING)).one()
    disabled = conn.execute(select(func.count()).select_from(ENDPOINTS).where(e.disabled_at.is_not(None))).scalar()
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    age = None if oldest is None else max((now - oldest.replace(tzinfo=None)).total_seconds(), 0.0)
    return int(waiting), age, int(disabled or 0)


PRUNE_EVENTS_BATCH = 5000


def prune(conn: Connection, *, before: datetime, batch: int = PRUNE_EVENTS_BATCH) -> int:
    """Delete up to ``batch`` events made before ``before`` that no delivery is waiting for, with their deliveries
    and attempts; how many events."""
    cutoff = before.astimezone(UTC).replace(tzinfo=None)
    d = DELIVERIES.c
    waiting = select(d.id).where(d.event_id == EVENTS.c.id, d.state == PENDING).exists()
    ids = list(conn.execute(select(EVENTS.c.id).where(EVENTS.c.created_at < cutoff, ~waiting).limit(batch)).scalars())
    if not ids:
        return 0
    conn.execute(ATTEMPTS.delete().where(ATTEMPTS.c.event_id.in_(ids)))
    conn.execute(DELIVERIES.delete().where(d.event_id.in_(ids)))
    return int(conn.execute(EVENTS.delete().where(EVENTS.c.id.in_(ids))).rowcount)
