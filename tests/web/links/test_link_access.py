"""Links that give access for a time, over HTTP through the sandbox's consent page: the link page and the result
page say how long, each person gets one grant through the link (going through again while it is active gives its
roles back, no second grant, no new time), and after it ended the link refuses them with ``access_ended`` before
anything is added at Discord."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import APP_A, GUILD, ROLE_LOW, USER_IDS, Gateway, Sandbox, cli
from tests.grantdb import grants_of, operator
from tests.linkflow import admin_api, browser, cli_link, join_through, make_link, text_of

SQLITE_ONLY = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)
ADD = "PUT /guilds/{guild_id}/members/{user_id}"


def _admin_link(*, gateway: Gateway, **fields: Any) -> dict[str, Any]:
    r = admin_api(gateway, "POST", "/api/admin/links", json={"app_id": APP_A, "guild_id": GUILD, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _in_seconds(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _records(gateway: Gateway, link_id: str) -> list[dict[str, Any]]:
    out = cli(["records", "list", "--limit", "500", "--json"], env=gateway.env).stdout
    return [r for r in json.loads(out) if r.get("link_id") == link_id]


def test_a_link_for_20_seconds_makes_one_grant_per_person(gateway: Gateway, fresh: Sandbox) -> None:
    alice = USER_IDS["alice"]
    link = cli_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW, "--access-for", "20s")
    assert (link["access_for"], link["access_until"], link["access_open"], link["on_end"]) == (
        "20s",
        None,
        False,
        "remove_roles",
    )
    words = text_of(browser().get(link["url"]).text)
    assert "Access for 20 seconds" in words and "When it ends, the roles are taken back." in words
    assert "访问权限为期 20 秒" in text_of(browser("zh").get(link["url"]).text)

    flow = join_through(link["url"], alice)
    assert flow.outcome == "joined", flow.words
    assert "Access for 20 seconds" in flow.words and "Ends " in flow.words
    [record] = _records(gateway, link["id"])
    [grant] = [g for g in grants_of(gateway, alice) if g.link_id == link["id"]]
    joined_at = datetime.fromisoformat(record["finished_at"])
    assert grant.ends_at is not None and abs(grant.ends_at - (joined_at + timedelta(seconds=20))) < timedelta(seconds=3)
    assert grant.roles == (ROLE_LOW,) and grant.source == "link" and grant.record_id == record["id"]

    # the role taken away by hand; through the link again while the grant is active: the role is back, the same
    # grant, no new time
    r = httpx.delete(f"{fresh.proc.url}/_sandbox/guilds/{GUILD}/members/{alice}/roles/{ROLE_LOW}")
    assert r.status_code == 200, r.text
    again = join_through(link["url"], alice)
    assert again.outcome == "already_member", again.words
    member = fresh.member(GUILD, alice)
    assert member is not None and ROLE_LOW in member["roles"]
    mine = [g for g in grants_of(gateway, alice) if g.link_id == link["id"]]
    assert [(g.id, g.ends_at) for g in mine] == [(grant.id, grant.ends_at)]

    # ended: the link refuses the person before anything is added at Discord
    ended = operator(gateway, "end", grant.id)
    assert ended["state"] == "ended"
    adds = fresh.stats()["requests"].get(ADD, 0)
    uses = admin_api(gateway, "GET", f"/api/admin/links/{link['id']}").json()["uses"]
    refused = join_through(link["url"], alice)
    assert refused.outcome == "access_ended" and refused.result is not None
    assert refused.result.status_code == 403
    assert "has ended" in refused.words
    assert fresh.stats()["requests"].get(ADD, 0) == adds
    assert admin_api(gateway, "GET", f"/api/admin/links/{link['id']}").json()["uses"] == uses
    codes = [r["code"] for r in _records(gateway, link["id"])]
    assert sorted(codes) == ["access_ended", "already_member", "joined"], codes
    assert [g.id for g in grants_of(gateway, alice) if g.link_id == link["id"]] == [grant.id]


@SQLITE_ONLY
def test_until_a_date_and_with_no_end_date_in_both_languages(gateway: Gateway, fresh: Sandbox) -> None:
    until = _admin_link(access_until="2027-01-05T00:00:00Z", gateway=gateway)
    assert until["access_until"] == "2027-01-05T00:00:00Z" and until["on_end"] == "remove_roles"
    assert "Access until 5 January 2027 (UTC)" in text_of(browser().get(until["url"]).text)
    assert "访问权限至 2027 年 1 月 5 日（UTC）" in text_of(browser("zh").get(until["url"]).text)

    opened = _admin_link(gateway=gateway, roles=[ROLE_LOW], access_open=True, on_end="keep")
    assert "Access with no end date" in text_of(browser().get(opened["url"]).text)
    flow = join_through(opened["url"], USER_IDS["carol"])
    assert flow.outcome == "joined" and "Access with no end date" in flow.words
    [grant] = [g for g in grants_of(gateway, USER_IDS["carol"]) if g.link_id == opened["id"]]
    assert grant.ends_at is None and grant.on_end.value == "keep"

    # a fixed end that has come: the link refuses everyone with access_ended, nothing added
    soon = _admin_link(gateway=gateway, roles=[ROLE_LOW], access_until=_in_seconds(3))
    time.sleep(4)
    adds = fresh.stats()["requests"].get(ADD, 0)
    late = join_through(soon["url"], USER_IDS["alice"])
    assert late.outcome == "access_ended" and "has ended" in late.words
    assert fresh.stats()["requests"].get(ADD, 0) == adds and fresh.member(GUILD, USER_IDS["alice"]) is None

    plain = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW)
    assert plain["on_end"] is None and "Access" not in text_of(browser().get(plain["url"]).text)
    flow = join_through(plain["url"], USER_IDS["alice"])
    assert flow.outcome == "joined" and "Access" not in flow.words
    assert [g for g in grants_of(gateway, USER_IDS["alice"]) if g.link_id == plain["id"]] == []


@SQLITE_ONLY
def test_the_access_options_are_checked_with_clear_errors(gateway: Gateway, fresh: Sandbox) -> None:
    base = ["links", "create", "--app", APP_A, "--guild", GUILD]
    cases = {
        ("--access-for", "30d", "--access-open"): "give at most one of --access-for, --access-until and --access-open",
        ("--on-end", "kick"): "--on-end only goes with --access-for, --access-until or --access-open",
        ("--access-for", "soon"): "--access-for: 'soon' is not a duration",
        ("--access-until", "2020-01-01T00:00:00Z"): "--access-until is not in the future",
        ("--access-until", "tomorrow"): "--access-until: 'tomorrow' is not an RFC 3339 time",
        ("--access-open", "--on-end", "ban"): "--on-end: 'ban' is not one of remove_roles, kick, keep",
    }
    for args, message in cases.items():
        run = cli([*base, *args], env=gateway.env, check=False)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)
    body = {"app_id": APP_A, "guild_id": GUILD}
    for extra, message in (
        ({"access_for": "30d", "access_until": "2099-01-01T00:00:00Z"}, "give at most one of"),
        ({"on_end": "kick"}, "on_end: only with an access option"),
        ({"access_until": "2020-01-01T00:00:00Z"}, "access_until is not in the future"),
    ):
        r = admin_api(gateway, "POST", "/api/admin/links", json={**body, **extra})
        assert r.status_code == 400 and message in r.json()["detail"], r.text
    made = cli_link(gateway, "--app", APP_A, "--guild", GUILD, "--access-for", "2w", "--on-end", "kick")
    text = cli(["links", "show", made["id"]], env=gateway.env).stdout
    assert "access: for 2 weeks, then kick" in text
    listed = cli(["links", "list"], env=gateway.env).stdout
    assert "for 2 weeks, then kick" in listed
