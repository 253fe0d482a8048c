"""``guildgate``: the operator's command line, put together from one module per group of commands. Secrets
never travel in argv: they come from an environment variable named by an option, from standard input, or from
a hidden prompt (common.read_secret). Each command imports what its work needs (the database, uvicorn, the
client) when it runs, so ``--help`` and a short command start quickly. help.py makes every command's help."""

from __future__ import annotations

import typer

from guildgate import __version__
from guildgate.cli import apps, join, keys, links, records, secret_key, server
from guildgate.cli import grants as grants_cli
from guildgate.cli.help import command, group

app = group("guildgate: add consenting people to Discord servers.")


def _version(shown: bool) -> None:
    if shown:
        print(f"guildgate {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", "-V", is_eager=True, callback=_version, help="Print the version and exit."
    ),
) -> None:
    """guildgate: add consenting people to Discord servers."""


command(app, "serve")(server.serve)
command(app, "sandbox")(server.sandbox_cmd)
command(app, "migrate")(server.migrate)
command(app, "join")(join.join)
command(app, "doctor")(links.doctor)
app.add_typer(apps.cli, name="apps")
app.add_typer(keys.cli, name="keys")
app.add_typer(records.cli, name="records")
app.add_typer(links.cli, name="links")
app.add_typer(secret_key.cli, name="secrets")
app.add_typer(grants_cli.cli, name="grants")


def main() -> None:
    app()
