"""Discord's rate limits as the sandbox applies them: per-route buckets (sliding or fixed), the global
per-identity limit, the per-IP invalid-request counter with a Cloudflare-style ban, and the counts that
/_sandbox/stats shows."""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from guildgate.sandbox.fixture import RateLimits, RouteLimit


def bucket_hash(name: str) -> str:
    return hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()


@dataclass
class _Bucket:
    route: str
    major: str
    config: RouteLimit
    window: str
    tokens: float = 0.0  # sliding: tokens available; fixed: requests used in the window
    updated: float = 0.0
    window_end: float = 0.0
    accepted: int = 0
    limited: int = 0
    first_at: float | None = None
    last_at: float | None = None
    recent: deque[float] = field(default_factory=deque)
    max_in_window: int = 0


@dataclass(frozen=True)
class Verdict:
    headers: dict[str, str]
    limited: dict[str, Any] | None = None  # the 429 body when refused
    scope: str | None = None


class SandboxLimits:
    def __init__(self, config: RateLimits) -> None:
        self.config = config
        self.buckets: dict[tuple[str, str, str], _Bucket] = {}
        self.global_recent: dict[str, deque[float]] = {}
        self.global_max: dict[str, int] = {}
        self.global_limited = 0
        self.invalid: dict[str, deque[float]] = {}
        self.banned_until: dict[str, float] = {}
        self.by_scope = {"user": 0, "global": 0, "shared": 0}

    # ---- the global limit ---------------------------------------------------------------------------
    def check_global(self, identity: str, now: float) -> Verdict | None:
        limit = self.config.global_per_second
        recent = self.global_recent.setdefault(identity, deque())
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if limit and len(recent) >= limit:
            retry = recent[0] + 1.0 - now
            self.global_limited += 1
            self.by_scope["global"] += 1
            body = {
                "message": "You are being rate limited.",
                "retry_after": round(max(retry, 0.001), 3),
                "global": True,
            }
            headers = {
                "Retry-After": str(max(1, math.ceil(retry))),
                "X-RateLimit-Global": "true",
                "X-RateLimit-Scope": "global",
            }
            return Verdict(headers=headers, limited=body, scope="global")
        recent.append(now)
        self.global_max[identity] = max(self.global_max.get(identity, 0), len(recent))
        return None

    # ---- route buckets ------------------------------------------------------------------------------
    def check_route(self, route: str, identity: str, major: str, now: float) -> Verdict:
        config = self.config.routes.get(route)
        if config is None:
            return Verdict(headers={})
        window = config.window or self.config.window
        bucket_id = config.bucket or bucket_hash(route)
        owner = "shared" if config.scope == "shared" else identity
        key = (owner, bucket_id, major)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(
                route=route,
                major=major,
                config=config,
                window=window,
                tokens=float(config.limit) if window == "sliding" else 0.0,
                updated=now,
            )
        limit, period = config.limit, config.reset_after
        if window == "sliding":
            rate = limit / period
            bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            allowed = bucket.tokens >= 1.0
            if allowed:
                bucket.tokens -= 1.0
            remaining = int(bucket.tokens)
            reset_after = (limit - bucket.tokens) / rate
            retry = (1.0 - bucket.tokens) / rate
        else:
            if now >= bucket.window_end:
                bucket.tokens, bucket.window_end = 0.0, now + period
            allowed = bucket.tokens < limit
            if allowed:
                bucket.tokens += 1
            remaining = int(limit - bucket.tokens)
            reset_after = bucket.window_end - now
            retry = reset_after
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{max(reset_after, 0.0):.3f}",
            "X-RateLimit-Bucket": bucket_id,
        }
        if allowed:
            bucket.accepted += 1
            bucket.first_at = bucket.first_at if bucket.first_at is not None else now
            bucket.last_at = now
            bucket.recent.append(now)
            while bucket.recent and bucket.recent[0] <= now - period:
                bucket.recent.popleft()
            bucket.max_in_window = max(bucket.max_in_window, len(bucket.recent))
            return Verdict(headers=headers)
        bucket.limited += 1
        scope = "shared" if config.scope == "shared" else "user"
        self.by_scope[scope] += 1
        message = "The resource is being rate limited." if scope == "shared" else "You are being rate limited."
        headers.update(
            {
                "Retry-After": str(max(1, math.ceil(retry))),
                "X-RateLimit-Scope": scope,
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": f"{retry:.3f}",
            }
        )
        body = {"message": message, "retry_after": round(retry, 3), "global": False}
        return Verdict(headers=headers, limited=body, scope=scope)

    # ---- invalid requests and bans ------------------------------------------------------------------
    def banned(self, ip: str, now: float) -> bool:
        return self.banned_until.get(ip, 0.0) > now

    def count(self, ip: str, status: int, scope: str | None, now: float) -> None:
        if status not in (401, 403, 429) or scope == "shared":
            return
        limit = self.config.invalid_requests_per_10_minutes
        seen = self.invalid.setdefault(ip, deque())
        seen.append(now)
        while seen and seen[0] <= now - 600:
            seen.popleft()
        if limit and len(seen) >= limit:
            self.banned_until[ip] = now + self.config.ban_seconds

    def stats(self) -> dict[str, Any]:
        buckets = []
        for (owner, bucket_id, major), b in self.buckets.items():
            span = (b.last_at - b.first_at) if b.first_at is not None and b.last_at is not None else 0.0
            buckets.append(
                {
                    "route": b.route,
                    "bucket": bucket_id,
                    "major": major,
                    "identity": owner if owner == "shared" else owner[:12],
                    "limit": b.config.limit,
                    "reset_after": b.config.reset_after,
                    "window": b.window,
                    "accepted": b.accepted,
                    "rate_limited": b.limited,
                    "first_at": b.first_at,
                    "last_at": b.last_at,
                    "active_seconds": round(span, 3),
                    "max_in_window": b.max_in_window,
                }
            )
        return {
            "rate_limited": dict(self.by_scope),
            "buckets": buckets,
            "global": {
                "limit_per_second": self.config.global_per_second,
                "max_in_any_second": {k[:12]: v for k, v in self.global_max.items()},
                "rate_limited": self.global_limited,
            },
            "invalid_requests": {ip: len(v) for ip, v in self.invalid.items()},
            "banned": sorted(ip for ip, until in self.banned_until.items() if until > time.monotonic()),
        }
