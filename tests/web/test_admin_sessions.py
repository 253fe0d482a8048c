"""Dashboard sessions end on the server, and wrong admin tokens are limited, over real HTTP: logging out (only with
the CSRF token) ends the session for a saved cookie too, a new admin token ends every session, wrong bearer
tokens lock a client (and everybody, past the total) out with 429 even for the right token, and
X-Forwarded-For counts only from GUILDGATE_TRUSTED_PROXIES."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, SECRETS, Gateway, Sandbox, one_worker_gateway, own_gateway

PER_CLIENT = 10  # web/adminauth.py FAILURES_PER_CLIENT
IN_TOTAL = 50  # web/adminauth.py FAILURES_IN_TOTAL


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def _log_in(url: str) -> str:
    """A browser's login; returns its session cookie."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as browser:
        form = browser.get("/admin")
        done = browser.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf": _csrf(form.text)})
        assert done.status_code == 303, done.text[:300]
        cookie = browser.cookies.get("gg_admin")
    assert cookie
    return cookie


def _with_cookie(url: str, cookie: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30, headers={"Accept-Language": "en"})
    client.cookies.set("gg_admin", cookie, path="/admin")
    return client


def test_logout_needs_the_csrf_token_and_ends_the_session_for_a_saved_cookie(gateway: Gateway) -> None:
    saved = _log_in(gateway.proc.url)
    with _with_cookie(gateway.proc.url, saved) as browser:
        home = browser.get("/admin")
        assert home.status_code == 200 and "Recent records" in home.text
        # no CSRF token, a wrong one, or a GET: refused, and the session goes on
        assert browser.post("/admin/logout").status_code == 403
        assert browser.post("/admin/logout", data={"csrf": "forged"}).status_code == 403
        assert browser.get("/admin/logout").status_code == 405
        assert browser.get("/admin").status_code == 200
        out = browser.post("/admin/logout", data={"csrf": _csrf(home.text)})
        assert out.status_code == 303 and 'gg_admin=""' in out.headers["set-cookie"]
    # the cookie saved before logging out opens nothing now, on any worker
    with _with_cookie(gateway.proc.url, saved) as replay:
        for _ in range(4):
            again = replay.get("/admin")
            assert again.status_code == 401 and 'type="password"' in again.text
            assert replay.get("/admin/keys").status_code == 303


def test_a_new_admin_token_ends_every_session(tmp_path: Path, sandbox: Sandbox) -> None:
    first, _ = own_gateway(tmp_path, sandbox, "gateway-admin-token-one.log", GUILDGATE_ADMIN_TOKEN=ADMIN_TOKEN)
    try:
        saved = _log_in(first.url)
        with _with_cookie(first.url, saved) as browser:
            assert browser.get("/admin/keys").status_code == 200
    finally:
        first.stop()
    rotated = ADMIN_TOKEN + "-rotated"
    SECRETS.add(rotated)  # the leak scan looks for it too
    second, _ = own_gateway(tmp_path, sandbox, "gateway-admin-token-two.log", GUILDGATE_ADMIN_TOKEN=rotated)
    try:
        with _with_cookie(second.url, saved) as browser:  # the same database and secret key, another admin token
            assert browser.get("/admin").status_code == 401
            assert browser.get("/admin/keys").status_code == 303
        assert httpx.get(second.url + "/admin", headers={"Authorization": f"Bearer {rotated}"}).status_code == 200
    finally:
        second.stop()


def _bearer(url: str, path: str, token: str, forwarded: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    return httpx.get(url + path, headers=headers, timeout=30)


def _locked_out(response: httpx.Response) -> None:
    assert response.status_code == 429, (response.status_code, response.text[:300])
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_wrong_bearer_tokens_lock_the_client_out_and_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    gateway = one_worker_gateway(tmp_path, sandbox, "admin-lockout")  # no GUILDGATE_TRUSTED_PROXIES
    url = gateway.proc.url
    try:
        session = _log_in(url)
        for n in range(PER_CLIENT):
            # each names another client, which an untrusted peer (127.0.0.1 here) may not: all count for it
            path = "/api/admin/links" if n % 2 else "/admin"
            wrong = _bearer(url, path, f"wrong-token-{n}-0123456789abcdef", forwarded=f"203.0.113.{n + 1}")
            assert wrong.status_code == 401, wrong.text[:300]
        for path in ("/api/admin/links", "/admin", "/api/admin/doctor"):
            _locked_out(_bearer(url, path, ADMIN_TOKEN))  # the right token too, until the window passes
            _locked_out(_bearer(url, path, ADMIN_TOKEN, forwarded="198.51.100.7"))
        body = _bearer(url, "/api/admin/links", ADMIN_TOKEN).json()
        assert body["error"] == "too_many_attempts"
        with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as browser:
            form = browser.get("/admin")
            _locked_out(browser.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf": _csrf(form.text)}))
        # a session opened before is no token check: it goes on
        with _with_cookie(url, session) as browser:
            assert browser.get("/admin/keys").status_code == 200
    finally:
        gateway.proc.stop()


def test_behind_a_trusted_proxy_each_forwarded_client_counts_and_all_together_have_a_limit(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    gateway = one_worker_gateway(tmp_path, sandbox, "admin-lockout-proxy", GUILDGATE_TRUSTED_PROXIES="127.0.0.0/8")
    url = gateway.proc.url
    try:
        for n in range(PER_CLIENT):
            assert _bearer(url, "/api/admin/links", f"wrong-{n}-0123456789abcdefgh", "203.0.113.1").status_code == 401
        _locked_out(_bearer(url, "/api/admin/links", ADMIN_TOKEN, "203.0.113.1"))
        # the header is honoured: another forwarded client (and the proxy itself) is not locked out
        assert _bearer(url, "/api/admin/links", ADMIN_TOKEN, "203.0.113.2").status_code == 200
        assert _bearer(url, "/admin", ADMIN_TOKEN, "203.0.113.2, 127.0.0.1").status_code == 200
        assert _bearer(url, "/api/admin/links", ADMIN_TOKEN).status_code == 200
        # in total: a few wrong tokens from each of many clients, none past its own limit
        sent = PER_CLIENT
        client = 0
        while sent < IN_TOTAL:
            client += 1
            for _ in range(3):
                if sent < IN_TOTAL:
                    wrong = _bearer(url, "/api/admin/links", "wrong-0123456789abcdefghijk", f"198.51.100.{client}")
                    assert wrong.status_code == 401, (sent, wrong.text[:200])
                    sent += 1
        _locked_out(_bearer(url, "/api/admin/links", ADMIN_TOKEN, "192.0.2.99"))  # a client never seen before
        _locked_out(_bearer(url, "/admin", ADMIN_TOKEN))
    finally:
        gateway.proc.stop()
