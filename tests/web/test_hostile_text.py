"""Text a stranger chooses: control characters in every text input are refused with 400 naming the field (on
SQLite and on PostgreSQL, whose text holds no NUL), and the OAuth callback's ``error_description`` is never shown,
stored or logged."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, APP_A, GUILD, Gateway, Sandbox, cli
from tests.helpers import csrf
from tests.linkflow import admin_api, browser, finish, make_link, start

NUL = "a\x00b"


def _state_of(authorize_url: str) -> str:
    return parse_qs(urlsplit(authorize_url).query)["state"][0]


MARKER = "Call 0800 555 0199 to claim your prize"


def _carries_marker(text: str) -> bool:
    """Any piece of MARKER that a page, record or log line could carry, plain or URL-encoded (a lone "0800"
    is no proof: a client's port in an access-log line can hold it)."""
    return any(piece in text for piece in ("claim your prize", "claim%20your%20prize", "555 0199", "555%200199"))


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ("server_error", "Discord met an unexpected error (server_error)"),
        ("invalid_scope", "Discord refused the permissions asked for (invalid_scope)"),
        ("made_up_error", "Discord answered with an error this service does not know (other)"),
    ],
)
def test_the_callbacks_error_description_is_never_shown_stored_or_logged(
    gateway: Gateway, fresh: Sandbox, error: str, shown: str
) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    flow = start(link["url"])
    query = f"state={quote(_state_of(flow.authorize_url))}&error={error}&error_description={quote(MARKER)}"
    finish(flow, url=f"{gateway.proc.url}/oauth/callback?{query}")
    assert flow.result is not None and flow.result.status_code == 400
    assert shown in flow.words and not _carries_marker(flow.result.text)
    # the record, through the CLI and through the API
    listed = cli(["records", "list", "--limit", "500", "--json"], env=gateway.env).stdout
    mine = [r for r in json.loads(listed) if r.get("link_id") == link["id"]]
    assert [r["code"] for r in mine] == ["discord_error"] and shown in mine[0]["msg"], mine
    assert not _carries_marker(listed)
    one = gateway.get(f"/api/record/{mine[0]['id']}", lang="en")
    assert one.status_code == 200 and shown in one.json()["data"]["msg"] and not _carries_marker(one.text)
    assert not _carries_marker(gateway.get("/api/records", limit=500).text)
    assert not _carries_marker(gateway.proc.output())


def test_an_access_denied_callback_is_a_cancel_whatever_its_description(gateway: Gateway, fresh: Sandbox) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    flow = start(link["url"])
    query = f"state={quote(_state_of(flow.authorize_url))}&error=access_denied&error_description={quote(MARKER)}"
    finish(flow, url=f"{gateway.proc.url}/oauth/callback?{query}")
    assert flow.result is not None and flow.result.status_code == 200 and flow.outcome == "cancelled"
    assert not _carries_marker(flow.result.text)


def _named(answer: httpx.Response, name: str) -> None:
    assert answer.status_code == 400, (name, answer.status_code, answer.text[:300])
    assert name in answer.text, (name, answer.text[:300])


def test_control_characters_are_refused_in_every_text_input(gateway: Gateway, fresh: Sandbox) -> None:
    url = gateway.proc.url
    # the API's filters
    for name in ("guild_id", "developer_id", "since", "until", "cursor", "state", "code"):
        for bad in (NUL, "x\x7f", "x\x85"):
            _named(gateway.get("/api/records", **{name: bad}), name)
    _named(gateway.get("/api/usage", days="1\x00"), "days")
    # the join body
    for body, name in (
        ({"authorization": "tok", "guild_id": GUILD, "nick": NUL}, "nick"),
        ({"authorization": "tok", "guild_id": GUILD, "nick": "x\x9b"}, "nick"),
        ({"authorization": "tok", "guild_name": "https://discord.gg/abc?\x00"}, "guild_name"),
        ({"authorization": "tok\x00", "guild_id": GUILD}, "authorization"),
        ({"authorization": "tok", "guild_id": GUILD + "\x00"}, "guild_id"),
    ):
        _named(gateway.join(body), name)
    # the admin API
    for body, name in (
        ({"app_id": APP_A, "guild_id": GUILD, "title": NUL}, "title"),
        ({"app_id": APP_A, "invite": "https://discord.gg/test1?\x00"}, "invite"),
        ({"app_id": NUL, "guild_id": GUILD}, "app"),
    ):
        _named(admin_api(gateway, "POST", "/api/admin/links", json=body), name)
    _named(admin_api(gateway, "GET", "/api/admin/links", params={"app_id": NUL}), "app_id")
    # the dashboard's filters and forms
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept-Language": "en"}
    for name in ("guild_id", "link_id", "cursor"):
        _named(httpx.get(url + "/admin", params={name: NUL}, headers=bearer, timeout=30), name)
    with httpx.Client(base_url=url, timeout=30, headers={"Accept-Language": "en"}) as dashboard:
        login = dashboard.get("/admin")
        assert dashboard.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf": csrf(login.text)}).status_code == 303
        token = csrf(dashboard.get("/admin/keys").text)
        _named(dashboard.post("/admin/keys", data={"app_id": APP_A, "name": NUL, "csrf": token}), "name")
        form = {"app_id": APP_A, "guild_id": GUILD, "title": "x\x1b[31m", "csrf": token}
        _named(dashboard.post("/admin/links", data=form), "title")
    # the OAuth callback
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    state = _state_of(start(link["url"]).authorize_url)
    for query, name in (
        (f"state={quote(NUL)}", "state"),
        (f"state={quote(state)}&code={quote(NUL)}", "code"),
        (f"state={quote(state)}&error={quote(NUL)}", "error"),
        (f"state={quote(state)}&error=server_error&error_description={quote(NUL)}", "error_description"),
    ):
        page = browser().get(f"{url}/oauth/callback?{query}")
        _named(page, name)
    # nothing of it reached the database: both set-ups still answer, the PostgreSQL connections too
    assert httpx.get(url + "/readyz", timeout=30).status_code == 200
    for _ in range(8):  # every worker's connections
        assert gateway.get("/api/records", limit=1).status_code == 200
        assert httpx.get(url + "/admin", params={"guild_id": GUILD}, headers=bearer, timeout=30).status_code == 200
