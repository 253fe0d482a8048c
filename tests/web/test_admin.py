"""The admin JSON API and the dashboard's authentication, sessions and CSRF, over real HTTP."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    APP_A,
    GUILD,
    ROLE_HIGH,
    ROLE_LOW,
    SECRETS,
    USER_IDS,
    Gateway,
    Sandbox,
    base_env,
    cli,
    own_gateway,
)
from tests.helpers import csrf
from tests.linkflow import admin_api, close_browsers, join_through, make_link
from tests.servers import free_port
from tests.store.revoked import refused_within


def test_admin_api_refuses_without_the_admin_token_and_refuses_api_keys(gateway: Gateway, fresh: Sandbox) -> None:
    url = gateway.proc.url + "/api/admin/links"
    none = httpx.get(url)
    assert none.status_code == 401 and none.json()["error"] == "admin_token_required"
    assert none.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_admin_token"
    for headers in ({"User-Token": gateway.keys["a"]}, {"Authorization": f"Bearer {gateway.keys['a']}"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 403 and refused.json()["error"] == "api_key_not_allowed"
    # authentication comes before validation: a bad body without the token is still a 401
    assert httpx.post(url, json={"nonsense": 1}).status_code == 401


def test_admin_api_creates_lists_and_disables_links(gateway: Gateway, fresh: Sandbox) -> None:
    created = admin_api(
        gateway,
        "POST",
        "/api/admin/links",
        json={"app_id": APP_A, "guild_id": GUILD, "roles": [ROLE_LOW], "max_uses": 2},
    )
    assert created.status_code == 201, created.text
    link = created.json()
    assert link["url"].endswith("/j/" + link["slug"]) and link["guild_name"] == "Test Server"
    assert link["roles"] == [{"id": ROLE_LOW, "name": "member"}] and link["doctor"]["ok"] is True
    join_through(link["url"], USER_IDS["alice"])
    close_browsers()
    one = admin_api(gateway, "GET", f"/api/admin/links/{link['id']}").json()
    assert one["uses"] == 1 and one["funnel"]["joined"] == 1 and one["funnel"]["sent_to_discord"] == 1
    listed = admin_api(gateway, "GET", "/api/admin/links", params={"app_id": APP_A}).json()["links"]
    assert link["id"] in [item["id"] for item in listed]
    disabled = admin_api(gateway, "POST", f"/api/admin/links/{link['id']}/disable").json()
    assert disabled["status"] == "link_disabled"
    by_invite = admin_api(
        gateway, "POST", "/api/admin/links", json={"app_id": APP_A, "invite": "https://discord.gg/test1"}
    )
    assert by_invite.status_code == 201 and by_invite.json()["guild_id"] == GUILD
    # the doctor's warnings come back with the link
    warned = admin_api(
        gateway, "POST", "/api/admin/links", json={"app_id": APP_A, "guild_id": GUILD, "roles": [ROLE_HIGH]}
    )
    assert warned.status_code == 201 and warned.json()["doctor"]["ok"] is False


def test_admin_api_names_the_bad_field(gateway: Gateway, fresh: Sandbox) -> None:
    cases = [
        ({"app_id": APP_A}, "exactly one of guild"),
        ({"app_id": APP_A, "guild_id": "123"}, "guild"),
        ({"app_id": APP_A, "guild_id": GUILD, "expires": "forever"}, "expires"),
        ({"app_id": APP_A, "guild_id": GUILD, "max_uses": 0}, "max_uses"),
        ({"app_id": APP_A, "guild_id": GUILD, "colour": "red"}, "colour"),
        ({"app_id": APP_A, "invite": "not an invite!"}, "invite"),
        ({"app_id": APP_A, "guild_id": GUILD, "title": "a\x00b"}, "title"),  # PostgreSQL text holds no NUL
        ({"app_id": APP_A, "guild_id": GUILD, "title": "line\nbreak"}, "title"),
    ]
    for body, field in cases:
        r = admin_api(gateway, "POST", "/api/admin/links", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] == "invalid_request" and field in r.json()["detail"], (body, r.text)
    listed = admin_api(gateway, "GET", "/api/admin/links", params={"app_id": "a\x00b"})
    assert listed.status_code == 400 and "app_id" in listed.json()["detail"], listed.text
    missing = admin_api(gateway, "GET", "/api/admin/links/lnk_missing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    # a well-formed app id or invite that does not exist is not found, not a bad field
    for body in ({"app_id": "1100000000000000999", "guild_id": GUILD}, {"app_id": APP_A, "invite": "nosuchcode"}):
        unknown = admin_api(gateway, "POST", "/api/admin/links", json=body)
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found", unknown.text
    unknown_app = admin_api(
        gateway, "GET", "/api/admin/doctor", params={"app_id": "1100000000000000999", "guild_id": GUILD}
    )
    assert unknown_app.status_code == 404 and "app" in unknown_app.json()["detail"], unknown_app.text
    doctor = admin_api(
        gateway, "GET", "/api/admin/doctor", params={"app_id": APP_A, "guild_id": GUILD, "role": ROLE_HIGH}
    )
    assert doctor.status_code == 200 and doctor.json()["ok"] is False
    assert any(c["name"] == "role admin" and not c["ok"] and "drag" in c["fix"] for c in doctor.json()["checks"])


def test_the_admin_doctor_checks_kick_members_for_access_that_ends_with_a_kick(
    gateway: Gateway, fresh: Sandbox
) -> None:
    """``on_end=kick`` adds Kick Members, which the fixture's bot lacks (a warning, with the fix); a
    link's own doctor reads the link (one that ends by removing roles is not asked about kicking)."""
    params = {"app_id": APP_A, "guild_id": GUILD, "role": ROLE_LOW}
    plain = admin_api(gateway, "GET", "/api/admin/doctor", params=params)
    assert plain.status_code == 200 and plain.json()["ok"] is True
    assert "Kick Members" not in {c["name"] for c in plain.json()["checks"]}
    kick = admin_api(gateway, "GET", "/api/admin/doctor", params={**params, "on_end": "kick"})
    assert kick.status_code == 200 and kick.json()["ok"] is False
    [check] = [c for c in kick.json()["checks"] if not c["ok"]]
    assert check["name"] == "Kick Members" and not check["blocks"] and "turn on Kick Members" in check["fix"]
    bad = admin_api(gateway, "GET", "/api/admin/doctor", params={**params, "on_end": "ban"})
    assert bad.status_code == 400 and "on_end" in bad.json()["detail"], bad.text
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW)
    own = admin_api(gateway, "GET", f"/api/admin/links/{link['id']}/doctor")
    assert own.status_code == 200 and own.json()["link_id"] == link["id"] and own.json()["ok"] is True
    assert [c["name"] for c in own.json()["checks"]][-2:] == ["Manage Roles", "role member"]
    # a link whose grants end with a kick: made (a warning), and its own doctor says the same
    body = {"app_id": APP_A, "guild_id": GUILD, "roles": [ROLE_LOW], "access_for": "30d", "on_end": "kick"}
    kicking = admin_api(gateway, "POST", "/api/admin/links", json=body)
    assert kicking.status_code == 201, kicking.text
    warned = {c["name"]: c for c in kicking.json()["doctor"]["checks"] if not c["ok"]}
    assert list(warned) == ["Kick Members"] and "turn on Kick Members" in warned["Kick Members"]["fix"]
    again = admin_api(gateway, "GET", f"/api/admin/links/{kicking.json()['id']}/doctor").json()
    assert [c["name"] for c in again["checks"] if not c["ok"]] == ["Kick Members"]
    missing = admin_api(gateway, "GET", "/api/admin/links/lnk_missing/doctor")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_dashboard_login_session_andcsrf(gateway: Gateway, fresh: Sandbox) -> None:
    with httpx.Client(
        base_url=gateway.proc.url, follow_redirects=False, timeout=30, headers={"Accept-Language": "en"}
    ) as browser:
        assert browser.get("/admin/keys").status_code == 303  # not logged in: to the login page
        login = browser.get("/admin")
        assert login.status_code == 401 and 'type="password"' in login.text  # refused; the body is the login form
        assert "Recent records" not in login.text
        assert browser.post("/admin/login", data={"token": ADMIN_TOKEN}).status_code == 403  # no CSRF token
        wrong = browser.post("/admin/login", data={"token": "nope", "csrf": csrf(login.text)})
        assert wrong.status_code == 401 and "That token is not right" in wrong.text
        ok = browser.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf": csrf(login.text)})
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert (
            "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/admin" in cookie
        )
        home = browser.get("/admin")
        assert home.status_code == 200 and "Recent records" in home.text
        keys = browser.get("/admin/keys")
        assert browser.post("/admin/keys", data={"app_id": APP_A, "name": "x"}).status_code == 403  # no CSRF
        for quota in ("²", "0", "12x", "1000001"):  # "²" passes str.isdigit() but not int()
            refused = browser.post("/admin/keys", data={"app_id": APP_A, "quota": quota, "csrf": csrf(keys.text)})
            assert refused.status_code == 400 and "quota: a whole number from 1 to 1000000" in refused.text, quota
        made = browser.post("/admin/keys", data={"app_id": APP_A, "name": "from-dashboard", "csrf": csrf(keys.text)})
        assert made.status_code == 201
        key = re.search(r'data-testid="new-key">(gg_[^<]+)<', made.text)
        assert key is not None
        SECRETS.add(key.group(1))
        assert key.group(1) not in browser.get("/admin/keys").text  # shown once
        works = gateway.join({"authorization": "x-not-a-token", "guild_id": "bad"}, key=key.group(1))
        assert works.status_code == 400  # authenticated (a bad body, not a bad key)
        listing = browser.get("/admin/keys").text
        row = next(
            m
            for m in re.finditer(
                r'data-key="(key_[0-9a-f]+)"><td>[^<]*<span[^>]*>[^<]*</span></td><td>from-dashboard', listing
            )
        )
        revoking = time.monotonic()
        revoked = browser.post(f"/admin/keys/{row.group(1)}/revoke", data={"csrf": csrf(listing)})
        assert revoked.status_code == 303
        if gateway.kind != "sqlite":  # one worker forgets it at once; the others may remember it a few seconds
            refused_within(gateway.proc.url, key.group(1), since=revoking)
        assert gateway.join({"authorization": "x", "guild_id": GUILD}, key=key.group(1)).status_code == 401
        # a session cookie from another secret key, or a tampered one, is no session
        browser.cookies.set("gg_admin", "eyJzIjoieCIsImUiOjk5OTk5OTk5OTl9.forged", path="/admin")
        assert browser.get("/admin").status_code == 401


