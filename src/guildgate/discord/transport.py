"""HTTP to Discord's API base: one aiohttp ``ClientSession`` per process, every call through it.

An operator's egress proxy is an option of the same session (aiohttp's ``proxy=`` per request), not a second
client. What each exchange is held to:

* **A deadline**: the whole exchange (waiting for a connection, connecting, sending, the answer read whole)
  within the time the caller gives.
* **TLS verified**: the default context (certificate and host name checked); the request, and its token, go
  only to a server that proved it is the API's host.
* **No redirects followed**: a 3xx is returned as the answer; a token is never sent to where one points.
* **A bounded answer**: at most ``MAX_ANSWER`` bytes, as they come, and at most ``MAX_ANSWER`` once
  decompressed: a gzip or deflate body is inflated here, a chunk at a time and only so far (aiohttp's own
  decompression is off), so a hostile answer's few kilobytes of zeros never become gigabytes in memory; a body
  that is not the compression it claims is a ``BadAnswerError``.
* **Was anything sent?** Each failure says (``TransportError.sent``): a connection that could not be made
  (refused, TLS refused, no free connection or no connection in time, a proxy that would not connect) carried
  nothing and is safe to retry; any later failure (a timeout, a dropped connection, an unreadable answer) may
  have reached Discord. aiohttp's own silent resend of an idempotent request after a dropped connection is
  turned off for the same reason: a resent Add Guild Member would answer "already a member" for the person the
  lost attempt added, and the rate limiter would not know of the second request.

No cookies are kept (a bot keeps none), no proxy is taken from the environment, and no header or path with a
line break or NUL is written.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import zlib
from dataclasses import dataclass
from typing import Final

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

MAX_CONNECTIONS: Final = 200  # exchanges at once (each its own connection); more wait for one, within their time
MAX_ANSWER: Final = 8 * 1024 * 1024  # an answer larger than this is refused (Discord's are a few kilobytes)
KEEPALIVE: Final = 30.0  # seconds an idle connection is kept for reuse
CONNECT_MARGIN: Final = 0.005  # seconds the connection phase's time ends before the exchange's (see request)
_FORBIDDEN: Final = frozenset("\r\n\0")
_WBITS: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class TransportError(Exception):
    """The exchange failed. ``sent``: whether any of the request may have reached the server."""

    sent = True


class ConnectFailedError(TransportError):
    """No connection could be made: nothing was sent."""

    sent = False


class DisconnectedError(TransportError):
    """The connection ended before the answer was complete."""


class BadAnswerError(TransportError):
    """The answer was not HTTP the client could read, was too large, or its compressed body was broken."""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, made on every call
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Transport:
    """Calls to one API base (``http[s]://host[:port][/path]``) over one aiohttp session."""

    def __init__(
        self,
        base: str,
        *,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        url = URL(base)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {base!r}")
        self.base = base.rstrip("/")
        self._user_agent = user_agent
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True  # True: verified
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        """The session, made on first use inside the running loop (aiohttp binds a session to its loop); a new
        loop (a CLI command's second ``asyncio.run``) gets a new one."""
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is loop and not session.closed:
            return session
        if session is not None and not session.closed and self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(session.close(), self._loop)  # the old loop's, in that loop
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE, ssl=self._ssl
            ),
            headers={"User-Agent": self._user_agent, "Accept-Encoding": "gzip, deflate"},
            trust_env=False,
            auto_decompress=False,  # inflated here, only so far (``_read``)
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # No silent resend after a dropped connection (see the module's docstring): the caller decides, knowing
        # the request may have been sent. aiohttp has no public switch for it; its own test client sets this.
        session._retry_connection = False
        self._session, self._loop = session, loop
        return session

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        content_type: str = "application/json",
        within: float,
        proxy: str | None = None,
    ) -> Reply:
        """Send ``method`` ``base path + path`` (``path`` already percent-encoded) and read the whole answer within
        ``within`` seconds. Raises TimeoutError (the request may have been sent), a TransportError, or ValueError
        before anything is sent (a line break or NUL in the path or a header)."""
        if " " in path or not _FORBIDDEN.isdisjoint(path):
            raise ValueError("the request path has a space, a line break or NUL")
        for name, value in headers.items():
            if not _FORBIDDEN.isdisjoint(value) or not _FORBIDDEN.isdisjoint(name):
                raise ValueError(f"header {name}: line breaks and NUL are not allowed")
        if body is not None:
            headers = {**headers, "Content-Type": content_type}
        session = self._session_now()
        try:
            async with session.request(
                method,
                URL(self.base + path, encoded=True),
                headers=headers,
                data=body,
                proxy=proxy,
                allow_redirects=False,
                # The connection phase (a free connection from the pool, connecting, TLS) ends a little before the
                # whole exchange's time: a timeout in it is aiohttp's ConnectionTimeoutError (nothing was sent),
                # never the exchange's TimeoutError (maybe sent). No rounding of either up to whole seconds.
                timeout=aiohttp.ClientTimeout(
                    total=within, connect=max(within - CONNECT_MARGIN, 0.001), ceil_threshold=math.inf
                ),
            ) as response:
                try:
                    return Reply(response.status, response.headers, await _read(response))
                except BaseException:
                    response.close()  # the connection, not back to the pool: its state is unknown
                    raise
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.ClientHttpProxyError) as exc:
            # before the request: no connection (or no tunnel through the proxy) was made in time
            raise ConnectFailedError(f"could not connect to Discord ({type(exc).__name__})") from exc
        except TimeoutError:
            raise  # after the request went out: it may have been sent
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise DisconnectedError(
                f"the connection ended before the answer was complete ({type(exc).__name__})"
            ) from exc
        except aiohttp.ClientResponseError as exc:
            raise BadAnswerError(f"unreadable answer ({type(exc).__name__})") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"the exchange failed ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The answer's body, decompressed, never more than MAX_ANSWER bytes in memory, raw or inflated."""
    length = response.content_length
    if length is not None and length > MAX_ANSWER:
        raise BadAnswerError("the answer is too large")
    coding = response.headers.get("Content-Encoding", "").strip().lower()
    if coding in ("", "identity"):
        if length is not None:  # aiohttp reads exactly Content-Length bytes: already bounded
            return await response.read()
        inflate = None
    elif coding in _WBITS:
        inflate = zlib.decompressobj(_WBITS[coding])
    else:
        raise BadAnswerError(f"the answer's encoding {coding[:40]!r} was not asked for")
    chunks: list[bytes] = []
    size = plain = 0
    content = response.content
    while chunk := await content.readany():
        size += len(chunk)
        if size > MAX_ANSWER:
            raise BadAnswerError("the answer is too large")
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk, MAX_ANSWER + 1 - plain)  # at most one byte past the limit
            except zlib.error as exc:
                raise BadAnswerError(f"the answer's compressed body is broken ({exc})") from None
            plain += len(chunk)
            if plain > MAX_ANSWER:
                raise BadAnswerError("the answer is too large once decompressed")
        chunks.append(chunk)
    if inflate is not None and size and not inflate.eof:
        raise BadAnswerError("the answer's compressed body is broken (it ends early)")
    return b"".join(chunks)
