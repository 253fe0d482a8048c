"""Webhook endpoints and the event log, shared by ``guildgate webhooks``, the admin API, ``/api/events`` and the
dashboard (``../shared/spec/access.md``, "Webhooks"). Every method is keyword-only; ``app_id=None`` means the
operator (every app). Bad input raises ``InvalidRequestError`` naming the field and the reason; an endpoint or
event that does not exist, or is another app's, raises ``UnknownEndpointError`` / ``UnknownEventError``.

The sender (workers/webhooks.py) delivers what is written here and by the outbox (store/events.py)."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from guildgate.settings import Settings
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.events import rfc3339


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


class WebhookService:
    def __init__(self, db: Database, box: SecretBox, settings: Settings) -> None:
        self.db, self.box, self.settings = db, box, settings

    async def add(self, *, app_id: str, url: str, events: builtins.list[str] | None) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (``whsec_…``, shown once; stored sealed). Refuses, naming the reason: a URL
        that is not https (unless GUILDGATE_WEBHOOK_ALLOW_INSECURE), whose host is an address literal that is not
        global in any spelling (outside GUILDGATE_WEBHOOK_ALLOW_NETWORKS), an unknown event type, an unknown app."""
        raise NotImplementedError

    async def list(self, *, app_id: str | None) -> builtins.list[Endpoint]:
        raise NotImplementedError

    async def get(self, *, app_id: str | None, endpoint_id: str) -> Endpoint:
        raise NotImplementedError

    async def disable(self, *, app_id: str | None, endpoint_id: str) -> Endpoint:
        """Events made while it is disabled are recorded as skipped for it (``recover`` sends them later)."""
        raise NotImplementedError

    async def enable(self, *, app_id: str | None, endpoint_id: str) -> Endpoint:
        raise NotImplementedError

    async def test(self, *, app_id: str | None, endpoint_id: str) -> str:
        """Emit a ``webhook.test`` event to this endpoint alone; its id."""
        raise NotImplementedError

    async def rotate_secret(self, *, app_id: str | None, endpoint_id: str) -> str:
        """A new secret; the previous ones stay valid 24 h from their own rotation (at most 3 kept)."""
        raise NotImplementedError

    async def deliveries(
        self, *, app_id: str | None, endpoint_id: str, failed_only: bool = False, limit: int = 50
    ) -> builtins.list[Attempt]:
        """The endpoint's attempts, newest first (``failed_only``: those that did not succeed)."""
        raise NotImplementedError

    async def replay(self, *, app_id: str | None, event_id: str) -> builtins.list[str]:
        """Send the event again to every endpoint it was written for (with its retry schedule anew); the ids of
        those endpoints."""
        raise NotImplementedError

    async def recover(self, *, app_id: str | None, endpoint_id: str, since: datetime) -> int:
        """Send again every event of this endpoint made since ``since`` that failed or was skipped; how many."""
        raise NotImplementedError

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
        raise NotImplementedError

    async def event(self, *, app_id: str | None, event_id: str) -> Event:
        raise NotImplementedError
