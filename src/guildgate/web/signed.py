"""Values this service signs and hands to a browser (the consent flow's state and result, the admin session):
``base64url(JSON data + expiry) . HMAC-SHA256``, each kind under its own context string so that one kind never
passes as another. Forging one needs a key derived from ``GUILDGATE_SECRET_KEY``. web/links/flow.py and
web/dashboard/session.py say what each value holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


class BadStateError(ValueError):
    """The value is not one we signed, or it expired; the message says which."""


class StateExpiredError(BadStateError):
    """Signed by us, but past its expiry."""


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mac(key: bytes, payload: str) -> str:
    return b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def sign(key: bytes, context: str, data: dict[str, Any], seconds: float, now: float | None = None) -> str:
    """``base64url(JSON data + expiry) . HMAC``; ``context`` keeps one kind of value from passing as another."""
    expires = int((now or time.time()) + seconds)
    payload = b64(json.dumps({**data, "e": expires}, separators=(",", ":")).encode())
    return f"{payload}.{mac(key, context + payload)}"


def open_signed(key: bytes, context: str, value: str, *, max_len: int, now: float | None = None) -> dict[str, Any]:
    """The data of a value ``sign`` made; BadStateError when it was not, StateExpiredError when it is too old."""
    payload, _, given = value.partition(".")
    if not payload or not given or len(value) > max_len or not hmac.compare_digest(given, mac(key, context + payload)):
        raise BadStateError("the state was not issued by this service")
    try:
        data = json.loads(_unb64(payload))
    except ValueError:
        raise BadStateError("the state is malformed") from None
    if not isinstance(data, dict):
        raise BadStateError("the state is malformed")
    if float(data.get("e", 0)) < (now or time.time()):
        raise StateExpiredError("the state expired (more than 10 minutes passed)")
    return data
