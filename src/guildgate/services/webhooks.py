"""Webhook endpoints and the event log, shared by ``guildgate webhooks``, the admin API, ``/api/events`` and the
dashboard (``../shared/spec/access.md``, "Webhooks"). Every method is keyword-only; ``app_id=None`` means the
operator (every app). Bad input raises ``InvalidRequestError`` naming the field and the reason; an endpoint or
event that does not exist, or is another app's, raises ``UnknownEndpointError`` / ``UnknownEventError``.

The sender (workers/webhooks.py) delivers what is written here and by the outbox (store/events.py)."""

from __future__ import annotations

import base64
import binascii
import builtins
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, insert, select, update

from guildgate.core.errors import InvalidRequestError, UnknownEndpointError, UnknownEventError
from guildgate.core.ssrf import check_url, parse_networks
from guildgate.core.webhooks import EVENT_TYPES, new_endpoint_id, new_secret
from guildgate.settings import Settings
from guildgate.store import deliveries as store_deliveries
from guildgate.store import webhooks as store
from guildgate.store.base import could_be_id
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.events import add_event_sync, rfc3339
from guildgate.store.models import AppRow, WebhookEndpointRow


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


@dataclass(frozen=True)
class Endpoint:
    id: str  # whe_ + 16 hex
    app_id: str
    url: str
    events: tuple[str, ...] | None  # None: every type, new ones included
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    last_success_at: datetime | None
    failing_since: datetime | None  # when a delivery first ran out of retries since the last success

    def as_json(self) -> dict[str, Any]:
        """The endpoint as the API and ``--json`` show it: never a secret."""
        return {
            "id": self.id,
            "app_id": self.app_id,
            "url": self.url,
            "events": None if self.events is None else list(self.events),
            "disabled": self.disabled_at is not None,
            "disabled_at": _time(self.disabled_at),
            "disabled_reason": self.disabled_reason,
            "created_at": _time(self.created_at),
            "last_success_at": _time(self.last_success_at),
            "failing_since": _time(self.failing_since),
        }


@dataclass(frozen=True)
class Attempt:
    event_id: str
    type: str
    attempt: int  # 1-based, counted over the delivery's whole life (replays continue the count)
    at: datetime
    status: int | None  # the HTTP status; None when none came (refused address, timeout, connection error)
    duration_ms: int
    error: str | None
    answer: str | None  # the answer's first 2 KiB, as text
    endpoint_id: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "endpoint_id": self.endpoint_id,
            "type": self.type,
            "attempt": self.attempt,
            "at": rfc3339(self.at),
            "status": self.status,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "answer": self.answer,
        }


@dataclass(frozen=True)
class Delivery:
    endpoint_id: str
    state: str  # pending | delivered | failed | skipped
    attempts: int

    def as_json(self) -> dict[str, Any]:
        return {"endpoint_id": self.endpoint_id, "state": self.state, "attempts": self.attempts}


@dataclass(frozen=True)
class Event:
    id: str
    app_id: str
    type: str
    created_at: datetime
    body: bytes  # the exact bytes every attempt sends
    deliveries: tuple[Delivery, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The body's JSON (``id``, ``type``, ``timestamp``, ``data``) plus ``deliveries``."""
        shown: dict[str, Any] = json.loads(self.body)
        shown["deliveries"] = [d.as_json() for d in self.deliveries]
        return shown


DeliveryFilter = Literal["failed", "skipped"]


SUBSCRIBABLE = tuple(t for t in EVENT_TYPES if t != "webhook.test")
MAX_PAGE = 200


def _aware(moment: Any) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def endpoint_of(row: Row[Any]) -> Endpoint:
    created = _aware(row.created_at)
    assert created is not None
    return Endpoint(
        id=row.id,
        app_id=row.app_id,
        url=row.url,
        events=None if row.events is None else tuple(json.loads(row.events)),
        disabled_at=_aware(row.disabled_at),
        disabled_reason=row.disabled_reason,
        created_at=created,
        last_success_at=_aware(row.last_success_at),
        failing_since=_aware(row.failing_since),
    )


def _event_of(row: Row[Any], deliveries: tuple[Delivery, ...]) -> Event:
    created = _aware(row.created_at)
    assert created is not None
    return Event(
        id=row.id, app_id=row.app_id, type=row.type, created_at=created, body=bytes(row.body), deliveries=deliveries
    )


def _cursor(event: Event) -> str:
    raw = f"{event.created_at.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        at, event_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|", 1)
        moment = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequestError("cursor: not a cursor this API gave (pass next_cursor as it came)") from None
    return moment, event_id


