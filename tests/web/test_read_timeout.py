"""web/readtimeout.py is a subclass of uvicorn's private httptools protocol: these tests fail when what it relies
on changes under it in a uvicorn release (names, attributes, the parser callbacks it extends), and check its
behaviour on a bare uvicorn server with a trivial app. ``test_slow_clients.py`` checks it under ``serve``."""

from __future__ import annotations

import ast
import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvicorn.server
from uvicorn.protocols.http import httptools_impl

from guildgate.web.readtimeout import RELIES_ON, ReadTimeoutProtocol
from tests.servers import free_port

SRC = Path(__file__).resolve().parents[2] / "src" / "guildgate"
READ_TIMEOUT = 0.5


async def test_the_uvicorn_internals_it_extends_are_still_there() -> None:
    protocol_class = httptools_impl.HttpToolsProtocol
    for callback in ("connection_made", "connection_lost", "on_message_begin", "on_headers_complete"):
        assert callable(getattr(protocol_class, callback, None)), callback
    assert callable(getattr(protocol_class, "on_message_complete", None))
    config = uvicorn.Config(_app, http=ReadTimeoutProtocol, log_config=None)
    protocol = ReadTimeoutProtocol(
        config=config, server_state=uvicorn.server.ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    for name in RELIES_ON["protocol"]:
        assert hasattr(protocol, name), f"uvicorn's protocol no longer has {name!r}"
    cycle_attributes = set(httptools_impl.RequestResponseCycle.__init__.__code__.co_names)
    for name in RELIES_ON["cycle"]:
        assert name in cycle_attributes, f"uvicorn's request cycle no longer sets {name!r}"


def test_no_other_module_reaches_into_uvicorns_protocols() -> None:
    importers = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            if any(name.startswith("uvicorn.protocols") for name in names):
                importers.append(path.relative_to(SRC).as_posix())
    assert importers == ["web/readtimeout.py"]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _App:
    """The trivial app as an app names its read timeout (web/app.py's front door does)."""

    read_timeout = READ_TIMEOUT

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    port = free_port()
    config = uvicorn.Config(_App(), host="127.0.0.1", port=port, http=ReadTimeoutProtocol, log_config=None)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)


def _until_closed(sock: socket.socket) -> tuple[bytes, float]:
    started, received = time.monotonic(), b""
    sock.settimeout(5)
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_a_request_read_in_time_is_answered_and_a_stalled_one_gets_408(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbo")  # the rest never comes
        received, after = _until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"connection: close" in received
    assert after < READ_TIMEOUT + 3


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        received, after = _until_closed(sock)
    assert received == b"" and after < READ_TIMEOUT + 3
