"""The Discord client's HTTP (``discord/transport.py``, aiohttp) against scripted servers on 127.0.0.1: what it
sends, how it reads answers Discord (or something in its place) may give, and how it fails — directly and through
``DiscordRest``."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import ssl
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from guildgate.core.errors import DiscordRefusedError, DiscordUnavailableError
from guildgate.core.ports import AppCredentials, MemberOptions
from guildgate.core.secret import Secret
from guildgate.discord.guilds import DiscordLookups
from guildgate.discord.oauth import exchange_code
from guildgate.discord.ratelimit import Limiter, MemoryBackend
from guildgate.discord.rest import DiscordRest
from guildgate.discord.routes import ADD_GUILD_MEMBER
from guildgate.discord.transport import (
    MAX_ANSWER,
    BadAnswerError,
    ConnectFailedError,
    DisconnectedError,
    Transport,
    TransportError,
)
from tests.servers import free_port

APP = AppCredentials(client_id="1", bot_token=Secret("bot-token"), client_secret=Secret("app-secret"))

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A TCP server on 127.0.0.1 whose every connection is handled by ``handler``; records what it read."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler, self.tls = handler, tls
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Scripted:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/api/v10"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request


def answers(*responses: bytes, then_close: bool = False) -> Callable[[Scripted], Handler]:
    """A handler that answers successive requests on a connection with ``responses`` in turn."""

    def make(server: Scripted) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for response in responses:
                await server.read_request(reader)
                writer.write(response)
                await writer.drain()
            if then_close:
                return
            await reader.read()  # keep the connection open until the client closes it

        return handler

    return make


async def scripted(make: Callable[[Scripted], Handler], tls: ssl.SSLContext | None = None) -> Scripted:
    server = Scripted(lambda r, w: asyncio.sleep(0), tls)
    server.handler = make(server)
    return await server.__aenter__()


def header_lines(request: bytes) -> dict[str, str]:
    """A request's header fields, names lower-cased."""
    head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in head)}


OK_JSON = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id": "1"}'


async def test_the_request_is_one_well_formed_http11_message_and_the_connection_is_reused() -> None:
    server = await scripted(answers(OK_JSON, OK_JSON))
    client = Transport(server.base, user_agent="DiscordBot (x, 1)")
    first = await client.request(
        "PUT", "/guilds/1/members/2", headers={"Authorization": "Bot t"}, body=b'{"a":1}', within=5
    )
    second = await client.request("GET", "/users/@me", headers={"Authorization": "Bearer u"}, within=5)
    await client.aclose()
    await server.__aexit__()
    assert (first.status, first.body, second.body) == (200, b'{"id": "1"}', b'{"id": "1"}')
    assert first.headers["content-type"] == "application/json"  # names are case-insensitive
    assert server.connections == 1  # kept alive: the second call reused the first call's connection
    put, get = server.requests
    assert put.startswith(b"PUT /api/v10/guilds/1/members/2 HTTP/1.1\r\n") and put.endswith(b'\r\n\r\n{"a":1}')
    assert {
        "host": f"127.0.0.1:{server.port}",
        "user-agent": "DiscordBot (x, 1)",
        "authorization": "Bot t",
        "content-type": "application/json",
        "content-length": "7",
        "accept-encoding": "gzip, deflate",  # what the client inflates itself, and nothing else
    }.items() <= header_lines(put).items()
    assert get.startswith(b"GET /api/v10/users/@me HTTP/1.1\r\n") and "content-length" not in header_lines(get)
    assert "cookie" not in header_lines(get)


async def test_chunked_close_delimited_and_gzip_answers_are_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b'4\r\n{"id\r\n7\r\n": "42"\r\n1\r\n}\r\n0\r\n\r\n'
    )
    packed = gzip.compress(b'{"id": "7"}')
    zipped = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    until_close = b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"id": "9"}'

    server = await scripted(answers(chunked, zipped, until_close, then_close=True))
    client = Transport(server.base, user_agent="t")
    bodies = [(await client.request("GET", "/x", headers={}, within=5)).body for _ in range(3)]
    await client.aclose()
    await server.__aexit__()
    assert bodies == [b'{"id": "42"}', b'{"id": "7"}', b'{"id": "9"}']
    assert server.connections == 1


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    server = await scripted(answers(OK_JSON, then_close=True))  # one answer per connection, then it closes
    client = Transport(server.base, user_agent="t")
    for _ in range(3):
        assert (await client.request("GET", "/users/@me", headers={}, within=5)).status == 200
        await asyncio.sleep(0.05)  # the close reaches the client while the connection sits idle
    await client.aclose()
    await server.__aexit__()
    assert server.connections == 3


