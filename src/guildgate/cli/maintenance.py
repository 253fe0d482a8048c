"""``guildgate secrets rotate`` and ``guildgate records prune``: keeping a deployment's secrets and data tidy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from guildgate.cli import render
from guildgate.cli.main import app, db_settings, die, read_secret, records_cli, run

secrets_cli = typer.Typer(help="The secret key that encrypts app secrets at rest.", no_args_is_help=True)
app.add_typer(secrets_cli, name="secrets")


@secrets_cli.command("rotate")
def secrets_rotate(
    old_key_env: str | None = typer.Option(
        None, "--old-key-env", help="Env var holding the previous GUILDGATE_SECRET_KEY (else stdin or a prompt)."
    ),
) -> None:
    """Re-encrypt every app's client secret and bot token under the current GUILDGATE_SECRET_KEY. Set the new
    key in GUILDGATE_SECRET_KEY, give the old one through an env var, then restart the service. Example:
    ``GUILDGATE_SECRET_KEY=$NEW OLD=$PREVIOUS guildgate secrets rotate --old-key-env OLD``. Safe to run again:
    apps already under the new key are left as they are. Join links' sign-ins in progress and admin sessions
    signed with the old key end (people open the link again, admins log in again)."""
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


@records_cli.command("prune")
def records_prune(
    older_than: str = typer.Option(..., "--older-than", help="Age, like 90d or 12w (at most 3660d)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be deleted."),
) -> None:
    """Delete finished records older than the given age (pending ones are kept), 5,000 at a time, with
    progress on stderr. Safe while the service runs. Example: ``guildgate records prune --older-than 90d``"""
    from guildgate.core.links import parse_duration
    from guildgate.store.db import Database
    from guildgate.store.links import LinkRepo
    from guildgate.store.repos import RecordRepo

    try:
        age = parse_duration(older_than, max_days=3660)
    except ValueError as exc:
        die(f"--older-than: {exc}")
        return
    before = datetime.now(UTC) - age
    s = db_settings()

    async def go() -> Any:
        db = Database(s.database_url)
        try:
            records = RecordRepo(db)
            total = await records.count_before(before=before)
            if dry_run:
                return total, 0

            def progress(deleted: int) -> None:
                render.note(f"deleted {deleted} of {total} records…")

            deleted = await records.prune(before=before, progress=progress if total else None)
            states = await LinkRepo(db).prune_states(older_than=age)
            return deleted, states
        finally:
            await db.dispose()

    count, states = run(go)
    if dry_run:
        render.out.print(f"{count} record(s) created before {before:%Y-%m-%d %H:%M} UTC would be deleted")
    else:
        render.out.print(
            f"deleted {count} record(s) created before {before:%Y-%m-%d %H:%M} UTC ({states} old sign-in states)"
        )
