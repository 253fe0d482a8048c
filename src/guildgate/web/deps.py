"""What every HTTP surface takes from a request: the running service's parts, and the API key that signs it."""

from __future__ import annotations

from fastapi import Request

from guildgate.core.errors import InvalidApiKeyError
from guildgate.services.runtime import Services
from guildgate.store.repos import KeyInfo


def services(request: Request) -> Services:
    svc = request.app.state.services
    assert isinstance(svc, Services)
    return svc


async def authenticate(request: Request) -> KeyInfo:
    value = request.headers.get("user-token", "").strip()
    if not value:
        raise InvalidApiKeyError("the User-Token header is missing")
    key = await services(request).keys.authenticate(value)
    if key is None:
        raise InvalidApiKeyError("unknown or revoked API key")
    return key
