"""Discord's OAuth2 for join links: the authorize URL, PKCE, the code exchange and revocation.

The flow (``web/links/consent.py`` drives it): the person's browser goes to Discord's authorize page with
``response_type=code``, ``scope=identify guilds.join``, our ``redirect_uri``, a signed single-use ``state`` and a
PKCE S256 ``code_challenge``; Discord sends the browser back with ``code`` (or ``error=access_denied``) and the
``state``. We exchange the code at ``POST {api}/oauth2/token`` (form-encoded only, client id and secret in HTTP
Basic, ``code_verifier``), use the access token for the one join, and revoke it at ``POST
{api}/oauth2/token/revoke`` straight after; revoking one token of an authorization revokes all of its tokens,
the refresh token included. The token is held in memory as a ``Secret`` for those few calls only.

Token-endpoint errors follow RFC 6749 (``{"error": "invalid_grant", ...}``) rather than Discord's
``{"message", "code"}``: a used, expired or foreign code, a wrong redirect URI and a missing verifier all answer
``invalid_grant`` and cannot be told apart.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from guildgate.core.errors import DiscordRefusedError, DiscordUnavailableError
from guildgate.core.outcomes import Outcome
from guildgate.core.ports import AppCredentials
from guildgate.core.secret import Secret
from guildgate.discord import routes
from guildgate.discord.codes import discord_text
from guildgate.discord.rest import DiscordRest

SCOPES = "identify guilds.join"


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str


def new_pkce() -> Pkce:
    """A 43-character verifier (RFC 7636 allows 43-128) and its S256 challenge."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return Pkce(verifier=verifier, challenge=base64.urlsafe_b64encode(digest).decode("ascii").rstrip("="))


def authorize_url(*, base: str, client_id: str, redirect_uri: str, state: str, challenge: str) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "scope": SCOPES,
            "redirect_uri": redirect_uri,
            "state": state,
            "prompt": "consent",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        quote_via=quote,  # spaces as %20 (Discord's docs), the redirect URI fully encoded
    )
    return f"{base}{'&' if '?' in base else '?'}{query}"


def _basic(app: AppCredentials) -> Secret:
    pair = f"{app.client_id}:{app.client_secret.reveal()}".encode()
    return Secret(base64.b64encode(pair).decode("ascii"))


@dataclass(frozen=True, slots=True)
class Grant:
    access_token: Secret
    scopes: frozenset[str]


async def exchange_code(
    rest: DiscordRest, *, app: AppCredentials, code: str, redirect_uri: str, verifier: str, deadline: float
) -> Grant:
    """Trade the authorization code for an access token. Raises DiscordRefusedError (``invalid_oauth_token``) when
    Discord refuses the code or our client credentials, DiscordUnavailableError when it does not answer."""
    answer = await rest.call(
        routes.TOKEN_EXCHANGE,
        {},
        auth=("Basic", _basic(app)),
        deadline=deadline,
        form={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    body = answer.body if isinstance(answer.body, dict) else {}
    token = body.get("access_token")
    if answer.status == 200 and isinstance(token, str) and token:
        scope = body.get("scope")
        return Grant(access_token=Secret(token), scopes=frozenset(str(scope or "").split()))
    if answer.status == 200:
        raise DiscordUnavailableError("Discord's token endpoint answered without an access token", discord_status=200)
    error = discord_text(body.get("error"), limit=60)  # goes into the record's detail
    what = "the client id or secret of this app" if error == "invalid_client" else "the authorization code"
    raise DiscordRefusedError(
        f"Discord refused {what} ({error or answer.status})",
        outcome=Outcome.INVALID_OAUTH_TOKEN,
        discord_status=answer.status,
        discord_code=None,
    )


async def revoke(rest: DiscordRest, *, app: AppCredentials, token: Secret, deadline: float) -> bool:
    """Revoke the token (and so its whole authorization). True on any 2xx: the body is not documented."""
    answer = await rest.call(
        routes.TOKEN_REVOKE,
        {},
        auth=("Basic", _basic(app)),
        deadline=deadline,
        form={"token": token.reveal(), "token_type_hint": "access_token"},
    )
    return 200 <= answer.status < 300


class DiscordConsent:
    """core.links.ConsentPort over DiscordRest."""

    def __init__(self, rest: DiscordRest) -> None:
        self.rest = rest

    async def exchange_code(
        self, *, app: AppCredentials, code: str, redirect_uri: str, verifier: str, deadline: float
    ) -> Secret:
        grant = await exchange_code(
            self.rest, app=app, code=code, redirect_uri=redirect_uri, verifier=verifier, deadline=deadline
        )
        return grant.access_token

    async def revoke(self, *, app: AppCredentials, token: Secret, deadline: float) -> bool:
        return await revoke(self.rest, app=app, token=token, deadline=deadline)

    async def add_member_role(
        self, *, app: AppCredentials, guild_id: str, user_id: str, role_id: str, deadline: float
    ) -> None:
        await self.rest.add_member_role(app=app, guild_id=guild_id, user_id=user_id, role_id=role_id, deadline=deadline)
