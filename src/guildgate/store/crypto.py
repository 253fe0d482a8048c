"""App secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from GUILDGATE_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken

from guildgate.core.secret import Secret, derive_key

API_KEY_PREFIX = "gg_"


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret_key, b"app secrets v1")))

    def seal(self, value: Secret) -> str:
        return self._fernet.encrypt(value.reveal().encode()).decode()

    def open(self, sealed: str) -> Secret:
        try:
            return Secret(self._fernet.decrypt(sealed.encode()).decode())
        except InvalidToken:
            raise ValueError(
                "cannot decrypt an app secret: GUILDGATE_SECRET_KEY is not the key it was stored with"
            ) from None


def new_api_key() -> Secret:
    return Secret(API_KEY_PREFIX + secrets.token_urlsafe(32))


def hash_api_key(key: str) -> str:
    # API keys carry 256 bits of randomness, so one SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()
