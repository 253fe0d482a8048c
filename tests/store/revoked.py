"""Waiting, over HTTP, for a revoked API key to be refused: each process remembers a key it found valid for
``KEY_CACHED_FOR`` seconds (store/keys.py), so a key revoked by another process (the CLI, another worker) is
refused within that bound, not necessarily at once."""

from __future__ import annotations

import time

from guildgate.store.keys import KEY_CACHED_FOR
from tests.conftest import Gateway


def refused_within(gateway: Gateway, key: str, *, since: float, bound: float = KEY_CACHED_FOR) -> None:
    """Ask ``GET /api/usage`` with ``key`` until it is refused (401); fail unless that is no later than ``bound``
    seconds after ``since`` (a ``time.monotonic()`` instant taken before the revocation began), give or take a
    request's time."""
    while True:
        asked = time.monotonic()
        status = gateway.get("/api/usage", key=key).status_code
        if status == 401:
            return
        assert status == 200, status
        assert asked - since <= bound + 0.25, f"a key revoked {asked - since:.2f} s ago is still taken"
        time.sleep(0.05)
