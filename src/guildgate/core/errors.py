"""The exception tree. Every error carries its outcome code and whether a retry can help; never a token.

::

    JoinError                           (outcome, detail, retryable)
    ├── CallerError                     found before anything is sent to Discord
    │   ├── InvalidApiKeyError          401 invalid_api_key
    │   ├── InvalidRequestError         400/413/415 invalid_request (names the field)
    │   │   └── RecordNotFoundError     404 invalid_request: no record with this id for this API key
    │   ├── NotAnOAuthTokenError        400 not_an_oauth_token
    │   ├── ProxyNotAllowedError        400 proxy_not_allowed
    │   ├── QuotaExceededError          429 quota_exceeded (retry_after)
    │   ├── IdempotencyConflictError    409 idempotency_conflict
    │   ├── VelocityCappedError         429 velocity_capped: the operator's per-server / per-link cap
    │   │                               (retry_after)
    │   ├── InvalidShareExceededError   429 invalid_request_share_exceeded: a key's share of the invalid-request
    │   │                               budget (retry_after)
    │   ├── ReadsExceededError          429 read_quota_exceeded: a key's reads per minute (retry_after)
    │   ├── UnknownGrantError           404 unknown_grant: no such grant, or another app's
    │   ├── GrantEndedError             409 grant_ended: an ended grant cannot be changed
    │   ├── NotAMemberError             409 not_a_member: a grant for someone not in the server
    │   ├── AccessEndedError            403 access_ended: a link refusing a person whose grant through it ended
    │   ├── ExternalRefTakenError       409 external_ref_taken: the reference names another person's active grant
    │   ├── UnknownEndpointError        404 unknown_endpoint: no webhook endpoint with this id (for this app)
    │   └── UnknownEventError           404 unknown_event: no event with this id (for this app)
    ├── DiscordRefusedError             Discord answered with a JSON error (status 0, HTTP 200)
    │                                   outcome from discord/codes.py; carries discord_status/discord_code
    ├── DiscordUnavailableError         5xx, timeouts, connection errors after retries (502/503/504)
    └── RateLimitedError                a rate-limit wait would pass the deadline (503, retry_after)

Outside the join's tree, each where it is raised: ``discord.transport.TransportError`` (ConnectFailedError,
DisconnectedError, BadAnswerError: one HTTP exchange failed), ``store.repos.NotFoundError`` and
``ConflictError``, ``store.migrate.DatabaseUnreachableError``, ``settings.ConfigError``, ``web.signed.BadStateError``
(StateExpiredError), ``web.forms.FormRefusedError``, ``web.errors.AdminError``, and the client's own tree
(``guildgate.client``: GuildgateError and its subclasses).
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


class InvalidApiKeyError(CallerError):
    outcome = Outcome.INVALID_API_KEY


class InvalidRequestError(CallerError):
    outcome = Outcome.INVALID_REQUEST


class RecordNotFoundError(InvalidRequestError):
    def __init__(self) -> None:
        super().__init__("no record with this id for this API key", http_status=404)


class NotAnOAuthTokenError(CallerError):
    outcome = Outcome.NOT_AN_OAUTH_TOKEN


class ProxyNotAllowedError(CallerError):
    outcome = Outcome.PROXY_NOT_ALLOWED


class QuotaExceededError(CallerError):
    outcome = Outcome.QUOTA_EXCEEDED
    retryable = True


class IdempotencyConflictError(CallerError):
    outcome = Outcome.IDEMPOTENCY_CONFLICT


class VelocityCappedError(CallerError):
    outcome = Outcome.VELOCITY_CAPPED
    retryable = True

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, retry_after=retry_after)


class InvalidShareExceededError(CallerError):
    outcome = Outcome.INVALID_REQUEST_SHARE_EXCEEDED
    retryable = True

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, retry_after=retry_after)


class ReadsExceededError(CallerError):
    outcome = Outcome.READ_QUOTA_EXCEEDED
    retryable = True

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, retry_after=retry_after)


class DiscordRefusedError(JoinError):
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


class DiscordUnavailableError(JoinError):
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


class RateLimitedError(JoinError):
    outcome = Outcome.RATE_LIMITED
    retryable = True

    def __init__(self, detail: str = "", *, retry_after: float) -> None:
        super().__init__(detail, retry_after=retry_after)


class UnknownGrantError(CallerError):
    outcome = Outcome.UNKNOWN_GRANT


class GrantEndedError(CallerError):
    outcome = Outcome.GRANT_ENDED


class NotAMemberError(CallerError):
    outcome = Outcome.NOT_A_MEMBER


class AccessEndedError(CallerError):
    outcome = Outcome.ACCESS_ENDED


class ExternalRefTakenError(CallerError):
    """An ``external_ref`` naming an active grant of the app, in that server, of another person: refused before
    anything is sent to Discord (the grant is not taken over)."""

    outcome = Outcome.EXTERNAL_REF_TAKEN


class UnknownEndpointError(CallerError):
    """No webhook endpoint with this id, or it is another app's (the same answer: nothing is told about it)."""

    outcome = Outcome.UNKNOWN_ENDPOINT

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(endpoint_id[:64])


class UnknownEventError(CallerError):
    """No event with this id, or it is another app's."""

    outcome = Outcome.UNKNOWN_EVENT

    def __init__(self, event_id: str) -> None:
        super().__init__(event_id[:64])
