"""Slow clients (issue 5's abuse limits): a client has GUILDGATE_REQUEST_READ_TIMEOUT seconds to send a whole
request. A connection that sends nothing is closed; headers or a body sent a byte at a time, or stopped halfway,
get 408 and the connection closed; a request read in time is answered however long the answer takes. A real
`guildgate serve` over raw sockets."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ADMIN_TOKEN, GUILD, TOKENS, Proc, Sandbox, own_gateway

READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox) -> Iterator[tuple[Proc, str]]:
    proc, key = own_gateway(
        tmp_path_factory.mktemp("slow"),
        sandbox,
        "slow-clients.log",
        GUILDGATE_REQUEST_READ_TIMEOUT=str(READ_TIMEOUT),
        GUILDGATE_REQUEST_TIMEOUT="8",
        GUILDGATE_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    yield proc, key
    proc.stop()


def _address(proc: Proc) -> tuple[str, int]:
    host, port = proc.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _connect(proc: Proc) -> socket.socket:
    return socket.create_connection(_address(proc), timeout=8)


def _until_closed(sock: socket.socket, trickle: bytes = b"", every: float = 0.2) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and when it closed (seconds from now). With
    ``trickle``, one byte of it is sent every ``every`` seconds meanwhile, as long as the server reads."""
    started, received = time.monotonic(), b""
    sock.settimeout(every if trickle else 8)
    while time.monotonic() - started < 8:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if trickle:
                try:
                    sock.sendall(trickle[:1])
                except OSError:
                    pass
                trickle = trickle[1:] or trickle
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - started


def _join_head(key: str, length: int) -> bytes:
    return (
        f"POST /api/wanda/discord/guild HTTP/1.1\r\nHost: guildgate\r\nUser-Token: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_connection_that_sends_nothing_is_closed(server: tuple[Proc, str]) -> None:
    with _connect(server[0]) as sock:
        received, after = _until_closed(sock)
    assert received == b""
    assert after < READ_TIMEOUT + 3, f"an idle connection was kept {after:.1f} s"


def test_headers_sent_a_byte_at_a_time_get_408(server: tuple[Proc, str]) -> None:
    proc, key = server
    head = _join_head(key, 2)
    with _connect(proc) as sock:
        sock.sendall(head[:10])
        received, after = _until_closed(sock, trickle=head[10:] * 20, every=0.1)
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b"connection: close" in received.lower()
    assert after < READ_TIMEOUT + 3, f"a client sending one byte at a time was kept {after:.1f} s"


@pytest.mark.parametrize("path", ["/api/wanda/discord/guild", "/admin/login"])
def test_a_body_that_stops_halfway_gets_408(server: tuple[Proc, str], path: str) -> None:
    # The join call and a page alike (the login form's body is read only with the pre-login cookie its page sets).
    proc, key = server
    content_type = "application/json" if path.startswith("/api") else "application/x-www-form-urlencoded"
    cookie = "" if path.startswith("/api") else "Cookie: gg_pre=pre-login-id\r\n"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: guildgate\r\nUser-Token: {key}\r\nContent-Type: {content_type}\r\n"
        f"{cookie}Content-Length: 200\r\n\r\n"
    ).encode()
    with _connect(proc) as sock:
        sock.sendall(head + b'{"authorization": "')
        received, after = _until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert after < READ_TIMEOUT + 3
    with _connect(proc) as sock:  # and the server is none the worse for it
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: guildgate\r\nConnection: close\r\n\r\n")
        assert _until_closed(sock)[0].startswith(b"HTTP/1.1 200 ")
    assert "Traceback" not in proc.output()  # a client sent away is not the server's error


def test_an_answer_slower_than_the_read_timeout_is_not_cut(server: tuple[Proc, str], fresh: Sandbox) -> None:
    # Discord answers each call 1.2 s late: the join takes well over the read timeout, on a kept-alive
    # connection that then carries a second request after a pause.
    proc, key = server
    fresh.faults({"latency_ms": 1200})
    connection = http.client.HTTPConnection(*_address(proc), timeout=10)
    body = json.dumps({"authorization": TOKENS["alice"], "guild_id": GUILD})
    started = time.monotonic()
    connection.request(
        "POST", "/api/wanda/discord/guild", body, {"User-Token": key, "Content-Type": "application/json"}
    )
    answer = connection.getresponse()
    took = time.monotonic() - started
    assert (answer.status, json.loads(answer.read())["code"]) == (200, "joined")
    assert took > 2 * READ_TIMEOUT
    time.sleep(READ_TIMEOUT / 2)
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200
    connection.close()
