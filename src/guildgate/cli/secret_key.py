"""``guildgate secrets rotate``: re-encrypting the apps' secrets under a new GUILDGATE_SECRET_KEY."""

from __future__ import annotations

import typer

from guildgate.cli import render
from guildgate.cli.common import db_settings, die, read_secret, run
from guildgate.cli.help import command, group

cli = group("The secret key that encrypts app secrets at rest.")


@command(cli, "rotate")
def secrets_rotate(
    old_key_env: str | None = typer.Option(
        None,
        "--old-key-env",
        metavar="VAR",
        help="Environment variable holding the previous GUILDGATE_SECRET_KEY (else standard input or a prompt).",
    ),
) -> None:
    """Re-encrypt every app's client secret and bot token under the current GUILDGATE_SECRET_KEY. Set the new
    key in GUILDGATE_SECRET_KEY, give the old one through an environment variable, then restart the service.
    Safe to run again: apps already under the new key are left as they are. Join links' sign-ins in progress
    and admin sessions signed with the old key end (people open the link again, admins log in again).

    Example: GUILDGATE_SECRET_KEY=$NEW OLD=$PREVIOUS guildgate secrets rotate --old-key-env OLD"""
    from guildgate.store.crypto import SecretBox
    from guildgate.store.db import Database
    from guildgate.store.repos import AppRepo

    s = db_settings()
    old = read_secret(old_key_env, "previous secret key").reveal()
    new = s.secret_key_value()
    if old == new:
        die("the previous key equals GUILDGATE_SECRET_KEY: set GUILDGATE_SECRET_KEY to the new key first")

    async def go() -> tuple[int, int]:
        db = Database(s.database_url)
        try:
            return await AppRepo(db, SecretBox(new)).rotate(SecretBox(old))
        finally:
            await db.dispose()

    try:
        moved, kept = run(go)
    except ValueError as exc:
        die(f"nothing was changed: {exc}")
        return
    render.out.print(f"re-encrypted {moved} app(s) under the new key; {kept} already were")
