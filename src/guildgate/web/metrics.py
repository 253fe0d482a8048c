"""Prometheus metrics, safe with several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``guildgate serve --workers N`` sets it), every process writes its
values to files there and /metrics adds them up; otherwise one process-local registry."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

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
    for app in await svc.apps.list():
        creds = await svc.apps.credentials(app.client_id)
        GLOBAL_SLOTS.labels(app.client_id).set(
            await svc.limiter.backend.global_used(f"bot:{creds.bot_token.fingerprint()}")
        )
