"""A burst of joins to many servers, far past what the bot's global limit can send before their deadline:
the excess is answered `rate_limited` at once, before it spends an identify call, nothing draws a 429, and
every join has a finished record (issue 3). A real gateway process against the sandbox."""

from __future__ import annotations

import concurrent.futures
import copy
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import APP_A, WORLD, Sandbox, own_gateway

LIMIT = 3  # the bot's global limit, per second, at the sandbox and in guildgate
CALLERS = 30
DEADLINE = 4  # seconds: at 3 a second, about 9 joins can be sent in time


def flood_world() -> dict[str, Any]:
    world: dict[str, Any] = copy.deepcopy(WORLD)
    world["rate_limits"]["global_per_second"] = LIMIT
    app = WORLD["applications"][0]
    world["guilds"] += [
        {"id": str(1290000000000000000 + i), "name": f"flood{i}", "bots": {APP_A: ["CREATE_INSTANT_INVITE"]}}
        for i in range(CALLERS)
    ]
    world["users"] += [
        {
            "id": str(1390000000000000000 + i),
            "username": f"flood{i}",
            "guild_count": 0,
            "tokens": [{"access_token": f"flood-token-{i:03d}", "application_id": app["id"]}],
        }
        for i in range(CALLERS)
    ]
    return world


def test_a_burst_past_the_global_limit_is_refused_at_once_without_identify_calls(
    tmp_path: Path, fresh: Sandbox
) -> None:
    fresh.reset(flood_world())
    server, key = own_gateway(
        tmp_path,
        fresh,
        "global-flood.log",
        GUILDGATE_GLOBAL_RATE_LIMIT=str(LIMIT),
        GUILDGATE_REQUEST_TIMEOUT=str(DEADLINE),
        GUILDGATE_READS_PER_MINUTE="1000",  # every record is read back at once
    )
    go = threading.Barrier(CALLERS)
    try:

        def join(i: int) -> tuple[int, dict[str, Any], str | None]:
            with httpx.Client(base_url=server.url, headers={"User-Token": key}, timeout=30) as client:
                go.wait()
                r = client.post(
                    "/api/wanda/discord/guild",
                    json={"authorization": f"flood-token-{i:03d}", "guild_id": str(1290000000000000000 + i)},
                )
                return r.status_code, r.json(), r.headers.get("retry-after")

        with concurrent.futures.ThreadPoolExecutor(CALLERS) as pool:
            answers = list(pool.map(join, range(CALLERS)))
        records = [
            httpx.get(f"{server.url}/api/record/{body['id']}", headers={"User-Token": key}).json()["data"]
            for _, body, _ in answers
        ]
    finally:
        server.stop()

    stats = fresh.stats()
    assert stats["rate_limited"] == {"user": 0, "global": 0, "shared": 0}
    codes = [body["code"] for _, body, _ in answers]
    assert set(codes) <= {"joined", "rate_limited"}, codes
    joined, limited = codes.count("joined"), codes.count("rate_limited")
    assert joined >= LIMIT, codes  # the limit was used
    assert limited >= CALLERS // 2, codes  # most could not go in time
    assert all(status == 503 and retry and int(retry) >= 1 for status, body, retry in answers if body["status"] == 0)
    identified = sum(stats["responses"]["GET /users/@me"].values())
    # Those refused because the joins ahead of them could not all be sent in time spent no identify call (seen
    # here: 12 to 19 identify calls for the 30).
    assert identified < CALLERS, f"{identified} identify calls for {joined} joins"
    assert [r["state"] for r in records].count("pending") == 0
    assert sorted(r["state"] for r in records) == sorted("succeeded" if c == "joined" else "failed" for c in codes)
    print(f"global flood: {joined} joined, {limited} rate_limited, {identified} identify calls")
