"""A value that must never be shown: tokens, secrets, API keys; and ``derive_key``, the one way to a key from
GUILDGATE_SECRET_KEY.

>>> s = Secret("hunter2")
>>> s
Secret('**********')
>>> str(s)
'**********'
>>> s.reveal()
'hunter2'
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

_MASK: Final = "**********"


class Secret:
    """Wraps a secret string. ``repr``/``str``/``format`` never show it; call ``reveal()`` at the point of use."""

    __slots__ = ("_fingerprint", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._fingerprint: str | None = None

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short, non-reversible id for the secret (for keys in caches and logs)."""
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(self._value.encode()).hexdigest()[:16]
        return self._fingerprint

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:  # pickling would write the value somewhere: refuse
        raise TypeError("Secret values cannot be pickled")


def derive_key(secret_key: str, purpose: bytes) -> bytes:
    """32 bytes for one ``purpose`` (e.g. ``b"app secrets v1"``), derived from GUILDGATE_SECRET_KEY by HKDF-SHA256:
    every key the service uses comes from here, so that one purpose's key tells nothing of another's."""
    from cryptography.hazmat.primitives import hashes  # here: the client imports this module, and needs none of it
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"guildgate", info=purpose).derive(secret_key.encode())
