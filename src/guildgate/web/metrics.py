"""Prometheus metrics (a private registry, so tests and several apps in one process do not collide)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from guildgate.web.services import Services

REGISTRY = CollectorRegistry()
JOINS = Counter("guildgate_joins_total", "Join requests answered, by outcome code", ["code"], registry=REGISTRY)
JOIN_SECONDS = Histogram(
    "guildgate_join_seconds",
    "Join request wall time",
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INVALID_USED = Gauge("guildgate_invalid_requests_used", "401/403/429 answers in the last 10 minutes", registry=REGISTRY)


def refresh(svc: Services) -> None:
    INVALID_USED.set(svc.limiter.invalid_used())
