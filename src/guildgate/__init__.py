"""guildgate: add consenting people to Discord servers through OAuth2 ``guilds.join`` and your own bot.

>>> from guildgate import Client
>>> with Client("http://127.0.0.1:8080", api_key="gg_...") as gg:   # doctest: +SKIP
...     print(gg.join(authorization=user_token, guild_id="1200000000000000001").joined)
"""

__version__ = "0.1.0"

import typing as _typing

from guildgate.core.secret import Secret

if _typing.TYPE_CHECKING:
    from guildgate.client import (
        AsyncClient,
        AuthenticationError,
        Client,
        ConnectionFailedError,
        DiscordUnavailableError,
        ExternalRefTakenError,
        Grant,
        GrantEndedError,
        GrantPage,
        GuildgateError,
        InvalidRequestError,
        JoinRefusedError,
        JoinResult,
        NotAMemberError,
        NotFoundError,
        QuotaExceededError,
        RateLimitedError,
    )

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
    "__version__",
]


def __getattr__(name: str) -> _typing.Any:
    """The client's names, imported when first asked for: the CLI and the server start without httpx. (Only
    names not defined here reach this function.)"""
    if name in __all__:
        from guildgate import client

        return getattr(client, name)
    raise AttributeError(f"module 'guildgate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
