"""``guildgate records list|show|export|prune``: the join records."""

from __future__ import annotations

import contextlib
import csv
import os
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import typer

from guildgate.cli import render
from guildgate.cli.common import db_settings, die, repos, run
from guildgate.cli.help import command, group
from guildgate.core.invites import is_snowflake

cli = group("Join records (these commands only read: no GUILDGATE_SECRET_KEY needed, prune aside).")

RECORD_FIELDS = [
    "id",
    "state",
    "code",
    "msg",
    "guild_id",
    "guild_name",
    "user_id",
    "developer_id",
    "cost_ms",
    "discord_status",
    "discord_code",
    "created_at",
    "finished_at",
    "source",
    "link_id",
]


def _filters(state: str | None, code: str | None, guild_id: str | None, app_id: str | None) -> Any:
    from guildgate.core.outcomes import Outcome, RecordState
    from guildgate.store.repos import RecordFilters

    if app_id is not None and not is_snowflake(app_id):
        die(f"--app must be an app's client id (a snowflake: 17-20 digits), got {app_id!r}")
    if state is not None and state not in {s.value for s in RecordState}:
        die(f"--state must be one of {', '.join(s.value for s in RecordState)}")
    if code is not None and code not in {o.value for o in Outcome}:
        die(f"--code {code!r} is not an outcome code")
    if guild_id is not None and not is_snowflake(guild_id):
        die(f"--guild-id must be a server id (a snowflake: 17-20 digits), got {guild_id!r}")
    return RecordFilters(state=state, code=code, guild_id=guild_id)


def _as_dict(row: Any) -> dict[str, Any]:
    from guildgate.services.records import shown_record

    return render.times(shown_record(row, "en"))


APP = typer.Option(None, "--app", metavar="CLIENT_ID", help="Only this app's records.")
STATE = typer.Option(
    None, "--state", metavar="STATE", help="Only records in this state: pending, succeeded, failed, unknown."
)
CODE = typer.Option(None, "--code", metavar="CODE", help="Only records with this outcome code (joined, banned, ...).")
GUILD = typer.Option(None, "--guild-id", metavar="GUILD_ID", help="Only records of joins to this server.")


@command(cli, "list")
def records_list(
    app_id: str | None = APP,
    state: str | None = STATE,
    code: str | None = CODE,
    guild_id: str | None = GUILD,
    limit: int = typer.Option(50, "--limit", min=1, max=500, metavar="N", help="How many (1 to 500)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of a table."),
) -> None:
    """Newest records first.

    Example: guildgate records list --state failed"""
    s = db_settings(secret=False)
    filters = _filters(state, code, guild_id, app_id)

    async def go() -> list[dict[str, Any]]:
        db, _, _, records = repos(s)
        try:
            rows, _ = await records.list(app_id=app_id, filters=filters, limit=limit, cursor=None)
        finally:
            await db.dispose()
        return [_as_dict(r) for r in rows]

    rows = run(go)
    if as_json:
        render.as_json(rows)
    else:
        render.table(
            "records",
            ["id", "state", "code", "guild", "user", "ms", "created"],
            [
                (r["id"], r["state"], r["code"], r["guild_id"], r["user_id"], r["cost_ms"], r["created_at"])
                for r in rows
            ],
        )


