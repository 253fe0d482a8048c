"""Prometheus metrics, safe with several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``guildgate serve --workers N`` sets it), every process writes its
values to files there and /metrics adds them up; otherwise one process-local registry."""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from guildgate.core.grants import GrantState
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

GRANTS = Gauge(
    "guildgate_grants",
    "Grants by state (active, ended, end_failed), counted in the database at each scrape",
    ["state"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
GRANTS_DUE = Gauge(
    "guildgate_grants_due",
    "Active grants whose end has come and that are not ended yet",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
GRANT_END_LAG = Histogram(
    "guildgate_grant_end_lag_seconds",
    "Time from a grant's ends_at to its ended_at, for grants that expired",
    registry=REGISTRY,
    buckets=(0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 900, 3600),
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
    await refresh_grants(svc)


async def refresh_grants(svc: Services) -> None:
    counts = await svc.grants.repo.states()
    for state in GrantState:
        GRANTS.labels(state.value).set(counts.get(state.value, 0))
    GRANTS_DUE.set(await svc.grants.repo.due_count(now=datetime.now(UTC)))
