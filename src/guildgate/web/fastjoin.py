"""uvicorn's HTTP/1.1 protocol, answering the join call itself.

``serve`` runs uvicorn with this protocol (``JoinProtocol``): every request is uvicorn's — parsing, keep-alive
and its timeout, pipelining, flow control, graceful shutdown — except that a ``POST /api/wanda/discord/guild``
is handed straight to ``web/api.py``'s handler when its body is complete, instead of through ASGI. uvicorn's
request cycle and task, the ASGI messages and the proxy-headers middleware cost about a fifth of a join's CPU
and do nothing for it (docs/performance.md, ``bench/join_layers.py``).

The join takes this path only in the plain case; anything else goes uvicorn's way, through ASGI to the same
handler (``web/app.py``'s front door), with the same answer:
- a request pipelined behind one still being answered (uvicorn queues it);
- ``Expect: 100-continue`` (uvicorn answers the 100 when the body is first read);
- headers over the front door's limits (it answers 431), or a declared body over the limit (answered 413
  before the body comes);
- a server with a concurrency limit (uvicorn answers 503 past it).

It also times out slow clients, which uvicorn does not: uvicorn closes a keep-alive connection that stays idle
between requests, but waits for ever on a new connection that sends nothing, on headers or a body sent a byte
at a time. Here a client has ``GUILDGATE_REQUEST_READ_TIMEOUT`` seconds (10 by default) to send a whole request,
counted from when it connects and again from the first byte of each request. Past it, a request begun is
answered 408 and the connection closed; a connection that sent nothing is closed. Once a request is read, the
time to answer it is the handler's (``GUILDGATE_REQUEST_TIMEOUT`` for a join).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from guildgate.web import api
from guildgate.web.app import Front, headers_too_large
from guildgate.web.body import MAX_BODY

log = logging.getLogger("guildgate.web")

_JOIN_PATH = api.JOIN_PATH.encode()
READ_TIMEOUT = 10.0  # GUILDGATE_REQUEST_READ_TIMEOUT's default, for an app without guildgate's services
_TIMED_OUT = b"The request was not received in time.\n"
_408 = b"".join(
    [
        STATUS_LINE[408],
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(_TIMED_OUT),
        b"connection: close\r\n\r\n",
        _TIMED_OUT,
    ]
)


class _Event:
    """What uvicorn sets on a cycle when the connection is lost: nothing waits on it here."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _Event()


class _JoinCycle:
    """Stands in for uvicorn's request cycle while a join is answered here: what the protocol reads and writes
    of its current cycle (``connection_lost``, ``shutdown``, a request pipelined behind this one)."""

    __slots__ = ("body", "disconnected", "headers", "http_version", "keep_alive", "response_complete", "size", "url")
    message_event = _NO_EVENT

    def __init__(self, url: bytes, http_version: str, keep_alive: bool, headers: dict[str, str]) -> None:
        self.url = url  # kept here: a request pipelined behind this one replaces the protocol's
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.body: list[bytes] = []
        self.size = 0


class _BareRequest:
    """What the join handler reads of a request: its headers, its body, the app (for the services)."""

    __slots__ = ("_body", "app", "headers")

    def __init__(self, headers: dict[str, str], body: bytes, app: Any) -> None:
        self.headers, self._body, self.app = headers, body, app

    async def stream(self) -> Any:
        yield self._body


def _front_of(app: Any) -> Front | None:
    """The front door inside uvicorn's middleware wrappers (proxy headers, …)."""
    for _ in range(8):
        if isinstance(app, Front):
            return app
        app = getattr(app, "app", None)
    return None


class JoinProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        front = _front_of(self.app)
        self._fastapi = front.app if front is not None else None
        self._join: _JoinCycle | None = None
        services = getattr(getattr(self._fastapi, "state", None), "services", None)
        self._read_within = services.settings.request_read_timeout if services is not None else READ_TIMEOUT
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading = False  # a request has begun and is not yet read whole
        self._headers_read = False  # ... and its headers are read

    # -- slow clients: a whole request within the read timeout
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_read_timer()
        super().connection_lost(exc)

    def _start_read_timer(self) -> None:
        self._stop_read_timer()
        self._read_timer = self.loop.call_later(self._read_within, self._read_timed_out)

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._reading:
            cycle = self.cycle
            if self._headers_read:  # the cycle is this request's: its response may have begun (an early 413), or
                # it may be queued behind an earlier request still being answered (pipelined)
                answering = bool(self.pipeline) or getattr(cycle, "response_started", False)
            else:  # the cycle, if any, is a request's before this one, which may still be being answered
                answering = cycle is not None and not cycle.response_complete
            if cycle is not None:
                cycle.keep_alive = False
            if not answering:
                self.transport.write(_408)
            log.info("closing a connection whose request was not received within %g s", self._read_within)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._join = None
        self._reading, self._headers_read = True, False
        self._start_read_timer()

    def on_headers_complete(self) -> None:
        self._headers_read = True
        headers = self._takes_join()
        if headers is not None:
            version = self.parser.get_http_version()
            keep_alive = version != "1.0" and self.parser.should_keep_alive()
            self._join = _JoinCycle(self.url, version, keep_alive, headers)
            self.cycle = self._join  # type: ignore[assignment]
            return
        super().on_headers_complete()

    def _takes_join(self) -> dict[str, str] | None:
        """The request's headers when this protocol answers it (a plain join call), else None."""
        if self._fastapi is None or self.parser.get_method() != b"POST":
            return None
        if self.url.split(b"?", 1)[0] != _JOIN_PATH:
            return None
        if self.expect_100_continue or self.limit_concurrency is not None or self.parser.should_upgrade():
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # pipelined behind a request still being answered: uvicorn queues it
        if headers_too_large(self.headers):
            return None
        # The headers as the handler reads them (names lower-case already): the first of a repeated one counts.
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(self.headers)}
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdecimal() or int(declared) > MAX_BODY):  # (0-9 only, in latin-1)
            return None  # answered 413 at once, before the body comes
        return headers

    def on_body(self, body: bytes) -> None:
        join = self._join
        if join is None:
            super().on_body(body)
            return
        join.size += len(body)
        if join.size <= MAX_BODY:
            join.body.append(body)
        else:
            join.body = []  # the handler answers 413 from the size; nothing more is kept

    def on_message_complete(self) -> None:
        self._reading = False
        self._stop_read_timer()
        join = self._join
        if join is None:
            super().on_message_complete()
            return
        headers = join.headers
        if join.size > MAX_BODY:
            headers["content-length"] = str(join.size)  # what read_body checks first: answered 413
        task = self.loop.create_task(self._answer(join, headers, b"".join(join.body)))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(self, join: _JoinCycle, headers: dict[str, str], body: bytes) -> None:
        request = _BareRequest(headers, body, self._fastapi)
        try:
            response = await api.answer_join(request)  # type: ignore[arg-type]
        except Exception:  # what uvicorn answers when an ASGI app fails: a plain 500, and the connection closed
            log.exception("Exception in the join call")
            response = Response(b"Internal Server Error", status_code=500, media_type="text/plain; charset=utf-8")
            join.keep_alive = False
        finally:
            join.body = []
        self._send(join, response)

    def _send(self, join: _JoinCycle, response: Response) -> None:
        join.response_complete = True
        if join.disconnected or self.transport.is_closing():
            return
        status = response.status_code
        if self.access_log:  # uvicorn's access line (its filter in web/app.py drops the query string)
            host = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            path = join.url.decode("latin-1")
            self.access_logger.info('%s - "%s %s HTTP/%s" %d', host, "POST", path, join.http_version, status)
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        for name, value in response.raw_headers:
            content += [name, b": ", value, b"\r\n"]
        if not join.keep_alive:
            content.append(b"connection: close\r\n")
        content += [b"\r\n", bytes(response.body)]
        self.transport.write(b"".join(content))
        if not join.keep_alive:
            self.transport.close()
        self.on_response_complete()


HTTP = f"{__name__}:JoinProtocol"  # uvicorn.Config(http=...), also in worker processes
