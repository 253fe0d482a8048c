"""The admin session's cookie and its CSRF tokens.

- The session cookie: ``base64url(JSON {s: session id, k: HMAC of the admin token's SHA-256, e: expiry}) .
  HMAC`` (web/signed.py). The session id names a row of ``admin_sessions`` (store/sessions.py) that logging out
  deletes; ``k`` ends every session when the admin token changes. web/adminauth.py opens, reads and ends them.
- A CSRF token is an HMAC of the session id, checked on every form post (logging out included). Before login, a
  pre-login id (its own cookie) gives the login form a CSRF token too.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from guildgate.core.secret import derive_key
from guildgate.web.signed import BadStateError, mac, open_signed, sign

SESSION_COOKIE = "gg_admin"
PRE_COOKIE = "gg_pre"  # a pre-login id, so the login form has a CSRF token too
SESSION_SECONDS = 8 * 3600


class Sessions:
    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, b"admin session v1")

    def session(self, session_id: str, *, admin_token: str, now: float | None = None) -> str:
        """The cookie of a session (its id, stored on the server) under this admin token."""
        data = {"s": session_id, "k": self._token_mark(admin_token)}
        return sign(self._key, "session:", data, SESSION_SECONDS, now)

    def session_id(self, value: str | None, *, admin_token: str, now: float | None = None) -> str | None:
        """The session id of a cookie this service signed, not expired, made under this same admin token (a
        rotated token ends every session); None otherwise. Whether the session is still open (not logged out)
        is for the database to say (store/sessions.py)."""
        try:
            data = open_signed(self._key, "session:", value or "", max_len=512, now=now)
        except BadStateError:
            return None
        if not hmac.compare_digest(str(data.get("k", "")), self._token_mark(admin_token)):
            return None
        return str(data.get("s") or "") or None

    def _token_mark(self, admin_token: str) -> str:
        """An HMAC of the admin token's SHA-256: names the token a session was opened with, without it."""
        return mac(self._key, "admin-token:" + hashlib.sha256(admin_token.encode()).hexdigest())

    def csrf(self, session_id: str) -> str:
        return mac(self._key, "csrf:" + session_id)

    def csrf_ok(self, session_id: str | None, token: str | None) -> bool:
        return bool(session_id and token and hmac.compare_digest(token, self.csrf(session_id)))


def sessions(request: Request) -> Sessions:
    """The app's Sessions (web/app.py makes it at start)."""
    made = request.app.state.sessions
    assert isinstance(made, Sessions)
    return made
