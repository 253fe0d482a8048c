"""Redis, the shared limiter's store, goes away while Add Guild Member is under way: Discord's answer still
decides the join. The limiter fails closed for the next call (tests/discord/test_ratelimit_redis.py), but a member
Discord added is reported joined, not unavailable."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx

from tests.conftest import GUILD, PUT, Sandbox, own_gateway
from tests.helpers import crowd
from tests.servers import start_redis


def test_redis_lost_while_discord_adds_the_member_still_reports_the_join(tmp_path: Path, fresh: Sandbox) -> None:
    world, people = crowd(2)
    fresh.reset(world)
    redis = start_redis()
    server, key = own_gateway(tmp_path, fresh, "redis-loss.log", GUILDGATE_REDIS_URL=redis.url)
    try:

        def join(token: str) -> httpx.Response:
            return httpx.post(
                f"{server.url}/api/wanda/discord/guild",
                json={"authorization": token, "guild_id": GUILD},
                headers={"User-Token": key},
                timeout=30,
            )

        # Discord adds the member, then answers 1.5 s later; Redis stops in between.
        fresh.faults({"routes": {PUT: {"latency_after_ms": 1500}}})
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(join, people[0][1])
            for _ in range(100):
                if fresh.member(GUILD, people[0][0]) is not None:
                    break
                time.sleep(0.02)
            redis.stop()
            first = answer.result()
        fresh.faults({})
        body = first.json()
        assert fresh.member(GUILD, people[0][0]) is not None
        assert (first.status_code, body["status"], body["code"]) == (200, 1, "joined"), body
        record = httpx.get(f"{server.url}/api/record/{body['id']}", headers={"User-Token": key}).json()["data"]
        assert (record["state"], record["code"]) == ("succeeded", "joined")

        # Without Redis nothing more is sent to Discord: the next join is refused, and says why.
        puts = fresh.stats()["requests"].get(PUT, 0)
        second = join(people[1][1])
        assert second.status_code == 503 and second.json()["code"] == "discord_unavailable"
        assert fresh.stats()["requests"].get(PUT, 0) == puts
        assert fresh.member(GUILD, people[1][0]) is None
    finally:
        server.stop()
        redis.stop()