class WebhookService:
    def __init__(self, db: Database, box: SecretBox, settings: Settings) -> None:
        self.db, self.box, self.settings = db, box, settings

    def check_url(self, url: str) -> None:
        """InvalidRequestError naming why ``url`` cannot be an endpoint's."""
        networks = parse_networks(self.settings.webhook_allow_networks)
        why = check_url(url, allow_insecure=self.settings.webhook_insecure, allow_networks=networks)
        if why is not None:
            raise InvalidRequestError(why)

    async def add(self, *, app_id: str, url: str, events: builtins.list[str] | None) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (``whsec_…``, shown once; stored sealed). Refuses, naming the reason: a URL
        that is not https (unless GUILDGATE_WEBHOOK_ALLOW_INSECURE), whose host is an address literal that is not
        global in any spelling (outside GUILDGATE_WEBHOOK_ALLOW_NETWORKS), an unknown event type, an unknown app."""
        self.check_url(url)
        types: builtins.list[str] | None = None
        if events is not None:
            if not events:
                raise InvalidRequestError("events: give at least one type, or none at all for every type")
            for type in events:
                if type not in SUBSCRIBABLE:
                    raise InvalidRequestError(f"events: unknown type {type[:60]!r} (one of {', '.join(SUBSCRIBABLE)})")
            types = sorted(set(events), key=SUBSCRIBABLE.index)
        secret = new_secret()
        values = {
            "id": new_endpoint_id(),
            "app_id": app_id,
            "url": url,
            "events": None if types is None else json.dumps(types),
            "secrets_enc": store.seal_secrets(self.box, [{"secret": secret, "retired_at": None}]),
            "created_at": datetime.now(UTC),
        }

        def write(conn: Connection) -> Row[Any] | None:
            if (
                not could_be_id(app_id)
                or conn.execute(select(AppRow.client_id).where(AppRow.client_id == app_id)).first() is None
            ):
                return None
            conn.execute(insert(WebhookEndpointRow), [values])
            return store.endpoint_row(conn, str(values["id"]), None)

        row = await self.db.run(write)
        if row is None:
            raise InvalidRequestError(
                f"app: no app with client id {app_id[:64]!r}: add it first with 'guildgate apps add'"
            )
        return endpoint_of(row), secret

    async def list(self, *, app_id: str | None) -> builtins.list[Endpoint]:
        rows = await self.db.run(lambda conn: store.endpoint_rows(conn, app_id))
        return [endpoint_of(r) for r in rows]

    async def get(self, *, app_id: str | None, endpoint_id: str) -> Endpoint:
        if not could_be_id(endpoint_id):
            raise UnknownEndpointError(endpoint_id)
        row = await self.db.run(lambda conn: store.endpoint_row(conn, endpoint_id, app_id))
        if row is None:
            raise UnknownEndpointError(endpoint_id)
        return endpoint_of(row)

    async def disable(self, *, app_id: str | None, endpoint_id: str) -> Endpoint:
        """Events made while it is disabled are recorded as skipped for it (``recover`` sends them later); those
        waiting for it now are skipped too."""
        await self.get(app_id=app_id, endpoint_id=endpoint_id)
        await self.db.run(
            lambda conn: store_deliveries.disable(
                conn, endpoint_id=endpoint_id, reason="disabled by the operator", announce=False
            )
        )
        return await self.get(app_id=app_id, endpoint_id=endpoint_id)

    async def enable(self, *, app_id: str | None, endpoint_id: str) -> Endpoint:
        await self.get(app_id=app_id, endpoint_id=endpoint_id)
        await self.db.run(lambda conn: store.set_enabled(conn, endpoint_id))
        return await self.get(app_id=app_id, endpoint_id=endpoint_id)

    async def test(self, *, app_id: str | None, endpoint_id: str) -> str:
        """Emit a ``webhook.test`` event to this endpoint alone; its id."""
        endpoint = await self.get(app_id=app_id, endpoint_id=endpoint_id)
        return await self.db.run(
            lambda conn: add_event_sync(
                conn,
                app_id=endpoint.app_id,
                type="webhook.test",
                data={"endpoint_id": endpoint.id},
                only=endpoint.id,
            )
        )

    async def rotate_secret(self, *, app_id: str | None, endpoint_id: str) -> str:
        """A new secret; the previous ones stay valid 24 h from their own rotation (at most 3 kept)."""
        await self.get(app_id=app_id, endpoint_id=endpoint_id)
        secret = new_secret()

        def write(conn: Connection) -> None:
            e = WebhookEndpointRow
            sealed = conn.execute(select(e.secrets_enc).where(e.id == endpoint_id)).scalar_one()
            entries = store.rotated(store.open_secrets(self.box, sealed), secret, datetime.now(UTC))
            sealed = store.seal_secrets(self.box, entries)
            conn.execute(update(e).where(e.id == endpoint_id).values(secrets_enc=sealed))

        await self.db.run(write)
        return secret

    async def deliveries(
        self, *, app_id: str | None, endpoint_id: str, failed_only: bool = False, limit: int = 50
    ) -> builtins.list[Attempt]:
        """The endpoint's attempts, newest first (``failed_only``: those that did not succeed)."""
        await self.get(app_id=app_id, endpoint_id=endpoint_id)
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit: between 1 and 1000")
        rows = await self.db.run(
            lambda conn: store.attempt_rows(conn, endpoint_id, failed_only=failed_only, limit=limit)
        )
        found = []
        for r in rows:
            at = _aware(r.at)
            assert at is not None
            found.append(
                Attempt(
                    event_id=r.event_id,
                    endpoint_id=r.endpoint_id,
                    type=r.type or "",
                    attempt=r.attempt,
                    at=at,
                    status=r.status,
                    duration_ms=r.duration_ms,
                    error=r.error,
                    answer=r.answer,
                )
            )
        return found

    async def replay(self, *, app_id: str | None, event_id: str) -> builtins.list[str]:
        """Send the event again to every enabled endpoint it was written for (with its retry schedule anew); the
        ids of those endpoints."""
        await self.event(app_id=app_id, event_id=event_id)
        return await self.db.run(lambda conn: store.replay(conn, event_id))

    async def recover(self, *, app_id: str | None, endpoint_id: str, since: datetime) -> int:
        """Send again every event of this endpoint made since ``since`` that failed or was skipped; how many."""
        endpoint = await self.get(app_id=app_id, endpoint_id=endpoint_id)
        if endpoint.disabled_at is not None:
            raise InvalidRequestError(f"endpoint {endpoint_id} is disabled: enable it first, then recover")
        return await self.db.run(lambda conn: store.recover(conn, endpoint_id, since))

    async def events_page(
        self,
        *,
        app_id: str,
        type: str | None,
        since: datetime | None,
        endpoint_id: str | None,
        delivery: DeliveryFilter | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[builtins.list[Event], str | None]:
        """The app's events, newest first, and the cursor of the next page (None at the end)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit: between 1 and {MAX_PAGE}")
        if delivery is not None and delivery not in ("failed", "skipped"):
            raise InvalidRequestError("delivery: failed or skipped")
        filters = store.EventFilters(app_id=app_id, type=type, since=since, endpoint_id=endpoint_id, delivery=delivery)
        after = _after(cursor)

        def read(conn: Connection) -> tuple[Any, Any]:
            rows = store.event_rows(conn, filters, after=after, limit=limit + 1)
            return rows, store.delivery_rows(conn, [r.id for r in rows[:limit]])

        rows, delivery_rows = await self.db.run(read)
        events = self._events(rows[:limit], delivery_rows)
        return events, (_cursor(events[-1]) if len(rows) > limit else None)

    async def event(self, *, app_id: str | None, event_id: str) -> Event:
        if not could_be_id(event_id):
            raise UnknownEventError(event_id)

        def read(conn: Connection) -> tuple[Any, Any]:
            row = store.event_row(conn, event_id, app_id)
            return row, (store.delivery_rows(conn, [event_id]) if row is not None else [])

        row, delivery_rows = await self.db.run(read)
        if row is None:
            raise UnknownEventError(event_id)
        return self._events([row], delivery_rows)[0]

    async def stats(self) -> tuple[int, float | None, int]:
        """(deliveries waiting, the oldest waiting one's age in seconds, endpoints disabled): for /metrics."""
        return await self.db.run(store_deliveries.stats)

    async def prune(self, *, before: datetime, batch: int = 5000) -> int:
        """Delete the events made before ``before`` that no delivery waits for, with their deliveries and
        attempts (``records prune``), a batch per transaction; how many events."""
        pruned = 0
        while True:
            count = await self.db.run(lambda conn: store_deliveries.prune(conn, before=before, batch=batch))
            pruned += count
            if count < batch:
                return pruned

    @staticmethod
    def _events(rows: Any, delivery_rows: Any) -> builtins.list[Event]:
        by_event: dict[str, builtins.list[Delivery]] = {}
        for d in delivery_rows:
            by_event.setdefault(d.event_id, []).append(
                Delivery(endpoint_id=d.endpoint_id, state=d.state, attempts=d.attempts)
            )
        return [_event_of(r, tuple(by_event.get(r.id, ()))) for r in rows]
