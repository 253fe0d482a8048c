"""``guildgate``: the operator's command line, put together from one module per group of commands. Secrets
never travel in argv: they come from an environment variable named by an option, from standard input, or from
a hidden prompt (common.read_secret). Each command imports what its work needs (the database, uvicorn, the
client) when it runs, so ``--help`` and a short command start quickly."""

from __future__ import annotations

import typer

from guildgate.cli import apps, join, keys, links, records, secret_key, server

app = typer.Typer(
    help="guildgate: add consenting people to Discord servers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(server.serve)
app.command("sandbox")(server.sandbox_cmd)
app.command()(server.migrate)
app.command()(join.join)
app.command("doctor")(links.doctor)
app.add_typer(apps.cli, name="apps")
app.add_typer(keys.cli, name="keys")
app.add_typer(records.cli, name="records")
app.add_typer(links.cli, name="links")
app.add_typer(secret_key.cli, name="secrets")


def main() -> None:
    app()