async def test_a_server_that_never_answers_times_out_on_time_and_its_connection_is_dropped() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await reader.read()  # never answers; returns when the client gives up and closes

    server = await scripted(lambda s: silent)
    client = Transport(server.base, user_agent="t")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await client.request("GET", "/users/@me", headers={}, within=0.3)
    waited = time.monotonic() - started
    with pytest.raises(TimeoutError):
        await client.request("GET", "/users/@me", headers={}, within=0.1)
    await client.aclose()
    await server.__aexit__()
    assert 0.25 <= waited < 5
    assert server.connections == 2  # the hung connection was closed, not reused


async def test_failures_say_whether_anything_was_sent() -> None:
    """A connection refused carried nothing (safe to retry); a connection closed or reset after the request went out,
    an answer cut short and an answer that is not HTTP may all have reached the server. Each server sees the
    request once: a GET or PUT is never resent behind the caller's back after a dropped connection."""

    def hanging_up(*, reset: bool) -> Callable[[Scripted], Handler]:
        def make(server: Scripted) -> Handler:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await server.read_request(reader)
                if reset:
                    writer.transport.abort()  # a TCP reset after the request was read
                # else: closed (on_connect's finally) without an answer

            return handler

        return make

    closer = await scripted(hanging_up(reset=False))
    resetter = await scripted(hanging_up(reset=True))
    half = await scripted(answers(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id"', then_close=True))
    garbage = await scripted(answers(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    refused_port = closer.port
    results: list[TransportError] = []
    for server in (closer, resetter, half, garbage):
        client = Transport(server.base, user_agent="t")
        for method in ("GET", "PUT"):
            with pytest.raises(TransportError) as failed:
                await client.request(method, "/guilds/1/members/2", headers={}, within=5)
            results.append(failed.value)
        await client.aclose()
        await server.__aexit__()
        assert len(server.requests) == 2, server.requests  # one each, not resent
    await asyncio.sleep(0.05)
    nowhere = Transport(f"http://127.0.0.1:{refused_port}", user_agent="t")
    with pytest.raises(ConnectFailedError) as refused:
        await nowhere.request("PUT", "/", headers={}, within=5)
    await nowhere.aclose()
    assert [type(e) for e in results] == [DisconnectedError] * 6 + [BadAnswerError] * 2
    assert all(e.sent for e in results)  # the request may have reached the server
    assert refused.value.sent is False  # nothing left this machine


async def test_line_breaks_in_a_header_are_refused_before_anything_is_sent() -> None:
    server = await scripted(answers(OK_JSON))
    client = Transport(server.base, user_agent="t")
    for value in ("Bearer a\r\nX-Evil: 1", "Bearer a\nb", "Bearer \0"):
        with pytest.raises(ValueError, match="line breaks"):
            await client.request("GET", "/users/@me", headers={"Authorization": value}, within=5)
    with pytest.raises(ValueError, match="request path"):
        await client.request("GET", "/users/@me HTTP/1.0\r\n", headers={}, within=5)
    await client.aclose()
    await server.__aexit__()
    assert server.connections == 0 and server.requests == []


async def test_an_id_from_discords_answer_cannot_change_the_path_of_the_next_call() -> None:
    """A hostile answer to Get Current User names the user '2/../../x y': it is not taken as a user id at all;
    and an id that reached a call anyway would still go to that one member path, percent-encoded."""

    user = b'{"id": "2/../../x y", "username": "u"}'
    me = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(user), user)
    added = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    server = await scripted(answers(me, added))
    rest = DiscordRest(api_base=server.base, limiter=Limiter(MemoryBackend()))
    deadline = time.monotonic() + 10
    with pytest.raises(DiscordUnavailableError, match="without a user id"):
        await rest.current_user(Secret("user-token"), app=APP, deadline=deadline)
    await rest.call(
        ADD_GUILD_MEMBER,
        {"guild_id": "1", "user_id": "2/../../x y"},
        auth=("Bot", Secret("bot-token")),
        deadline=deadline,
        json_body={"access_token": "user-token"},
    )
    await rest.aclose()
    await server.__aexit__()
    assert server.requests[1].startswith(b"PUT /api/v10/guilds/1/members/2%2F..%2F..%2Fx%20y HTTP/1.1\r\n")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no default trust store knows."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_https_checks_the_certificate(tmp_path: Path) -> None:
    """Over https the server's certificate is verified: an untrusted one is refused before the request (and
    its token) is sent; the same server, trusted, is spoken to."""
    cert, key = _self_signed(tmp_path)

    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    server = await scripted(answers(OK_JSON), tls=served)
    untrusting = Transport(server.base, user_agent="t")
    with pytest.raises(ConnectFailedError):
        await untrusting.request("GET", "/users/@me", headers={"Authorization": "Bearer secret"}, within=5)
    await untrusting.aclose()
    requests_before_trust = len(server.requests)
    trusting = Transport(server.base, user_agent="t", ssl_context=ssl.create_default_context(cafile=str(cert)))
    reply = await trusting.request("GET", "/users/@me", headers={"Authorization": "Bearer secret"}, within=5)
    await trusting.aclose()
    await server.__aexit__()
    assert server.base.startswith("https://")
    assert requests_before_trust == 0
    assert reply.status == 200 and reply.body == b'{"id": "1"}'
    assert server.requests[0].startswith(b"GET /api/v10/users/@me HTTP/1.1\r\n")


async def test_a_token_with_a_line_break_is_answered_not_sent() -> None:
    """A token with a line break (one a hostile token endpoint handed out, say) ends as discord_unavailable,
    nothing sent and the limiter's slot given back, never a crash."""

    server = await scripted(answers(OK_JSON))
    limiter = Limiter(MemoryBackend())
    rest = DiscordRest(api_base=server.base, limiter=limiter)
    with pytest.raises(DiscordUnavailableError, match="line breaks"):
        await rest.current_user(Secret("token\r\nX-Evil: 1"), app=APP, deadline=time.monotonic() + 5)
    found = await rest.current_user(Secret("fine-token"), app=APP, deadline=time.monotonic() + 5)  # slot back
    await rest.aclose()
    await server.__aexit__()
    assert found.id == "1" and len(server.requests) == 1


async def test_at_most_max_connections_exchanges_at_once_and_a_wait_past_the_time_sends_nothing() -> None:
    open_now = peak = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        try:
            while True:
                await server.read_request(reader)
                await asyncio.sleep(0.1)
                writer.write(OK_JSON)
                await writer.drain()
        finally:
            open_now -= 1

    server = await scripted(lambda s: slow)
    client = Transport(server.base, user_agent="t", max_connections=2)
    calls = [client.request("GET", "/users/@me", headers={}, within=5) for _ in range(6)]
    replies = await asyncio.gather(*calls)
    with pytest.raises(ConnectFailedError):
        held = [asyncio.ensure_future(client.request("GET", "/x", headers={}, within=5)) for _ in range(2)]
        await asyncio.sleep(0.01)
        await client.request("GET", "/users/@me", headers={}, within=0.05)
    await asyncio.gather(*held)
    await client.aclose()
    await server.__aexit__()
    assert [r.status for r in replies] == [200] * 6
    assert peak == 2 and server.connections == 2  # two connections, each reused
    assert len(server.requests) == 8  # the call that found no free connection sent nothing


async def test_a_second_event_loop_does_not_reuse_the_first_loops_connections() -> None:
    async def one(server: Scripted, client: Transport) -> int:
        return (await client.request("GET", "/users/@me", headers={}, within=5)).status

    server = await scripted(answers(OK_JSON, OK_JSON))
    client = Transport(server.base, user_agent="t")
    assert await one(server, client) == 200
    thread_result: list[int] = []

    async def another() -> int:
        status = await one(server, client)
        await client.aclose()  # what a CLI command's services do at the end of its asyncio.run
        return status

    def in_another_loop() -> None:
        thread_result.append(asyncio.run(another()))

    await asyncio.to_thread(in_another_loop)
    await client.aclose()
    await server.__aexit__()
    assert thread_result == [200] and server.connections == 2


async def test_rate_limit_headers_that_are_not_finite_numbers_count_as_absent() -> None:
    """A hostile or broken answer with ``X-RateLimit-Limit: NaN`` (or ``1e999``, or a JSON ``retry_after`` of
    ``Infinity``) is answered like one without those headers: the call returns its answer, the limiter is not fed
    the value, and the next call goes out as usual."""

    user = b'{"id": "2", "username": "u"}'
    me = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-RateLimit-Limit: NaN\r\n"
        b"X-RateLimit-Remaining: 1e999\r\nX-RateLimit-Reset-After: inf\r\nRetry-After: nan\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(user), user)
    )
    strange = b'{"retry_after": Infinity}'
    added = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(strange),
        strange,
    )
    server = await scripted(answers(me, added, me))
    rest = DiscordRest(api_base=server.base, limiter=Limiter(MemoryBackend()))
    deadline = time.monotonic() + 10
    found = await rest.current_user(Secret("user-token"), app=APP, deadline=deadline)
    created = await rest.add_member(
        app=APP,
        guild_id="1",
        user_id=found.id,
        token=Secret("user-token"),
        options=MemberOptions(),
        deadline=deadline,
    )
    again = await rest.current_user(Secret("user-token"), app=APP, deadline=deadline)
    await rest.aclose()
    await server.__aexit__()
    assert (found.id, created.joined, created.status, again.id) == ("2", True, 201, "2")
    assert len(server.requests) == 3


def json_answer(body: bytes, status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    """One HTTP/1.1 answer with a JSON body; ``headers``: more header lines, each ending in CRLF."""
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        status,
        headers,
        len(body),
        body,
    )


async def raised_by(reply: bytes, call: Callable[[DiscordRest], Awaitable[Any]]) -> Exception:
    """What ``call`` raises against a server that answers ``reply`` to every request (a connection's
    requests, as many as a call's retries)."""
    server = await scripted(answers(*[reply] * 4))
    rest = DiscordRest(api_base=server.base, limiter=Limiter(MemoryBackend()))
    try:
        await call(rest)
    except Exception as exc:  # the caller asserts which
        return exc
    finally:
        await rest.aclose()
        await server.__aexit__()
    raise AssertionError("the call raised nothing")


def me(rest: DiscordRest) -> Awaitable[Any]:
    return rest.current_user(Secret("user-token"), app=APP, deadline=time.monotonic() + 10)


async def test_a_made_up_rate_limit_scope_reaches_the_metrics_as_other() -> None:
    """``X-RateLimit-Scope`` labels the Discord-answer metrics: a hostile answer with a new scope every time must
    not make a new label (and a new series in /metrics) every time. Documented scopes pass as they are."""

    class Seen:
        def __init__(self) -> None:
            self.scopes: list[str | None] = []

        def answered(self, template: str, method: str, status: int, scope: str | None) -> None:
            self.scopes.append(scope)

    scopes = [f"made-up-{i}".encode() for i in range(5)] + [b"user", b"shared"]
    user = b'{"id": "2", "username": "u"}'
    server = await scripted(answers(*(json_answer(user, headers=b"X-RateLimit-Scope: %s\r\n" % s) for s in scopes)))
    seen = Seen()
    rest = DiscordRest(api_base=server.base, limiter=Limiter(MemoryBackend()), observer=seen)
    for _ in scopes:
        await me(rest)
    await rest.aclose()
    await server.__aexit__()
    result = seen.scopes

    assert result == ["other"] * 5 + ["user", "shared"]


async def test_an_answer_nested_past_the_stack_is_refused_and_its_slot_given_back() -> None:
    """Get Current User answered with JSON nested 3,000 deep (orjson refuses it past 1,024 levels; the standard
    library then overflowed the stack and the call raised with its slot held): the join is told Discord answered
    without a user id, and the next call on the same bucket goes out at once."""

    limits = b"X-RateLimit-Limit: 1\r\nX-RateLimit-Remaining: 1\r\nX-RateLimit-Reset-After: 60\r\n"
    deep, user = b"[" * 3000 + b"]" * 3000, b'{"id": "2", "username": "u"}'
    server = await scripted(answers(json_answer(deep, headers=limits), json_answer(user, headers=limits)))
    rest = DiscordRest(api_base=server.base, limiter=Limiter(MemoryBackend()))
    with pytest.raises(DiscordUnavailableError) as refused:
        await me(rest)
    found = await rest.current_user(Secret("user-token"), app=APP, deadline=time.monotonic() + 1)
    await rest.aclose()
    await server.__aexit__()
    problem, found = str(refused.value), found.id

    assert "without a user id" in problem
    assert found == "2"


async def test_ids_in_discords_answers_must_be_numbers_and_its_messages_lose_control_characters() -> None:
    """Get Current User's ``id`` and Get Invite's ``guild.id`` go into the next call's path and into the record
    (PostgreSQL columns of 20 characters that hold no NUL): an answer with a NUL, a path or 25 digits there is an
    answer without an id. Discord's error ``message`` goes into the record's detail: control characters become
    spaces."""

    def invite(rest: DiscordRest) -> Awaitable[Any]:
        return rest.resolve_invite("abc", app=APP, deadline=time.monotonic() + 10)

    def add(rest: DiscordRest) -> Awaitable[Any]:
        options, token = MemberOptions(), Secret("user-token")
        return rest.add_member(
            app=APP, guild_id="1", user_id="2", token=token, options=options, deadline=time.monotonic() + 10
        )

    bad_ids = ('"12\\u0000"', '"../users/@me"', '"' + "1" * 25 + '"', '""', "12345678901234567")
    users = [await raised_by(json_answer(b'{"id": %s}' % bad.encode()), me) for bad in bad_ids]
    guild = b'{"code": "abc", "guild": {"id": %s, "name": "x"}}'
    invites = [await raised_by(json_answer(guild % bad.encode()), invite) for bad in bad_ids]
    refused = b'{"code": 50013, "message": "Missing\\u0000Permissions\\r\\n"}'
    refused = await raised_by(json_answer(refused, b"403 Forbidden"), add)

    assert all(isinstance(e, DiscordUnavailableError) and "without a user id" in str(e) for e in users), users
    assert all(isinstance(e, DiscordUnavailableError) and "without a server id" in str(e) for e in invites), invites
    assert isinstance(refused, DiscordRefusedError) and str(refused) == "Missing Permissions"


async def test_the_token_endpoints_error_reaches_the_record_without_control_characters() -> None:
    """A join link's code exchange refused with an ``error`` holding a NUL and a line break: the refusal (which
    becomes the record's detail, PostgreSQL text that holds no NUL) names it with those made spaces."""

    def exchange(rest: DiscordRest) -> Awaitable[Any]:
        return exchange_code(
            rest, app=APP, code="c", redirect_uri="https://x/cb", verifier="v", deadline=time.monotonic() + 10
        )

    refused = await raised_by(json_answer(b'{"error": "invalid\\u0000grant\\n"}', b"400 Bad Request"), exchange)
    assert isinstance(refused, DiscordRefusedError)
    assert str(refused) == "Discord refused the authorization code (invalid grant)"


async def test_a_servers_name_and_icon_from_get_guild_are_checked_before_a_link_keeps_them() -> None:
    """The doctor's Get Guild answer names the server and its icon for a join link's page: a name with a NUL and
    a line break loses them, and an icon that is not a hash (it goes into an image URL) is dropped."""

    role = b'{"id": "5", "name": "r\\u0000"}'
    body = b'{"id": "1", "name": "Evil\\u0000\\nServer", "icon": "../../x", "roles": [%s]}' % role
    server = await scripted(answers(json_answer(body)))
    rest = DiscordRest(api_base=server.base, limiter=Limiter(MemoryBackend()))
    guild = await DiscordLookups(rest).guild(APP, "1", deadline=time.monotonic() + 10)
    await rest.aclose()
    await server.__aexit__()
    result = guild.name, guild.icon, guild.roles[0].name

    assert result == ("Evil Server", None, "r")


def _gzip_of_zeros(size: int) -> bytes:
    pack = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(pack.compress(block) for _ in range(size >> 20)) + pack.flush()


async def test_a_compressed_answer_is_decompressed_only_so_far_and_a_broken_one_is_refused() -> None:
    """A hostile answer's 64 KB of gzip is 64 MB of zeros: it is refused as too large at MAX_ANSWER, without
    the 64 MB ever being in memory; a body that is not the gzip it claims is refused as broken (it was a
    zlib.error the call did not expect)."""
    bomb = _gzip_of_zeros(64 << 20)
    assert len(bomb) < 100_000
    zipped = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s"

    problems = []
    deflated = zlib.compress(bytes(64 << 20), 9)
    cut_short = gzip.compress(b'{"id": "1"}' * 100)[:-20]
    for body, coding in (
        (bomb, b"gzip"),
        (deflated, b"deflate"),
        (b"\x1f\x8b\x08\x00 not gzip", b"gzip"),
        (cut_short, b"gzip"),
    ):
        server = await scripted(answers(zipped % (coding, len(body), body), then_close=True))
        client = Transport(server.base, user_agent="t")
        tracemalloc.start()
        with pytest.raises(BadAnswerError) as refused:
            await client.request("GET", "/x", headers={}, within=5)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 3 * MAX_ANSWER, peak  # never the whole 64 MB
        problems.append(str(refused.value))
        await client.aclose()
        await server.__aexit__()
    too_large, deflate_too_large, broken, cut = problems

    assert too_large == deflate_too_large == "the answer is too large once decompressed"
    assert broken.startswith("the answer's compressed body is broken")
    assert cut == "the answer's compressed body is broken (it ends early)"
    # through the Discord client: retried as an answer that could not be read, then a clear 502, not a crash
    for body in (bomb, b"\x1f\x8b\x08\x00 not gzip"):
        unavailable = await raised_by(zipped % (b"gzip", len(body), body), me)
        assert isinstance(unavailable, DiscordUnavailableError) and "BadAnswerError" in str(unavailable), unavailable
        assert unavailable.outcome.value == "discord_unavailable" and unavailable.http_status == 502


async def test_an_answer_through_an_egress_proxy_is_read_only_up_to_the_limit() -> None:
    """Through an operator's egress proxy (aiohttp), an answer was read whole, however large. Now it is read as
    it comes and refused past MAX_ANSWER, decompressed or not; the call ends as Discord being unavailable."""
    huge = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (64 << 20)
    bomb = _gzip_of_zeros(64 << 20)
    zipped = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(bomb), bomb)

    async def through_the_proxy(reply: bytes) -> tuple[Exception, int]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await proxy.read_request(reader)
            writer.write(reply)
            if reply is huge:
                for _ in range(64):  # 64 MB of body, a megabyte at a time, while the client reads
                    writer.write(bytes(1 << 20))
                    await writer.drain()
            await writer.drain()

        proxy = await scripted(lambda server: answer)
        rest = DiscordRest(
            api_base="http://discord.invalid/api/v10", limiter=Limiter(MemoryBackend()), egress_proxies=(proxy.base,)
        )
        tracemalloc.start()
        try:
            await rest.current_user(Secret("user-token"), app=APP, deadline=time.monotonic() + 10, proxy=proxy.base)
        except Exception as exc:  # asserted below
            raised = exc
        else:
            raise AssertionError("the call raised nothing")
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            await rest.aclose()
            await proxy.__aexit__()
        return raised, peak

    for reply in (huge, zipped):
        raised, peak = await through_the_proxy(reply)
        assert isinstance(raised, DiscordUnavailableError) and "BadAnswerError" in str(raised), raised
        assert peak < 3 * MAX_ANSWER, peak


