"""Driving a join link over plain HTTP the way a browser does (cookies, redirects, the sandbox's authorize form)."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, Gateway, cli


def cli_link(gateway: Gateway, *args: str) -> dict[str, Any]:
    """``guildgate links create --json ARGS``: the operator's way."""
    out = cli(["links", "create", "--json", *args], env=gateway.env).stdout
    return dict(json.loads(out))


_OPTIONS = {"--app": "app_id", "--guild": "guild_id", "--invite": "invite", "--max-uses": "max_uses"}


def make_link(gateway: Gateway, *args: str) -> dict[str, Any]:
    """The same link as ``cli_link(ARGS)``, made through the admin JSON API (no CLI process start-up)."""
    body: dict[str, Any] = {"roles": []}
    for name, value in zip(args[::2], args[1::2], strict=True):
        if name == "--role":
            body["roles"].append(value)
        else:
            key = _OPTIONS.get(name, name.removeprefix("--"))
            body[key] = int(value) if key == "max_uses" else value
    r = admin_api(gateway, "POST", "/api/admin/links", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def text_of(page: str) -> str:
    """The visible words of a page's <main>, whitespace collapsed."""
    main = page.split("<main", 1)[-1].split("</main>", 1)[0]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main.split(">", 1)[-1]))).strip()


@dataclass
class Flow:
    client: httpx.Client
    authorize_url: str = ""
    callback_url: str = ""
    result: httpx.Response | None = None

    @property
    def outcome(self) -> str:
        assert self.result is not None
        found = re.search(r'data-outcome="([^"]+)"', self.result.text)
        return found.group(1) if found else ""

    @property
    def words(self) -> str:
        assert self.result is not None
        return text_of(self.result.text)


_OPEN: list[httpx.Client] = []


def browser(lang: str = "en") -> httpx.Client:
    """A fresh 'browser' (its own cookie jar); closed by ``close_browsers`` after each test."""
    client = httpx.Client(follow_redirects=False, timeout=30, headers={"Accept-Language": lang})
    _OPEN.append(client)
    return client


def close_browsers() -> None:
    while _OPEN:
        _OPEN.pop().close()


def start(url: str, client: httpx.Client | None = None) -> Flow:
    """Open the link page and press Continue: returns the flow at Discord's authorize page."""
    c = client or browser()
    page = c.get(url)
    assert page.status_code == 200, page.text[:500]
    base, slug = url.rsplit("/j/", 1)
    r = c.post(f"{base}/j/{slug}/start")
    assert r.status_code == 303, r.text[:500]
    return Flow(client=c, authorize_url=r.headers["location"])


def consent(flow: Flow, user_id: str, *, action: str = "authorize") -> Flow:
    """On the sandbox's authorize page, sign in as ``user_id`` and press Authorize (or Cancel)."""
    c = flow.client
    page = c.get(flow.authorize_url)
    assert page.status_code == 200, page.text[:500]
    fields = {
        k: html.unescape(v) for k, v in re.findall(r"<input type='hidden' name='([^']*)' value='([^']*)'>", page.text)
    }
    fields.update(user_id=user_id, action=action)
    r = c.post(flow.authorize_url.split("?", 1)[0], data=fields)
    assert r.status_code == 302, r.text[:500]
    flow.callback_url = r.headers["location"]
    return flow


def finish(flow: Flow, *, url: str | None = None) -> Flow:
    """Follow Discord's redirect to our callback, then to the result page."""
    c = flow.client
    r = c.get(url or flow.callback_url)
    assert r.status_code == 303, f"callback answered {r.status_code}: {r.text[:500]}"
    location = r.headers["location"]
    origin = (url or flow.callback_url).split("/oauth/", 1)[0]
    flow.result = c.get(origin + location if location.startswith("/") else location)
    return flow


def join_through(url: str, user_id: str, *, action: str = "authorize", lang: str = "en") -> Flow:
    return finish(consent(start(url, browser(lang)), user_id, action=action))


def admin_api(gateway: Gateway, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kwargs.pop("headers", {})}
    return httpx.request(method, gateway.proc.url + path, headers=headers, timeout=30, **kwargs)
