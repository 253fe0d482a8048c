"""What the service shows to anyone: /metrics behind GUILDGATE_METRICS_TOKEN when it is set, and /docs with every
file from this origin, under a Content-Security-Policy."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRETS, Gateway, Sandbox, base_env, cli, own_gateway
from tests.servers import free_port

METRICS_TOKEN = "test-metrics-token-4b8d2e6f1a"
SECRETS.add(METRICS_TOKEN)


def test_metrics_ask_for_the_metrics_token_when_it_is_set(tmp_path: Path, sandbox: Sandbox) -> None:
    server, _ = own_gateway(tmp_path, sandbox, "gateway-metrics-token.log", GUILDGATE_METRICS_TOKEN=METRICS_TOKEN)
    try:
        url = server.url + "/metrics"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
            refused = httpx.get(url, headers=headers, timeout=30)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer"), headers
            assert "guildgate_join_seconds" not in refused.text and METRICS_TOKEN not in refused.text
        ok = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
        assert ok.status_code == 200 and "guildgate_join_seconds" in ok.text
        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200  # the rest stays open
    finally:
        server.stop()
    assert METRICS_TOKEN not in server.output()


def test_metrics_are_open_without_the_metrics_token(gateway: Gateway) -> None:
    assert "guildgate_join_seconds" in httpx.get(gateway.proc.url + "/metrics", timeout=30).text


def test_a_short_metrics_token_stops_serve_with_an_error_naming_it(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path, GUILDGATE_METRICS_TOKEN="short-metrics-token")
    result = cli(["serve", "--port", str(port)], env=env, check=False)
    assert result.returncode != 0
    assert "GUILDGATE_METRICS_TOKEN" in result.stderr and "24 characters" in result.stderr
    assert "short-metrics-token" not in result.stderr + result.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [value for name, value in attrs if name in ("src", "href") and value]


def test_the_docs_page_uses_this_origin_only_under_a_csp(gateway: Gateway) -> None:
    url = gateway.proc.url
    page = httpx.get(url + "/docs", timeout=30)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp  # no inline script, no other origin
    assert "<script>" not in page.text.replace(" ", "")  # every script is a file
    parser = _Refs()
    parser.feed(page.text)
    assert parser.refs and any(r.endswith(".js") for r in parser.refs) and any("icon" in r for r in parser.refs)
    for ref in parser.refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref  # same origin
        answer = httpx.get(url + ref, timeout=30)
        assert answer.status_code == 200 and answer.content, ref
    init = httpx.get(url + "/static/swagger-init.js", timeout=30).text
    assert re.findall(r"https?://", init) == [] and '"/openapi.json"' in init
    assert httpx.get(url + "/openapi.json", timeout=30).status_code == 200
    assert httpx.get(url + "/redoc", timeout=30).status_code == 404  # off
    # only the files the page uses: not the bundle's sample page (which points at a third-party API)
    assert httpx.get(url + "/docs/static/index.html", timeout=30).status_code == 404
