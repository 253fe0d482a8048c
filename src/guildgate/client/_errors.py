"""The client's exception tree. Every error carries the answer's ``code``, ``msg`` and ``http_status``, and what
else the answer said (``record_id``, ``retry_after``, ``discord_code``); never a token.

::

    GuildgateError                  code, msg, http_status, record_id, retry_after, discord_code
    ├── ConnectionFailedError       no envelope came back: guildgate was not reached or did not answer in time
    │                               (code connection_error, http_status 0), or something else answered (a proxy's
    │                               error page: code bad_answer, its HTTP status)
    ├── AuthenticationError         401 invalid_api_key
    ├── InvalidRequestError         400/409/413/415 invalid_request, not_an_oauth_token, proxy_not_allowed,
    │   │                           idempotency_conflict: refused before anything was sent to Discord
    │   ├── NotFoundError           404: no record (or grant: unknown_grant) with this id for this API key
    │   ├── NotAMemberError         409 not_a_member: a grant for someone not in the server (they join first)
    │   ├── GrantEndedError         409 grant_ended: an ended grant cannot be changed
    │   └── ExternalRefTakenError   409 external_ref_taken: the external_ref names another person's active grant
    ├── QuotaExceededError          429 quota_exceeded: this API key's quota (retry_after); also
    │                               invalid_request_share_exceeded and read_quota_exceeded
    ├── RateLimitedError            503 rate_limited: Discord's limits; 429 velocity_capped: the operator's cap
    │                               (retry_after)
    ├── DiscordUnavailableError     502/504 discord_unavailable: Discord unreachable or failing (the record may
    │                               be ``unknown``)
    └── JoinRefusedError            200 with status 0: Discord refused the join (banned, token_expired,
                                    unknown_guild, ...; discord_code)

The codes are the server's outcome codes (``guildgate.core.outcomes.Outcome``), but for the two the client makes
itself: ``connection_error`` and ``bad_answer``.
"""

from __future__ import annotations

from guildgate.core.outcomes import Outcome


class GuildgateError(Exception):
    """Something guildgate (or the way to it) answered instead of a result. ``code`` is the outcome code."""

    def __init__(
        self,
        msg: str,
        *,
        code: str,
        http_status: int,
        record_id: str | None = None,
        retry_after: float | None = None,
        discord_code: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {msg}")
        self.msg, self.code, self.http_status = msg, code, http_status
        self.record_id, self.retry_after, self.discord_code = record_id, retry_after, discord_code


class ConnectionFailedError(GuildgateError):
    """No answer from guildgate: it could not be reached, did not answer within the client's ``timeout``
    (``code`` ``connection_error``), or what answered was not guildgate's envelope (``bad_answer``). A join
    may have happened all the same: retry it with the same ``idempotency_key``."""


class AuthenticationError(GuildgateError):
    """The API key is missing, unknown or revoked (``invalid_api_key``)."""


class InvalidRequestError(GuildgateError):
    """The request was refused before anything was sent to Discord: a bad field or parameter (``msg`` names
    it), an account- or bot-shaped token, a proxy that is not allowed, an Idempotency-Key reused with another
    body."""


class NotFoundError(InvalidRequestError):
    """No record, or grant (``unknown_grant``), with this id for this API key (another app's answers the same)."""


class NotAMemberError(InvalidRequestError):
    """``create_grant`` for someone who is not in the server (``not_a_member``): they join first, with their
    consent (a join link, or the join API)."""


class GrantEndedError(InvalidRequestError):
    """A change to a grant that has ended (``grant_ended``): make a new one instead."""


class ExternalRefTakenError(InvalidRequestError):
    """A grant (``create_grant``, or a join's ``grant``) whose ``external_ref`` belongs to another person's
    active grant in that server (``external_ref_taken``): nothing was changed or added at Discord."""


class QuotaExceededError(GuildgateError):
    """The API key's quota is spent (``quota_exceeded``), or its share of the invalid-request budget
    (``invalid_request_share_exceeded``), or its reads per minute (``read_quota_exceeded``); ``retry_after`` says
    when to try again."""


class RateLimitedError(GuildgateError):
    """Discord's rate limits, or the operator's velocity cap (``velocity_capped``), would not let the join happen
    now; ``retry_after`` says when to try again."""


class DiscordUnavailableError(GuildgateError):
    """Discord could not be reached or kept failing; safe to retry later (the record may be ``unknown``)."""


class JoinRefusedError(GuildgateError):
    """Discord refused the join (banned, token expired, unknown server, ...); ``code`` says which and
    ``discord_code`` is Discord's own code."""


_BY_CODE: dict[str, type[GuildgateError]] = {
    Outcome.INVALID_API_KEY: AuthenticationError,
    Outcome.INVALID_REQUEST: InvalidRequestError,
    Outcome.NOT_AN_OAUTH_TOKEN: InvalidRequestError,
    Outcome.PROXY_NOT_ALLOWED: InvalidRequestError,
    Outcome.IDEMPOTENCY_CONFLICT: InvalidRequestError,
    Outcome.QUOTA_EXCEEDED: QuotaExceededError,
    Outcome.INVALID_REQUEST_SHARE_EXCEEDED: QuotaExceededError,  # the key's share of the invalid-request budget
    Outcome.READ_QUOTA_EXCEEDED: QuotaExceededError,  # the key's reads per minute
    Outcome.RATE_LIMITED: RateLimitedError,
    Outcome.VELOCITY_CAPPED: RateLimitedError,  # the operator's cap: retry after retry_after, like a rate limit
    Outcome.DISCORD_UNAVAILABLE: DiscordUnavailableError,
    Outcome.NOT_A_MEMBER: NotAMemberError,
    Outcome.GRANT_ENDED: GrantEndedError,
    Outcome.EXTERNAL_REF_TAKEN: ExternalRefTakenError,
}


def error_class(code: str, http_status: int) -> type[GuildgateError]:
    """The class for a failed answer: by its code; a 404 is NotFoundError; any other code is Discord's refusal."""
    if http_status == 404:
        return NotFoundError
    return _BY_CODE.get(code, JoinRefusedError)
