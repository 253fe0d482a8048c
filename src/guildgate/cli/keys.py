"""``guildgate keys create|list|revoke``: the API keys callers send in the User-Token header."""

from __future__ import annotations

import typer

from guildgate.cli import render
from guildgate.cli.common import db_settings, die, repos, run

cli = typer.Typer(help="API keys (the User-Token header).", no_args_is_help=True)


@cli.command("create")
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
        db, _, keys, _ = repos(s)
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


@cli.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List API keys (id, prefix, app, quota, revoked) — never the keys."""
    s = db_settings()

    async def go() -> None:
        db, _, keys, _ = repos(s)
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


@cli.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (from `keys list`).")) -> None:
    """Revoke an API key at once."""
    s = db_settings()
    from guildgate.store.repos import NotFound

    async def go() -> None:
        db, _, keys, _ = repos(s)
        try:
            info = await keys.revoke(key_id)
        except NotFound as exc:
            die(str(exc))
            return
        finally:
            await db.dispose()
        render.out.print(f"key {info.id} revoked")

    run(go)
