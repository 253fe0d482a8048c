"""``guildgate apps add|list``: the Discord applications (client id, secret, bot token) guildgate acts for."""

from __future__ import annotations

import typer

from guildgate.cli import render
from guildgate.cli.common import db_settings, die, read_secret, repos, run
from guildgate.cli.help import command, group
from guildgate.core.invites import is_snowflake

cli = group("Discord applications (client id, secret, bot token).")


@command(cli, "add")
def apps_add(
    client_id: str = typer.Option(
        ..., "--client-id", metavar="CLIENT_ID", help="The application's id (17-20 digits, from the Developer Portal)."
    ),
    client_secret_env: str | None = typer.Option(
        None, "--client-secret-env", metavar="VAR", help="Environment variable holding the client secret."
    ),
    bot_token_env: str | None = typer.Option(
        None, "--bot-token-env", metavar="VAR", help="Environment variable holding the bot token."
    ),
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="A name to know it by (default: app ID)."),
) -> None:
    """Add (or update) an app; without the -env options, the secret then the token are read from standard input
    or a prompt.

    Example: guildgate apps add --client-id 11... --client-secret-env CS --bot-token-env BT"""
    if not is_snowflake(client_id):
        die(f"--client-id must be a Discord application id (17-20 digits), got {client_id!r}")
    s = db_settings()
    secret = read_secret(client_secret_env, "client secret")
    token = read_secret(bot_token_env, "bot token")

    async def go() -> None:
        db, apps, _, _ = repos(s)
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


@command(cli, "list")
def apps_list(as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of a table.")) -> None:
    """List apps (never their secrets)."""
    s = db_settings()

    async def go() -> None:
        db, apps, _, _ = repos(s)
        try:
            rows = await apps.list()
        finally:
            await db.dispose()
        if as_json:
            render.as_json([{"client_id": a.client_id, "name": a.name, "created_at": a.created_at} for a in rows])
        else:
            render.table("apps", ["client id", "name", "created"], [(a.client_id, a.name, a.created_at) for a in rows])

    run(go)
