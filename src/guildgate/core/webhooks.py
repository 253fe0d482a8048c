"""Webhooks without I/O: the event types, a delivery's states, endpoint ids and secrets, the retry schedule
(``../shared/spec/access.md``, "Webhooks")."""

from __future__ import annotations

import base64
import random
import secrets
from enum import StrEnum

SECRET_PREFIX = "whsec_"
ENDPOINT_PREFIX = "whe_"

# Every type an event may have (the contract's table). An endpoint subscribed to no type in particular gets them
# all, new ones included; webhook.test goes only to the endpoint it tests.
EVENT_TYPES: tuple[str, ...] = (
    "join.succeeded",
    "join.failed",
    "grant.started",
    "grant.updated",
    "grant.ended",
    "grant.end_failed",
    "grant.repaired",
    "grant.absent",
    "grant.restored",
    "grant.ending_soon",
    "link.used_up",
    "webhook.test",
    "webhook.endpoint_disabled",
)


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or one is under way)
    DELIVERED = "delivered"
    FAILED = "failed"  # its retries ran out (replayable, recoverable)
    SKIPPED = "skipped"  # made while the endpoint was disabled (recoverable after enable)


# Seconds before each retry after a failure (about 3 days in all), each ±JITTER at random.
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.2
MAX_IN_FLIGHT = 10  # attempts under way at once to one endpoint (every worker together)
LEASE_MARGIN = 5.0  # seconds a claim lasts past the attempt's timeout
DISABLE_AFTER = 5 * 86400.0  # seconds without a success since a delivery ran out of retries
SECRETS_KEPT = 3  # previous secrets still valid after rotations
PREVIOUS_VALID_FOR = 86400.0  # seconds a previous secret stays valid, from its own rotation
ANSWER_READ = 64 * 1024  # bytes of an answer read at most
ANSWER_KEPT = 2048  # bytes of it kept in the attempt log


def new_endpoint_id() -> str:
    return ENDPOINT_PREFIX + secrets.token_hex(8)


def new_secret() -> str:
    """``whsec_`` + the standard, padded base64 of 32 random bytes (what every Standard Webhooks library reads)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def parse_schedule(text: str) -> tuple[float, ...]:
    """``GUILDGATE_WEBHOOK_RETRY_SCHEDULE``: comma-separated seconds (each > 0), used exactly as given."""
    steps = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            step = float(part)
        except ValueError:
            raise ValueError(f"each step must be a number of seconds, got {part[:20]!r}") from None
        if not 0 < step <= 30 * 86400:
            raise ValueError(f"each step must be more than 0 and at most 30 days of seconds, got {part[:20]!r}")
        steps.append(step)
    if not steps:
        raise ValueError("give at least one step (seconds, comma-separated)")
    return tuple(steps)


def retry_delay(
    *, tries: int, schedule: tuple[float, ...], jitter: bool, status: int | None, retry_after: str | None
) -> float | None:
    """Seconds before the next attempt after ``tries`` failed attempts in this round, or None when the retries
    have run out. A ``Retry-After`` (seconds) on 429 or 503 replaces the step, up to twice the step."""
    if tries > len(schedule):
        return None
    step = schedule[tries - 1]
    delay = step * random.uniform(1 - JITTER, 1 + JITTER) if jitter else step
    if status in (429, 503) and retry_after is not None:
        try:
            asked = float(retry_after.strip())
        except ValueError:
            asked = -1.0
        if asked >= 0:
            delay = min(asked, 2 * step)
    return delay


def subscribed(events: tuple[str, ...] | None, type: str) -> bool:
    if type == "webhook.test":
        return False  # only to the endpoint tested (written for it alone)
    return events is None or type in events
