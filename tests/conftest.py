"""Shared test harness: a Discord sandbox and a guildgate server, each a real process on a loopback port,
with the real database. Fixtures are factories; nothing of our own is mocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import Server, free_port, start_postgres, start_redis, stop_process, wait_http

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "world.json"
WORLD = json.loads(FIXTURE.read_text())
BIN = Path(sys.executable).parent
OUTPUT = ROOT / "test-output"
STARTED = time.time()  # when this test run began (its files are newer)

APP_A = "1100000000000000001"
APP_B = "1100000000000000101"
GUILD = "1200000000000000001"
GUILD_NOPERMS = "1200000000000000002"
GUILD_BOTLESS = "1200000000000000003"
ROLE_LOW = "1200000000000000011"
ROLE_HIGH = "1200000000000000012"
TOKENS = {u["username"]: u["tokens"][0]["access_token"] for u in WORLD["users"]}
USER_IDS = {u["username"]: u["id"] for u in WORLD["users"]}
SECRET_KEY = "test-secret-key-0123456789abcdef-Zq"
ADMIN_TOKEN = "test-admin-token-7f3a9c1e5b"
EGRESS_PROXY = "http://127.0.0.1:9"  # allowed by configuration; nothing listens there
PUT = "PUT /guilds/{guild_id}/members/{user_id}"  # Add Guild Member, as the sandbox names it (faults, stats)

# Every secret the suite uses, for the leak scan.
SECRETS: set[str] = {SECRET_KEY, ADMIN_TOKEN, *TOKENS.values()}
for _app in WORLD["applications"]:
    SECRETS.update({_app["client_secret"], _app["bot_token"]})


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        stop_process(self.proc, grace=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(args: list[str], *, env: dict[str, str], log: Path, ready_path: str, port: int) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [str(BIN / "guildgate"), *args], env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + ready_path, proc)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(log.read_text(errors="replace")[-3000:]) from None
    return Proc(proc=proc, url=url, log=log)


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUILDGATE_")}
    env.update(
        {
            "GUILDGATE_DATABASE_URL": f"sqlite:///{tmp / 'guildgate.db'}",
            "GUILDGATE_SECRET_KEY": SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    env.update(extra)
    return env


def cli(
    args: list[str], *, env: dict[str, str], input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "guildgate"), *args], env=env, input=input, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"guildgate {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass
class Sandbox:
    proc: Proc

    @property
    def api(self) -> str:
        return self.proc.url + "/api/v10"

    def reset(self, fixture: dict[str, Any] | None = None) -> None:
        if fixture is None:
            httpx.post(self.proc.url + "/_sandbox/reset").raise_for_status()
        else:
            httpx.put(self.proc.url + "/_sandbox/fixture", json=fixture).raise_for_status()

    def faults(self, faults: dict[str, Any]) -> None:
        httpx.put(self.proc.url + "/_sandbox/faults", json=faults).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.proc.url + "/_sandbox/stats").json())

    def state(self) -> dict[str, Any]:
        return dict(httpx.get(self.proc.url + "/_sandbox/state").json())

    def member(self, guild_id: str, user_id: str) -> dict[str, Any] | None:
        members = self.state()["guilds"][guild_id]["members"]
        return members.get(user_id)

    def mint(self, user: str, *, app: str = APP_A, scopes: list[str] | None = None) -> str:
        body = {
            "user_id": USER_IDS.get(user, user),
            "application_id": app,
            "scopes": scopes or ["identify", "guilds.join"],
        }
        token = str(httpx.post(self.proc.url + "/_sandbox/tokens", json=body).json()["access_token"])
        SECRETS.add(token)
        return token


@dataclass
class Gateway:
    proc: Proc
    env: dict[str, str]
    db_files: list[Path]  # every file that holds the database (SQLite file and WAL, or PostgreSQL's data dir)
    kind: str
    keys: dict[str, str] = field(default_factory=dict)

    def pending(self) -> list[dict[str, Any]]:
        out = cli(["records", "list", "--state", "pending", "--limit", "500", "--json"], env=self.env).stdout
        return list(json.loads(out))

    def join(
        self,
        body: dict[str, Any] | bytes | str,
        *,
        key: str = "a",
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> httpx.Response:
        h: dict[str, str] = {}
        if key:
            h["User-Token"] = self.keys.get(key, key)
        if content_type:
            h["Content-Type"] = content_type
        h.update(headers or {})
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        return httpx.post(self.proc.url + "/api/wanda/discord/guild", content=content, headers=h, timeout=60)

    def get(self, path: str, *, key: str = "a", lang: str | None = None, **params: Any) -> httpx.Response:
        headers = {"User-Token": self.keys.get(key, key)} if key else {}
        if lang:
            headers["Accept-Language"] = lang
        return httpx.get(self.proc.url + path, headers=headers, params=params, timeout=30)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("guildgate")


@pytest.fixture(scope="session")
def sandbox(session_dir: Path) -> Iterator[Sandbox]:
    port = free_port()
    proc = start(
        ["sandbox", "--fixture", str(FIXTURE), "--port", str(port)],
        env=base_env(session_dir),
        log=OUTPUT / "sandbox.log",
        ready_path="/_sandbox/stats",
        port=port,
    )
    yield Sandbox(proc)
    proc.stop()


def add_app(env: dict[str, str], app: dict[str, Any]) -> None:
    secret_env = {**env, "TEST_CLIENT_SECRET": app["client_secret"], "TEST_BOT_TOKEN": app["bot_token"]}
    cli(
        [
            "apps",
            "add",
            "--client-id",
            app["client_id"],
            "--client-secret-env",
            "TEST_CLIENT_SECRET",
            "--bot-token-env",
            "TEST_BOT_TOKEN",
            "--name",
            app["name"],
        ],
        env=secret_env,
    )


def new_key(env: dict[str, str], app: str, *extra: str) -> str:
    out = cli(["keys", "create", "--app", app, "--json", *extra], env=env).stdout
    key = str(json.loads(out)["key"])
    SECRETS.add(key)
    return key


def own_gateway(tmp: Path, sandbox: Sandbox, log_name: str, **extra: str) -> tuple[Proc, str]:
    """A `guildgate serve` of a test's own (SQLite, one worker) against ``sandbox`` with every fixture app
    added and ``extra`` settings; with an API key of APP_A. Stop it when done."""
    env = base_env(tmp, GUILDGATE_DISCORD_API_BASE=sandbox.api, **extra)
    for app in WORLD["applications"]:
        add_app(env, app)
    key = new_key(env, APP_A)
    port = free_port()
    server = start(["serve", "--port", str(port)], env=env, log=OUTPUT / log_name, ready_path="/readyz", port=port)
    return server, key


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    server = start_postgres()
    yield server
    server.stop()


def gateway_env(home: Path, sandbox: Sandbox, port: int, **settings: str) -> dict[str, str]:
    """The environment of a gateway on ``port`` in front of ``sandbox``, with the admin token and ``settings``."""
    return base_env(
        home,
        GUILDGATE_DISCORD_API_BASE=sandbox.api,
        GUILDGATE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        GUILDGATE_ADMIN_TOKEN=ADMIN_TOKEN,
        **settings,
    )


# The API suite runs twice: SQLite with one worker and in-process limits (the default set-up), and
# PostgreSQL with four workers sharing Redis (the production set-up).
@pytest.fixture(scope="session", params=["sqlite", "postgres+redis+4workers"])
def gateway(request: pytest.FixtureRequest, session_dir: Path, sandbox: Sandbox) -> Iterator[Gateway]:
    port = free_port()
    env = gateway_env(
        session_dir,
        sandbox,
        port,
        GUILDGATE_REQUEST_TIMEOUT="4",
        GUILDGATE_EGRESS_PROXIES=EGRESS_PROXY,
        GUILDGATE_LOG_LEVEL="debug",
        # the suite reads records with key "a" far faster than a client may: the read limit is test_read_limit.py's
        GUILDGATE_READS_PER_MINUTE="1000000",
    )
    workers = "1"
    db_files = [session_dir / "guildgate.db", session_dir / "guildgate.db-wal", session_dir / "guildgate.db-shm"]
    if request.param != "sqlite":
        pg: Server = request.getfixturevalue("postgres_server")
        redis: Server = request.getfixturevalue("redis_server")
        env.update(GUILDGATE_DATABASE_URL=pg.url, GUILDGATE_REDIS_URL=redis.url)
        workers = "4"
        db_files = [pg.home / "data"]
    for app in WORLD["applications"]:  # after the database is chosen
        add_app(env, app)
    keys = {
        "a": new_key(env, APP_A, "--name", "a"),
        "a2": new_key(env, APP_A, "--name", "a2"),
        "b": new_key(env, APP_B, "--name", "b"),
    }
    log = OUTPUT / f"gateway-{request.param}.log"
    proc = start(
        ["serve", "--port", str(port), "--workers", workers], env=env, log=log, ready_path="/readyz", port=port
    )
    yield Gateway(proc=proc, env=env, db_files=db_files, kind=request.param, keys=keys)
    proc.stop()


def one_worker_gateway(home: Path, sandbox: Sandbox, name: str, **settings: str) -> Gateway:
    """``serve`` as an operator starts it (SQLite, one worker, in-process limits) with the fixture's apps, key "a"
    of app A and ``settings`` on top; its log is test-output/gateway-NAME.log. The caller stops ``.proc``."""
    port = free_port()
    env = gateway_env(home, sandbox, port, **settings)
    for app in WORLD["applications"]:
        add_app(env, app)
    keys = {"a": new_key(env, APP_A)}
    log = OUTPUT / f"gateway-{name}.log"
    proc = start(["serve", "--port", str(port)], env=env, log=log, ready_path="/readyz", port=port)
    return Gateway(proc=proc, env=env, db_files=[], kind=f"sqlite-{name}", keys=keys)


@contextmanager
def gateway_with_keys(
    home: Path, sandbox: Sandbox, name: str, keys: dict[str, str], *, redis: bool, **settings: str
) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """``serve`` with ``settings``: one worker with in-process windows, or (``redis``) two workers sharing a Redis
    of its own (another test's counts in a shared Redis would count here); with the fixture's apps and a key
    named N of app A for each ``keys`` item N: A. Yields the URL and each key as ``keys create --json`` shows it;
    its log is test-output/gateway-NAME.log."""
    port = free_port()
    own_redis = start_redis() if redis else None
    if own_redis is not None:
        settings["GUILDGATE_REDIS_URL"] = own_redis.url
    try:
        env = gateway_env(home, sandbox, port, **settings)
        for app in WORLD["applications"]:
            add_app(env, app)
        made: dict[str, dict[str, Any]] = {}
        for key_name, app_id in keys.items():
            made[key_name] = json.loads(
                cli(["keys", "create", "--app", app_id, "--json", "--name", key_name], env=env).stdout
            )
            SECRETS.add(made[key_name]["key"])
        workers = "2" if own_redis is not None else "1"
        proc = start(
            ["serve", "--port", str(port), "--workers", workers],
            env=env,
            log=OUTPUT / f"gateway-{name}.log",
            ready_path="/readyz",
            port=port,
        )
        try:
            yield proc.url, made
        finally:
            proc.stop()
    finally:
        if own_redis is not None:
            own_redis.stop()


@pytest.fixture
def fresh(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox back at the fixture's state (members, bans, limits, no faults)."""
    sandbox.reset(WORLD)
    yield sandbox
    sandbox.reset(WORLD)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` go after all others, whatever order the session fixtures' parameters gave them."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    """Every 'browser' a test opened (tests.linkflow.browser) is closed after it."""
    yield
    from tests.linkflow import close_browsers  # here: tests.linkflow imports this module

    close_browsers()
