"""Reads have a per-key limit of their own (``GUILDGATE_READS_PER_MINUTE``, a sixth of it in any 10 s): past
it, a key's record and usage reads are answered 429 ``read_quota_exceeded`` with Retry-After, while another key
still reads and the key's joins go on. One worker with this process's windows, and two workers sharing a Redis
of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import APP_A, GUILD, TOKENS, Sandbox, gateway_with_keys

PER_MINUTE = 60
READS = PER_MINUTE // 6  # in any 10 s


@pytest.fixture(params=["memory-1worker", "redis-2workers"])
def limited(request: pytest.FixtureRequest, tmp_path: Path, fresh: Sandbox) -> Iterator[tuple[str, list[str]]]:
    with gateway_with_keys(
        tmp_path,
        fresh,
        f"read-limit-{request.param}",
        {"r1": APP_A, "r2": APP_A},
        redis=request.param.startswith("redis"),
        GUILDGATE_READS_PER_MINUTE=str(PER_MINUTE),
    ) as (url, made):
        yield url, [made["r1"]["key"], made["r2"]["key"]]


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
