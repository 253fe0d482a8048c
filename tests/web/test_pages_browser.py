"""The pages in a real browser: Playwright driving Debian's Chromium headless against a running guildgate and the
sandbox. Screenshots go to test-output/screenshots/ (``make screenshots`` copies them to docs/screenshots/)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from guildgate.core.grants import GrantTerms, OnEnd
from guildgate.services.runtime import Services
from guildgate.settings import load_settings
from tests.conftest import (
    ADMIN_TOKEN,
    APP_A,
    GUILD,
    OUTPUT,
    ROLE_LOW,
    SECRET_KEY,
    USER_IDS,
    Gateway,
    Sandbox,
    one_worker_gateway,
)
from tests.linkflow import make_link

CHROMIUM = "/usr/bin/chromium"
SHOTS = OUTPUT / "screenshots"
# Without the background-networking flags Chromium keeps dialling Google's hosts, refused on a closed network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# One set-up is enough for the browser: the HTTP-level link tests run on both.
pytestmark = pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run 'make test' (it installs Debian's chromium) or apt-get install chromium"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
    page = context.new_page()
    problems = watch(page)
    yield page
    context.close()
    assert not problems, f"CSP violations or broken resources: {problems}"


def watch(page: Page) -> list[str]:
    """CSP violations and console errors, and any failed sub-resource (a page's own 4xx status is on purpose)."""
    problems: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    def response(r: Any) -> None:
        if r.status >= 400 and r.request.resource_type != "document":
            problems.append(f"{r.status} {r.url}")

    page.on("console", console)
    page.on("response", response)
    return problems


def shot(page: Page, name: str, **kwargs: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, **kwargs)


def consent_on_discord(page: Page, user: str, *, allow: bool = True) -> None:
    """The sandbox's authorize page: pick the signed-in user, then Authorize or Cancel."""
    expect(page.get_by_role("heading")).to_contain_text("wants to access your account")
    page.select_option("#user_id", USER_IDS[user])
    page.get_by_role("button", name="Authorize" if allow else "Cancel").click()


def test_a_person_consents_and_lands_in_the_server(gateway: Gateway, fresh: Sandbox, page: Page) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW, "--title", "Spring cohort")
    page.goto(link["url"])
    expect(page.get_by_test_id("server-name")).to_have_text("Test Server")
    expect(page.get_by_test_id("roles")).to_contain_text("@member")
    shot(page, "link-en")
    page.get_by_test_id("continue").click()
    consent_on_discord(page, "alice")
    expect(page.get_by_test_id("result-title")).to_have_text("You're in Test Server")
    expect(page.get_by_test_id("open-discord")).to_have_attribute("href", f"https://discord.com/channels/{GUILD}")
    assert "/oauth/done" in page.url and "code=" not in page.url
    shot(page, "result-joined-en")
    member = fresh.member(GUILD, USER_IDS["alice"])
    assert member is not None and member["roles"] == [ROLE_LOW]
    grants = [g for g in fresh.state()["grants"] if g["user_id"] == USER_IDS["alice"]]
    assert any(g["revoked"] for g in grants)  # the token this join was given, revoked at once
    # the visible language switch
    page.get_by_role("link", name="中文").click()
    expect(page.get_by_test_id("result-title")).to_have_text("你已加入 Test Server")
    shot(page, "result-joined-zh")