@command(cli, "show")
def records_show(
    record_id: str = typer.Argument(..., metavar="RECORD_ID", help="The record's id (from records list)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """One record in full.

    Example: guildgate records show 049bfae2-..."""
    s = db_settings(secret=False)
    from guildgate.store.repos import NotFoundError

    async def go() -> dict[str, Any] | None:
        db, _, _, records = repos(s)
        try:
            return _as_dict(await records.get(record_id, app_id=None))
        except NotFoundError:
            return None
        finally:
            await db.dispose()

    rec = run(go)
    if rec is None:
        die(f"no record with id {record_id}", 1)
        return
    render.as_json(rec) if as_json else render.record(rec)


@command(cli, "export")
def records_export(
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="The file to write (default: standard output)."
    ),
    fmt: str = typer.Option("jsonl", "--format", metavar="jsonl|csv", help="One JSON object a line, or CSV."),
    app_id: str | None = APP,
    state: str | None = STATE,
    code: str | None = CODE,
    guild_id: str | None = GUILD,
) -> None:
    """Export records, newest first, page by page (progress on standard error). A file is written under a
    temporary name beside it and put in place when the export is complete: an export that fails or is
    interrupted leaves the file as it was.

    Example: guildgate records export -o r.csv --format csv"""
    import json

    if fmt not in ("jsonl", "csv"):
        die("--format must be jsonl or csv")
    s = db_settings(secret=False)
    filters = _filters(state, code, guild_id, app_id)
    final, partial = _export_target(output) if output is not None else (None, None)
    stream: TextIO = sys.stdout
    if final is not None:
        try:
            stream = (partial or final).open("w", newline="")
        except OSError as exc:
            die(f"--output: cannot write {output}: {exc.strerror}")

    async def go() -> int:
        db, _, _, records = repos(s)
        writer = csv.DictWriter(stream, fieldnames=RECORD_FIELDS) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        count, cursor = 0, None
        try:
            while True:
                rows, cursor = await records.list(app_id=app_id, filters=filters, limit=500, cursor=cursor)
                for row in rows:
                    rec = _as_dict(row)
                    if writer:
                        writer.writerow(rec)
                    else:
                        stream.write(json.dumps(rec, ensure_ascii=False) + "\n")
                count += len(rows)
                render.note(f"exported {count} records")
                if cursor is None:
                    return count
        finally:
            await db.dispose()

    try:
        run(go)
        if partial is not None and final is not None:
            stream.close()
            partial.replace(final)
    finally:  # failed or interrupted: a file named by --output is left as it was
        if stream is not sys.stdout:
            stream.close()
        if partial is not None:
            partial.unlink(missing_ok=True)


def _export_target(output: Path) -> tuple[Path, Path | None]:
    """Where an export to ``output`` ends up, and the temporary file it is written to first (None: a pipe or a
    device such as /dev/stdout, written directly), checked writable before anything is read. A regular file is
    replaced whole when the export is complete: a symbolic link's target is replaced, not the link, and the
    new file keeps the old one's permissions (and owner, where allowed)."""
    if output.is_dir():
        die(f"--output: {output} is a directory; name a file")
    final = Path(os.path.realpath(output))
    try:
        old = final.stat()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        die(f"--output: cannot write {output}: {exc.strerror}")
    if old is not None and not stat.S_ISREG(old.st_mode):
        return final, None
    partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
    try:
        partial.touch()
        if old is not None:
            os.chmod(partial, stat.S_IMODE(old.st_mode))
            with contextlib.suppress(PermissionError):
                os.chown(partial, old.st_uid, old.st_gid)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        die(f"--output: cannot write {output}: {exc.strerror}")
    return final, partial


@command(cli, "prune")
def records_prune(
    older_than: str = typer.Option(..., "--older-than", metavar="AGE", help="An age, like 90d or 12w (at most 3660d)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be deleted."),
) -> None:
    """Delete finished records older than the given age (pending ones are kept), 5,000 at a time, with
    progress on standard error; and the webhook events as old that no delivery still waits for, with their
    attempts. Safe while the service runs.

    Example: guildgate records prune --older-than 90d"""
    from guildgate.core.links import parse_duration
    from guildgate.store.db import Database
    from guildgate.store.deliveries import PRUNE_EVENTS_BATCH
    from guildgate.store.deliveries import prune as prune_events
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
                return total, (0, 0)

            def progress(deleted: int) -> None:
                render.note(f"deleted {deleted} of {total} records…")

            deleted = await records.prune(before=before, progress=progress if total else None)
            states = await LinkRepo(db).prune_states(older_than=age)
            events = 0
            while True:  # webhook events no delivery waits for, with their attempts: a batch a transaction
                count = await db.run(lambda conn: prune_events(conn, before=before))
                events += count
                if count < PRUNE_EVENTS_BATCH:
                    break
            return deleted, (states, events)
        finally:
            await db.dispose()

    count, (states, events) = run(go)
    if dry_run:
        render.out.print(f"{count} record(s) created before {render.when(before)} would be deleted")
    else:
        render.out.print(
            f"deleted {count} record(s) created before {render.when(before)} ({states} old sign-in states, "
            f"{events} webhook event(s) with their attempts)"
        )
