"""The consent flow's `state` and browser binding, and the admin session: signed and sealed values.

- ``state`` (travels through Discord): ``base64url(JSON {n: nonce, l: link id, e: expiry}) . HMAC-SHA256``.
  Forging one needs ``GUILDGATE_SECRET_KEY``; the nonce is single-use in the database; it expires in 10 minutes.
- The flow cookie (never leaves this browser and us): Fernet-sealed ``{n: nonce, v: PKCE verifier}``. The
  callback must carry the cookie whose nonce is the state's, so a state (or a whole callback URL) taken to
  another browser is refused, and the verifier never travels through Discord or into the database.
- The admin session cookie: ``base64url(JSON {s: session id, e: expiry}) . HMAC``; CSRF tokens are an HMAC of
  the session id, checked on every form post.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from guildgate.core.secret import derive_key

FLOW_COOKIE = "gg_flow"
SESSION_COOKIE = "gg_admin"
PRE_COOKIE = "gg_pre"  # a pre-login id, so the login form has a CSRF token too
STATE_SECONDS = 600
SESSION_SECONDS = 8 * 3600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class State:
    nonce: str
    link_id: str
    expires: float


class BadStateError(ValueError):
    """The state is not one we signed, or it expired; the message says which."""


class StateExpiredError(BadStateError):
    """Signed by us, but past its expiry."""


class Signer:
    def __init__(self, secret_key: str) -> None:
        self._state_key = derive_key(secret_key, b"oauth state v1")
        self._session_key = derive_key(secret_key, b"admin session v1")
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret_key, b"flow cookie v1")))

    # ---- OAuth2 state + flow cookie -----------------------------------------------------------------
    def state(self, *, nonce: str, link_id: str, now: float | None = None) -> str:
        return self._sign(self._state_key, "state:", {"n": nonce, "l": link_id}, STATE_SECONDS, now)

    def read_state(self, value: str, *, now: float | None = None) -> State:
        data = self._open(self._state_key, "state:", value, max_len=512, now=now)
        return State(nonce=str(data.get("n", "")), link_id=str(data.get("l", "")), expires=float(data["e"]))

    def flow_cookie(self, *, nonce: str, verifier: str) -> str:
        return self._fernet.encrypt(json.dumps({"n": nonce, "v": verifier}).encode()).decode("ascii")

    def read_flow_cookie(self, value: str | None) -> tuple[str, str] | None:
        """(nonce, verifier), or None when missing, tampered with or older than the state's lifetime."""
        if not value:
            return None
        try:
            data = json.loads(self._fernet.decrypt(value.encode("ascii"), ttl=STATE_SECONDS))
            return str(data["n"]), str(data["v"])
        except (InvalidToken, ValueError, KeyError, TypeError, UnicodeEncodeError):
            return None

    # ---- the result of a callback, carried to its page (so the page can be reloaded and translated) -----
    def result(self, data: dict[str, Any], *, now: float | None = None) -> str:
        return self._sign(self._state_key, "result:", data, 3600, now)

    def read_result(self, value: str, *, now: float | None = None) -> dict[str, Any] | None:
        try:
            return self._open(self._state_key, "result:", value, max_len=4096, now=now)
        except BadStateError:
            return None

    # ---- admin session ------------------------------------------------------------------------------
    def session(self, *, now: float | None = None) -> str:
        return self._sign(self._session_key, "session:", {"s": secrets.token_urlsafe(16)}, SESSION_SECONDS, now)

    def session_id(self, value: str | None, *, now: float | None = None) -> str | None:
        try:
            data = self._open(self._session_key, "session:", value or "", max_len=512, now=now)
        except BadStateError:
            return None
        return str(data.get("s") or "") or None

    def csrf(self, session_id: str) -> str:
        return self._mac(self._session_key, "csrf:" + session_id)

    def csrf_ok(self, session_id: str | None, token: str | None) -> bool:
        return bool(session_id and token and hmac.compare_digest(token, self.csrf(session_id)))

    # ---- helpers ------------------------------------------------------------------------------------
    def _sign(self, key: bytes, context: str, data: dict[str, Any], seconds: float, now: float | None) -> str:
        """``base64url(JSON data + expiry) . HMAC``; ``context`` keeps one kind of value from passing as another."""
        expires = int((now or time.time()) + seconds)
        payload = _b64(json.dumps({**data, "e": expires}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(key, context + payload)}"

    def _open(self, key: bytes, context: str, value: str, *, max_len: int, now: float | None) -> dict[str, Any]:
        """The data of a value ``_sign`` made; BadStateError when it was not, StateExpiredError when it is too old."""
        payload, _, mac = value.partition(".")
        if (
            not payload
            or not mac
            or len(value) > max_len
            or not hmac.compare_digest(mac, self._mac(key, context + payload))
        ):
            raise BadStateError("the state was not issued by this service")
        data = self._json(payload)
        if float(data.get("e", 0)) < (now or time.time()):
            raise StateExpiredError("the state expired (more than 10 minutes passed)")
        return data

    @staticmethod
    def _mac(key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())

    @staticmethod
    def _json(payload: str) -> dict[str, Any]:
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            raise BadStateError("the state is malformed") from None
        if not isinstance(data, dict):
            raise BadStateError("the state is malformed")
        return data