def test_dashboard_for_scripts_with_the_admin_token(gateway: Gateway, fresh: Sandbox) -> None:
    url = gateway.proc.url + "/admin"
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {gateway.keys['a']}"}).status_code == 401
    page = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept-Language": "en"})
    assert page.status_code == 200 and "Recent records" in page.text


def test_ids_that_cannot_exist_are_404_on_every_backend(gateway: Gateway, fresh: Sandbox) -> None:
    """A NUL (which PostgreSQL's text cannot hold), a line break or a 2,000-character id in a path: the page or
    answer for something that does not exist, never a 500, whatever the database."""
    url = gateway.proc.url
    for bad in ("a%00b", "a%0Ab", "x" * 2000):
        record = gateway.get(f"/api/record/{bad}")
        assert record.status_code == 404 and record.json()["code"] == "invalid_request", (bad, record.text)
        link = admin_api(gateway, "GET", f"/api/admin/links/{bad}")
        assert link.status_code == 404 and link.json()["error"] == "not_found", (bad, link.text)
        disabled = admin_api(gateway, "POST", f"/api/admin/links/{bad}/disable")
        assert disabled.status_code == 404 and disabled.json()["error"] == "not_found", (bad, disabled.text)
        page = httpx.get(f"{url}/j/{bad}", timeout=30)
        assert page.status_code == 404 and "<html" in page.text, (bad, page.status_code)
        start = httpx.post(f"{url}/j/{bad}/start", timeout=30)
        assert start.status_code == 404 and "<html" in start.text, (bad, start.status_code)
    doctor = admin_api(gateway, "GET", "/api/admin/doctor", params={"app_id": "a\x00b", "guild_id": GUILD})
    assert doctor.status_code == 400 and "app" in doctor.json()["detail"], doctor.text


