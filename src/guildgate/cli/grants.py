"""``guildgate grants list|show|end|extend|sync``: grants (``../shared/spec/access.md``, "Grants") as the operator
sees them: any app's, straight from the database and Discord (the service loads each grant's own app). With
``--json`` each prints exactly one JSON object on one line, an error too: ``{"error": CODE, "detail": "..."}``
(``unknown_grant``, ``grant_ended``, ``invalid_request``, ...; ``failed`` for a setting or the database), with the
same exit status as without it: 2 for bad input, 1 for a refusal or failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from guildgate.cli import render
from guildgate.cli.common import db_settings, run
from guildgate.cli.help import command, group
from guildgate.core.invites import is_snowflake

if TYPE_CHECKING:
    from guildgate.core.grants import Grant
    from guildgate.services.runtime import Services
    from guildgate.settings import Settings

T = TypeVar("T")

cli = group("Grants: roles that last until an end, then are removed (or the person kicked).")
JSON = typer.Option(False, "--json", help="Print one JSON object on one line.")
GRANT_ID = typer.Argument(..., metavar="GRANT_ID", help="The grant's id (grt_...).")
APP = typer.Option(None, "--app", metavar="CLIENT_ID", help="Only this app's grants.")
GUILD = typer.Option(None, "--guild", metavar="GUILD_ID", help="Only grants in this server.")

COLUMNS = ["id", "state", "guild", "user", "roles", "ends_at", "on_end", "external_ref", "source", "last_error"]


def _die(detail: str, *, error: str = "invalid_request", code: int = 2) -> NoReturn:
    """``error: detail`` on stderr (with ``--json`` also ``{"error", "detail"}`` on stdout); exit ``code``."""
    render.fail(f"{error}: {detail}" if error != "invalid_request" else detail, error=error, detail=detail)
    raise typer.Exit(code)


def _with_services(s: Settings, fn: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``fn`` with the service's parts built from ``s``; the grant errors become a message and exit 1 (2 for
    bad input)."""
    from guildgate.core.errors import InvalidRequestError, JoinError, UnknownGrantError
    from guildgate.services.runtime import Services

    async def go() -> T:
        svc = Services.build(s)
        try:
            return await fn(svc)
        finally:
            await svc.close()

    try:
        return run(go)
    except JoinError as exc:
        # the CLI acts on every app's grants: an unknown id is simply that
        detail = "No such grant" if isinstance(exc, UnknownGrantError) else exc.outcome.message("en", detail=exc.detail)
        _die(detail, error=exc.outcome.value, code=2 if isinstance(exc, InvalidRequestError) else 1)


def _id_option(name: str, value: str | None) -> str | None:
    if value is not None and not is_snowflake(value):
        _die(f"{name} must be an id (a snowflake: 17-20 digits), got {value!r}")
    return value


def _shown(grant: Grant) -> dict[str, Any]:
    """The contract's grant object, its times in the CLI's one format (RFC 3339 in UTC, to the second)."""
    row = grant.as_json()
    return {k: render.when(v) if isinstance(v, str) and k in _TIMES else v for k, v in row.items()}


_TIMES = frozenset({"starts_at", "ends_at", "absent_since", "as_of", "ended_at", "created_at", "updated_at"})


def _one(grant: Grant, as_json: bool, headline: str | None = None) -> None:
    if as_json:
        render.as_json(_shown(grant))
        return
    if headline:
        render.out.print(headline)
    shown = _shown(grant)
    render.record({k: " ".join(v) if isinstance(v, list) else v for k, v in shown.items()})


@command(cli, "list")
def grants_list(
    app_id: str | None = APP,
    guild: str | None = GUILD,
    user: str | None = typer.Option(None, "--user", metavar="USER_ID", help="Only this person's grants."),
    state: str | None = typer.Option(
        None, "--state", metavar="STATE", help="Only grants in this state: active, ended, end_failed."
    ),
    external_ref: str | None = typer.Option(
        None, "--external-ref", metavar="REF", help="Only grants with this reference (a subscription, an order)."
    ),
    limit: int = typer.Option(50, "--limit", metavar="N", help="How many (1 to 500)."),
    cursor: str | None = typer.Option(
        None, "--cursor", metavar="CURSOR", help="Where the previous page ended (its next_cursor)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: grants and next_cursor."),
) -> None:
    """Newest grants first, of every app (or one).

    Example: guildgate grants list --state active --guild 12..."""
    from guildgate.core.grants import GrantState
    from guildgate.services.grants import GrantFilters

    render.json_errors(as_json)
    _id_option("--app", app_id)
    _id_option("--guild", guild)
    _id_option("--user", user)
    if not 1 <= limit <= 500:  # checked here, not by the parser, so that --json answers it in JSON
        _die(f"--limit must be from 1 to 500, got {limit}")
    if state is not None and state not in {s.value for s in GrantState}:
        _die(f"--state must be one of {', '.join(s.value for s in GrantState)}")
    filters = GrantFilters(
        guild_id=guild,
        user_id=user,
        state=GrantState(state) if state else None,
        external_ref=external_ref,
    )
    s = db_settings()

    async def go(svc: Services) -> tuple[list[Grant], str | None]:
        try:
            return await svc.grants.page(app_id=app_id, filters=filters, cursor=cursor, limit=limit)
        except ValueError as exc:
            _die(f"--cursor: {exc}")

    grants, next_cursor = _with_services(s, go)
    if as_json:
        render.as_json({"grants": [_shown(g) for g in grants], "next_cursor": next_cursor})
        return
    render.table(
        "grants",
        COLUMNS,
        [
            (
                g.id,
                g.state.value + (" (absent)" if g.absent_since else ""),
                g.guild_id,
                g.user_id,
                " ".join(g.roles),
                g.ends_at or "never",
                g.on_end.value,
                g.external_ref,
                g.source,
                g.last_error,
            )
            for g in grants
        ],
    )
    if next_cursor:
        render.note(f"more: guildgate grants list --cursor {next_cursor}")


