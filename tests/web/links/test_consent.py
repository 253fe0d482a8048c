"""Join links over real HTTP: the page, Discord's consent (the sandbox's authorize page), the callback, the result,
and what the sandbox then shows (membership, roles, the token revoked). Runs on both set-ups."""

from __future__ import annotations

import concurrent.futures
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import (
    APP_A,
    GUILD,
    GUILD_BOTLESS,
    ROLE_HIGH,
    ROLE_LOW,
    USER_IDS,
    WORLD,
    Gateway,
    Sandbox,
    add_app,
    cli,
)
from tests.linkflow import browser, cli_link, consent, finish, join_through, make_link, start, text_of

# The flow's store-dependent parts (single-use state, atomic uses, records) run on both set-ups; the pages'
# words, headers and the doctor do not depend on the store and run on SQLite only (to keep the suite short).
SQLITE_ONLY = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)


def _grants(sandbox: Sandbox, user: str) -> list[dict[str, object]]:
    return [g for g in sandbox.state()["grants"] if g["user_id"] == USER_IDS[user]]


def _link_records(gateway: Gateway, link_id: str) -> list[dict[str, object]]:
    out = cli(["records", "list", "--limit", "500", "--json"], env=gateway.env).stdout
    import json

    return [r for r in json.loads(out) if r.get("link_id") == link_id]


def test_a_person_joins_with_the_links_role_and_the_token_is_revoked(gateway: Gateway, fresh: Sandbox) -> None:
    link = cli_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW, "--title", "Spring cohort")
    assert link["url"] == f"{gateway.proc.url}/j/{link['slug']}"
    assert link["doctor"]["ok"] is True, link["doctor"]
    page = browser().get(link["url"])
    words = text_of(page.text)
    assert "Test Server" in words and "@member" in words and "Spring cohort" in words
    assert "Continue with Discord" in words

    flow = start(link["url"])
    query = parse_qs(urlsplit(flow.authorize_url).query)
    assert query["scope"] == ["identify guilds.join"] and query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [f"{gateway.proc.url}/oauth/callback"]
    finish(consent(flow, USER_IDS["alice"]))

    assert flow.result is not None and flow.result.status_code == 200
    assert flow.outcome == "joined"
    assert "You're in Test Server" in flow.words and "@member" in flow.words
    assert f'href="https://discord.com/channels/{GUILD}"' in flow.result.text
    member = fresh.member(GUILD, USER_IDS["alice"])
    assert member is not None and member["roles"] == [ROLE_LOW]
    minted = [g for g in _grants(fresh, "alice") if g["token_fingerprint"] != _fixture_fingerprint("alice")]
    assert minted and all(g["revoked"] for g in minted), minted
    records = _link_records(gateway, link["id"])
    assert [(r["source"], r["code"], r["user_id"]) for r in records] == [("link", "joined", USER_IDS["alice"])]


def _fixture_fingerprint(user: str) -> str:
    import hashlib

    from tests.conftest import TOKENS

    return hashlib.sha256(TOKENS[user].encode()).hexdigest()[:12]


@SQLITE_ONLY
def test_an_existing_member_gets_the_role_after_the_204(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW)
    assert fresh.member(GUILD, USER_IDS["bob"])["roles"] == []  # type: ignore[index]
    flow = join_through(link["url"], USER_IDS["bob"])
    assert flow.outcome == "already_member"
    assert "You were already in Test Server" in flow.words and "@member" in flow.words
    assert fresh.member(GUILD, USER_IDS["bob"])["roles"] == [ROLE_LOW]  # type: ignore[index]


