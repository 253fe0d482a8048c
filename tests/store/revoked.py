"""Checking, over HTTP, that a revoked API key is refused within the bound: each process remembers a key it found
valid for ``KEY_CACHED_FOR`` seconds (store/keys.py), so a key revoked by another process (the CLI, another
worker) is refused by every process at most that long after the revocation, not necessarily at once."""

from __future__ import annotations

import time

import httpx

from guildgate.store.keys import KEY_CACHED_FOR


def refused_within(url: str, key: str, *, since: float, bound: float = KEY_CACHED_FOR) -> None:
    """Once ``bound`` seconds have passed since ``since`` (a ``time.monotonic()`` instant taken before the
    revocation began, with no request made with the key in between), ``key`` is refused by whichever worker
    answers: ``GET /api/usage`` is asked eight times, and each answer must be 401."""
    time.sleep(max(0.0, since + bound + 0.05 - time.monotonic()))
    for _ in range(8):
        answer = httpx.get(url + "/api/usage", headers={"User-Token": key}, timeout=30)
        assert answer.status_code == 401, f"a key revoked {time.monotonic() - since:.2f} s ago: {answer.status_code}"
