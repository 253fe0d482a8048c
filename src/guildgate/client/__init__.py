"""The Python client: ``Client`` (sync) and ``AsyncClient``, the ``JoinResult`` a join returns, and the errors
(their tree is drawn in ``guildgate.client._errors``). docs/client.md documents every method.

>>> from guildgate import Client
>>> with Client("http://127.0.0.1:8080", api_key="gg_...") as gg:          # doctest: +SKIP
...     result = gg.join(authorization=user_token, guild_id="1200000000000000001")
...     print(result.joined, result.record_id)
"""

from guildgate.client._clients import AsyncClient, Client
from guildgate.client._errors import (
    AuthenticationError,
    ConnectionFailedError,
    DiscordUnavailableError,
    ExternalRefTakenError,
    GrantEndedError,
    GuildgateError,
    InvalidRequestError,
    JoinRefusedError,
    NotAMemberError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
)
from guildgate.client._grants import Grant, GrantPage
from guildgate.client._wire import JoinResult
from guildgate.core.secret import Secret

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConnectionFailedError",
    "DiscordUnavailableError",
    "ExternalRefTakenError",
    "Grant",
    "GrantEndedError",
    "GrantPage",
    "GuildgateError",
    "InvalidRequestError",
    "JoinRefusedError",
    "JoinResult",
    "NotAMemberError",
    "NotFoundError",
    "QuotaExceededError",
    "RateLimitedError",
    "Secret",
]
