"""``guildgate``: the operator's command line. Secrets never travel in argv: they come from an environment
variable named by an option, from standard input, or from a hidden prompt."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import os
import stat
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import typer

from guildgate.cli import render
from guildgate.core.invites import is_snowflake
from guildgate.core.secret import Secret
from guildgate.settings import ConfigError, Settings, load_settings

T = TypeVar("T")

app = typer.Typer(
    help="guildgate: add consenting people to Discord servers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
apps_cli = typer.Typer(help="Discord applications (client id, secret, bot token).", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys (the User-Token header).", no_args_is_help=True)
records_cli = typer.Typer(help="Join records.", no_args_is_help=True)
app.add_typer(apps_cli, name="apps")
app.add_typer(keys_cli, name="keys")
app.add_typer(records_cli, name="records")


def die(message: str, code: int = 2) -> NoReturn:
    render.fail(message)
    raise typer.Exit(code)


def settings(**overrides: Any) -> Settings:
    try:
        s = load_settings(**overrides)
        s.secret_key_value()
        s.async_database_url  # noqa: B018 - validates the URL
        return s
    except ConfigError as exc:
        die(str(exc))
        raise AssertionError from None


def db_settings() -> Settings:
    """Settings for a command that uses the database; the schema is brought up to date first."""
    s = settings()
    _upgrade(s.database_url)
    return s


def _upgrade(database_url: str) -> None:
    from guildgate.store.migrate import DatabaseUnreachable, upgrade

    try:
        upgrade(database_url)
    except DatabaseUnreachable as exc:
        die(str(exc))


def settle() -> None:
    """Start-up is over (the entry point, ``guildgate.cli.start``, ran it with the garbage collector off): what
    it built lives as long as the command, so the collector stops looking at it, and collects what the command
    makes from here on (a long export, a server)."""
    gc.freeze()
    gc.enable()


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    settle()
    return asyncio.run(factory())


def read_secret(env_var: str | None, label: str) -> Secret:
    """From the named environment variable, else one line of standard input, else a hidden prompt."""
    if env_var:
        value = os.environ.get(env_var, "")
        if not value:
            die(f"{label}: environment variable {env_var} is not set or empty")
        return Secret(value.strip())
    if not sys.stdin.isatty():
        line = sys.stdin.readline().strip()
        if not line:
            die(f"{label}: expected it on standard input (one line), got nothing")
        return Secret(line)
    return Secret(typer.prompt(label, hide_input=True).strip())


def _repos(s: Settings) -> Any:
    from guildgate.store.crypto import SecretBox
    from guildgate.store.db import Database
    from guildgate.store.repos import AppRepo, KeyRepo, RecordRepo

    db = Database(s.database_url)
    return db, AppRepo(db, SecretBox(s.secret_key_value())), KeyRepo(db), RecordRepo(db)


# ---- apps -------------------------------------------------------------------------------------------------
@apps_cli.command("add")
def apps_add(
    client_id: str = typer.Option(..., "--client-id", help="The application's id (a snowflake)."),
    client_secret_env: str | None = typer.Option(None, "--client-secret-env", help="Env var holding the secret."),
    bot_token_env: str | None = typer.Option(None, "--bot-token-env", help="Env var holding the bot token."),
    name: str | None = typer.Option(None, "--name"),
) -> None:
    """Add (or update) an app. Example: ``guildgate apps add --client-id 11... --client-secret-env CS
    --bot-token-env BT``; without the options, the secret then the token are read from stdin or a prompt."""
    if not is_snowflake(client_id):
        die(f"--client-id must be a Discord application id (17-20 digits), got {client_id!r}")
    s = db_settings()
    secret = read_secret(client_secret_env, "client secret")
    token = read_secret(bot_token_env, "bot token")

    async def go() -> None:
        db, apps, _, _ = _repos(s)
        try:
            info = await apps.add(
                client_id=client_id, name=name or f"app {client_id}", client_secret=secret, bot_token=token
            )
        except ValueError as exc:
            die(f"--{exc}")
            return
        finally:
            await db.dispose()
        render.out.print(f"app [bold]{info.client_id}[/] ({info.name}) saved; secrets encrypted at rest")

    run(go)


@apps_cli.command("list")
def apps_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List apps (never their secrets)."""
    s = db_settings()

    async def go() -> None:
        db, apps, _, _ = _repos(s)
        try:
            rows = await apps.list()
        finally:
            await db.dispose()
        if as_json:
            render.as_json([{"client_id": a.client_id, "name": a.name, "created_at": a.created_at} for a in rows])
        else:
            render.table("apps", ["client id", "name", "created"], [(a.client_id, a.name, a.created_at) for a in rows])

    run(go)


