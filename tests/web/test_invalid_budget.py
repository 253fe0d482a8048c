"""Every token answering 401: the deployment stops at its invalid-request budget, is never banned, and every
caller is answered at once with a clear code (issue 3). A real gateway process against the sandbox, whose
Cloudflare-style ban would trip at 30 invalid requests in 10 minutes. The one key may spend the whole budget here
(``GUILDGATE_INVALID_REQUEST_SHARE=1``, shares off); a key's share is test_invalid_share.py's."""

from __future__ import annotations

import concurrent.futures
import copy
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import GUILD, WORLD, Sandbox, own_gateway

BUDGET = 20
CALLERS = 60
DEADLINE = 20


def test_tokens_answering_401_stop_at_the_budget_without_a_ban(tmp_path: Path, fresh: Sandbox) -> None:
    world: dict[str, Any] = copy.deepcopy(WORLD)
    world["rate_limits"]["invalid_requests_per_10_minutes"] = 30
    fresh.reset(world)
    server, key = own_gateway(
        tmp_path,
        fresh,
        "invalid-budget.log",
        GUILDGATE_INVALID_REQUEST_LIMIT=str(BUDGET),
        GUILDGATE_INVALID_REQUEST_SHARE="1",
        GUILDGATE_REQUEST_TIMEOUT=str(DEADLINE),
    )
    try:

        def join(i: int) -> tuple[float, int, dict[str, Any], str | None]:
            started = time.monotonic()
            r = httpx.post(
                f"{server.url}/api/wanda/discord/guild",
                json={"authorization": f"revoked-or-made-up-token-{i:04d}", "guild_id": GUILD},
                headers={"User-Token": key},
                timeout=30,
            )
            return time.monotonic() - started, r.status_code, r.json(), r.headers.get("retry-after")

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(join, range(CALLERS)))
    finally:
        server.stop()

    stats = fresh.stats()
    sent_invalid = sum(stats["invalid_requests"].values())
    assert sent_invalid <= BUDGET, f"{sent_invalid} invalid requests reached Discord against a budget of {BUDGET}"
    assert stats["banned"] == []
    codes = [a["code"] for _, _, a, _ in answers]
    refused = {"token_expired", "invalid_oauth_token"}  # Discord's 401 for the token, in the contract's words
    assert set(codes) <= refused | {"discord_unavailable"}, set(codes)
    assert sum(code in refused for code in codes) == sent_invalid
    stopped = [(status, retry) for _, status, a, retry in answers if a["code"] == "discord_unavailable"]
    assert len(stopped) == CALLERS - sent_invalid
    assert all(status == 503 and retry is not None and float(retry) > 0 for status, retry in stopped)
    slowest = max(elapsed for elapsed, _, _, _ in answers)
    assert slowest < DEADLINE / 2, f"a caller waited {slowest:.2f}s"  # answered at once, not at the deadline
    print(f"invalid budget: {sent_invalid} invalid requests sent, {len(stopped)} answered 503, slowest {slowest:.2f}s")
