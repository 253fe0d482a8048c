"""The dashboard's Grants page and the overview's grant panels, over HTTP against a running ``serve`` (SQLite) and
the sandbox. Grants are made the way the service makes them (``services.grants`` in this process, on the
gateway's database, the bot giving the roles at the sandbox); the page's End and Extend are form posts with the
session and its CSRF token, as a browser sends them."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from guildgate.core.grants import Grant, GrantState, GrantTerms, OnEnd
from guildgate.services.runtime import Services
from guildgate.settings import load_settings
from tests.conftest import (
    ADMIN_TOKEN,
    APP_A,
    GUILD,
    GUILD_NOPERMS,
    ROLE_LOW,
    SECRET_KEY,
    USER_IDS,
    Gateway,
    Sandbox,
    one_worker_gateway,
)
from tests.helpers import csrf

BOB, ALICE, CAROL = USER_IDS["bob"], USER_IDS["alice"], USER_IDS["carol"]  # bob is in the server from the start


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox) -> Iterator[Gateway]:
    home: Path = tmp_path_factory.mktemp("dashboard-grants")
    gateway = one_worker_gateway(home, sandbox, "dashboard-grants")
    yield gateway
    gateway.proc.stop()


@pytest.fixture
async def svc(dash: Gateway, fresh: Sandbox) -> AsyncIterator[Services]:
    """The service as ``serve`` builds it, on the gateway's database, in this process."""
    settings = load_settings(
        database_url=dash.env["GUILDGATE_DATABASE_URL"], secret_key=SECRET_KEY, discord_api_base=fresh.api
    )
    services = Services.build(settings)
    yield services
    await services.close()