async def test_an_oversized_answer_is_refused_as_it_comes() -> None:
    """64 MB of answer, declared (``Content-Length``) or not (chunked), is refused at MAX_ANSWER without being held
    whole; through the Discord client the call ends as Discord being unavailable."""
    declared = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (64 << 20)
    chunked = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"

    def streaming(head: bytes) -> Callable[[Scripted], Handler]:
        def make(server: Scripted) -> Handler:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await server.read_request(reader)
                writer.write(head)
                for _ in range(64):  # a megabyte at a time, while the client reads
                    block = bytes(1 << 20)
                    writer.write(block if head is declared else b"%x\r\n%s\r\n" % (len(block), block))
                    await writer.drain()

            return handler

        return make

    async def read_streamed(head: bytes) -> tuple[str, int]:
        server = await scripted(streaming(head))
        client = Transport(server.base, user_agent="t")
        tracemalloc.start()
        try:
            with pytest.raises(BadAnswerError) as refused:
                await client.request("GET", "/x", headers={}, within=10)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            await client.aclose()
            await server.__aexit__()
        return str(refused.value), peak

    for head in (declared, chunked):
        problem, peak = await read_streamed(head)
        assert problem == "the answer is too large"
        assert peak < 3 * MAX_ANSWER, peak
    unavailable = await raised_by(declared + b"{}", me)
    assert isinstance(unavailable, DiscordUnavailableError) and "BadAnswerError" in str(unavailable), unavailable


