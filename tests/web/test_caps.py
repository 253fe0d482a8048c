"""The operator's velocity caps: joins per minute to one server and through one link, so a leaked key or link
cannot flood a server. Answered 429 ``velocity_capped`` with Retry-After (API) or a plain-words page (link)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    APP_A,
    GUILD,
    TOKENS,
    USER_IDS,
    Gateway,
    Sandbox,
    one_worker_gateway,
)
from tests.linkflow import admin_api, browser, join_through, make_link, text_of


@pytest.fixture
def capped(tmp_path: Path, fresh: Sandbox) -> Iterator[Gateway]:
    gateway = one_worker_gateway(
        tmp_path, fresh, "caps", GUILDGATE_GUILD_JOINS_PER_MINUTE="4", GUILDGATE_LINK_JOINS_PER_MINUTE="1"
    )
    yield gateway
    gateway.proc.stop()


def test_per_link_and_per_server_caps(capped: Gateway, fresh: Sandbox) -> None:
    link = make_link(capped, "--app", APP_A, "--guild", GUILD)
    assert join_through(link["url"], USER_IDS["alice"]).outcome == "joined"  # server 1/4, link 1/1
    second = join_through(link["url"], USER_IDS["carol"])  # server 2/4, link over its cap
    assert second.outcome == "velocity_capped" and "Too many people are joining right now" in second.words
    assert "Try again in a minute" in second.words
    assert fresh.member(GUILD, USER_IDS["carol"]) is None
    answers = [capped.join({"authorization": TOKENS[user], "guild_id": GUILD}) for user in ("bob", "erin", "carol")]
    assert [a.status_code for a in answers[:2]] == [200, 200]  # server 3/4 and 4/4 (whatever Discord then says)
    over = answers[2]
    assert over.status_code == 429 and over.json()["code"] == "velocity_capped"
    assert int(over.headers["retry-after"]) >= 1 and over.json()["id"]  # recorded, with the time to wait
    assert fresh.member(GUILD, USER_IDS["carol"]) is None
    english = capped.join({"authorization": TOKENS["carol"], "guild_id": GUILD}, headers={"Accept-Language": "en"})
    assert "the operator's cap" in english.json()["msg"]
    record = httpx.get(f"{capped.proc.url}/api/record/{over.json()['id']}", headers={"User-Token": capped.keys["a"]})
    assert record.json()["data"]["code"] == "velocity_capped"


def test_a_flood_of_starts_on_a_link_is_capped_too(capped: Gateway, fresh: Sandbox) -> None:
    # A leaked link pressed over and over: each start writes a sign-in state and counts as sent to Discord. At a
    # cap of 1 join a minute, a link may start 10 consent flows a minute; the 11th lands on the "too many people"
    # page, writes nothing and sends no one to Discord.
    link = make_link(capped, "--app", APP_A, "--guild", GUILD)
    base, slug = link["url"].rsplit("/j/", 1)
    client = browser()
    places = [browser().post(f"{base}/j/{slug}/start").headers["location"] for _ in range(11)]  # 11 visitors
    assert all("/oauth2/authorize?" in place for place in places[:10]), places[:10]
    assert places[10].startswith("/oauth/done?"), places[10]
    page = client.get(capped.proc.url + places[10])
    assert "Too many people are joining right now" in text_of(page.text)
    funnel = admin_api(capped, "GET", f"/api/admin/links/{link['id']}").json()["funnel"]
    assert funnel["sent_to_discord"] == 10
    other = make_link(capped, "--app", APP_A, "--guild", GUILD)  # another link has its own count
    assert "/oauth2/authorize?" in client.post(other["url"] + "/start").headers["location"]
