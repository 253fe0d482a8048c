"""Guard rails around join links, over real HTTP and the real CLI: a link is not made for a server where the bot
is missing or lacks a permission the link needs (unless the checks are skipped, with a warning); the doctor
names the URL it tried when Discord cannot be reached or is not at the configured base; the link page speaks of
roles only when there are some; and the funnel counts each visitor once per step."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, APP_A, GUILD, GUILD_BOTLESS, GUILD_NOPERMS, ROLE_LOW, Gateway, Sandbox, cli
from tests.linkflow import admin_api, browser, close_browsers, make_link, text_of
from tests.servers import free_port

SQLITE_ONLY = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _browsers() -> Iterator[None]:
    yield
    close_browsers()


def _link_ids(gateway: Gateway, guild: str) -> set[str]:
    rows = json.loads(cli(["links", "list", "--json"], env=gateway.env).stdout)
    return {r["id"] for r in rows if r["guild_id"] == guild}


@SQLITE_ONLY
def test_links_create_refuses_a_server_without_the_bot_or_its_permissions_unless_told_to_skip(
    gateway: Gateway, fresh: Sandbox
) -> None:
    before = {guild: _link_ids(gateway, guild) for guild in (GUILD_BOTLESS, GUILD_NOPERMS)}
    botless = cli(["links", "create", "--app", APP_A, "--guild", GUILD_BOTLESS], env=gateway.env, check=False)
    assert botless.returncode == 1, botless.stdout + botless.stderr
    assert "✗ bot in server" in botless.stdout and "scope=bot" in botless.stdout
    assert "no link was made" in botless.stderr and "--skip-checks" in botless.stderr
    noperms = cli(
        ["links", "create", "--app", APP_A, "--guild", GUILD_NOPERMS, "--role", ROLE_LOW, "--json"],
        env=gateway.env,
        check=False,
    )
    assert noperms.returncode == 1
    refused = json.loads(noperms.stdout)
    assert refused["error"] == "checks_failed"
    failed = {c["name"] for c in refused["doctor"]["checks"] if not c["ok"]}
    assert {"Create Invite", "Manage Roles"} <= failed and "Manage Roles" in refused["detail"]
    assert {guild: _link_ids(gateway, guild) for guild in before} == before  # nothing was made
    skipped = cli(
        ["links", "create", "--app", APP_A, "--guild", GUILD_BOTLESS, "--skip-checks", "--json"],
        env=gateway.env,
        check=False,
    )
    assert skipped.returncode == 0, skipped.stderr
    assert "warning" in skipped.stderr and "bot in server" in skipped.stderr
    made = json.loads(skipped.stdout)
    assert made["doctor"]["ok"] is False and made["id"] in _link_ids(gateway, GUILD_BOTLESS)


@SQLITE_ONLY
def test_the_admin_api_and_the_dashboard_refuse_the_same_unless_skip_checks(gateway: Gateway, fresh: Sandbox) -> None:
    for body in ({"app_id": APP_A, "guild_id": GUILD_BOTLESS}, {"app_id": APP_A, "invite": "noperms"}):
        refused = admin_api(gateway, "POST", "/api/admin/links", json=body)
        assert refused.status_code == 409 and refused.json()["error"] == "checks_failed", refused.text
    detail = admin_api(gateway, "POST", "/api/admin/links", json={"app_id": APP_A, "guild_id": GUILD_BOTLESS})
    assert "bot in server" in detail.json()["detail"] and "scope=bot" in detail.json()["detail"]
    skipped = admin_api(
        gateway, "POST", "/api/admin/links", json={"app_id": APP_A, "guild_id": GUILD_NOPERMS, "skip_checks": True}
    )
    assert skipped.status_code == 201 and skipped.json()["doctor"]["ok"] is False
    fine = admin_api(gateway, "POST", "/api/admin/links", json={"app_id": APP_A, "guild_id": GUILD})
    assert fine.status_code == 201 and fine.json()["doctor"]["ok"] is True
    with httpx.Client(
        base_url=gateway.proc.url, follow_redirects=False, timeout=30, headers={"Accept-Language": "en"}
    ) as admin:
        admin.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        page = admin.get("/admin/links")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        form = {"csrf": csrf.group(1), "app_id": APP_A, "guild_id": GUILD_NOPERMS, "roles": ROLE_LOW}
        no = admin.post("/admin/links", data=form)
        assert no.status_code == 409 and "Create Invite" in no.text and "no link was made" in no.text
        yes = admin.post("/admin/links", data={**form, "skip_checks": "1"})
        assert yes.status_code == 201 and "/j/" in yes.text


@SQLITE_ONLY
def test_the_doctor_names_the_url_it_tried_when_discord_is_not_there(gateway: Gateway, fresh: Sandbox) -> None:
    wrong_base = {**gateway.env, "GUILDGATE_DISCORD_API_BASE": fresh.proc.url + "/not-the-api/v10"}
    wrong = cli(["doctor", "--app", APP_A, "--guild", GUILD], env=wrong_base, check=False)
    assert wrong.returncode == 1
    tried = f"{fresh.proc.url}/not-the-api/v10/applications/@me"
    assert "✗ Discord API" in wrong.stdout and tried in wrong.stdout and "404" in wrong.stdout, wrong.stdout
    assert "GUILDGATE_DISCORD_API_BASE" in wrong.stdout
    assert "invite the bot" not in wrong.stdout and "bot in server" not in wrong.stdout  # no wrong fix
    nobody = f"http://127.0.0.1:{free_port()}/api/v10"  # nothing listens there
    down = cli(
        ["doctor", "--app", APP_A, "--guild", GUILD, "--json"],
        env={**gateway.env, "GUILDGATE_DISCORD_API_BASE": nobody},
        check=False,
    )
    assert down.returncode == 1
    checks = json.loads(down.stdout)["checks"]
    assert [c["name"] for c in checks] == ["Discord API"]
    assert f"could not reach Discord at GET {nobody}/applications/@me" in checks[0]["detail"]
    assert "reach" in checks[0]["fix"] and "GUILDGATE_DISCORD_API_BASE" in checks[0]["fix"]
    # and no link is made while Discord cannot be asked
    made = cli(
        ["links", "create", "--app", APP_A, "--guild", GUILD],
        env={**gateway.env, "GUILDGATE_DISCORD_API_BASE": nobody},
        check=False,
    )
    assert made.returncode == 1 and "Discord API" in made.stdout


@SQLITE_ONLY
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_link_page_speaks_of_roles_only_when_the_link_gives_some(
    gateway: Gateway, fresh: Sandbox, lang: str
) -> None:
    plain = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    with_roles = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW)
    roles_words = ("with the roles above", "上述身份组")
    words = text_of(browser(lang).get(plain["url"]).text)
    assert "Test Server" in words and not any(w in words for w in roles_words), words
    words = text_of(browser(lang).get(with_roles["url"]).text)
    assert any(w in words for w in roles_words), words


def test_the_funnel_counts_each_visitor_once_per_step(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    visitor = browser()
    for _ in range(3):  # reloads
        assert visitor.get(link["url"]).status_code == 200
    for _ in range(2):  # Continue twice (back, and again)
        assert "/oauth2/authorize?" in visitor.post(link["url"] + "/start").headers["location"]
    assert visitor.get(link["url"]).status_code == 200
    funnel = admin_api(gateway, "GET", f"/api/admin/links/{link['id']}").json()["funnel"]
    assert (funnel["opened"], funnel["sent_to_discord"]) == (1, 1)
    other = browser()
    other.get(link["url"])
    other.post(link["url"] + "/start")
    funnel = admin_api(gateway, "GET", f"/api/admin/links/{link['id']}").json()["funnel"]
    assert (funnel["opened"], funnel["sent_to_discord"]) == (2, 2)
    # the visitor's cookie is for this link only: another link counts it afresh
    second = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    visitor.get(second["url"])
    assert admin_api(gateway, "GET", f"/api/admin/links/{second['id']}").json()["funnel"]["opened"] == 1
