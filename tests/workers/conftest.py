"""A webhook receiver on 127.0.0.1 (in the test's event loop) that verifies every message with the
``standardwebhooks`` library, and a migrated database with the fixture's app, for the sender's own tests."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from guildgate.core.secret import Secret
from guildgate.settings import Settings
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.migrate import upgrade
from guildgate.store.repos import AppRepo

APP = "1100000000000000001"
KEY = "test-secret-key-0123456789abcdef-Zq"


@dataclass
class Message:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each path with the statuses scripted for it, in turn (then 200); keeps every message."""

    base: str
    messages: list[Message] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)  # paths whose answers wait until the test ends
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # extra answer headers per path
    bodies: dict[str, bytes] = field(default_factory=dict)  # answer bodies per path
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return self.base + path

    def at(self, path: str) -> list[Message]:
        return [m for m in self.messages if m.path == path]

    def verified(self, path: str, secret: str) -> list[Any]:
        """Every message to ``path`` verified with ``secret`` (raises on the first that does not verify)."""
        return [Webhook(secret).verify(m.body, m.headers) for m in self.at(path)]

    async def wait_for(self, done: Callable[[], bool], what: str, within: float = 20.0) -> None:
        async def until() -> None:
            while not done():
                self.arrived.clear()
                await self.arrived.wait()

        try:
            await asyncio.wait_for(until(), within)
        except TimeoutError:
            raise AssertionError(f"waited {within:g} s for {what}; got {len(self.messages)} messages") from None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    holder: dict[str, Receiver] = {}

    async def handle(request: web.Request) -> web.Response:
        rec = holder["r"]
        body = await request.read()
        rec.messages.append(Message(request.path, dict(request.headers), body))
        if request.path in rec.held:
            rec.arrived.set()
            await rec.release.wait()
        statuses = rec.script.get(request.path) or []
        status = statuses.pop(0) if statuses else 200
        rec.arrived.set()
        if request.path in rec.bodies:
            return web.Response(status=status, body=rec.bodies[request.path], headers=rec.headers.get(request.path))
        return web.Response(status=status, text=f"answer {status}", headers=rec.headers.get(request.path))

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    holder["r"] = Receiver(base=f"http://127.0.0.1:{port}")
    yield holder["r"]
    holder["r"].release.set()
    await runner.cleanup()


def migrated_url(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    """A database brought to the newest schema: a SQLite file, or a database of its own on the session's
    PostgreSQL."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'hooks.db'}"
    else:
        import asyncpg

        server = request.getfixturevalue("postgres_server")
        name = "hooks_" + secrets.token_hex(6)

        async def create() -> None:
            conn = await asyncpg.connect(server.url)
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        asyncio.run(create())
        url = server.url.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_url(request, tmp_path, request.param)


def settings_for(db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {"database_url": db_url, "secret_key": KEY, "webhook_allow_insecure": True}
    values.update(extra)
    return Settings(**values)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await AppRepo(database, SecretBox(KEY)).add(
        client_id=APP, name="a", client_secret=Secret("s" * 32), bot_token=Secret("t" * 40)
    )
    yield database
    await database.dispose()


class ThreadReceiver:
    """A receiver in a thread of the test (for tests that drive a ``serve`` process with blocking calls):
    answers ``status`` (503 until told otherwise, say) and keeps every message."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.status = 200
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    outer.messages.append(Message(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    status = outer.status
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self, secret: str) -> dict[str, Any]:
        """Every message's body by event id, each verified with ``secret`` (raises on one that does not)."""
        with self.lock:
            messages = list(self.messages)
        return {m.headers["webhook-id"]: Webhook(secret).verify(m.body, m.headers) for m in messages}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def thread_receiver() -> Any:
    receiver = ThreadReceiver()
    yield receiver
    receiver.close()
