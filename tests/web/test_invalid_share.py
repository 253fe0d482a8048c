"""One API key sending junk tokens spends at most its share of the invalid-request budget
(``GUILDGATE_INVALID_REQUEST_SHARE`` of ``GUILDGATE_INVALID_REQUEST_LIMIT``): past it, its joins are answered 429
``invalid_request_share_exceeded`` with Retry-After and no record, while another key still joins and the budget
is not spent. Real gateways against the sandbox: one worker with this process's windows, and two workers
sharing a Redis of the test's own (another test's invalid requests in a shared Redis would count here)."""

from __future__ import annotations

import concurrent.futures
import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    APP_A,
    APP_B,
    GUILD,
    TOKENS,
    WORLD,
    Sandbox,
    gateway_with_keys,
)

BUDGET = 20
SHARE = 5  # 0.25 of the budget
JUNK = 16


@pytest.fixture(params=["memory-1worker", "redis-2workers"])
def small_budget(
    request: pytest.FixtureRequest, tmp_path: Path, fresh: Sandbox
) -> Iterator[tuple[str, dict[str, str]]]:
    """A gateway whose invalid-request budget is BUDGET, with keys "a" (app A, the junk sender) and "b" (app B)."""
    world: dict[str, Any] = copy.deepcopy(WORLD)
    world["rate_limits"]["invalid_requests_per_10_minutes"] = 1000  # the sandbox never bans in this test
    fresh.reset(world)
    settings = {"GUILDGATE_INVALID_REQUEST_LIMIT": str(BUDGET), "GUILDGATE_REQUEST_TIMEOUT": "10"}
    with gateway_with_keys(
        tmp_path,
        fresh,
        f"invalid-share-{request.param}",
        {"a": APP_A, "b": APP_B},
        redis=request.param.startswith("redis"),
        **settings,
    ) as (url, made):
        yield url, {**{n: k["key"] for n, k in made.items()}, **{f"{n}_id": k["id"] for n, k in made.items()}}


def _join(url: str, key: str, token: str, guild: str = GUILD) -> httpx.Response:
    return httpx.post(
        f"{url}/api/wanda/discord/guild",
        json={"authorization": token, "guild_id": guild},
        headers={"User-Token": key, "Accept-Language": "en"},
        timeout=30,
    )


def test_one_key_spends_only_its_share_and_another_key_still_joins(
    small_budget: tuple[str, dict[str, str]], fresh: Sandbox
) -> None:
    url, keys = small_budget
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # in parallel: the share holds for joins in flight too
        junk = list(pool.map(lambda i: _join(url, keys["a"], f"made-up-token-for-the-share-{i:04d}"), range(JUNK)))
    codes = [r.json()["code"] for r in junk]
    assert codes.count("token_expired") == SHARE, codes  # Discord's 401: each one spent from key a's share
    over = [r for r in junk if r.json()["code"] == "invalid_request_share_exceeded"]
    assert len(over) == JUNK - SHARE, codes
    for answer in over:
        assert answer.status_code == 429 and answer.json()["status"] == 0 and answer.json()["id"] is None
        assert 0 < float(answer.headers["retry-after"]) <= 600
        assert "share" in answer.json()["msg"]
    # past its share, key a is refused even with a good token: nothing of it reaches Discord
    assert _join(url, keys["a"], TOKENS["alice"]).json()["code"] == "invalid_request_share_exceeded"
    # the other key keeps the rest of the budget: it joins, and its own junk is still sent and answered
    joined = _join(url, keys["b"], fresh.mint("carol", app=APP_B))
    assert joined.status_code == 200 and joined.json()["code"] in ("joined", "already_member"), joined.text
    assert _join(url, keys["b"], "another-made-up-token-0001").json()["code"] == "token_expired"

    stats = fresh.stats()
    assert sum(stats["invalid_requests"].values()) == SHARE + 1  # key a's share and key b's one
    refused = httpx.get(
        f"{url}/api/records", params={"code": "invalid_request_share_exceeded"}, headers={"User-Token": keys["a"]}
    )
    assert refused.status_code == 200 and refused.json()["data"]["records"] == []  # no record for a refusal

    metrics = httpx.get(f"{url}/metrics").text
    assert keys["a"] not in metrics and keys["b"] not in metrics  # labelled by key id, never the key
    used = dict(re.findall(r'^guildgate_invalid_requests_by_spender\{spender="([^"]+)"\} ([0-9.]+)$', metrics, re.M))
    assert float(used[keys["a_id"]]) == SHARE and float(used[keys["b_id"]]) == 1 and float(used["links"]) == 0
    assert re.search(rf"^guildgate_invalid_request_share {SHARE}\.0$", metrics, re.M)
    assert re.search(rf"^guildgate_invalid_requests_used {SHARE + 1}\.0$", metrics, re.M)  # the budget is not spent

    page = httpx.get(f"{url}/admin/keys", headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept-Language": "en"})
    assert page.status_code == 200
    row = re.search(rf'<tr data-key="{keys["a_id"]}">.*?</tr>', page.text, re.S)
    assert row is not None and f'data-invalid="{SHARE}">{SHARE} / {SHARE}<' in row.group(0)
    assert "Refused by Discord, 10 min" in page.text
