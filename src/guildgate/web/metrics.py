"""Prometheus metrics, safe with several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``guildgate serve --workers N`` sets it), every process writes its
values to files there and /metrics adds them up; otherwise one process-local registry."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from guildgate.discord.ratelimit.shares import LINKS, key_spender

if TYPE_CHECKING:
    from guildgate.services.runtime import Services

REGISTRY = CollectorRegistry()
JOINS = Counter("guildgate_joins_total", "Join requests answered, by outcome code", ["code"], registry=REGISTRY)
JOIN_SECONDS = Histogram(
    "guildgate_join_seconds",
    "Join request wall time",
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DISCORD_REQUESTS = Counter(
    "guildgate_discord_requests_total",
    "Answers from Discord by route, status and 429 scope",
    ["method", "route", "status", "scope"],
    registry=REGISTRY,
)
DISCORD_429 = Counter("guildgate_discord_429_total", "429 answers from Discord by scope", ["scope"], registry=REGISTRY)
LIMITER_WAIT = Histogram(
    "guildgate_limiter_wait_seconds",
    "Time a request waited for a rate-limit slot",
    ["route"],
    registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE_DEPTH = Gauge(
    "guildgate_limiter_queue_depth",
    "Requests waiting for a rate-limit slot",
    ["route"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
GLOBAL_SLOTS = Gauge(
    "guildgate_global_slots_used",
    "Global rate-limit slots in use per bot (of the limit)",
    ["app"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
INVALID_USED = Gauge(
    "guildgate_invalid_requests_used",
    "401/403/429 answers in the last 10 minutes",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)

INVALID_BY_SPENDER = Gauge(
    "guildgate_invalid_requests_by_spender",
    "401/403/429 answers in the last 10 minutes (and joins under way) per API key id, or 'links' for every join "
    "link together: each may spend GUILDGATE_INVALID_REQUEST_SHARE of the budget",
    ["spender"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
INVALID_SHARE = Gauge(
    "guildgate_invalid_request_share",
    "Invalid requests one API key (or the join links together) may have in 10 minutes",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)


# A labelled child is looked up once per label set (``labels()`` takes a lock and builds a key every call).
_wait_child = functools.cache(LIMITER_WAIT.labels)
_queue_child = functools.cache(QUEUE_DEPTH.labels)
_request_child = functools.cache(DISCORD_REQUESTS.labels)
_join_child = functools.cache(JOINS.labels)


def count_join(code: str) -> None:
    _join_child(code).inc()


class LimiterMetrics:
    def __init__(self) -> None:
        # The join's two routes show in the queue gauge from the start, at 0 (it moves only when one waits).
        for route in ("GET /users/@me", "PUT /guilds/{guild_id}/members/{user_id}"):
            _queue_child(route).inc(0)

    def waited(self, route: str, seconds: float) -> None:
        _wait_child(route).observe(seconds)

    def queue(self, route: str, delta: int) -> None:
        _queue_child(route).inc(delta)


class CallMetrics:
    def answered(self, template: str, method: str, status: int, scope: str | None) -> None:
        _request_child(method, template, str(status), scope or "").inc()
        if status == 429:
            DISCORD_429.labels(scope or "unknown").inc()


def exposition_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


async def refresh(svc: Services) -> None:
    INVALID_USED.set(await svc.limiter.invalid_used())
    INVALID_SHARE.set(svc.shares.allowed)
    INVALID_BY_SPENDER.labels(LINKS).set(await svc.shares.used(LINKS))
    for key in await svc.keys.list():
        if key.revoked_at is None:  # labelled by the key's id, never the key
            INVALID_BY_SPENDER.labels(key.id).set(await svc.shares.used(key_spender(key.id)))
    for app in await svc.apps.list():
        creds = await svc.apps.credentials(app.client_id)
        GLOBAL_SLOTS.labels(app.client_id).set(
            await svc.limiter.backend.global_used(f"bot:{creds.bot_token.fingerprint()}")
        )
    await refresh_webhooks(svc)


# Webhooks (workers/webhooks.py): attempts by outcome (delivered, failed, refused: an address webhooks may not
# reach; superseded: a lease taken over meanwhile, nothing recorded), and what /metrics reads from the database.
WEBHOOK_ATTEMPTS = Counter(
    "guildgate_webhook_attempts_total", "Webhook delivery attempts, by outcome", ["outcome"], registry=REGISTRY
)
WEBHOOK_DISABLED_TOTAL = Counter(
    "guildgate_webhook_endpoints_disabled_total",
    "Webhook endpoints disabled by the sender (410 Gone, or 5 days of failure)",
    registry=REGISTRY,
)
WEBHOOK_WAITING = Gauge(
    "guildgate_webhook_events_waiting",
    "Webhook deliveries waiting to be sent (one per event and endpoint)",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
WEBHOOK_OLDEST = Gauge(
    "guildgate_webhook_oldest_waiting_seconds",
    "Age of the oldest webhook delivery still waiting (0 when none)",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
WEBHOOK_ENDPOINTS_DISABLED = Gauge(
    "guildgate_webhook_disabled_endpoints",
    "Webhook endpoints disabled now",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
_webhook_child = functools.cache(WEBHOOK_ATTEMPTS.labels)


def count_webhook_attempt(outcome: str) -> None:
    _webhook_child(outcome).inc()


def count_webhook_endpoint_disabled() -> None:
    WEBHOOK_DISABLED_TOTAL.inc()


async def refresh_webhooks(svc: Services) -> None:
    waiting, oldest, disabled = await svc.webhooks.stats()
    WEBHOOK_WAITING.set(waiting)
    WEBHOOK_OLDEST.set(oldest or 0.0)
    WEBHOOK_ENDPOINTS_DISABLED.set(disabled)
