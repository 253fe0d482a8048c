"""``guildgate serve``: migrate, optionally start the Discord sandbox in-process, then run uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import secrets
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr

from guildgate.cli import render
from guildgate.cli.server import migrated
from guildgate.core.secret import Secret
from guildgate.settings import Settings, shown_url
from guildgate.store.migrate import upgrade
from guildgate.web.app import configure_logging, create_front
from guildgate.web.readtimeout import ReadTimeoutProtocol


class CannotListenError(Exception):
    """The address to serve on is taken, or not one of this host's."""


OPEN_FILES_WANTED = 65_536  # connections (one file each), database files, Discord and Redis connections
OPEN_FILES_LOW = 4_096


def open_file_limit() -> None:
    """Raise this process's soft limit on open files towards its hard limit (workers inherit it). Every
    connection holds a file: systemd's and most shells' default soft limit, 1,024, is reached by a thousand
    browsers keeping a connection open, and past it new connections are dropped."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    if soft < OPEN_FILES_LOW:
        logging.getLogger("guildgate").warning(
            "at most %d open files (the hard limit): each open connection takes one; raise it (ulimit -Hn, "
            "systemd's LimitNOFILE) to serve more than a few hundred at once",
            soft,
        )


def grace(s: Settings) -> int:
    """How long a stopping server (SIGTERM, Ctrl-C) waits for the requests under way: a join's whole deadline
    and a little, so the joins under way answer as they would have; past it they are cancelled (each still
    writes its outcome: RecordRepo.aclose), and a second Ctrl-C stops at once."""
    return int(s.request_timeout) + 2


def proxy_headers(s: Settings) -> dict[str, Any]:
    """uvicorn's handling of X-Forwarded-For: honoured only from GUILDGATE_TRUSTED_PROXIES (then the request's
    client address, which the admin sign-in limits count by, is the one the proxy names), else ignored. uvicorn on
    its own would trust 127.0.0.1 (or FORWARDED_ALLOW_IPS); here nothing is trusted unless it is configured."""
    return {"proxy_headers": bool(s.trusted_proxies), "forwarded_allow_ips": list(s.trusted_proxies)}


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


SANDBOX_THREAD = "discord-sandbox"


def start_sandbox_thread(fixture_path: Path | None, port: int) -> tuple[str, Any]:
    """Run the sandbox on 127.0.0.1 in a thread of this process; returns its origin and the fixture."""
    from guildgate.sandbox.app import create_sandbox_app
    from guildgate.sandbox.fixture import load_fixture

    fixture = load_fixture(fixture_path)
    sock = listen("127.0.0.1", port)
    server = uvicorn.Server(
        uvicorn.Config(create_sandbox_app(fixture), log_config=None, log_level="warning", timeout_graceful_shutdown=1)
    )
    # one process, one set of uvicorn loggers: the sandbox's requests stay out of guildgate's access log
    logging.getLogger("uvicorn.access").addFilter(lambda record: record.threadName != SANDBOX_THREAD)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=SANDBOX_THREAD, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Discord sandbox did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", fixture


async def _demo_key(s: Settings, fixture: Any) -> tuple[str, str, str, str]:
    """Register the fixture's first app, mint a demo API key and a demo join link; returns (key, user token,
    invite, link URL)."""
    from guildgate.store.crypto import SecretBox
    from guildgate.store.db import Database
    from guildgate.store.repos import AppRepo, KeyRepo

    app = fixture.applications[0]
    db = Database(s.database_url)
    try:
        await AppRepo(db, SecretBox(s.secret_key_value())).add(
            client_id=app.client_id or app.id,
            name=app.name,
            client_secret=Secret(app.client_secret),
            bot_token=Secret(app.bot_token),
        )
        keys = KeyRepo(db)
        for old in await keys.list():
            if old.name == "demo" and old.revoked_at is None:
                await keys.revoke(old.id)
        _, key = await keys.create(app_id=app.client_id or app.id, name="demo", quota_per_minute=None)
    finally:
        await db.dispose()
    token = next((t.access_token for u in fixture.users for t in u.tokens), "")
    invite = next((g.invites[0] for g in fixture.guilds if g.invites), "")
    return key.reveal(), token, invite, await _demo_link(s, fixture)


async def _demo_link(s: Settings, fixture: Any) -> str:
    """The demo link of the fixture's first guild (made once, kept across restarts)."""
    from guildgate.services.links import create_link, link_url
    from guildgate.services.runtime import Services

    app, guild = fixture.applications[0], next((g for g in fixture.guilds if g.bots), None)
    if guild is None:
        return ""
    svc = Services.build(s)
    try:
        for link in await svc.links.list(app_id=app.client_id or app.id):
            if link.title == "demo" and link.problem(datetime.now(UTC)) is None:
                return link_url(s.public_url, link)
        roles = [r.id for r in guild.roles if r.position < guild.bot_role_position][:1]
        link, _ = await create_link(
            svc,
            app_id=app.client_id or app.id,
            guild_id=guild.id,
            invite=None,
            roles=roles,
            max_uses=None,
            expires=None,
            title="demo",
        )
        return link_url(s.public_url, link)
    finally:
        await svc.close()


