"""A database held by another writer for a while: in a thread of this process, counting how often the event loop
ran meanwhile, or in another process."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


async def write_while_locked(
    path: Path, write: Callable[[], Awaitable[None]], *, seconds: float = 0.4
) -> tuple[bool, int]:
    """Run ``write()`` while another connection holds ``path``'s write lock for ``seconds``. Returns whether the
    lock had been given back when the write finished, and how many 10 ms ticks the event loop ran meanwhile."""
    other = sqlite3.connect(path, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock...
    released = threading.Event()

    def release_later() -> None:
        time.sleep(seconds)  # ...for this long
        other.commit()
        released.set()

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.ensure_future(ticker())
    try:
        threading.Thread(target=release_later).start()
        await write()
    finally:
        beat.cancel()
        other.close()
    return released.is_set(), ticks


def lock_in_another_process(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Start a process that takes ``path``'s write lock (BEGIN EXCLUSIVE), holds it ``seconds``, then gives it
    back and exits. Returns once the lock is held; the process prints "released" as it gives it back."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "locked":
        holder.kill()
        raise RuntimeError(f"the lock holder could not lock {path}")
    return holder


_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""
