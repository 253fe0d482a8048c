"""The consent flow's `state`, its browser binding and its result: signed and sealed values (web/signed.py).

- ``state`` (travels through Discord): ``base64url(JSON {n: nonce, l: link id, e: expiry}) . HMAC-SHA256``.
  The nonce is single-use in the database; it expires in 10 minutes.
- The flow cookie (never leaves this browser and us): Fernet-sealed ``{n: nonce, v: PKCE verifier}``. The
  callback must carry the cookie whose nonce is the state's, so a state (or a whole callback URL) taken to
  another browser is refused, and the verifier never travels through Discord or into the database.
- The result of a callback, carried to its page (so the page can be reloaded and translated), signed for an hour.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Request

from guildgate.core.secret import derive_key
from guildgate.web.signed import BadStateError, open_signed, sign

FLOW_COOKIE = "gg_flow"
STATE_SECONDS = 600


@dataclass(frozen=True, slots=True)
class State:
    nonce: str
    link_id: str
    expires: float


class FlowSigner:
    def __init__(self, secret_key: str) -> None:
        self._state_key = derive_key(secret_key, b"oauth state v1")
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret_key, b"flow cookie v1")))

    def state(self, *, nonce: str, link_id: str, now: float | None = None) -> str:
        return sign(self._state_key, "state:", {"n": nonce, "l": link_id}, STATE_SECONDS, now)

    def read_state(self, value: str, *, now: float | None = None) -> State:
        data = open_signed(self._state_key, "state:", value, max_len=512, now=now)
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

    def result(self, data: dict[str, Any], *, now: float | None = None) -> str:
        return sign(self._state_key, "result:", data, 3600, now)

    def read_result(self, value: str, *, now: float | None = None) -> dict[str, Any] | None:
        try:
            return open_signed(self._state_key, "result:", value, max_len=4096, now=now)
        except BadStateError:
            return None


def flow_signer(request: Request) -> FlowSigner:
    """The app's FlowSigner (web/app.py makes it at start)."""
    signer = request.app.state.flow_signer
    assert isinstance(signer, FlowSigner)
    return signer