@SQLITE_ONLY
def test_cancel_on_discord_changes_nothing_and_says_so(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    flow = join_through(link["url"], USER_IDS["alice"], action="cancel")
    assert flow.result is not None and flow.result.status_code == 200
    assert flow.outcome == "cancelled" and "You cancelled on Discord" in flow.words
    assert f'href="/j/{link["slug"]}"' in flow.result.text  # try again
    assert fresh.member(GUILD, USER_IDS["alice"]) is None
    assert [r["code"] for r in _link_records(gateway, link["id"])] == ["cancelled"]


def test_replayed_forged_and_foreign_states_get_a_clear_page(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    flow = finish(consent(start(link["url"]), USER_IDS["alice"]))
    assert flow.outcome == "joined"
    # the same callback again, same browser: the state is spent
    again = finish(flow, url=flow.callback_url)
    assert again.result is not None and again.result.status_code == 400
    assert "This sign-in can't be used" in again.words and "already used" in again.words
    # a state we never signed
    forged = flow.callback_url.split("state=")[0] + "state=eyJuIjoiYSIsImwiOiJiIiwiZSI6OTk5OTk5OTk5OX0.AAAA"
    bad = finish(type(flow)(client=browser()), url=forged)
    assert bad.result is not None and bad.result.status_code == 400 and "didn't come from this site" in bad.words
    # a genuine callback URL opened in another browser (no flow cookie)
    other = consent(start(link["url"]), USER_IDS["carol"])
    stolen = finish(type(flow)(client=browser()), url=other.callback_url)
    assert stolen.result is not None and "started in another browser" in stolen.words
    assert fresh.member(GUILD, USER_IDS["carol"]) is None
    # no state at all, and a missing result: still pages, never a 5xx
    assert httpx.get(gateway.proc.url + "/oauth/callback").status_code == 303
    assert httpx.get(gateway.proc.url + "/oauth/done?r=garbage").status_code == 400


def test_max_uses_one_lets_one_person_in_and_refuses_the_next(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--max-uses", "1")
    first = join_through(link["url"], USER_IDS["alice"])
    assert first.outcome == "joined"
    page = browser().get(link["url"], follow_redirects=True)
    assert page.status_code == 410 and "This join link has been used up" in text_of(page.text)
    assert fresh.member(GUILD, USER_IDS["carol"]) is None


def test_max_uses_holds_under_concurrency(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--max-uses", "1")
    users = ["alice", "carol"]
    flows = [consent(start(link["url"]), USER_IDS[u]) for u in users]  # both consented, neither came back yet
    with concurrent.futures.ThreadPoolExecutor(len(flows)) as pool:
        done = list(pool.map(finish, flows))
    assert sorted(f.outcome for f in done) == ["joined", "link_used_up"]
    members = [u for u in users if fresh.member(GUILD, USER_IDS[u]) is not None]
    assert len(members) == 1


@SQLITE_ONLY
def test_a_refused_join_gives_the_use_back(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--max-uses", "1")
    banned = join_through(link["url"], USER_IDS["mallory"])
    assert banned.outcome == "banned" and "You can't join Test Server" in banned.words
    assert "banned" in banned.words
    assert join_through(link["url"], USER_IDS["alice"]).outcome == "joined"


@SQLITE_ONLY
def test_expired_and_disabled_links_say_so(gateway: Gateway, fresh: Sandbox) -> None:
    expiring = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--expires", "1s")
    flow = start(expiring["url"])  # opened in time, consent comes back too late
    time.sleep(1.2)
    late = finish(consent(flow, USER_IDS["alice"]))
    assert late.outcome == "link_expired" and "This join link has expired" in late.words
    assert fresh.member(GUILD, USER_IDS["alice"]) is None
    page = browser().get(expiring["url"], follow_redirects=True)
    assert page.status_code == 410 and "expired" in text_of(page.text)

    disabled = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    cli(["links", "disable", disabled["id"]], env=gateway.env)
    page = browser("zh-CN").get(disabled["url"], follow_redirects=True)
    assert page.status_code == 410 and "该加入链接已被停用" in text_of(page.text)
    missing = browser().get(gateway.proc.url + "/j/nope-not-a-link")
    assert missing.status_code == 404 and "doesn't exist" in text_of(missing.text)


@SQLITE_ONLY
def test_discord_unavailable_is_a_plain_words_page(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    flow = consent(start(link["url"]), USER_IDS["alice"])
    fresh.faults({"routes": {"PUT /guilds/{guild_id}/members/{user_id}": {"error_rate": 1.0, "status": 502}}})
    finish(flow)
    assert flow.outcome == "discord_unavailable" and "Discord is not answering" in flow.words
    assert flow.result is not None and flow.result.status_code == 400


@SQLITE_ONLY
def test_pages_speak_both_languages_and_switch(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW)
    zh = browser("zh-CN,zh;q=0.9")
    assert "邀请你加入" in text_of(zh.get(link["url"]).text)
    switched = zh.get(link["url"] + "?lang=en")
    assert "You're invited to join" in text_of(switched.text)
    assert "You're invited to join" in text_of(zh.get(link["url"]).text)  # remembered
    flow = join_through(link["url"], USER_IDS["alice"], lang="zh-CN")
    assert "你已加入 Test Server" in flow.words
    assert flow.result is not None
    done_url = str(flow.result.url)
    assert "You're in Test Server" in text_of(flow.client.get(done_url + "&lang=en").text)


@SQLITE_ONLY
def test_every_page_has_the_security_headers(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    flow = join_through(link["url"], USER_IDS["alice"])
    assert flow.result is not None
    for response in (browser().get(link["url"]), flow.result, browser().get(gateway.proc.url + "/admin")):
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert "<script" not in response.text and " style=" not in response.text
    assert flow.result.headers["cache-control"] == "no-store"


@SQLITE_ONLY
def test_doctor_names_each_problem_with_its_fix(gateway: Gateway, fresh: Sandbox) -> None:
    ok = cli(["doctor", "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW], env=gateway.env)
    assert "all checks passed" in ok.stdout and "✗" not in ok.stdout
    high = cli(["doctor", "--app", APP_A, "--guild", GUILD, "--role", ROLE_HIGH], env=gateway.env, check=False)
    assert high.returncode == 1 and "✗ role admin" in high.stdout and "drag" in high.stdout
    locked = cli(
        ["doctor", "--app", APP_A, "--guild", "1200000000000000002", "--role", ROLE_LOW], env=gateway.env, check=False
    )
    assert locked.returncode == 1
    assert "✗ Create Invite" in locked.stdout and "✗ Manage Roles" in locked.stdout
    botless = cli(["doctor", "--app", APP_A, "--guild", GUILD_BOTLESS], env=gateway.env, check=False)
    assert botless.returncode == 1 and "✗ bot in server" in botless.stdout and "scope=bot" in botless.stdout
    mismatched = {**WORLD["applications"][0], "client_id": "1100000000000000201", "name": "Wrong token app"}
    add_app(gateway.env, mismatched)
    wrong = cli(["doctor", "--app", "1100000000000000201", "--guild", GUILD], env=gateway.env, check=False)
    assert (
        wrong.returncode == 1 and "✗ application" in wrong.stdout and f"belongs to application {APP_A}" in wrong.stdout
    )
    bad = cli(["doctor", "--app", APP_A, "--guild", "12"], env=gateway.env, check=False)
    assert bad.returncode == 2 and "guild" in bad.stderr and "snowflake" in bad.stderr


def test_links_cli_lists_the_funnel(gateway: Gateway, fresh: Sandbox) -> None:
    link = cli_link(gateway, "--app", APP_A, "--guild", GUILD)
    join_through(link["url"], USER_IDS["alice"])
    join_through(link["url"], USER_IDS["mallory"])
    browser().get(link["url"])
    import json

    rows = json.loads(cli(["links", "list", "--json"], env=gateway.env).stdout)
    funnel = next(r for r in rows if r["id"] == link["id"])["funnel"]
    assert funnel == {"opened": 3, "sent_to_discord": 2, "joined": 1, "already_member": 0, "failed": {"banned": 1}}
    bad = cli(["links", "create", "--app", APP_A, "--guild", GUILD, "--expires", "soon"], env=gateway.env, check=False)
    assert bad.returncode == 2 and "expires" in bad.stderr and "7d" in bad.stderr
    assert cli(["links", "disable", "lnk_nope"], env=gateway.env, check=False).returncode == 2


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
@SQLITE_ONLY
def test_a_link_cannot_be_used_for_another_server(gateway: Gateway, fresh: Sandbox, lang: str) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    flow = start(link["url"], browser(lang))
    # the state names the link; the link names the server: nothing in the callback can point elsewhere
    tampered = flow.authorize_url.replace(GUILD, GUILD_BOTLESS)
    assert tampered == flow.authorize_url  # the server is not even in the URL
    finish(consent(flow, USER_IDS["alice"]))
    assert fresh.member(GUILD, USER_IDS["alice"]) is not None
    assert fresh.member(GUILD_BOTLESS, USER_IDS["alice"]) is None