async def test_a_redirect_is_answered_never_followed_with_the_token() -> None:
    """An answer that redirects (to a server that would read the token) is the call's answer: nothing goes to where
    it points. Get Current User answered 307 is a refusal from Discord (``discord_error``), not a user."""

    elsewhere = await scripted(answers(OK_JSON, OK_JSON))
    redirect = (
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:%d/api/v10/users/@me\r\n"
        b"Content-Length: 0\r\n\r\n" % elsewhere.port
    )
    server = await scripted(answers(redirect, redirect))
    client = Transport(server.base, user_agent="t")
    reply = await client.request("GET", "/users/@me", headers={"Authorization": "Bearer secret"}, within=5)
    await client.aclose()
    refused = await raised_by(redirect, me)
    await server.__aexit__()
    await elsewhere.__aexit__()
    status, reached = reply.status, elsewhere.connections

    assert status == 307
    assert isinstance(refused, DiscordRefusedError) and refused.outcome.value == "discord_error", refused
    assert refused.discord_status == 307
    assert reached == 0  # the redirect's target never heard from the client


async def test_a_call_ends_by_its_deadline_when_discord_never_answers() -> None:
    """Each attempt has its time and the call its deadline: against a server that reads requests and never answers,
    Get Current User ends as ``discord_unavailable`` (504, not answered in time) at its deadline, after more than
    one attempt, each on a fresh connection."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await reader.read()

    server = await scripted(lambda s: silent)
    rest = DiscordRest(api_base=server.base, limiter=Limiter(MemoryBackend()))
    started = time.monotonic()
    try:
        await rest.current_user(Secret("user-token"), app=APP, deadline=started + 2.0)
    except Exception as exc:  # asserted below
        raised = exc
    else:
        raise AssertionError("the call raised nothing")
    finally:
        took = time.monotonic() - started
        await rest.aclose()
        await server.__aexit__()

    assert isinstance(raised, DiscordUnavailableError) and raised.http_status == 504, raised
    assert "did not answer in time" in str(raised)
    assert 1.0 <= took < 5, took
    assert len(server.requests) >= 2 and server.connections == len(server.requests)


async def test_direct_and_proxied_calls_share_one_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """One aiohttp session per process: a call through an operator's egress proxy is an option of the same
    session as the direct calls (the proxy gets the absolute URL), not a second client; a proxy that cannot be
    reached is a connection that carried nothing."""
    made: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def counting(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(aiohttp, "ClientSession", counting)
    user = json_answer(b'{"id": "2", "username": "u"}')

    direct = await scripted(answers(user, user))
    proxy = await scripted(answers(user))
    closed_port = free_port()
    rest = DiscordRest(
        api_base=direct.base,
        limiter=Limiter(MemoryBackend()),
        egress_proxies=(proxy.base, f"http://127.0.0.1:{closed_port}"),
    )
    deadline = time.monotonic() + 10
    await rest.current_user(Secret("t1"), app=APP, deadline=deadline)
    await rest.current_user(Secret("t2"), app=APP, deadline=deadline, proxy=proxy.base)
    await rest.current_user(Secret("t3"), app=APP, deadline=deadline)
    try:
        await rest.current_user(Secret("t4"), app=APP, deadline=deadline, proxy=f"http://127.0.0.1:{closed_port}")
    except Exception as exc:  # asserted below
        unreachable = exc
    await rest.aclose()
    await direct.__aexit__()
    await proxy.__aexit__()

    assert len(made) == 1 and made[0].closed
    assert len(direct.requests) == 2 and len(proxy.requests) == 1
    assert proxy.requests[0].startswith(b"GET http://127.0.0.1:%d/api/v10/users/@me HTTP/1.1\r\n" % direct.port)
    assert header_lines(proxy.requests[0])["authorization"] == "Bearer t2"
    assert isinstance(unreachable, DiscordUnavailableError) and "ConnectFailedError" in str(unreachable), unreachable
