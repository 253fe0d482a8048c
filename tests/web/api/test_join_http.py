"""The join call over raw HTTP/1.1, through uvicorn and FastAPI like every request: keep-alive, pipelining,
chunked bodies, HTTP/1.0, ``Connection: close``, ``Expect: 100-continue``, a body over the limit, access logs."""

from __future__ import annotations

import json
import socket
from typing import Any, BinaryIO

from tests.conftest import GUILD, TOKENS, USER_IDS, Gateway, Sandbox

PATH = "/api/wanda/discord/guild"


def connect(gateway: Gateway) -> socket.socket:
    host, port = gateway.proc.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def join_request(
    gateway: Gateway, user: str, *, version: str = "1.1", extra: str = "", body: bytes | None = None
) -> bytes:
    payload = body if body is not None else json.dumps({"authorization": TOKENS[user], "guild_id": GUILD}).encode()
    head = (
        f"POST {PATH} HTTP/{version}\r\nHost: gg\r\nUser-Token: {gateway.keys['a']}\r\n"
        f"Content-Type: application/json\r\n{extra}"
    )
    if "Transfer-Encoding" not in extra:
        head += f"Content-Length: {len(payload)}\r\n"
    return head.encode() + b"\r\n" + payload


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def envelope(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    assert isinstance(value, dict)
    return value


def test_two_joins_on_one_kept_alive_connection(gateway: Gateway, fresh: Sandbox) -> None:
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        for user in ("alice", "carol"):
            sock.sendall(join_request(gateway, user))
            status, headers, body = read_response(stream)
            assert status == 200 and headers["content-type"] == "application/json"
            assert "connection" not in headers and "date" in headers
            data = json.loads(envelope(body)["data"])
            assert data["user_id"] == USER_IDS[user] and data["joined"] is True
    assert fresh.stats()["requests"]["PUT /guilds/{guild_id}/members/{user_id}"] == 2


def test_pipelined_joins_are_answered_in_order(gateway: Gateway, fresh: Sandbox) -> None:
    # The second arrives while the first is being answered: uvicorn queues it and answers it after the first.
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(join_request(gateway, "alice") + join_request(gateway, "alice") + join_request(gateway, "carol"))
        answers = [read_response(stream) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 200]
    joined = [json.loads(envelope(body)["data"]) for _, _, body in answers]
    assert [(d["user_id"], d["joined"]) for d in joined] == [
        (USER_IDS["alice"], True),
        (USER_IDS["alice"], False),  # already a member: proves the second ran after the first
        (USER_IDS["carol"], True),
    ]


def test_a_chunked_body_over_the_limit_is_413_and_the_connection_stays_usable(gateway: Gateway, fresh: Sandbox) -> None:
    chunk = b"x" * 8192
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(join_request(gateway, "alice", extra="Transfer-Encoding: chunked\r\n", body=chunked))
        status, _, body = read_response(stream)
        assert status == 413 and envelope(body)["code"] == "invalid_request" and "16384" in envelope(body)["msg"]
        sock.sendall(join_request(gateway, "alice"))
        status, _, body = read_response(stream)
        assert status == 200 and envelope(body)["status"] == 1
    assert fresh.stats()["requests"]["PUT /guilds/{guild_id}/members/{user_id}"] == 1


def test_a_small_chunked_body_is_read_whole(gateway: Gateway, fresh: Sandbox) -> None:
    payload = json.dumps({"authorization": TOKENS["alice"], "guild_id": GUILD}).encode()
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, payload[:10], len(payload) - 10, payload[10:])
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(join_request(gateway, "alice", extra="Transfer-Encoding: chunked\r\n", body=chunked))
        status, _, body = read_response(stream)
    assert status == 200 and json.loads(envelope(body)["data"])["joined"] is True


def test_http_10_gets_its_answer_and_the_connection_closed(gateway: Gateway, fresh: Sandbox) -> None:
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(join_request(gateway, "alice", version="1.0"))
        status, headers, body = read_response(stream)
        assert status == 200 and headers.get("connection") == "close" and envelope(body)["status"] == 1
        assert stream.read() == b""  # closed by the server


def test_connection_close_is_honoured(gateway: Gateway, fresh: Sandbox) -> None:
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(join_request(gateway, "alice", extra="Connection: close\r\n"))
        status, headers, _ = read_response(stream)
        assert status == 200 and headers.get("connection") == "close"
        assert stream.read() == b""


def test_expect_100_continue_gets_the_interim_answer_then_the_join(gateway: Gateway, fresh: Sandbox) -> None:
    payload = json.dumps({"authorization": TOKENS["alice"], "guild_id": GUILD}).encode()
    request = join_request(gateway, "alice", extra="Expect: 100-continue\r\n", body=payload)
    head, _, _ = request.partition(b"\r\n\r\n")
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(head + b"\r\n\r\n")
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n" and stream.readline() == b"\r\n"
        sock.sendall(payload)
        status, _, body = read_response(stream)
    assert status == 200 and json.loads(envelope(body)["data"])["joined"] is True


def test_a_declared_body_over_the_limit_is_413_before_the_body_is_sent(gateway: Gateway, fresh: Sandbox) -> None:
    head = join_request(gateway, "alice", body=b"x" * 100_000).partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(head)  # no body follows: the answer must not wait for it
        status, _, body = read_response(stream)
    assert status == 413 and envelope(body)["code"] == "invalid_request" and "16384" in envelope(body)["msg"]
    assert fresh.stats()["requests"].get("PUT /guilds/{guild_id}/members/{user_id}", 0) == 0


def test_each_join_has_its_access_log_line_without_the_query_string(gateway: Gateway, fresh: Sandbox) -> None:
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(join_request(gateway, "alice").replace(PATH.encode(), PATH.encode() + b"?state=s3cr3t-q", 1))
        assert read_response(stream)[0] == 200
        sock.sendall(join_request(gateway, "alice", body=b"{"))
        assert read_response(stream)[0] == 400
    lines = [line for line in gateway.proc.output().splitlines() if f'"POST {PATH} HTTP/1.1"' in line]
    assert [line.rsplit(" ", 1)[1] for line in lines[-2:]] == ["200", "400"]
    assert "s3cr3t-q" not in gateway.proc.output()
