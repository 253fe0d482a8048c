"""Small helpers several test files use: the dashboard form's CSRF token, a process's children and memory,
and a clock the test moves by hand."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def csrf(page: str) -> str:
    """The CSRF token of the dashboard form on ``page`` (it must have one)."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def children(pid: int) -> list[str]:
    """The ids of the processes ``pid`` started (``serve``'s workers, multiprocessing's resource tracker)."""
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()


def rss_kib(pid: int) -> int:
    """The resident memory of ``pid`` and every process under it (``serve``'s workers), in KiB."""
    found = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    total = int(found.group(1)) if found else 0
    for listed in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in listed.read_text().split():
            total += rss_kib(int(child))
    return total


class Clock:
    """A monotonic clock that stands still until the test moves ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