@pytest.fixture
async def admin(dash: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in dashboard session."""
    async with httpx.AsyncClient(
        base_url=dash.proc.url, follow_redirects=False, timeout=30, headers={"Accept-Language": "en"}
    ) as browser:
        login = await browser.get("/admin")
        logged_in = await browser.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf": csrf(login.text)})
        assert logged_in.status_code == 303
        yield browser


def join(dash: Gateway, sandbox: Sandbox, user: str) -> None:
    answer = dash.join({"authorization": sandbox.mint(user), "guild_id": GUILD})
    assert answer.json()["code"] in ("joined", "already_member"), answer.text


async def grant(svc: Services, user_id: str, *, days: float, ref: str, on_end: OnEnd = OnEnd.REMOVE_ROLES) -> Grant:
    app = await svc.apps.credentials(APP_A)
    terms = GrantTerms(ends_at=datetime.now(UTC) + timedelta(days=days), on_end=on_end, external_ref=ref)
    result = await svc.grants.create(
        app=app, app_id=APP_A, guild_id=GUILD, user_id=user_id, roles=(ROLE_LOW,), terms=terms
    )
    assert result.created and result.grant.state is GrantState.ACTIVE
    return result.grant


def shown(page: str) -> list[str]:
    """The grant ids the Grants page lists, in order."""
    return re.findall(r'<tr data-grant="(grt_[0-9a-f]+)" data-state=', page)


def row(page: str, grant_id: str) -> str:
    found = re.search(rf'<tr data-grant="{grant_id}".*?</tr>', page, re.S)
    assert found, f"{grant_id} is not on the page"
    return found.group(0)


async def test_the_grants_page_lists_grants_with_their_filters_and_the_overview_shows_those_ending_soon(
    dash: Gateway, fresh: Sandbox, svc: Services, admin: httpx.AsyncClient
) -> None:
    join(dash, fresh, "alice")
    soon = await grant(svc, BOB, days=3, ref="sub_list_soon")
    later = await grant(svc, ALICE, days=20, ref="sub_list_later", on_end=OnEnd.KEEP)
    page = await admin.get("/admin/grants")
    assert page.status_code == 200 and "Grants" in page.text
    assert shown(page.text)[:2] == [later.id, soon.id]  # newest first
    bob_row = row(page.text, soon.id)
    assert ROLE_LOW in bob_row and 'data-state="active"' in bob_row and "sub_list_soon" in bob_row
    assert soon.ends_at is not None and soon.ends_at.strftime("%Y-%m-%d %H:%M:%S") in bob_row
    assert re.search(r"in 2d 23h|in 3d", bob_row), bob_row
    filtered = {
        "user_id": BOB,
        "external_ref": "sub_list_later",
        "state": "ended",
        "absent": "yes",
        "guild_id": GUILD_NOPERMS,
    }
    expected = {"user_id": {soon.id}, "external_ref": {later.id}, "state": set(), "absent": set(), "guild_id": set()}
    for name, value in filtered.items():
        ids = set(shown((await admin.get("/admin/grants", params={name: value})).text)) & {soon.id, later.id}
        assert ids == expected[name], (name, value, ids)
    both = (await admin.get("/admin/grants", params={"absent": "no", "guild_id": GUILD, "state": "active"})).text
    assert {soon.id, later.id} <= set(shown(both))
    # the filter form keeps what was chosen
    assert (
        'value="sub_list_later"' in (await admin.get("/admin/grants", params={"external_ref": "sub_list_later"})).text
    )
    bad = await admin.get("/admin/grants", params={"external_ref": "a\x00b"})
    assert bad.status_code == 400 and "external_ref: no control characters" in bad.text
    # the overview: the grant ending in 3 days is there, the one in 20 days is not
    overview = (await admin.get("/admin")).text
    panel = overview[overview.index('data-testid="ending-soon"') :]
    panel = panel[: panel.index("</div>")]
    assert "Grants ending in the next 7 days" in panel and soon.id in panel and later.id not in panel
    # the Chinese page
    assert "访问授权" in (await admin.get("/admin/grants", headers={"Accept-Language": "zh"})).text
    # without a session: to the login page, and nothing listed
    async with httpx.AsyncClient(base_url=dash.proc.url, timeout=30) as stranger:
        anonymous = await stranger.get("/admin/grants")
    assert anonymous.status_code == 303 and soon.id not in anonymous.text
    for made in (soon, later):  # ended without a change at Discord: the next tests' roles are theirs alone
        await svc.grants.end(app=None, app_id=None, grant_id=made.id, on_end=OnEnd.KEEP)


async def test_end_on_the_page_ends_the_grant_once_and_takes_its_role_away(
    dash: Gateway, fresh: Sandbox, svc: Services, admin: httpx.AsyncClient
) -> None:
    made = await grant(svc, BOB, days=10, ref="sub_end")
    member = fresh.member(GUILD, BOB)
    assert member is not None and ROLE_LOW in member["roles"]
    page = (await admin.get("/admin/grants", params={"user_id": BOB})).text
    assert (await admin.post(f"/admin/grants/{made.id}/end", data={"on_end": ""})).status_code == 403  # no CSRF token
    ended = await admin.post(
        f"/admin/grants/{made.id}/end", data={"csrf": csrf(page), "on_end": "", "back": f"/admin/grants?user_id={BOB}"}
    )
    assert ended.status_code == 303 and ended.headers["location"] == f"/admin/grants?user_id={BOB}"
    after = (await admin.get(ended.headers["location"])).text
    assert 'data-state="ended"' in row(after, made.id) and "revoked" in row(after, made.id)
    assert 'action="/admin/grants/' + made.id + '/end"' not in after  # an ended grant has no End button
    got = await svc.grants.get(app_id=None, grant_id=made.id)
    assert got.state is GrantState.ENDED and got.end_reason is not None and got.end_reason.value == "revoked"
    member = fresh.member(GUILD, BOB)
    assert member is not None and ROLE_LOW not in member["roles"]
    # ending it again changes nothing at Discord
    again = await admin.post(f"/admin/grants/{made.id}/end", data={"csrf": csrf(page)})
    assert again.status_code == 303
    assert fresh.stats()["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 1}
    assert fresh.stats()["kicks"] == {}
    # a bad choice or an unknown grant is named
    refused = await admin.post(f"/admin/grants/{made.id}/end", data={"csrf": csrf(page), "on_end": "ban"})
    assert refused.status_code == 400 and "on_end: one of remove_roles, kick, keep" in refused.text
    unknown = await admin.post("/admin/grants/grt_0000000000000000/end", data={"csrf": csrf(page)})
    assert unknown.status_code == 404


async def test_extend_on_the_page_moves_the_end(
    dash: Gateway, fresh: Sandbox, svc: Services, admin: httpx.AsyncClient
) -> None:
    join(dash, fresh, "alice")
    made = await grant(svc, ALICE, days=2, ref="sub_extend")
    assert made.ends_at is not None
    token = csrf((await admin.get("/admin/grants")).text)
    by = await admin.post(f"/admin/grants/{made.id}/extend", data={"csrf": token, "by": "7d", "until": ""})
    assert by.status_code == 303
    moved = await svc.grants.get(app_id=None, grant_id=made.id)
    assert moved.ends_at == made.ends_at + timedelta(days=7) and moved.state is GrantState.ACTIVE
    until = await admin.post(f"/admin/grants/{made.id}/extend", data={"csrf": token, "until": "2031-01-05T10:00:00Z"})
    assert until.status_code == 303
    assert (await svc.grants.get(app_id=None, grant_id=made.id)).ends_at == datetime(2031, 1, 5, 10, tzinfo=UTC)
    assert "2031-01-05 10:00:00" in row((await admin.get("/admin/grants")).text, made.id)
    for form, said in (
        ({"by": "7d", "until": "2031-01-05T10:00:00Z"}, "give exactly one of by"),
        ({}, "give exactly one of by"),
        ({"by": "7 days"}, "by: '7 days' is not a duration"),
        ({"until": "tomorrow"}, "until: 'tomorrow' is not an RFC 3339 time"),
    ):
        refused = await admin.post(f"/admin/grants/{made.id}/extend", data={"csrf": token, **form})
        assert refused.status_code == 400 and said in html.unescape(refused.text), (form, refused.text[-2000:])
    assert (await svc.grants.get(app_id=None, grant_id=made.id)).ends_at == datetime(2031, 1, 5, 10, tzinfo=UTC)
    await svc.grants.end(app=None, app_id=None, grant_id=made.id, on_end=OnEnd.KEEP)
    ended = await admin.post(f"/admin/grants/{made.id}/extend", data={"csrf": token, "by": "1d"})
    assert ended.status_code == 409


async def test_an_end_discord_refuses_is_end_failed_with_its_reason_on_the_page_and_the_overview(
    dash: Gateway, fresh: Sandbox, svc: Services, admin: httpx.AsyncClient
) -> None:
    """The fixture's bot may not kick (no Kick Members): ending a kick grant fails for good, and the page says
    why, as the doctor does (tests/core/test_doctor.py)."""
    join(dash, fresh, "carol")
    made = await grant(svc, CAROL, days=5, ref="sub_kick", on_end=OnEnd.KICK)
    page = (await admin.get("/admin/grants")).text
    assert (await admin.post(f"/admin/grants/{made.id}/end", data={"csrf": csrf(page)})).status_code == 303
    failed = await svc.grants.get(app_id=None, grant_id=made.id)
    assert failed.state is GrantState.END_FAILED and failed.last_error
    assert fresh.member(GUILD, CAROL) is not None and fresh.stats()["kicks"] == {}
    listed = row((await admin.get("/admin/grants", params={"state": "end_failed"})).text, made.id)
    assert 'data-state="end_failed"' in listed and "Why it could not end" in listed
    assert failed.last_error in html.unescape(listed)
    assert f'action="/admin/grants/{made.id}/end"' in listed  # it can be ended again by hand
    overview = (await admin.get("/admin")).text
    assert 'data-testid="end-failures"' in overview and "Grants that could not be ended" in overview
    panel = overview[overview.index('data-testid="end-failures"') :]
    assert made.id in panel[: panel.index("</div>")]
    # ended again by hand with another on_end: done, and gone from the failures
    retried = await admin.post(f"/admin/grants/{made.id}/end", data={"csrf": csrf(page), "on_end": "remove_roles"})
    assert retried.status_code == 303
    assert (await svc.grants.get(app_id=None, grant_id=made.id)).state is GrantState.ENDED
    assert fresh.stats()["role_removals"] == {f"{GUILD}/{CAROL}/{ROLE_LOW}": 1}
    assert made.id not in (await admin.get("/admin")).text
