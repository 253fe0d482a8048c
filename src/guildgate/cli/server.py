"""``guildgate serve``, ``sandbox`` and ``migrate``: the commands (what ``serve`` does is in serving.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from guildgate.cli import render
from guildgate.cli.common import die, settings, upgrade


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
    try:
        do_serve(s, host=host, port=port, workers=workers, sandbox_fixture=sandbox_fixture, sandbox_port=sandbox_port)
    except (CannotListen, DatabaseUnreachable) as exc:
        die(str(exc))


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
    config = uvicorn.Config(asgi, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


def migrate() -> None:
    """Create or upgrade the database schema (``serve`` also does this at start)."""
    upgrade(settings().database_url)
    render.out.print("database is up to date")
