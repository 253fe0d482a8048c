"""A database held by another process's writer for a while, and how often the event loop ran meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


def write_while_locked(path: Path, write: Callable[[], Awaitable[None]], *, seconds: float = 0.4) -> tuple[bool, int]:
    """Run ``write()`` while another connection holds ``path``'s write lock for ``seconds``. Returns whether the
    lock had been given back when the write finished, and how many 10 ms ticks the event loop ran meanwhile."""
    other = sqlite3.connect(path, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock...
    released = threading.Event()

    def release_later() -> None:
        time.sleep(seconds)  # ...for this long
        other.commit()
        released.set()

    async def go() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.ensure_future(ticker())
        threading.Thread(target=release_later).start()
        await write()
        beat.cancel()
        return ticks

    try:
        ticks = asyncio.run(go())
    finally:
        other.close()
    return released.is_set(), ticks
