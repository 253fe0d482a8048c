"""The exception tree. Every error carries its outcome code and whether a retry can help; never a token.

::

    JoinError                       (outcome, detail, retryable)
    ├── CallerError                 found before anything is sent to Discord
    │   ├── InvalidApiKey           401 invalid_api_key
    │   ├── InvalidRequest          400/413/415 invalid_request (names the field)
    │   ├── NotAnOAuthToken         400 not_an_oauth_token
    │   ├── ProxyNotAllowed         400 proxy_not_allowed
    │   ├── QuotaExceeded           429 quota_exceeded (retry_after)
    │   ├── IdempotencyConflict     409 idempotency_conflict
    │   ├── VelocityCapped          429 velocity_capped: the operator's per-server / per-link cap (retry_after)
    │   ├── InvalidShareExceeded    429 invalid_request_share_exceeded: a key's share of the invalid-request budget
    │   └── ReadsExceeded           429 read_quota_exceeded: a key's reads per minute (retry_after)
    ├── DiscordRefused              Discord answered with a JSON error (status 0, HTTP 200)
    │                               outcome from discord/codes.py; carries discord_status/discord_code
    ├── DiscordUnavailable          5xx, timeouts, connection errors after retries (502/503/504)
    └── RateLimited                 a rate-limit wait would pass the deadline (503, retry_after)
"""

from __future__ import annotations

from guildgate.core.outcomes import Outcome


class JoinError(Exception):
    outcome: Outcome = Outcome.DISCORD_ERROR
    retryable: bool = False

    def __init__(
        self,
        detail: str = "",
        *,
        outcome: Outcome | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail or (outcome or self.outcome).value)
        if outcome is not None:
            self.outcome = outcome
        self.detail = detail
        self.retry_after = retry_after
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        return self._http_status or self.outcome.http_status


class CallerError(JoinError):
    pass


class InvalidApiKey(CallerError):
    outcome = Outcome.INVALID_API_KEY


class InvalidRequest(CallerError):
    outcome = Outcome.INVALID_REQUEST


class NotAnOAuthToken(CallerError):
    outcome = Outcome.NOT_AN_OAUTH_TOKEN


class ProxyNotAllowed(CallerError):
    outcome = Outcome.PROXY_NOT_ALLOWED


class QuotaExceeded(CallerError):
    outcome = Outcome.QUOTA_EXCEEDED
    retryable = True


class IdempotencyConflict(CallerError):
    outcome = Outcome.IDEMPOTENCY_CONFLICT


class VelocityCapped(CallerError):
    outcome = Outcome.VELOCITY_CAPPED
    retryable = True

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, retry_after=retry_after)


class InvalidShareExceeded(CallerError):
    outcome = Outcome.INVALID_REQUEST_SHARE_EXCEEDED
    retryable = True

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, retry_after=retry_after)


class ReadsExceeded(CallerError):
    outcome = Outcome.READ_QUOTA_EXCEEDED
    retryable = True

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, retry_after=retry_after)


class DiscordRefused(JoinError):
    """Discord answered with an error. ``outcome`` comes from the code table in ``discord/codes.py``."""

    def __init__(
        self,
        detail: str,
        *,
        outcome: Outcome,
        discord_status: int,
        discord_code: int | None,
    ) -> None:
        super().__init__(detail, outcome=outcome)
        self.discord_status = discord_status
        self.discord_code = discord_code


class DiscordUnavailable(JoinError):
    outcome = Outcome.DISCORD_UNAVAILABLE
    retryable = True

    def __init__(
        self,
        detail: str = "",
        *,
        http_status: int = 502,
        retry_after: float | None = None,
        discord_status: int | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(detail, http_status=http_status, retry_after=retry_after)
        self.discord_status = discord_status
        # True when an Add Guild Member call may have reached Discord: the outcome is then unknown.
        self.maybe_sent = maybe_sent


class RateLimited(JoinError):
    outcome = Outcome.RATE_LIMITED
    retryable = True

    def __init__(self, detail: str = "", *, retry_after: float) -> None:
        super().__init__(detail, retry_after=retry_after)
