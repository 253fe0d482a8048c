"""The pages' form posts over raw HTTP: nothing is read before the caller shows it may post, at most 64 KiB is
read after, no files; a 200 MB form does not grow the server."""

from __future__ import annotations

import re
import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from tests.conftest import ADMIN_TOKEN, APP_A, GUILD, Gateway, Sandbox
from tests.helpers import csrf, rss_kib
from tests.linkflow import make_link

FIELD = 1_000_000 - 16  # just under Starlette's 1 MB a field
BIG = 200  # fields: 200 MB in all


def _form_chunks() -> Iterator[bytes]:
    """A URL-encoded form of BIG fields of FIELD bytes each, in 64 KiB pieces, made as it is sent."""
    piece = b"x" * 65536
    for index in range(BIG):
        yield (b"&" if index else b"") + f"f{index}=".encode()
        left = FIELD
        while left:
            yield piece[: min(left, len(piece))]
            left -= min(left, len(piece))


def _chunked(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
    yield b"0\r\n\r\n"


def post(url: str, path: str, headers: dict[str, str], body: Iterator[bytes]) -> tuple[int, str]:
    """POST ``body`` piece by piece until the server answers (or stops reading); its status and body text. An
    answer that waited for the whole body would come only after the body, or as 408 after the read timeout."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept-Language: en"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break  # answered already
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server closed the connection: it reads no more
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < _length(answer):
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    found = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    assert found, answer[:200]
    return int(found.group(1)), answer.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")


def _length(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length: *(\d+)", head)
    return len(head) + 4 + (int(found.group(1)) if found else 0)


def _login_cookies(gateway: Gateway) -> str:
    page = httpx.get(gateway.proc.url + "/admin", timeout=30)
    return f"gg_pre={page.cookies['gg_pre']}"


FORM = "application/x-www-form-urlencoded"


def test_a_200_mb_form_is_refused_with_413_and_the_server_does_not_grow(gateway: Gateway, fresh: Sandbox) -> None:
    url, pid = gateway.proc.url, gateway.proc.proc.pid
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
    start = urlsplit(link["url"]).path + "/start"
    login = {"Content-Type": FORM, "Cookie": _login_cookies(gateway)}
    before = rss_kib(pid)
    for path, headers in (("/admin/login", login), ("/admin/keys", {"Authorization": f"Bearer {ADMIN_TOKEN}"})):
        # streamed without a length
        status, text = post(url, path, {**headers, "Transfer-Encoding": "chunked"}, _chunked(_form_chunks()))
        assert status == 413 and "too large" in text, (path, status, text[:300])
        # a length over the cap: refused before any of the body is read (only a little of it is ever sent)
        status, text = post(url, path, {**headers, "Content-Length": str(BIG * FIELD)}, iter([b"f0=x"]))
        assert status == 413, (path, status)
    # a link's Continue button, streamed
    status, _ = post(url, start, {"Content-Type": FORM, "Transfer-Encoding": "chunked"}, _chunked(_form_chunks()))
    assert status == 413
    # a length that lies (60,000 bytes, then 200 MB): the body ends where the length says; what follows is no
    # request, and the HTTP server refuses it (400) and closes the connection, or the form is refused first (403:
    # a piece of one field, no CSRF token)
    status, _ = post(url, "/admin/login", {**login, "Content-Length": "60000"}, _form_chunks())
    assert status in (400, 403)
    grown = rss_kib(pid) - before
    assert grown < 20 * 1024, f"the server grew by {grown} KiB"
    assert httpx.get(url + "/healthz", timeout=30).status_code == 200


def _multipart(files: int) -> tuple[str, bytes]:
    boundary = "gg-boundary-1234"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"; filename="f{i}.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n" + "x" * 1000 + "\r\n"
        for i in range(files)
    ]
    return f"multipart/form-data; boundary={boundary}", ("".join(parts) + f"--{boundary}--\r\n").encode()


def test_posts_without_a_session_are_refused_before_the_body_is_read(gateway: Gateway, fresh: Sandbox) -> None:
    """Only the head and a first piece of each body are sent: an answer that needed the body would be the read
    timeout's 408 (10 s), not the refusal."""
    url = gateway.proc.url
    kind, files = _multipart(60)
    declared = {"Content-Type": kind, "Content-Length": str(len(files) * 1000)}
    for path in ("/admin/keys", "/admin/links", "/admin/keys/key_0/revoke", "/admin/links/x/disable"):
        status, _ = post(url, path, declared, iter([files[:100]]))
        assert status == 403, (path, status)
    # the login form without the pre-login cookie its page sets
    plain = {"Content-Type": FORM, "Content-Length": "50000"}
    status, text = post(url, "/admin/login", plain, iter([b"token=x&csrf="]))
    assert status == 403 and 'type="password"' in text


def test_files_are_refused_with_a_session_too(gateway: Gateway, fresh: Sandbox) -> None:
    url = gateway.proc.url
    kind, files = _multipart(60)
    with httpx.Client(base_url=url, timeout=30, headers={"Accept-Language": "en"}) as browser:
        login = browser.get("/admin")
        refused = browser.post("/admin/login", content=files, headers={"Content-Type": kind})
        assert refused.status_code == 415 and "no files" in refused.text
        ok = browser.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf": csrf(login.text)})
        assert ok.status_code == 303
        for path in ("/admin/keys", "/admin/links", "/admin/logout"):
            answer = browser.post(path, content=files, headers={"Content-Type": kind})
            assert answer.status_code == 415 and "no files" in answer.text, (path, answer.status_code)
        link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
        start = browser.post(urlsplit(link["url"]).path + "/start", content=files, headers={"Content-Type": kind})
        assert start.status_code == 415
