"""The admin session and its CSRF tokens: the session cookie is ``base64url(JSON {s: session id, e: expiry}) .
HMAC`` (web/signed.py); a CSRF token is an HMAC of the session id, checked on every form post. Before login, a
pre-login id (its own cookie) gives the login form a CSRF token too."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from guildgate.core.secret import derive_key
from guildgate.web.signed import BadStateError, mac, open_signed, sign

SESSION_COOKIE = "gg_admin"
PRE_COOKIE = "gg_pre"  # a pre-login id, so the login form has a CSRF token too
SESSION_SECONDS = 8 * 3600


class Sessions:
    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, b"admin session v1")

    def session(self, *, now: float | None = None) -> str:
        return sign(self._key, "session:", {"s": secrets.token_urlsafe(16)}, SESSION_SECONDS, now)

    def session_id(self, value: str | None, *, now: float | None = None) -> str | None:
        try:
            data = open_signed(self._key, "session:", value or "", max_len=512, now=now)
        except BadStateError:
            return None
        return str(data.get("s") or "") or None

    def csrf(self, session_id: str) -> str:
        return mac(self._key, "csrf:" + session_id)

    def csrf_ok(self, session_id: str | None, token: str | None) -> bool:
        return bool(session_id and token and hmac.compare_digest(token, self.csrf(session_id)))


def sessions(request: Request) -> Sessions:
    """The app's Sessions (web/app.py makes it at start)."""
    made = request.app.state.sessions
    assert isinstance(made, Sessions)
    return made
