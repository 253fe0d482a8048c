"""Slow clients: a whole request within ``GUILDGATE_REQUEST_READ_TIMEOUT`` seconds (10 by default).

uvicorn closes a keep-alive connection that stays idle between requests, but has no timeout for reading a
request: it waits for ever on a new connection that sends nothing, or on headers or a body sent a byte at a
time. ``serve`` runs uvicorn with ``ReadTimeoutProtocol``: uvicorn's own HTTP/1.1 protocol (httptools), with a
timer per connection added and nothing else changed. A client has the read timeout to send a whole request,
counted from when it connects and again from the first byte of each request. Past it, a request begun is
answered 408 and the connection closed; a connection that sent nothing is closed. Once a request is read, the
time to answer it is the handler's (``GUILDGATE_REQUEST_TIMEOUT`` for a join).

This is the one module that reaches into uvicorn's internals (its protocol class, the parser callbacks, the
attributes named in ``RELIES_ON``); ``tests/web/test_read_timeout.py`` fails when any of them changes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("guildgate.web")

DEFAULT_READ_TIMEOUT = 10.0  # for an app that names none (see read_timeout_of)
RELIES_ON = {  # what of uvicorn's protocol this module uses, beside the parser callbacks it extends
    "protocol": ("app", "loop", "transport", "cycle", "pipeline", "scope", "client", "access_logger", "access_log"),
    "cycle": ("response_complete", "response_started", "keep_alive"),
}
_TIMED_OUT = b"The request was not received in time.\n"
_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMED_OUT), _TIMED_OUT)
)


def read_timeout_of(app: Any) -> float:
    """The ``read_timeout`` of the app or of an app it wraps (uvicorn's middlewares keep theirs in ``.app``)."""
    for _ in range(8):
        seconds = getattr(app, "read_timeout", None)
        if isinstance(seconds, int | float):
            return float(seconds)
        app = getattr(app, "app", None)
    return DEFAULT_READ_TIMEOUT


class ReadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a read timeout (``uvicorn.Config(http=ReadTimeoutProtocol)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_within = read_timeout_of(self.app)
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading = False  # a request has begun and is not yet read whole
        self._headers_read = False  # ... and its headers are read

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_read_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading, self._headers_read = True, False
        self._start_read_timer()

    def on_headers_complete(self) -> None:
        self._headers_read = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading = False
        self._stop_read_timer()
        super().on_message_complete()

    def _start_read_timer(self) -> None:
        self._stop_read_timer()
        self._read_timer = self.loop.call_later(self._read_within, self._read_timed_out)

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _log_access(self) -> None:
        """The access-log line of the 408, in uvicorn's own format (the request line as far as it was read)."""
        if not self.access_log:
            return
        scope: dict[str, Any] = dict(self.scope) if self._headers_read and self.scope else {}
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        method, path = scope.get("method", "-"), scope.get("path", "-")
        self.access_logger.info('%s - "%s %s HTTP/%s" %d', client, method, path, scope.get("http_version", "1.1"), 408)

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._reading:
            cycle = self.cycle
            if self._headers_read:  # the cycle is this request's: its answer may have begun (an early 413), or
                # it may be queued behind an earlier request still being answered (pipelined)
                answering = bool(self.pipeline) or (cycle is not None and cycle.response_started)
            else:  # the cycle, if any, is an earlier request's, which may still be being answered
                answering = cycle is not None and not cycle.response_complete
            if cycle is not None:
                cycle.keep_alive = False
            if not answering:
                self.transport.write(_408)
                self._log_access()
            log.info("closing a connection whose request was not received within %g s", self._read_within)
        self.transport.close()
