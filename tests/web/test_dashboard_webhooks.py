"""The dashboard's Webhooks page over HTTP: logged in through the login form (a session cookie and CSRF tokens,
as a browser does), against a running ``serve`` (SQLite, the real sender) and a receiver on 127.0.0.1."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, APP_A, SECRETS, Gateway, Sandbox, one_worker_gateway
from tests.helpers import csrf
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def hooked(session_dir: Path, sandbox: Sandbox) -> Iterator[Gateway]:
    home = session_dir / "dashboard-webhooks"
    home.mkdir(exist_ok=True)
    gateway = one_worker_gateway(
        home,
        sandbox,
        "dashboard-webhooks",
        GUILDGATE_WEBHOOK_ALLOW_INSECURE="1",
        GUILDGATE_WEBHOOK_RETRY_SCHEDULE="0.2",
    )
    yield gateway
    gateway.proc.stop()


@pytest.fixture
def browser(hooked: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hooked.proc.url, headers={"Accept-Language": "en"}, timeout=30) as client:
        login = client.get("/admin")
        assert client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf": csrf(login.text)}).status_code == 303
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def secret_on(page: str) -> str:
    found = re.search(r'data-testid="new-secret">.*?<p class="secret">(whsec_[A-Za-z0-9+/=]+)</p>', page, re.S)
    assert found, page[:3000]
    SECRETS.add(found.group(1))
    return found.group(1)


def endpoint_panel(page: str, url: str) -> str:
    """The panel of the endpoint with ``url``, and its id."""
    for panel in page.split('<div class="panel" data-endpoint="')[1:]:
        if f"<h2>{html.escape(url)}</h2>" in panel:
            return panel
    raise AssertionError(f"no endpoint {url} on the page")


def add(browser: httpx.Client, url: str, *types: str) -> tuple[str, str, str]:
    """Add through the form: (endpoint id, secret, the answer page)."""
    page = browser.get("/admin/webhooks").text
    form = {"csrf": csrf(page), "app_id": APP_A, "url": url, **{f"event.{t}": "1" for t in types}}
    made = browser.post("/admin/webhooks", data=form)
    assert made.status_code == 201, made.text[:2000]
    endpoint_id = endpoint_panel(made.text, url).split('"', 1)[0]
    return endpoint_id, secret_on(made.text), made.text


def test_the_page_is_in_the_nav_and_needs_a_session(hooked: Gateway, browser: httpx.Client) -> None:
    home = browser.get("/admin").text
    assert 'href="/admin/webhooks"' in home
    anonymous = httpx.get(hooked.proc.url + "/admin/webhooks", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin"
    no_csrf = browser.post("/admin/webhooks", data={"app_id": APP_A, "url": "http://127.0.0.1:9/x"})
    assert no_csrf.status_code == 403
    assert "http://127.0.0.1:9/x" not in browser.get("/admin/webhooks").text


def test_add_shows_the_secret_once_then_test_shows_the_delivery(browser: httpx.Client, receiver: Receiver) -> None:
    url = receiver.url("/dash")
    receiver.fail_first["/dash"] = 1
    endpoint_id, secret, _ = add(browser, url)
    receiver.secrets.append(secret)
    later = browser.get("/admin/webhooks").text
    assert secret not in later and secret[6:] not in later  # shown once
    page = browser.get("/admin/webhooks").text
    tested = browser.post(f"/admin/webhooks/{endpoint_id}/test", data={"csrf": csrf(page)})
    assert tested.status_code == 200 and "webhook.test" in tested.text
    event_id = re.search(r"webhook\.test (evt_[a-z2-7]{26})", tested.text)
    assert event_id, tested.text[:2000]
    receiver.wait(lambda: [m for m in receiver.got("/dash") if m.status == 204], about="the retried test event")
    assert all(m.verified[secret] for m in receiver.got("/dash"))

    def both_attempts() -> str:
        panel = endpoint_panel(browser.get("/admin/webhooks").text, url)
        return panel if 'data-status="500"' in panel and 'data-status="204"' in panel else ""

    panel = receiver.wait(both_attempts, about="both attempts on the page")
    assert event_id.group(1) in panel and "webhook.test" in panel


def test_disable_says_so_and_enable_turns_it_back(browser: httpx.Client, receiver: Receiver) -> None:
    url = receiver.url("/switch")
    endpoint_id, _, page = add(browser, url, "join.succeeded", "grant.ended")
    assert "join.succeeded, grant.ended" in endpoint_panel(page, url)
    page = browser.get("/admin/webhooks").text
    off = browser.post(f"/admin/webhooks/{endpoint_id}/disable", data={"csrf": csrf(page)}, follow_redirects=True)
    panel = endpoint_panel(off.text, url)
    assert 'data-testid="disabled"' in panel and "Disabled since" in panel
    assert f'action="/admin/webhooks/{endpoint_id}/enable"' in panel
    on = browser.post(f"/admin/webhooks/{endpoint_id}/enable", data={"csrf": csrf(off.text)}, follow_redirects=True)
    assert 'data-testid="disabled"' not in endpoint_panel(on.text, url)


def test_rotate_shows_the_new_secret_once(browser: httpx.Client, receiver: Receiver) -> None:
    url = receiver.url("/rotate")
    endpoint_id, old, page = add(browser, url)
    rotated = browser.post(f"/admin/webhooks/{endpoint_id}/rotate", data={"csrf": csrf(page)})
    new = secret_on(rotated.text)
    assert new != old and new not in browser.get("/admin/webhooks").text


def test_refusals_are_named_on_the_page(browser: httpx.Client) -> None:
    page = browser.get("/admin/webhooks").text
    bad = browser.post(
        "/admin/webhooks", data={"csrf": csrf(page), "app_id": "1100000000000009999", "url": "http://127.0.0.1:9/x"}
    )
    assert bad.status_code in (400, 404) and "1100000000000009999" in bad.text
    unknown = browser.post("/admin/webhooks/whe_0000000000000000/disable", data={"csrf": csrf(page)})
    assert unknown.status_code == 404 and "whe_0000000000000000" in unknown.text


def test_the_page_reads_in_chinese(browser: httpx.Client) -> None:
    page = browser.get("/admin/webhooks?lang=zh").text
    assert "添加端点" in page and "事件类型" in page