# ---- keys -------------------------------------------------------------------------------------------------
@keys_cli.command("create")
def keys_create(
    app_id: str = typer.Option(..., "--app", help="The app's client id."),
    name: str | None = typer.Option(None, "--name"),
    quota_per_minute: int | None = typer.Option(None, "--quota-per-minute", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with `key`."),
) -> None:
    """Create an API key for an app; it is shown once. Example: ``guildgate keys create --app 11... --json``."""
    s = db_settings()
    from guildgate.store.repos import NotFound

    async def go() -> None:
        db, _, keys, _ = _repos(s)
        try:
            info, key = await keys.create(app_id=app_id, name=name, quota_per_minute=quota_per_minute)
        except NotFound as exc:
            die(str(exc))
            return
        except ValueError as exc:
            die(f"--{exc}")
            return
        finally:
            await db.dispose()
        if as_json:
            render.as_json(
                {
                    "id": info.id,
                    "key": key.reveal(),
                    "app_id": info.app_id,
                    "name": info.name,
                    "quota_per_minute": info.quota_per_minute,
                }
            )
        else:
            print(key.reveal())
            render.note(f"key {info.id} for app {info.app_id}: store it now, it is not shown again")

    run(go)


@keys_cli.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List API keys (id, prefix, app, quota, revoked) — never the keys."""
    s = db_settings()

    async def go() -> None:
        db, _, keys, _ = _repos(s)
        try:
            rows = await keys.list()
        finally:
            await db.dispose()
        if as_json:
            render.as_json(
                [
                    {
                        "id": k.id,
                        "prefix": k.prefix,
                        "app_id": k.app_id,
                        "name": k.name,
                        "quota_per_minute": k.quota_per_minute,
                        "created_at": k.created_at,
                        "revoked_at": k.revoked_at,
                    }
                    for k in rows
                ]
            )
        else:
            render.table(
                "API keys",
                ["id", "prefix", "app", "name", "quota/min", "created", "revoked"],
                [
                    (k.id, k.prefix + "…", k.app_id, k.name, k.quota_per_minute, k.created_at, k.revoked_at)
                    for k in rows
                ],
            )

    run(go)


@keys_cli.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (from `keys list`).")) -> None:
    """Revoke an API key at once."""
    s = db_settings()
    from guildgate.store.repos import NotFound

    async def go() -> None:
        db, _, keys, _ = _repos(s)
        try:
            info = await keys.revoke(key_id)
        except NotFound as exc:
            die(str(exc))
            return
        finally:
            await db.dispose()
        render.out.print(f"key {info.id} revoked")

    run(go)


# ---- serve, sandbox, migrate --------------------------------------------------------------------------------
@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, max=64),
    sandbox: bool = typer.Option(False, "--sandbox", help="Run the Discord sandbox in-process, with demo data."),
    sandbox_fixture: Path | None = typer.Option(None, "--sandbox-fixture", help="Fixture for --sandbox."),
    sandbox_port: int = typer.Option(0, "--sandbox-port", min=0, max=65535, help="0: a free port."),
) -> None:
    """Start the service. Example: ``guildgate serve --sandbox`` (demo) or ``guildgate serve --port 8080``."""
    from guildgate.cli.serving import CannotListen
    from guildgate.cli.serving import serve as do_serve
    from guildgate.store.migrate import DatabaseUnreachable

    if sandbox_fixture is not None and not sandbox:
        die("--sandbox-fixture goes with --sandbox")
    s = settings(**({"sandbox": True} if sandbox else {}))
    if workers > 1 and not s.redis_url:
        die(
            "--workers above 1 needs GUILDGATE_REDIS_URL: rate limits, quotas and caches must be shared "
            "between workers, or together they would exceed Discord's limits"
        )
    settle()
    try:
        do_serve(s, host=host, port=port, workers=workers, sandbox_fixture=sandbox_fixture, sandbox_port=sandbox_port)
    except (CannotListen, DatabaseUnreachable) as exc:
        die(str(exc))


@app.command("sandbox")
def sandbox_cmd(
    fixture: Path | None = typer.Option(None, "--fixture", help="Fixture JSON (default: the demo fixture)."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8090, "--port", min=1, max=65535),
) -> None:
    """Run the Discord sandbox alone. Example: ``guildgate sandbox --fixture f.json --port 8090``."""
    import uvicorn

    from guildgate.cli.serving import CannotListen, listen
    from guildgate.sandbox.app import create_sandbox_app
    from guildgate.sandbox.fixture import FixtureError

    try:
        asgi = create_sandbox_app(fixture_path=fixture)
        sock = listen(host, port)
    except (FixtureError, CannotListen) as exc:
        die(str(exc))
    render.note(f"Discord sandbox on http://{host}:{port}/api/v10 (stats: /_sandbox/stats)")
    settle()
    config = uvicorn.Config(asgi, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (``serve`` also does this at start)."""
    _upgrade(settings().database_url)
    render.out.print("database is up to date")


# ---- join ---------------------------------------------------------------------------------------------------
@app.command()
def join(
    guild_id: str | None = typer.Option(None, "--guild-id", help="The server's id."),
    guild_name: str | None = typer.Option(None, "--invite", "--guild-name", help="Invite code or URL."),
    token_env: str | None = typer.Option(
        None, "--token-env", help="Env var with the user's OAuth2 token (else stdin or a prompt)."
    ),
    api_key_env: str = typer.Option("GUILDGATE_API_KEY", "--api-key-env", help="Env var with the API key."),
    url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="GUILDGATE_URL"),
    role: list[str] = typer.Option([], "--role", help="Role id to give (repeatable)."),
    nick: str | None = typer.Option(None, "--nick"),
    mute: bool | None = typer.Option(None, "--mute/--no-mute"),
    deaf: bool | None = typer.Option(None, "--deaf/--no-deaf"),
    developer_id: str | None = typer.Option(None, "--developer-id"),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    lang: str | None = typer.Option(None, "--lang", help="en or zh"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Call the join API. Example: ``GUILDGATE_API_KEY=gg_... guildgate join --invite demo --token-env TOK``.

    Exit status: 0 joined or already a member, 1 refused, 2 usage or connection problem."""
    from guildgate.client import Client, ConnectionFailedError, GuildgateError

    api_key = os.environ.get(api_key_env, "")
    if not api_key:
        die(f"environment variable {api_key_env} (the API key) is not set")
    token = read_secret(token_env, "user OAuth2 token")
    with Client(url, api_key, language=lang) as client:
        try:
            result = client.join(
                authorization=token,
                guild_id=guild_id,
                guild_name=guild_name,
                roles=role or None,
                nick=nick,
                mute=mute,
                deaf=deaf,
                developer_id=developer_id,
                idempotency_key=idempotency_key,
            )
        except ConnectionFailedError as exc:
            die(exc.msg)
            return
        except GuildgateError as exc:
            if as_json:
                render.as_json(
                    {
                        "status": 0,
                        "code": exc.code,
                        "msg": exc.msg,
                        "id": exc.record_id,
                        "discord_code": exc.discord_code,
                        "retry_after": exc.retry_after,
                    }
                )
            else:
                render.join_result(False, exc.code, exc.msg, exc.record_id, None)
            raise typer.Exit(1) from None
    data = {
        "guild_id": result.guild_id,
        "guild_name": result.guild_name,
        "user_id": result.user_id,
        "joined": result.joined,
    }
    if as_json:
        render.as_json(
            {
                "status": 1,
                "code": result.code,
                "msg": result.msg,
                "id": result.record_id,
                "data": data,
                "cost": result.cost,
            }
        )
    else:
        render.join_result(True, result.code, result.msg, result.record_id, data)


# ---- records ------------------------------------------------------------------------------------------------
RECORD_FIELDS = [
    "id",
    "state",
    "code",
    "msg",
    "guild_id",
    "guild_name",
    "user_id",
    "developer_id",
    "cost_ms",
    "discord_status",
    "discord_code",
    "created_at",
    "finished_at",
    "source",
    "link_id",
]


def _filters(state: str | None, code: str | None, guild_id: str | None, app_id: str | None) -> Any:
    from guildgate.core.outcomes import Outcome, RecordState
    from guildgate.store.repos import RecordFilters

    if app_id is not None and not is_snowflake(app_id):
        die(f"--app must be an app's client id (a snowflake: 17-20 digits), got {app_id!r}")
    if state is not None and state not in {s.value for s in RecordState}:
        die(f"--state must be one of {', '.join(s.value for s in RecordState)}")
    if code is not None and code not in {o.value for o in Outcome}:
        die(f"--code {code!r} is not an outcome code")
    if guild_id is not None and not is_snowflake(guild_id):
        die(f"--guild-id must be a server id (a snowflake: 17-20 digits), got {guild_id!r}")
    return RecordFilters(state=state, code=code, guild_id=guild_id)


def _as_dict(row: Any) -> dict[str, Any]:
    from guildgate.store.repos import record_dict
    from guildgate.web.records import record_msg

    return record_dict(row, msg=record_msg(row, "en"))


@records_cli.command("list")
def records_list(
    app_id: str | None = typer.Option(None, "--app"),
    state: str | None = typer.Option(None, "--state"),
    code: str | None = typer.Option(None, "--code"),
    guild_id: str | None = typer.Option(None, "--guild-id"),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Newest records first. Example: ``guildgate records list --state failed``."""
    s = db_settings()
    filters = _filters(state, code, guild_id, app_id)

    async def go() -> list[dict[str, Any]]:
        db, _, _, records = _repos(s)
        try:
            rows, _ = await records.list(app_id=app_id, filters=filters, limit=limit, cursor=None)
        finally:
            await db.dispose()
        return [_as_dict(r) for r in rows]

    rows = run(go)
    if as_json:
        render.as_json(rows)
    else:
        render.table(
            "records",
            ["id", "state", "code", "guild", "user", "ms", "created"],
            [
                (r["id"], r["state"], r["code"], r["guild_id"], r["user_id"], r["cost_ms"], r["created_at"])
                for r in rows
            ],
        )


@records_cli.command("show")
def records_show(record_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """One record in full. Example: ``guildgate records show 049bfae2-...``."""
    s = db_settings()
    from guildgate.store.repos import NotFound

    async def go() -> dict[str, Any] | None:
        db, _, _, records = _repos(s)
        try:
            return _as_dict(await records.get(record_id, app_id=None))
        except NotFound:
            return None
        finally:
            await db.dispose()

    rec = run(go)
    if rec is None:
        die(f"no record with id {record_id}", 1)
        return
    render.as_json(rec) if as_json else render.record(rec)


@records_cli.command("export")
def records_export(
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv"),
    app_id: str | None = typer.Option(None, "--app"),
    state: str | None = typer.Option(None, "--state"),
    code: str | None = typer.Option(None, "--code"),
    guild_id: str | None = typer.Option(None, "--guild-id"),
) -> None:
    """Export records, newest first, page by page (progress on stderr). Example: ``records export -o r.csv
    --format csv``. A file is written under a temporary name beside it and put in place when the export is
    complete: an export that fails or is interrupted leaves the file as it was."""
    import json

    if fmt not in ("jsonl", "csv"):
        die("--format must be jsonl or csv")
    s = db_settings()
    filters = _filters(state, code, guild_id, app_id)
    final, partial = _export_target(output) if output is not None else (None, None)
    stream: TextIO = sys.stdout
    if final is not None:
        try:
            stream = (partial or final).open("w", newline="")
        except OSError as exc:
            die(f"--output: cannot write {output}: {exc.strerror}")

    async def go() -> int:
        db, _, _, records = _repos(s)
        writer = csv.DictWriter(stream, fieldnames=RECORD_FIELDS) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        count, cursor = 0, None
        try:
            while True:
                rows, cursor = await records.list(app_id=app_id, filters=filters, limit=500, cursor=cursor)
                for row in rows:
                    rec = _as_dict(row)
                    if writer:
                        writer.writerow(rec)
                    else:
                        stream.write(json.dumps(rec, ensure_ascii=False) + "\n")
                count += len(rows)
                render.note(f"exported {count} records")
                if cursor is None:
                    return count
        finally:
            await db.dispose()

    try:
        run(go)
        if partial is not None and final is not None:
            stream.close()
            partial.replace(final)
    finally:  # failed or interrupted: a file named by --output is left as it was
        if stream is not sys.stdout:
            stream.close()
        if partial is not None:
            partial.unlink(missing_ok=True)


def _export_target(output: Path) -> tuple[Path, Path | None]:
    """Where an export to ``output`` ends up, and the temporary file it is written to first (None: a pipe or a
    device such as /dev/stdout, written directly), checked writable before anything is read. A regular file is
    replaced whole when the export is complete: a symbolic link's target is replaced, not the link, and the
    new file keeps the old one's permissions (and owner, where allowed)."""
    if output.is_dir():
        die(f"--output: {output} is a directory; name a file")
    final = Path(os.path.realpath(output))
    try:
        old = final.stat()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        die(f"--output: cannot write {output}: {exc.strerror}")
    if old is not None and not stat.S_ISREG(old.st_mode):
        return final, None
    partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
    try:
        partial.touch()
        if old is not None:
            os.chmod(partial, stat.S_IMODE(old.st_mode))
            with contextlib.suppress(PermissionError):
                os.chown(partial, old.st_uid, old.st_gid)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        die(f"--output: cannot write {output}: {exc.strerror}")
    return final, partial


def main() -> None:
    import guildgate.cli.links
    import guildgate.cli.maintenance  # noqa: F401 - registers secrets rotate and records prune

    app()
