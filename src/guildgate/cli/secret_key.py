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
    """Re-encrypt every app's client secret and bot token, and every webhook endpoint's signing secrets, under
    the current GUILDGATE_SECRET_KEY. Set the new
    key in GUILDGATE_SECRET_KEY, give the old one through an environment variable, then restart the service.
    Safe to run again: apps already under the new key are left as they are. Join links' sign-ins in progress
    and admin sessions signed with the old key end (people open the link again, admins log in again).

    Example: GUILDGATE_SECRET_KEY=$NEW OLD=$PREVIOUS guildgate secrets rotate --old-key-env OLD"""
    from guildgate.store.crypto import SecretBox
    from guildgate.store.db import Database
    from guildgate.store.repos import AppRepo
    from guildgate.store.webhooks import reseal_all

    s = db_settings()
    old = read_secret(old_key_env, "previous secret key").reveal()
    new = s.secret_key_value()
    if old == new:
        die("the previous key equals GUILDGATE_SECRET_KEY: set GUILDGATE_SECRET_KEY to the new key first")

    async def go() -> tuple[tuple[int, int], tuple[int, int] | str]:
        db = Database(s.database_url)
        try:
            apps = await AppRepo(db, SecretBox(new)).rotate(SecretBox(old))
            try:  # the webhook endpoints' secrets, in a transaction of their own
                hooks: tuple[int, int] | str = await db.run(
                    lambda conn: reseal_all(conn, old=SecretBox(old), new=SecretBox(new))
                )
            except ValueError as exc:
                hooks = str(exc)
            return apps, hooks
        finally:
            await db.dispose()

    try:
        (moved, kept), hooks = run(go)
    except ValueError as exc:
        die(f"nothing was changed: {exc}")
        return
    render.out.print(f"re-encrypted {moved} app(s) under the new key; {kept} already were")
    if isinstance(hooks, str):
        die(f"the apps are under the new key, but no webhook endpoint's secrets were re-encrypted: {hooks}")
    elif hooks != (0, 0):
        render.out.print(f"re-encrypted {hooks[0]} webhook endpoint(s)' secrets; {hooks[1]} already were")
