"""guildgate: add consenting people to Discord servers through OAuth2 ``guilds.join`` and your own bot.

>>> from guildgate import Client
>>> with Client("http://127.0.0.1:8080", api_key="gg_...") as gg:   # doctest: +SKIP
...     print(gg.join(authorization=user_token, guild_id="1200000000000000001").joined)
"""

__version__ = "0.1.0"

from guildgate.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConnectionProblem,
    DiscordUnavailableError,
    GuildgateError,
    InvalidRequestError,
    JoinRefusedError,
    JoinResult,
    QuotaExceededError,
    RateLimitedError,
)
from guildgate.core.secret import Secret

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConnectionProblem",
    "DiscordUnavailableError",
    "GuildgateError",
    "InvalidRequestError",
    "JoinRefusedError",
    "JoinResult",
    "QuotaExceededError",
    "RateLimitedError",
    "Secret",
    "__version__",
]
