"""Where a join's CPU goes, by building it up: the same join served by a bare asyncio server on httptools, with
guildgate's own parts put in one layer at a time, beside the floor and the real ``serve``, in one run.

    python bench/join_layers.py                          # concurrency 1 and 16, 4 s per row, two rounds
    python bench/join_layers.py --concurrency 1,4,16 --seconds 5 --rounds 3

Every layer answers the same request (the join call's body and ``User-Token``) from one sandbox and one load
generator (bench/load.py's), one layer after another; each adds to the one above it:

- ``bare``: the least a join can be in Python: the key compared in memory, the body read with orjson, three
  sqlite3 commits by hand (insert, user id, finish) on a table with the records table's two busiest indexes,
  Get Current User and Add Guild Member over raw keep-alive connections, the envelope written by hand;
- ``+ key and body``: the API key looked up (``KeyRepo.authenticate``) and the body parsed (``parse_join``);
- ``+ records``: the three writes through ``RecordRepo`` (the real table, group commit);
- ``+ Discord client``: both calls through ``DiscordRest`` (limiter, retries, answer parsing, metrics);
- ``core.joins.join``: the whole pipeline below HTTP (adds the precheck, velocity caps and the deadline);
- ``web handler``: ``web/api.py``'s handler (header checks, quota, envelope, metrics), still on the bare server;
- ``serve``: guildgate itself (uvicorn and FastAPI, to the same handler).

The layer servers are this script run with ``--serve LAYER`` (an experiment's server, not a product: no
keep-alive timeout, no size limits, no pipelining); each gets the stack's environment, so the real layers use
guildgate's database, settings and API key. CPU per join is the serving process's (``/proc``), as in load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load

LAYERS = ("bare", "key", "records", "discord", "join", "handler")
TITLES = {
    "bare": "bare",
    "key": "+ key and body",
    "records": "+ records",
    "discord": "+ Discord client",
    "join": "core.joins.join",
    "handler": "web handler",
    "serve": "serve",
}


# ---- the layer servers (run in their own process: --serve LAYER) --------------------------------------------
def serve(layer: str, port: int) -> None:
    import httptools
    import orjson
    import uvloop

    from guildgate.core.joins import join
    from guildgate.core.outcomes import Outcome, RecordState, Source
    from guildgate.core.ports import NewRecord, RecordUpdate
    from guildgate.settings import load_settings
    from guildgate.web import api, errors
    from guildgate.web.body import parse_join, parse_json
    from guildgate.web.services import Services

    settings = load_settings()
    api_port = int(settings.discord_api_base.split(":")[2].split("/")[0])
    bot, key_value = os.environ["BENCH_BOT"], os.environ["BENCH_KEY"]
    db = sqlite3.connect(os.environ["BENCH_BARE_DB"], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS r (id TEXT PRIMARY KEY, app TEXT, state TEXT, guild TEXT, user_id TEXT, "
        "created REAL, finished REAL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS r_app ON r (app, created, id)")
    db.execute("CREATE INDEX IF NOT EXISTS r_pending ON r (created) WHERE state = 'pending'")

    def commit(sql: str, params: tuple[Any, ...]) -> None:
        db.execute("BEGIN")
        db.execute(sql, params)
        db.execute("COMMIT")

    class Outbound(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
            self.body: list[bytes] = []
            self.closed = False

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def connection_lost(self, exc: Exception | None) -> None:
            self.closed = True

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            waiter, self.waiter = self.waiter, None
            body, self.body = b"".join(self.body), []
            assert waiter is not None
            waiter.set_result((self.parser.get_status_code(), body))

    idle: list[Outbound] = []

    async def call(head: bytes) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        conn = None
        while idle and conn is None:
            conn = idle.pop()
            conn = None if conn.closed else conn
        if conn is None:
            conn = (await loop.create_connection(Outbound, "127.0.0.1", api_port))[1]
        conn.waiter = loop.create_future()
        conn.transport.write(head)
        answer = await conn.waiter
        idle.append(conn)
        return answer

    async def bare_me(token: str) -> str:
        head = f"GET /api/v10/users/@me HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer {token}\r\n\r\n"
        _, body = await call(head.encode())
        return str(orjson.loads(body)["id"])

    async def bare_put(token: str, guild: str, user: str) -> bool:
        payload = orjson.dumps({"access_token": token})
        head = (
            f"PUT /api/v10/guilds/{guild}/members/{user} HTTP/1.1\r\nHost: d\r\nAuthorization: Bot {bot}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        status, _ = await call(head.encode() + payload)
        return status == 201

    svc: Services

    class FakeApp:
        state = type("State", (), {})()

    class BareRequest:
        """What web/api.py's handler reads from a request: headers, the body, the app's services."""

        app = FakeApp

        def __init__(self, headers: dict[str, str], body: bytes) -> None:
            self.headers, self._body = headers, body

        async def stream(self) -> Any:
            yield self._body

    async def handle(headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        started = time.perf_counter()
        if layer == "handler":
            response = await api._handle(BareRequest(headers, body), started)  # type: ignore[arg-type]
            return response.status_code, bytes(response.body)
        if layer == "bare":
            if headers.get("user-token") != key_value:
                return 401, b'{"status":0}'
            raw = orjson.loads(body)
            token, guild = raw["authorization"], raw["guild_id"]
            app_id = key_id = "bare"
        else:
            key = await svc.keys.authenticate(headers.get("user-token", ""))
            assert key is not None
            request = parse_join(parse_json(body), egress_proxies=())
            token, guild = request.authorization.reveal(), request.guild_id
            app_id, key_id = key.app_id, key.id
            app = await svc.apps.credentials(app_id)
        deadline = time.monotonic() + 30
        new = NewRecord(app_id=app_id, key_id=key_id, source=Source.API, guild_id=guild)
        if layer == "join":
            result = await join(
                request,
                app=app,
                new_record=new,
                discord=svc.discord,
                records=svc.records,
                deadline=deadline,
                started=started,
                caps=svc.caps,
            )
            return 200, orjson.dumps(errors.success_body(result, lang="zh", started=started))
        real_records = layer in ("records", "discord")
        if real_records:
            record_id = await svc.records.create(new)
        else:
            record_id = str(uuid.uuid4())
            commit(
                "INSERT INTO r (id, app, state, guild, created) VALUES (?, ?, 'pending', ?, ?)",
                (record_id, app_id, guild, time.time()),
            )
        if layer == "discord":
            user = (await svc.discord.current_user(request.authorization, app=app, deadline=deadline, proxy=None)).id
        else:
            user = await bare_me(token)
        if real_records:
            await svc.records.sending(record_id, guild_id=guild, guild_name=None, user_id=user)
        else:
            commit("UPDATE r SET user_id = ? WHERE id = ?", (user, record_id))
        if layer == "discord":
            ticket = svc.discord.precheck(app=app, guild_id=guild, deadline=deadline)
            async with svc.discord.admission(app=app, guild_id=guild, deadline=deadline, ticket=ticket) as slot:
                added = await svc.discord.add_member(
                    app=app,
                    guild_id=guild,
                    user_id=user,
                    token=request.authorization,
                    options=request.options,
                    deadline=deadline,
                    slot=slot,
                )
            joined = added.joined
        else:
            joined = await bare_put(token, guild, user)
        if real_records:
            update = RecordUpdate(state=RecordState.SUCCEEDED, code=Outcome.JOINED, guild_id=guild, user_id=user)
            await svc.records.finish(record_id, update)
        else:
            commit("UPDATE r SET state = 'succeeded', finished = ? WHERE id = ?", (time.time(), record_id))
        data = orjson.dumps({"id": guild, "name": None, "user_id": user, "joined": joined}).decode()
        cost = f"{(time.perf_counter() - started) * 1000:.2f}ms"
        return 200, orjson.dumps({"status": 1, "msg": "加入成功", "id": record_id, "data": data, "cost": cost})

    class Inbound(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.headers: dict[str, str] = {}
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_begin(self) -> None:
            self.headers, self.body = {}, []

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            asyncio.get_running_loop().create_task(self.answer(self.headers, b"".join(self.body)))

        async def answer(self, headers: dict[str, str], body: bytes) -> None:
            status, out = await handle(headers, body)
            head = b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            self.transport.write(head % (status, len(out)) + out)

    async def main() -> None:
        import gc

        nonlocal svc
        svc = Services.build(settings)
        FakeApp.state.services = svc  # type: ignore[attr-defined]
        gc.collect()
        gc.freeze()  # as serve's lifespan does
        server = await asyncio.get_running_loop().create_server(Inbound, "127.0.0.1", port)
        print("ready", flush=True)
        await server.serve_forever()

    uvloop.run(main())


# ---- the run -------------------------------------------------------------------------------------------------
def start_layers(stack: load.Stack, tmp: Path) -> list[tuple[str, load.Stack]]:
    env = {**stack.env, "BENCH_KEY": stack.key, "BENCH_BARE_DB": str(tmp / "bare.db")}
    servers: list[tuple[str, load.Stack]] = []
    for layer in LAYERS:
        port = load.free_port()
        log = (tmp / f"layer-{layer}.log").open("wb")
        args = [sys.executable, __file__, "--serve", layer, "--port", str(port)]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=log)
        stack.procs.append(proc)  # stopped with the stack
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise SystemExit(f"the {layer} layer did not start: see {tmp / f'layer-{layer}.log'}")
        view = copy.copy(stack)
        view.url, view.gateway = f"http://127.0.0.1:{port}", proc
        servers.append((layer, view))
    servers.append(("serve", stack))
    return servers


async def one_round(servers: list[tuple[str, load.Stack]], concurrency: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with load._Client("aiohttp", concurrency) as client:
        count, _, failures = await load.drive(load.floor(servers[-1][1], client), concurrency, seconds)
        out["floor"] = (count / seconds, None, failures)
        for name, view in servers:
            count, _, failures, cpu = await load.through_gateway(view, client, concurrency, seconds)
            out[name] = (count / seconds, cpu * 1000 / max(count, 1), failures)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated levels (default 1,16)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per row and round (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per level, each a column (default 2)")
    parser.add_argument("--serve", choices=LAYERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    try:
        levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error(f"--concurrency takes numbers separated by commas, not {args.concurrency!r}")
    if any(c < 1 for c in levels) or args.seconds <= 0 or args.rounds < 1:
        parser.error("concurrency levels, --seconds and --rounds must be positive")
    tables = []
    with tempfile.TemporaryDirectory(prefix="guildgate-layers-") as tmp:
        stack = load.Stack(Path(tmp))
        try:
            servers = start_layers(stack, Path(tmp))
            asyncio.run(one_round(servers, 4, 1.0))  # warm-up: connections, statements, caches
            for level in levels:
                print(f"concurrency {level}: {args.rounds} round(s)…", file=sys.stderr, flush=True)
                rounds = [asyncio.run(one_round(servers, level, args.seconds)) for _ in range(args.rounds)]
                tables.append(table(level, rounds))
        finally:
            stack.stop()
    print("\n\n".join(tables))


def table(level: int, rounds: list[dict[str, Any]]) -> str:
    cols = " / ".join(f"round {i + 1}" for i in range(len(rounds)))
    lines = [
        f"concurrency {level}\n\n| layer | joins/s ({cols}) | ratio to the floor | server CPU ms/join | failures |",
        "|---|---|---|---|---|",
    ]
    floors = [r["floor"][0] for r in rounds]
    lines.append(f"| floor | {' / '.join(f'{f:.0f}' for f in floors)} | | | {sum(r['floor'][2] for r in rounds)} |")
    for name in (*LAYERS, "serve"):
        rates = " / ".join(f"{r[name][0]:.0f}" for r in rounds)
        ratios = " / ".join(f"{r[name][0] / f:.2f}" for r, f in zip(rounds, floors, strict=True))
        cpus = " / ".join(f"{r[name][1]:.2f}" for r in rounds)
        fails = sum(r[name][2] for r in rounds)
        lines.append(f"| {TITLES[name]} | {rates} | {ratios} | {cpus} | {fails} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