ADMIN_PATHS = {
    "/api/admin/links",
    "/api/admin/links/{link_id}",
    "/api/admin/links/{link_id}/disable",
    "/api/admin/doctor",
}


def test_with_the_admin_token_the_admin_api_is_listed_and_the_dashboard_asks_for_it(gateway: Gateway) -> None:
    schema = httpx.get(gateway.proc.url + "/openapi.json", timeout=30).json()
    assert ADMIN_PATHS <= set(schema["paths"])
    page = httpx.get(gateway.proc.url + "/admin", timeout=30)
    assert page.status_code == 401 and 'type="password"' in page.text


@pytest.mark.parametrize("token", [None, ""], ids=["unset", "empty"])
def test_without_the_admin_token_the_admin_api_and_the_dashboard_are_not_there(
    tmp_path: Path, sandbox: Sandbox, token: str | None
) -> None:
    extra = {} if token is None else {"GUILDGATE_ADMIN_TOKEN": token}
    server, key = own_gateway(
        tmp_path, sandbox, f"gateway-admin-token-{'unset' if token is None else 'empty'}.log", **extra
    )
    try:
        with httpx.Client(
            base_url=server.url, follow_redirects=False, timeout=30, headers={"Accept-Language": "en"}
        ) as browser:
            for path in ("/admin", "/admin/keys", "/admin/links", "/admin/anything"):
                page = browser.get(path)
                assert page.status_code == 404 and "<html" in page.text, (path, page.status_code)
                assert "set GUILDGATE_ADMIN_TOKEN to turn it on" in page.text and 'type="password"' not in page.text
            for sent in ("", " "):
                login = browser.post("/admin/login", data={"token": sent, "csrf": "x"})
                assert login.status_code == 404 and "gg_admin" not in login.headers.get("set-cookie", "")
            for auth in ("Bearer", "", f"Bearer {ADMIN_TOKEN}", f"Bearer {key}"):
                for method, path in (
                    ("GET", "/api/admin/links"),
                    ("POST", "/api/admin/links"),
                    ("GET", "/api/admin/doctor"),
                ):
                    answer = browser.request(method, path, headers={"Authorization": auth})
                    assert answer.status_code == 404 and answer.json()["error"] == "not_found", (path, answer.text)
                assert browser.get("/admin/keys", headers={"Authorization": auth}).status_code == 404
            made = browser.post("/admin/keys", data={"app_id": APP_A, "csrf": ""}, headers={"Authorization": "Bearer"})
            assert made.status_code == 404 and "gg_" not in made.text
            assert browser.cookies.get("gg_pre") is None  # no login form was ever offered
            listed = set(browser.get("/openapi.json").json()["paths"])
            assert "/api/wanda/discord/guild" in listed and not [p for p in listed if p.startswith("/api/admin")]
    finally:
        server.stop()


