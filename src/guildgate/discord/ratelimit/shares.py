"""Each caller's share of the invalid-request budget (``GUILDGATE_INVALID_REQUEST_SHARE`` of
``GUILDGATE_INVALID_REQUEST_LIMIT``): one API key — or the join links, together — sending junk tokens spends at
most its share, and every other key keeps the rest.

A join made for a spender (``key:<key id>``, or ``links``) first takes one use in the spender's sliding 10-minute
window (``Windows``: this process's, or Redis's for every worker), at most its share; that use stands for the
join's calls in flight, as the limiter's budget counts requests in flight. Each answer from Discord that counts
as invalid (401, 403, a 429 not of scope ``shared``) is noted against the join (``note_answer``, called by
``calls.Caller``); when the join ends, a join that had none gives its use back, and one that had more than one
takes one more use for each. Past its share, a spender's join is refused before any call:
``invalid_request_share_exceeded`` (429), with the time until its oldest invalid request leaves the window.
A share of 1 turns this off: any key may spend the whole budget, which the limiter still holds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from contextvars import ContextVar, Token
from typing import Final

from guildgate.core.errors import DiscordUnavailableError, InvalidShareExceededError
from guildgate.discord.ratelimit.model import INVALID_WINDOW
from guildgate.discord.ratelimit.stores import Windows

log = logging.getLogger("guildgate.discord")

LINKS: Final = "links"  # the spender every join link's joins count against, together
_UNCAPPED: Final = 1_000_000_000  # a limit no window reaches: a use that is only counted

_SPENDING: ContextVar[Spending | None] = ContextVar("guildgate_spending", default=None)


def key_spender(key_id: str) -> str:
    return f"key:{key_id}"


def counts_as_invalid(status: int, scope: str | None) -> bool:
    """What Discord counts towards its ban of the IP (and the limiter towards its budget)."""
    return status in (401, 403) or (status == 429 and scope != "shared")


def note_answer(status: int, scope: str | None) -> None:
    """Note an answer from Discord against the join under way in this task, if any."""
    if counts_as_invalid(status, scope):
        spending = _SPENDING.get()
        if spending is not None:
            spending.invalid += 1


class InvalidShares:
    def __init__(self, windows: Windows, *, limit: int, share: float) -> None:
        self.windows = windows
        self.allowed = max(1, math.floor(limit * share))  # invalid requests per spender in 10 minutes
        self.off = share >= 1

    async def spend(self, spender: str) -> Spending:
        """A use of ``spender``'s share for one join (``async with`` it around the join); InvalidShareExceededError
        when the share is spent."""
        key, use = _window(spender), os.urandom(12).hex()
        if self.off:
            return Spending(None, key, use)
        wait = await self.windows.window_take(key, self.allowed, INVALID_WINDOW, use=use)
        if wait is not None:
            raise InvalidShareExceededError(
                f"{self.allowed} invalid requests (401/403/429 answers) in 10 minutes, this key's share of the "
                "deployment's budget",
                retry_after=max(wait, 1.0),
            )
        return Spending(self.windows, key, use)

    async def used(self, spender: str) -> int:
        """Invalid requests ``spender`` has had answered in the last 10 minutes, and its joins under way."""
        return await self.windows.window_count(_window(spender), INVALID_WINDOW)


class Spending:
    """One join's use of a share: ``note_answer`` counts the join's invalid answers while it is entered."""

    __slots__ = ("_key", "_token", "_use", "_windows", "invalid")

    def __init__(self, windows: Windows | None, key: str, use: str) -> None:
        self._windows, self._key, self._use = windows, key, use
        self._token: Token[Spending | None] | None = None
        self.invalid = 0

    async def __aenter__(self) -> Spending:
        self._token = _SPENDING.set(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._token is not None:
            _SPENDING.reset(self._token)
            self._token = None
        # settled even when the request is cancelled: a use kept by mistake would count for 10 minutes
        try:
            await asyncio.shield(self._settle())
        except DiscordUnavailableError as exc:  # the shared store went away after the calls: the join's answer stands
            log.warning("the invalid-request share could not be settled: %s", exc)

    async def _settle(self) -> None:
        if self._windows is None:  # shares are off
            return
        if not self.invalid:
            await self._windows.window_give_back(self._key, self._use)
        for _ in range(self.invalid - 1):
            await self._windows.window_take(self._key, _UNCAPPED, INVALID_WINDOW)


def _window(spender: str) -> str:
    return f"invalid:{spender}"