@command(cli, "show")
def grants_show(grant_id: str = GRANT_ID, as_json: bool = JSON) -> None:
    """One grant in full (any app's).

    Example: guildgate grants show grt_2b0f6c0e9d5a4f0e"""
    render.json_errors(as_json)
    s = db_settings()

    async def go(svc: Services) -> Grant:
        return await svc.grants.get(app_id=None, grant_id=grant_id)

    _one(_with_services(s, go), as_json)


@command(cli, "end")
def grants_end(
    grant_id: str = GRANT_ID,
    on_end: str | None = typer.Option(
        None, "--on-end", metavar="ACTION", help="remove_roles, kick or keep, instead of the grant's own."
    ),
    as_json: bool = JSON,
) -> None:
    """End a grant now (end_reason revoked): its roles are removed, or the person kicked, as its on_end says.
    An ended grant is shown as it is; an end_failed one is tried again.

    Example: guildgate grants end grt_2b0f6c0e9d5a4f0e --on-end keep"""
    from guildgate.core.grants import OnEnd

    render.json_errors(as_json)
    if on_end is not None and on_end not in {o.value for o in OnEnd}:
        _die(f"--on-end must be one of {', '.join(o.value for o in OnEnd)}")
    s = db_settings()

    async def go(svc: Services) -> Grant:
        ending = OnEnd(on_end) if on_end else None
        return (await svc.grants.end(app=None, app_id=None, grant_id=grant_id, on_end=ending)).grant

    grant = _with_services(s, go)
    _one(grant, as_json, f"grant [bold]{grant.id}[/] {grant.state.value}")


@command(cli, "extend")
def grants_extend(
    grant_id: str = GRANT_ID,
    by: str | None = typer.Option(
        None, "--by", metavar="DURATION", help="Longer by this much (30m, 12h, 30d, 2w), from its current end."
    ),
    until: str | None = typer.Option(
        None, "--until", metavar="TIME", help="The new end, RFC 3339 (2027-01-05T10:00:00Z)."
    ),
    as_json: bool = JSON,
) -> None:
    """Give an active grant a later end: --by DURATION (from its current end, or from now when that is past) or
    --until TIME (later than its current end; on an open-ended grant it sets one). It never shortens a grant:
    to end it now, use grants end.

    Example: guildgate grants extend grt_2b0f6c0e9d5a4f0e --by 30d"""
    from guildgate.core.grants import parse_time
    from guildgate.core.links import parse_duration

    render.json_errors(as_json)
    if (by is None) == (until is None):
        _die("give exactly one of --by DURATION and --until TIME")
    try:
        delta = parse_duration(by) if by is not None else None
        moment = parse_time(until) if until is not None else None
    except ValueError as exc:
        _die(f"{'--by' if by is not None else '--until'}: {exc}")
    s = db_settings()

    async def go(svc: Services) -> Grant:
        from guildgate.core.errors import InvalidRequestError

        try:
            return (await svc.grants.extend(app_id=None, grant_id=grant_id, by=delta, until=moment)).grant
        except InvalidRequestError as exc:  # the service names by/until: the CLI's options are --by/--until
            detail = exc.detail or "invalid request"
            detail = detail.replace("use until", "use --until")
            _die(f"--{detail}" if detail.startswith(("by:", "until:")) else detail)

    grant = _with_services(s, go)
    _one(
        grant, as_json, f"grant [bold]{grant.id}[/] now ends {render.when(grant.ends_at) if grant.ends_at else 'never'}"
    )


@command(cli, "sync")
def grants_sync(
    app_id: str | None = typer.Option(None, "--app", metavar="CLIENT_ID", help="Only this app's grants."),
    guild: str | None = GUILD,
    dry_run: bool = typer.Option(False, "--dry-run", help="Look and count, but change nothing at Discord."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: the summary."),
) -> None:
    """Check every active grant at Discord: missing roles are given again (repaired), a person no longer in the
    server is counted absent and marked so (the grant stays active), and end_failed grants are tried again.
    The summary counts what this sync found: absent is every grant whose person is not in the server, whether
    newly or already marked. Exit status 1 when a grant failed.

    Example: guildgate grants sync --guild 12... --dry-run"""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    render.json_errors(as_json)
    _id_option("--app", app_id)
    _id_option("--guild", guild)
    s = db_settings()
    bar = Progress(
        TextColumn("checking grants"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=render.err,
        disable=as_json or not render.err.is_terminal,
    )
    task = bar.add_task("sync", total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    async def go(svc: Services) -> Any:
        with bar:
            return await svc.grants.sync(app_id=app_id, guild_id=guild, dry_run=dry_run, progress=progress)

    summary = _with_services(s, go)
    counts = {name: getattr(summary, name) for name in ("checked", "repaired", "absent", "retried", "failed")}
    if as_json:
        render.as_json({**counts, "dry_run": dry_run})
    else:
        would = " (dry run: nothing was changed)" if dry_run else ""
        render.out.print(", ".join(f"{name} {count}" for name, count in counts.items()) + would)
    if counts["failed"]:
        raise typer.Exit(1)
