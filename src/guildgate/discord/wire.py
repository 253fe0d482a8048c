"""A lean HTTP/1.1 client for one origin: the Discord API base.

Every join makes two calls to Discord, and a general-purpose client (aiohttp) spent about a third of a join's
CPU on them: its request objects, URL handling, timers, stream readers and payload machinery, for two small
JSON exchanges with a single origin. This client does only what those calls need. It keeps connections alive
in a pool, writes each request in one piece, parses the answer with httptools (llhttp, the parser uvicorn
uses, so HTTP parsing itself is not hand-written here), and bounds each exchange with one timer. TLS comes from
the standard library's default context (certificate and host name checked).

Calls through an operator's egress proxy do not come here: they go through aiohttp, which speaks to proxies
(``rest.py``). What is deliberately absent: redirects (Discord's API does not redirect, and a redirect is
never followed with a token), cookies (a bot keeps none), compression (none is asked for; a compressed answer
is decoded all the same), HTTP/2 and request pipelining.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

MAX_CONNECTIONS: Final = 200  # exchanges at once (each its own connection); more wait for one to finish
MAX_IDLE: Final = 256  # idle connections kept for reuse; more are closed when they come back
MAX_ANSWER: Final = 8 * 1024 * 1024  # an answer larger than this is refused (Discord's are a few kilobytes)
_FORBIDDEN: Final = frozenset("\r\n\0")


class WireError(Exception):
    """The exchange failed. ``sent``: whether any of the request may have reached the server."""

    sent = True


class ConnectFailed(WireError):
    """No connection could be made: nothing was sent."""

    sent = False


class Disconnected(WireError):
    """The server closed the connection before the answer was complete."""


class BadAnswer(WireError):
    """The answer was not HTTP/1.1 the parser could read, or was too large."""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, made on every call
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class _Connection(asyncio.Protocol):
    __slots__ = (
        "chunks",
        "closed",
        "header_list",
        "headers_done",
        "keep_alive",
        "parser",
        "size",
        "status",
        "transport",
        "waiter",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.header_list: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.headers_done = False
        self.keep_alive = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing was asked on this connection: whatever this is, it cannot be trusted
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"unreadable answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and self._until_close():
            waiter.set_result(None)  # an answer delimited by the end of the connection
        else:
            self._fail(Disconnected("the server closed the connection before answering"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_ANSWER:
            self._fail(BadAnswer("the answer is too large"))
            self.close()
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer: the real one follows
            self._reset()
            return
        self.keep_alive = self.parser.should_keep_alive()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- helpers
    def _until_close(self) -> bool:
        names = {name.lower() for name, _ in self.header_list}
        return "content-length" not in names and "transfer-encoding" not in names

    def _fail(self, error: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def timed_out(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Wire:
    """Keep-alive HTTP/1.1 to one origin (``base``: ``http[s]://host[:port][/path]``)."""

    def __init__(
        self,
        base: str,
        *,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.path = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if default_port else f"{host}:{self.port}"
        self._fixed = f"Host: {authority}\r\nUser-Agent: {user_agent}\r\n"
        self._ssl = (ssl_context or ssl.create_default_context()) if self.tls else None
        self._idle: deque[_Connection] = deque()
        self._closing = False
        self._max_connections = max_connections
        self._exchanges = asyncio.Semaphore(max_connections)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        content_type: str = "application/json",
        within: float,
    ) -> Reply:
        """Send ``method`` ``base path + path`` and read the whole answer within ``within`` seconds."""
        head = self._head(method, path, headers, body, content_type)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (a CLI command's second asyncio.run)
            self._bind(loop)
        started = loop.time()
        if self._exchanges.locked():  # as many exchanges as connections allowed: wait for one, within the time
            try:
                async with asyncio.timeout(within):
                    await self._exchanges.acquire()
            except TimeoutError as exc:
                raise ConnectFailed(f"no free connection to {self.host}:{self.port} in time") from exc
        else:
            await self._exchanges.acquire()
        try:
            return await self._exchange(loop, head, body, started, within)
        finally:
            self._exchanges.release()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connections and the semaphore belong to one loop: a new loop starts with none of the old ones."""
        self._drop_idle()
        self._exchanges = asyncio.Semaphore(self._max_connections)
        self._loop = loop

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, head: bytes, body: bytes | None, started: float, within: float
    ) -> Reply:
        connection = self._pooled()
        if connection is None:
            left = max(within - (loop.time() - started), 0.0)
            try:
                async with asyncio.timeout(left):
                    connection = await self._connect(loop, left)
            except TimeoutError as exc:
                raise ConnectFailed(f"could not connect to {self.host}:{self.port} in time") from exc
        waiter: asyncio.Future[None] = loop.create_future()
        connection.waiter = waiter
        timer = loop.call_later(max(within - (loop.time() - started), 0.0), connection.timed_out)
        try:
            assert connection.transport is not None
            connection.transport.write(head + body if body else head)
            await waiter
        except BaseException:
            connection.close()  # a cancelled or failed exchange leaves the connection in an unknown state
            raise
        finally:
            timer.cancel()
            connection.waiter = None
        headers = CIMultiDictProxy(CIMultiDict(connection.header_list))
        try:
            body = _decoded(connection.chunks, headers.get("content-encoding"))
        except BadAnswer:
            connection.close()
            raise
        reply = Reply(status=connection.status, headers=headers, body=body)
        if connection.keep_alive and not connection.closed and not self._closing and len(self._idle) < MAX_IDLE:
            connection._reset()
            self._idle.append(connection)
        else:
            connection.close()
        return reply

    def _head(self, method: str, path: str, headers: dict[str, str], body: bytes | None, content_type: str) -> bytes:
        if " " in path or not _FORBIDDEN.isdisjoint(path):
            raise ValueError("the request path has a space, a line break or NUL")
        lines = [f"{method} {self.path}{path} HTTP/1.1\r\n", self._fixed]
        for name, value in headers.items():
            if not _FORBIDDEN.isdisjoint(value) or not _FORBIDDEN.isdisjoint(name):
                raise ValueError(f"header {name}: line breaks and NUL are not allowed")
            lines.append(f"{name}: {value}\r\n")
        if body is not None:
            lines.append(f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n")
        elif method in ("PUT", "POST", "PATCH"):
            lines.append("Content-Length: 0\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("utf-8")

    def _pooled(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed by the server
            if not connection.closed:
                return connection
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, handshake: float) -> _Connection:
        try:
            _, protocol = await loop.create_connection(
                _Connection,
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl else None,
                ssl_handshake_timeout=handshake if self._ssl else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"could not connect to {self.host}:{self.port} ({type(exc).__name__})") from exc
        return protocol

    async def aclose(self) -> None:
        self._closing = True
        self._drop_idle()

    def _drop_idle(self) -> None:
        """Close the idle connections, in the loop they belong to (from another thread's loop, through it)."""
        idle, owner = list(self._idle), self._loop
        self._idle.clear()
        if owner is None or owner.is_closed():
            return
        for connection in idle:
            connection.closed = True
            if owner is asyncio.get_running_loop():
                connection.close()
            else:
                owner.call_soon_threadsafe(connection.close)


def _decoded(chunks: list[bytes], encoding: str | None) -> bytes:
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if encoding is not None:
        coding = encoding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return inflated(body, 16 + zlib.MAX_WBITS)
        if coding == "deflate":
            return inflated(body, zlib.MAX_WBITS)
    return body


def inflated(body: bytes, wbits: int) -> bytes:
    """A compressed answer, decompressed to at most MAX_ANSWER bytes: a few kilobytes of a hostile answer's
    zeros would otherwise become gigabytes in memory."""
    inflate = zlib.decompressobj(wbits)
    try:
        plain = inflate.decompress(body, MAX_ANSWER + 1)
    except zlib.error as exc:
        raise BadAnswer(f"the answer's compressed body is broken ({exc})") from None
    if len(plain) > MAX_ANSWER:
        raise BadAnswer("the answer is too large once decompressed")
    return plain
