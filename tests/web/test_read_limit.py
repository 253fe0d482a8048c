"""Reads have a per-key limit of their own (``GUILDGATE_READS_PER_MINUTE``, a sixth of it in any 10 s): past
it, a key's record and usage reads are answered 429 ``read_quota_exceeded`` with Retry-After, while another key
still reads and the key's joins go on. One worker with this process's windows, and two workers sharing a Redis
of the test's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import APP_A, GUILD, OUTPUT, SECRETS, TOKENS, WORLD, Sandbox, add_app, cli, gateway_env, start
from tests.servers import free_port, start_redis

PER_MINUTE = 60
READS = PER_MINUTE // 6  # in any 10 s


@pytest.fixture(params=["memory-1worker", "redis-2workers"])
def limited(request: pytest.FixtureRequest, tmp_path: Path, fresh: Sandbox) -> Iterator[tuple[str, list[str]]]:
    port = free_port()
    redis = start_redis() if request.param.startswith("redis") else None
    settings = {"GUILDGATE_READS_PER_MINUTE": str(PER_MINUTE)}
    if redis is not None:
        settings["GUILDGATE_REDIS_URL"] = redis.url
    env = gateway_env(tmp_path, fresh, port, **settings)
    for app in WORLD["applications"]:
        add_app(env, app)
    keys = []
    for _ in range(2):
        key = json.loads(cli(["keys", "create", "--app", APP_A, "--json"], env=env).stdout)["key"]
        SECRETS.add(key)
        keys.append(key)
    workers = "2" if redis is not None else "1"
    log = OUTPUT / f"gateway-read-limit-{request.param}.log"
    proc = start(
        ["serve", "--port", str(port), "--workers", workers], env=env, log=log, ready_path="/readyz", port=port
    )
    try:
        yield proc.url, keys
    finally:
        proc.stop()
        if redis is not None:
            redis.stop()


def test_a_key_past_its_reads_per_minute_gets_429_and_others_go_on(
    limited: tuple[str, list[str]], fresh: Sandbox
) -> None:
    url, (reader, other) = limited
    joined = httpx.post(
        f"{url}/api/wanda/discord/guild",
        json={"authorization": TOKENS["alice"], "guild_id": GUILD},
        headers={"User-Token": reader},
        timeout=30,
    ).json()
    assert joined["status"] == 1, joined

    def read(key: str, i: int) -> httpx.Response:
        path = ("/api/usage", "/api/records", f"/api/record/{joined['id']}")[i % 3]
        return httpx.get(url + path, headers={"User-Token": key, "Accept-Language": "en"}, timeout=30)

    answers = [read(reader, i) for i in range(READS + 3)]
    assert [a.status_code for a in answers] == [200] * READS + [429] * 3
    for over in answers[READS:]:
        body = over.json()
        assert body["code"] == "read_quota_exceeded" and body["status"] == 0 and "reads per minute" in body["msg"]
        assert 0 < float(over.headers["retry-after"]) <= 10
    assert read(other, 0).status_code == 200  # another key has its own reads
    again = httpx.post(  # the reader's joins are not reads: they go on
        f"{url}/api/wanda/discord/guild",
        json={"authorization": TOKENS["alice"], "guild_id": GUILD},
        headers={"User-Token": reader},
        timeout=30,
    ).json()
    assert again["status"] == 1 and again["code"] == "already_member", again
