"""``guildgate keys create|list|revoke``: the API keys callers send in the User-Token header."""

from __future__ import annotations

import typer

from guildgate.cli import render
from guildgate.cli.common import db_settings, die, repos, run
from guildgate.cli.help import command, group

cli = group("API keys (the User-Token header).")


@command(cli, "create")
def keys_create(
    app_id: str = typer.Option(..., "--app", metavar="CLIENT_ID", help="The app's client id."),
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="A name to know the key by."),
    quota_per_minute: int | None = typer.Option(
        None, "--quota-per-minute", min=1, metavar="N", help="Joins a minute this key may ask for (default: no quota)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object, the key in its key field."),
) -> None:
    """Create an API key for an app; it is shown once.

    Example: guildgate keys create --app 11... --json"""
    s = db_settings()
    from guildgate.services.keys import create_key, key_dict
    from guildgate.store.repos import NotFoundError

    async def go() -> None:
        db, _, keys, _ = repos(s)
        try:
            info, key = await create_key(keys, app_id=app_id, name=name, quota_per_minute=quota_per_minute)
        except NotFoundError as exc:
            die(str(exc))
            return
        except ValueError as exc:
            die(f"--{exc}")
            return
        finally:
            await db.dispose()
        if as_json:
            render.as_json(render.times(key_dict(info, secret=key)))
        else:
            print(key.reveal())
            render.note(f"key {info.id} for app {info.app_id}: store it now, it is not shown again")

    run(go)


@command(cli, "list")
def keys_list(as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of a table.")) -> None:
    """List API keys (id, prefix, app, quota, revoked) — never the keys. Needs no GUILDGATE_SECRET_KEY."""
    s = db_settings(secret=False)
    from guildgate.services.keys import key_dict

    async def go() -> None:
        db, _, keys, _ = repos(s)
        try:
            rows = await keys.list()
        finally:
            await db.dispose()
        if as_json:
            render.as_json([render.times(key_dict(k)) for k in rows])
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


@command(cli, "revoke")
def keys_revoke(
    key: str = typer.Argument(
        ..., metavar="KEY_ID_OR_KEY", help="The key's id (key_…, from keys list) or the key itself (gg_…)."
    ),
) -> None:
    """Revoke an API key at once, named by its id or by the key itself (which is never printed back)."""
    s = db_settings(secret=False)
    from guildgate.services.keys import revoke_key
    from guildgate.store.repos import NotFoundError

    async def go() -> None:
        db, _, keys, _ = repos(s)
        try:
            info = await revoke_key(keys, key)
        except NotFoundError as exc:
            die(str(exc))
            return
        finally:
            await db.dispose()
        render.out.print(f"key {info.id} ({info.prefix}…) revoked")

    run(go)
