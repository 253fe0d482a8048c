"""``guildgate serve``, ``sandbox`` and ``migrate``: the commands (what ``serve`` does is in serving.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from guildgate.cli import render
from guildgate.cli.common import die, settings, upgrade

HOST_HELP = "The address to listen on (0.0.0.0: every IPv4 address of this host)."


def serve(
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS", help=HOST_HELP),
    port: int = typer.Option(8080, "--port", min=1, max=65535, metavar="PORT", help="The port to listen on."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, metavar="N", help="Worker processes (above 1 needs GUILDGATE_REDIS_URL)."
    ),
    sandbox: bool = typer.Option(
        False, "--sandbox", help="Run the Discord sandbox in-process, with demo data, in guildgate-sandbox.db."
    ),
    sandbox_fixture: Path | None = typer.Option(
        None, "--sandbox-fixture", metavar="FILE", help="The fixture (JSON) for --sandbox (default: the demo one)."
    ),
    sandbox_port: int = typer.Option(
        0, "--sandbox-port", min=0, max=65535, metavar="PORT", help="The sandbox's port (0: a free one)."
    ),
) -> None:
    """Start the service. GUILDGATE_PUBLIC_URL, when not set, is http://HOST:PORT.

    Examples: guildgate serve --sandbox (a demo) or guildgate serve --port 8080"""
    from guildgate.cli.serving import CannotListenError
    from guildgate.cli.serving import serve as do_serve
    from guildgate.store.migrate import DatabaseUnreachableError

    if sandbox_fixture is not None and not sandbox:
        die("--sandbox-fixture goes with --sandbox")
    s = settings(**({"sandbox": True} if sandbox else {}))
    if workers > 1 and not s.redis_url:
        die(
            "--workers above 1 needs GUILDGATE_REDIS_URL: rate limits, quotas and caches must be shared "
            "between workers, or together they would exceed Discord's limits"
        )
    try:
        do_serve(s, host=host, port=port, workers=workers, sandbox_fixture=sandbox_fixture, sandbox_port=sandbox_port)
    except (CannotListenError, DatabaseUnreachableError) as exc:
        die(str(exc))


def credentials(fixture: Any) -> str:
    """What a standalone sandbox prints: each app's credentials and a user token to try."""
    lines = []
    for app in fixture.applications:
        lines.append(
            f"app {app.name}: client id {app.client_id or app.id}  client secret {app.client_secret}  "
            f"bot token {app.bot_token}"
        )
    for user in fixture.users:
        if user.tokens:
            lines.append(f"user token to try ({user.username}): {user.tokens[0].access_token}")
            break
    return "\n".join(lines)


def sandbox_cmd(
    fixture: Path | None = typer.Option(
        None, "--fixture", metavar="FILE", help="The fixture (JSON; default: the demo fixture)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS", help=HOST_HELP),
    port: int = typer.Option(8090, "--port", min=1, max=65535, metavar="PORT", help="The port to listen on."),
) -> None:
    """Run the Discord sandbox alone, and print its apps' credentials and a user token to try.

    Example: guildgate sandbox --fixture f.json --port 8090"""
    import uvicorn

    from guildgate.cli.serving import CannotListenError, listen
    from guildgate.sandbox.app import create_sandbox_app
    from guildgate.sandbox.fixture import FixtureError, load_fixture

    try:
        loaded = load_fixture(fixture)
        asgi = create_sandbox_app(loaded)
        sock = listen(host, port)
    except (FixtureError, CannotListenError) as exc:
        die(str(exc))
    shown = f"[{host}]" if ":" in host else host
    print(
        f"Discord sandbox on http://{shown}:{port}/api/v10  stats: http://{shown}:{port}/_sandbox/stats\n"
        f"{credentials(loaded)}\n"
        f"guildgate against it: GUILDGATE_DISCORD_API_BASE=http://{shown}:{port}/api/v10",
        flush=True,
    )
    config = uvicorn.Config(asgi, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


def migrate() -> None:
    """Create or upgrade the database schema (serve, and every command that uses the database, does this too)."""
    before, after = upgrade(settings(secret=False).database_url)
    render.out.print(migrated(before, after))


def migrated(before: str | None, after: str) -> str:
    """The one line that says what bringing the schema up to date did."""
    if before == after:
        return f"the database is up to date (schema {after})"
    return f"the database was migrated from schema {before or 'none (empty)'} to {after}"
