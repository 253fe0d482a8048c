"""Small helpers several test files use: the join API's envelope, the dashboard form's CSRF token, a crowd of
users for the sandbox, a process's children and memory, and a clock the test moves by hand."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import WORLD

COST = re.compile(r"^\d+\.\d{2}ms$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def envelope(response: Any) -> dict[str, Any]:
    """An answer's JSON envelope, checked for its fields' order and its cost's form."""
    body = response.json()
    assert list(body)[:6] == ["status", "msg", "id", "data", "cost", "code"], body
    assert COST.match(body["cost"]), body["cost"]
    return dict(body)


def csrf(page: str) -> str:
    """The CSRF token of the dashboard form on ``page`` (it must have one)."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def crowd(n: int) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The test world plus ``n`` users, each with a token: (fixture, [(user id, token)])."""
    world = copy.deepcopy(WORLD)
    people = [(str(1300000000000010000 + i), f"fault-crowd-token-{i}") for i in range(n)]
    for user_id, token in people:
        world["users"].append(
            {
                "id": user_id,
                "username": f"crowd{user_id[-4:]}",
                "guild_count": 1,
                "tokens": [{"access_token": token, "application_id": "1100000000000000001"}],
            }
        )
    return world, people


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