def test_the_link_page_in_chinese_and_on_a_phone(gateway: Gateway, fresh: Sandbox, chromium: Browser) -> None:
    link = make_link(
        gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW, "--max-uses", "50", "--expires", "7d"
    )
    context = chromium.new_context(
        locale="zh-CN",
        extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"},
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
    )
    page = context.new_page()
    problems = watch(page)
    page.goto(link["url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Test Server")
    expect(page.get_by_test_id("continue")).to_have_text("使用 Discord 继续")
    expect(page.locator(".meta")).to_contain_text("剩余 50 次")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    shot(page, "link-zh-mobile")
    context.close()
    assert not problems


def test_cancel_on_discord(gateway: Gateway, fresh: Sandbox, page: Page) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    page.goto(link["url"])
    page.get_by_test_id("continue").click()
    consent_on_discord(page, "alice", allow=False)
    expect(page.get_by_test_id("result-title")).to_have_text("You cancelled on Discord")
    expect(page.get_by_role("link", name="Open the link again")).to_have_attribute("href", f"/j/{link['slug']}")
    shot(page, "result-cancelled-en")
    assert fresh.member(GUILD, USER_IDS["alice"]) is None


def test_expired_and_used_up_links(gateway: Gateway, fresh: Sandbox, page: Page) -> None:
    used = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--max-uses", "1")
    page.goto(used["url"])
    page.get_by_test_id("continue").click()
    consent_on_discord(page, "alice")
    expect(page.get_by_test_id("result-title")).to_have_text("You're in Test Server")
    page.goto(used["url"])  # the next person
    expect(page.get_by_test_id("result-title")).to_have_text("This join link has been used up")
    shot(page, "link-used-up-en")
    page.goto(used["url"] + "?lang=zh")
    expect(page.get_by_test_id("result-title")).to_have_text("该加入链接的使用次数已用完")

    expired = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--expires", "1s")
    page.wait_for_timeout(1200)
    page.goto(expired["url"] + "?lang=en")
    expect(page.get_by_test_id("result-title")).to_have_text("This join link has expired")
    expect(page.get_by_test_id("next-step")).to_contain_text("Ask whoever gave you the link")
    shot(page, "link-expired-en")


def test_forged_and_replayed_state(gateway: Gateway, fresh: Sandbox, page: Page) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/oauth/callback" in r.url else None)
    page.goto(link["url"])
    page.get_by_test_id("continue").click()
    consent_on_discord(page, "carol")
    expect(page.get_by_test_id("result-title")).to_have_text("You're in Test Server")
    assert len(callbacks) == 1
    page.goto(callbacks[0])  # replay the callback
    expect(page.get_by_test_id("result-title")).to_have_text("This sign-in can't be used")
    expect(page.locator("main")).to_contain_text("already used")
    shot(page, "state-replayed-en")
    forged = re.sub(r"state=[^&]+", "state=eyJuIjoieCIsImwiOiJ5IiwiZSI6OTk5OTk5OTk5OX0.forged", callbacks[0])
    response = page.goto(forged)
    assert response is not None and response.status == 400
    expect(page.locator("main")).to_contain_text("didn't come from this site")
    page.get_by_role("link", name="中文").click()
    expect(page.get_by_test_id("result-title")).to_have_text("此次登录无法使用")
    shot(page, "state-forged-zh")


def test_admin_login_and_a_filter(gateway: Gateway, fresh: Sandbox, page: Page) -> None:
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--title", "Browser test link")
    for user in ("alice", "mallory"):
        page.goto(link["url"])
        page.get_by_test_id("continue").click()
        consent_on_discord(page, user)
        page.get_by_test_id("result-title").wait_for()
    page.goto(gateway.proc.url + "/admin")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.fill("#token", "not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("That token is not right.")
    page.fill("#token", ADMIN_TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    page.select_option("select[name=source]", "link")
    page.select_option("select[name=link_id]", link["id"])
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_test_id("records").locator("tbody tr")
    expect(rows).to_have_count(2)
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.code)")) == ["banned", "joined"]
    shot(page, "admin-overview-en")
    page.get_by_role("link", name="Links").click()
    funnel = page.locator(f"tr[data-link='{link['id']}'] [data-testid=funnel]")
    expect(funnel).to_contain_text("1 joined")
    expect(funnel).to_contain_text("1 banned")
    shot(page, "admin-links-en")
    page.get_by_role("link", name="中文").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("链接")
    shot(page, "admin-links-zh")


def test_the_api_docs_render_their_operations_under_their_csp(gateway: Gateway, page: Page) -> None:
    """Swagger UI from this origin only: the page shows the operations, with no CSP violation or failed file."""
    page.goto(gateway.proc.url + "/docs")
    expect(page.locator('[data-path="/api/wanda/discord/guild"]').first).to_be_visible()
    expect(page.locator('[data-path="/api/records"]').first).to_be_visible()
    page.locator('[data-path="/api/wanda/discord/guild"]').first.click()
    expect(page.get_by_role("button", name="Try it out").first).to_be_visible()
    shot(page, "api-docs")


async def _grants_for_the_pictures(database_url: str, sandbox: Sandbox) -> list[str]:
    """Three grants as the service makes them: two ending in 2 and 5 days, and a kick the fixture's bot may not do
    (no Kick Members), ended by hand so that it is end_failed with Discord's reason."""
    svc = Services.build(load_settings(database_url=database_url, secret_key=SECRET_KEY, discord_api_base=sandbox.api))
    try:
        app = await svc.apps.credentials(APP_A)
        now = datetime.now(UTC)
        made = []
        for user, days, ref, on_end in (
            ("bob", 2, "sub_1Q2w3E", OnEnd.REMOVE_ROLES),
            ("alice", 5, "order_8841", OnEnd.REMOVE_ROLES),
            ("carol", 20, "trial_17", OnEnd.KICK),
        ):
            terms = GrantTerms(ends_at=now + timedelta(days=days, hours=3), on_end=on_end, external_ref=ref)
            result = await svc.grants.create(
                app=app, app_id=APP_A, guild_id=GUILD, user_id=USER_IDS[user], roles=(ROLE_LOW,), terms=terms
            )
            made.append(result.grant.id)
        await svc.grants.end(app=None, app_id=None, grant_id=made[-1])
        return made
    finally:
        await svc.close()


def test_the_grants_page_and_the_overview_with_grants_ending_soon(
    gateway: Gateway, fresh: Sandbox, page: Page, tmp_path: Path
) -> None:
    """On a gateway of its own (its grants would count in other tests' overlap rule): the overview shows the
    grants ending within 7 days and the end failure with its reason; the Grants page lists them with their
    actions, in English and in Chinese."""
    own = one_worker_gateway(tmp_path, fresh, "browser-grants")
    try:
        make_link(own, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW)  # the page names the role as links do
        for user in ("alice", "carol"):
            answer = own.join({"authorization": fresh.mint(user), "guild_id": GUILD})
            assert answer.json()["code"] == "joined", answer.text
        made = _grants_for_the_pictures(own.env["GUILDGATE_DATABASE_URL"], fresh)
        with ThreadPoolExecutor(1) as thread:  # Playwright's own event loop runs in this one
            soon, later, failed = thread.submit(asyncio.run, made).result()
        page.goto(own.proc.url + "/admin")
        page.fill("#token", ADMIN_TOKEN)
        page.get_by_role("button", name="Log in").click()
        ending = page.get_by_test_id("ending-soon")
        expect(ending.locator("tbody tr")).to_have_count(2)
        expect(ending).to_contain_text(soon)
        expect(ending).to_contain_text(later)
        failures = page.get_by_test_id("end-failures")
        expect(failures).to_contain_text(failed)
        expect(failures.get_by_test_id("last-error")).not_to_be_empty()
        page.get_by_test_id("ending-soon").scroll_into_view_if_needed()
        shot(page, "admin-overview-grants-en")
        page.get_by_role("link", name="Grants").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Grants")
        rows = page.get_by_test_id("grants").locator("tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator(f"tr[data-grant='{failed}'] [data-testid=last-error]")).to_contain_text("Why it could")
        expect(page.locator(f"tr[data-grant='{soon}'] [data-testid=ends-at]")).to_contain_text("in 2d 2h")
        expect(page.locator(f"tr[data-grant='{soon}'] [data-testid=roles]")).to_have_text("@member")
        shot(page, "admin-grants-en")
        page.select_option("select[name=state]", "end_failed")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(1)
        page.get_by_role("link", name="中文").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("访问授权")
        shot(page, "admin-grants-zh")
    finally:
        own.proc.stop()


def test_a_link_that_gives_access_for_30_days_says_so_before_and_after(
    gateway: Gateway, fresh: Sandbox, page: Page, tmp_path: Path
) -> None:
    """The link page and the result page say how long access lasts (on a gateway of its own: the grant it makes
    would count in other tests' overlap rule)."""
    own = one_worker_gateway(tmp_path, fresh, "browser-access")
    try:
        body = {"app_id": APP_A, "guild_id": GUILD, "roles": [ROLE_LOW], "title": "30-day pass", "access_for": "30d"}
        made = httpx.post(
            own.proc.url + "/api/admin/links", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )
        assert made.status_code == 201, made.text
        page.goto(made.json()["url"])
        expect(page.get_by_test_id("access")).to_contain_text("Access for 30 days")
        shot(page, "link-access-en")
        page.get_by_test_id("continue").click()
        consent_on_discord(page, "alice")
        expect(page.get_by_test_id("result-title")).to_have_text("You're in Test Server")
        expect(page.locator("main")).to_contain_text("Access for 30 days")
        shot(page, "result-access-en")
    finally:
        own.proc.stop()
