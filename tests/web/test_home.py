"""``GET /``: a small page that says what this is and where to go, or JSON for a client that asks for it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from guildgate import __version__
from tests.conftest import ADMIN_TOKEN, OUTPUT, base_env, free_port, start


def test_the_root_says_what_this_is_and_where_to_go(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path, GUILDGATE_ADMIN_TOKEN=ADMIN_TOKEN)  # GUILDGATE_PUBLIC_URL not set: it follows --port
    server = start(["serve", "--port", str(port)], env=env, log=OUTPUT / "home.log", ready_path="/healthz", port=port)
    try:
        page = httpx.get(server.url + "/", headers={"Accept": "text/html", "Accept-Language": "en"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for href in ("/admin", "/docs"):
            assert f'href="{href}"' in page.text
        assert "adds people to Discord servers after they consent" in page.text and "README.md" in page.text
        assert f"guildgate {__version__}" in page.text
        chinese = httpx.get(server.url + "/", headers={"Accept-Language": "zh-CN"})
        assert chinese.status_code == 200 and "管理后台" in chinese.text
        assert httpx.get(server.url + "/docs").status_code == 200  # where it points is there
        assert httpx.get(server.url + "/admin").status_code == 401  # the dashboard's login, not a 404
        asked = httpx.get(server.url + "/", headers={"Accept": "application/json"})
        assert asked.status_code == 200 and asked.headers["content-type"] == "application/json"
        body = asked.json()
        assert body["name"] == "guildgate" and body["version"] == __version__
        assert body["dashboard"] == f"{server.url}/admin" and body["docs"] == f"{server.url}/docs"
        assert body["openapi"] == f"{server.url}/openapi.json"
        assert re.fullmatch(rf"POST {re.escape(server.url)}/api/wanda/discord/guild", body["join_api"])
        assert httpx.get(server.url + "/openapi.json").json()["paths"].get("/") is None
    finally:
        server.stop()