def test_a_dashboard_session_opens_nothing_once_the_token_is_unset(tmp_path: Path, sandbox: Sandbox) -> None:
    on, _ = own_gateway(tmp_path, sandbox, "gateway-admin-on-then-off.log", GUILDGATE_ADMIN_TOKEN=ADMIN_TOKEN)
    try:
        with httpx.Client(base_url=on.url, follow_redirects=False, timeout=30) as browser:
            login = browser.get("/admin")
            assert (
                browser.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf": csrf(login.text)}).status_code == 303
            )
            session = browser.cookies.get("gg_admin")
            assert session and browser.get("/admin/keys").status_code == 200
    finally:
        on.stop()
    off, _ = own_gateway(tmp_path, sandbox, "gateway-admin-off-after-on.log")  # the same database and secret key
    try:
        with httpx.Client(base_url=off.url, follow_redirects=False, timeout=30) as browser:
            keys = browser.get("/admin/keys", headers={"Cookie": f"gg_admin={session}"})
            assert keys.status_code == 404 and "gg_" not in keys.text
    finally:
        off.stop()


def test_a_short_admin_token_stops_serve_before_it_listens(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path, GUILDGATE_ADMIN_TOKEN="only-twenty-three-chars")
    result = cli(["serve", "--port", str(port)], env=env, check=False)
    assert result.returncode != 0
    assert "GUILDGATE_ADMIN_TOKEN" in result.stderr and "24 characters" in result.stderr
    assert "only-twenty-three-chars" not in result.stderr + result.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