async def settle_pending(s: Settings) -> int:
    """Settle the records a crashed process left pending (core/reconcile.py), before taking requests."""
    from guildgate.core.reconcile import reconcile
    from guildgate.services.runtime import Services

    svc = Services.build(s)
    log = logging.getLogger("guildgate")
    try:
        settled = await reconcile(
            records=svc.records,
            discord=svc.discord,
            apps=svc.apps,
            progress=lambda done: log.info("settling records left pending by a crash: %d so far…", done),
        )
    finally:
        await svc.close()
    if settled.total:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(settled.counts.items()))
        log.warning("settled %d record(s) left pending by a crash: %s", settled.total, counts)
    return settled.total


METRICS_PREFIX = "guildgate-metrics-"  # then the supervisor's pid: what tells a stale directory from a live one


def remove_stale_metrics_dirs() -> int:
    """Remove the workers' metrics directories whose supervisor is no longer running: one killed with SIGKILL
    leaves its own behind (a SIGTERM removes it). Only this user's directories, named after a supervisor's pid,
    are touched; returns how many went."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(METRICS_PREFIX + "*"):
        pid = path.name[len(METRICS_PREFIX) :].split("-", 1)[0]
        try:
            own = path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid()
        except OSError:
            continue
        if own and pid.isdecimal() and not _running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a number no process can have
        return True
    return True


def _serve_workers(s: Settings, sock: socket.socket, *, host: str, port: int, workers: int, banner: str) -> None:
    """N worker processes on one listening socket (uvicorn's supervisor). Each builds its app from the
    environment (``create_app_from_env``), so what this process decided is handed down as variables; metrics
    from every worker are gathered in one multiprocess directory."""
    from uvicorn.supervisors import Multiprocess

    handed = {
        "GUILDGATE_SANDBOX": "true" if s.sandbox else "false",
        "GUILDGATE_DISCORD_API_BASE": s.discord_api_base,
        "GUILDGATE_PUBLIC_URL": s.public_url,
        "GUILDGATE_DATABASE_URL": s.database_url,
    }
    if s.discord_authorize_url:
        handed["GUILDGATE_DISCORD_AUTHORIZE_URL"] = s.discord_authorize_url
    if s.admin_token is not None:
        handed["GUILDGATE_ADMIN_TOKEN"] = s.admin_token.get_secret_value()
    handed["GUILDGATE_SUPERVISOR_PID"] = str(os.getpid())  # workers die with this process (web/app.py)
    os.environ.update(handed)
    removed = remove_stale_metrics_dirs()
    if removed:
        logging.getLogger("guildgate").info("removed %d metrics directories left by servers that were killed", removed)
    metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    config = uvicorn.Config(
        "guildgate.web.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=s.log_level,
        timeout_graceful_shutdown=grace(s),
        log_config=None,
        http=ReadTimeoutProtocol,
        **proxy_headers(s),
    )
    if banner:
        print(banner, flush=True)
    logging.getLogger("guildgate").info("starting %d workers on %s:%d", workers, host, port)
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


class _Server(uvicorn.Server):
    banner: str = ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.banner and self.started:
            print(self.banner, flush=True)


def cli_hint() -> str:
    """How to run this same ``guildgate`` from a shell: its path (relative when under the working directory,
    like .venv/bin/guildgate), and its virtualenv's activate script when there is one."""
    exe = Path(sys.argv[0]).absolute()
    if exe.name != "guildgate" or not exe.is_file():
        return "guildgate --help"
    hint = f"{shlex.quote(_relative(exe))} --help"
    activate = exe.parent / "activate"
    if activate.is_file():
        hint += f"  (or: source {shlex.quote(_relative(activate))}, then guildgate --help)"
    return hint


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def serve(s: Settings, *, host: str, port: int, workers: int, sandbox_fixture: Path | None, sandbox_port: int) -> None:
    configure_logging(s.log_level)
    log = logging.getLogger("guildgate")
    open_file_limit()
    sock = listen(host, port)  # first: a port that is taken is said before anything else is done
    before, after = upgrade(s.database_url)
    log.info(migrated(before, after))
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)
    update: dict[str, Any] = {}
    if "public_url" not in s.model_fields_set:  # join links and the OAuth2 redirect URI follow --host and --port
        update["public_url"] = f"http://{shown}:{port}"
    banner = ""
    if s.sandbox:
        origin, fixture = start_sandbox_thread(sandbox_fixture, sandbox_port)
        update.update(discord_api_base=f"{origin}/api/v10", discord_authorize_url=None)
        if s.admin_token is None:
            update["admin_token"] = SecretStr(secrets.token_urlsafe(18))
        s = s.model_copy(update=update)
        s.__dict__.pop("authorize_url", None)
        key, token, invite, link = asyncio.run(_demo_key(s, fixture))
        admin = (
            ""
            if "admin_token" not in update
            else f"Admin dashboard: {s.public_url}/admin  token: {update['admin_token'].get_secret_value()}\n"
        )
        body = json.dumps({"authorization": token, "guild_name": f"https://discord.gg/{invite}"})
        curl = (
            f"curl -s -X POST http://{shown}:{port}/api/wanda/discord/guild "
            f"-H {shlex.quote('User-Token: ' + key)} -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}"
        )
        cli_env = (
            f"GUILDGATE_SANDBOX=1 GUILDGATE_DATABASE_URL={shlex.quote(s.database_url)} "
            f"GUILDGATE_DISCORD_API_BASE={origin}/api/v10 GUILDGATE_PUBLIC_URL={s.public_url}"
        )
        banner = (
            f"\nguildgate (sandbox mode) on {s.public_url}  docs: {s.public_url}/docs\n"
            f"Database: {shown_url(s.database_url)} (sandbox only; a serve without --sandbox uses its own)\n"
            f"Discord sandbox: {origin}/api/v10  stats: {origin}/_sandbox/stats\n"
            f"The CLI: {cli_hint()}\n"
            f"  against this sandbox (records, links, doctor): export {cli_env}\n"
            f"Demo API key (shown once): {key}\n{admin}"
            f"Demo join link (open it in a browser): {link}\n\nTry a join:\n{curl}\n"
        )
    else:
        s = s.model_copy(update=update)
        render.note(f"guildgate on http://{shown}:{port}, Discord at {s.discord_api_base}")
        if update:
            render.note(f"GUILDGATE_PUBLIC_URL is not set: join links and the OAuth2 redirect URI use {s.public_url}")
    asyncio.run(settle_pending(s))
    if workers > 1:
        _serve_workers(s, sock, host=host, port=port, workers=workers, banner=banner)
        return
    server = _Server(
        uvicorn.Config(
            create_front(s),
            host=host,
            port=port,
            log_level=s.log_level,
            timeout_graceful_shutdown=grace(s),
            log_config=None,
            http=ReadTimeoutProtocol,
            **proxy_headers(s),
        )
    )
    server.banner = banner
    server.run(sockets=[sock])
