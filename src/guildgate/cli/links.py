"""``guildgate links create|list|disable`` and ``guildgate doctor``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from guildgate.cli import render
from guildgate.cli.common import db_settings, die, run
from guildgate.cli.help import command, group

if TYPE_CHECKING:
    from guildgate.settings import Settings

cli = group("Join links: the consent flow people click through.")
APP = typer.Option(..., "--app", metavar="CLIENT_ID", help="The app's client id.")
ROLES = typer.Option([], "--role", metavar="ROLE_ID", help="A role id to give; repeat for several.")
JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


async def _with_services(s: Settings, fn: Any) -> Any:
    from guildgate.services.runtime import Services

    svc = Services.build(s)
    try:
        return await fn(svc)
    finally:
        await svc.close()


@command(cli, "create")
def links_create(
    app_id: str = APP,
    guild: str | None = typer.Option(None, "--guild", metavar="GUILD_ID", help="The server's id."),
    invite: str | None = typer.Option(
        None, "--invite", metavar="INVITE", help="An invite code or URL of the server (instead of --guild)."
    ),
    role: list[str] = ROLES,
    max_uses: int | None = typer.Option(
        None, "--max-uses", metavar="N", help="How many people may join through it (default: no limit)."
    ),
    expires: str | None = typer.Option(
        None, "--expires", metavar="AGE", help="Lifetime, like 30m, 12h, 7d or 2w (default: none)."
    ),
    title: str | None = typer.Option(None, "--title", metavar="TITLE", help="A line shown under the server's name."),
    skip_checks: bool = typer.Option(
        False,
        "--skip-checks",
        help="Make the link even when the doctor finds the bot missing from the server or short of a permission.",
    ),
    access_for: str | None = typer.Option(
        None,
        "--access-for",
        metavar="DURATION",
        help="Each person's access ends this long after their join (90s, 30m, 12h, 30d, 2w): a grant each.",
    ),
    access_until: str | None = typer.Option(
        None,
        "--access-until",
        metavar="TIME",
        help="Everyone's access ends at this RFC 3339 time (2027-01-05T00:00:00Z).",
    ),
    access_open: bool = typer.Option(
        False, "--access-open", help="Each person gets a grant that never ends by itself (end it by hand)."
    ),
    on_end: str | None = typer.Option(
        None,
        "--on-end",
        metavar="remove_roles|kick|keep",
        help="What the end of access does (default remove_roles); only with an --access-* option.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (id, url, doctor, ...)."),
) -> None:
    """Run the doctor, then create a join link. When the bot is not in the server or lacks a permission the link
    needs, no link is made (exit 1) unless --skip-checks. With --access-for, --access-until or --access-open, each
    person who gets in gets a grant (one per person), ended as --on-end says.

    Example: guildgate links create --app 11... --guild 12... --role 12... --max-uses 50 --access-for 30d"""
    from guildgate.services.links import ChecksFailedError, LinkInputError, create_link, link_dict, report_dict

    given = [n for n, v in (("--access-for", access_for), ("--access-until", access_until)) if v] + (
        ["--access-open"] if access_open else []
    )
    if len(given) > 1:
        die(f"give at most one of --access-for, --access-until and --access-open (got {' and '.join(given)})")
    if on_end is not None and not given:
        die("--on-end only goes with --access-for, --access-until or --access-open")
    s = db_settings()

    async def go(svc: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        link, report = await create_link(
            svc,
            app_id=app_id,
            guild_id=guild,
            invite=invite,
            roles=role,
            max_uses=max_uses,
            expires=expires,
            title=title,
            skip_checks=skip_checks,
            access_for=access_for,
            access_until=access_until,
            access_open=access_open,
            on_end=on_end,
        )
        return link_dict(s.public_url, link), report_dict(report)

    try:
        body, report = run(lambda: _with_services(s, go))
    except ChecksFailedError as exc:
        if as_json:
            render.as_json({"error": "checks_failed", "detail": str(exc), "doctor": report_dict(exc.report)})
        else:
            render.doctor(report_dict(exc.report))
        die("the doctor's checks failed, so no link was made: fix what it says, or pass --skip-checks", code=1)
    except LinkInputError as exc:
        die(_cli_names(str(exc)))
        return
    blocking = [c["name"] for c in report["checks"] if not c["ok"] and c.get("blocks")]
    if blocking:
        render.warn(f"made with --skip-checks although these checks failed: {', '.join(blocking)}")
    if as_json:
        render.as_json(render.times({**body, "doctor": report}))
        return
    render.out.print(f"link [bold]{body['id']}[/] for {body['guild_name'] or body['guild_id']}:")
    render.out.print(body["url"], soft_wrap=True)
    access = _access(body)
    if access:
        render.out.print(f"access: {access}")
    render.out.print("doctor:")
    render.doctor(report)


@command(cli, "list")
def links_list(
    app_id: str | None = typer.Option(None, "--app", metavar="CLIENT_ID", help="Only this app's links."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of a table."),
) -> None:
    """List links with their use and funnel (opened -> sent to Discord -> joined / failed). Needs no
    GUILDGATE_SECRET_KEY."""
    from guildgate.services.links import link_dict, links_with_outcomes
    from guildgate.store.db import Database
    from guildgate.store.links import LinkRepo

    s = db_settings(secret=False)

    async def go() -> list[dict[str, Any]]:
        db = Database(s.database_url)
        try:
            rows = await links_with_outcomes(LinkRepo(db), app_id=app_id)
        finally:
            await db.dispose()
        return [render.times(link_dict(s.public_url, link, outcomes)) for link, outcomes in rows]

    rows = run(go)
    if as_json:
        render.as_json(rows)
        return
    render.table(
        "links",
        ["id", "server", "status", "uses", "access", "opened", "sent", "joined", "failed", "url"],
        [
            (
                r["id"],
                r["guild_name"] or r["guild_id"],
                r["status"],
                f"{r['uses']}/{r['max_uses'] or '∞'}",
                _access(r) or "-",
                r["funnel"]["opened"],
                r["funnel"]["sent_to_discord"],
                r["funnel"]["joined"] + r["funnel"]["already_member"],
                sum(r["funnel"]["failed"].values()),
                r["url"],
            )
            for r in rows
        ],
    )


@command(cli, "show")
def links_show(
    link_id: str = typer.Argument(..., metavar="LINK_ID", help="The link's id (or slug)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show one link: its server, roles, status, access (how long each person's grant lasts) and funnel."""
    from guildgate.services.links import link_dict
    from guildgate.store.db import Database
    from guildgate.store.links import LinkRepo
    from guildgate.store.repos import NotFoundError

    s = db_settings(secret=False)

    async def go() -> dict[str, Any]:
        db = Database(s.database_url)
        try:
            repo = LinkRepo(db)
            link = await repo.get(link_id)
            outcomes = await repo.outcomes([link.id])
        finally:
            await db.dispose()
        return render.times(link_dict(s.public_url, link, outcomes.get(link.id, {})))

    try:
        body = run(go)
    except NotFoundError as exc:
        die(str(exc))
        return
    if as_json:
        render.as_json(body)
        return
    funnel = body.pop("funnel")
    body["access"] = _access(body)
    for name, value in body.items():
        if name == "roles":
            value = ", ".join(f"{r['name']} ({r['id']})" for r in value) or "-"
        render.out.print(f"{name}: {'-' if value is None else value}", soft_wrap=True)
    render.out.print(
        f"funnel: opened {funnel['opened']}, sent to Discord {funnel['sent_to_discord']}, joined {funnel['joined']}, "
        f"already members {funnel['already_member']}, failed {sum(funnel['failed'].values())}"
    )


def _access(body: dict[str, Any]) -> str | None:
    """A link's access in words ("for 30 days, then remove_roles"), or None when it makes no grant."""
    from datetime import datetime

    from guildgate.web.links.access_text import access_words

    until = body.get("access_until")
    words = access_words(
        "en",
        access_for=body.get("access_for"),
        access_until=datetime.fromisoformat(until) if isinstance(until, str) else None,
        access_open=bool(body.get("access_open")),
    )
    return f"{words}, then {body['on_end']}" if words and not body.get("access_open") else words


def _cli_names(message: str) -> str:
    """The service names the fields as the admin API does; the CLI's options are spelled with dashes."""
    for field in ("access_for", "access_until", "access_open", "on_end"):
        message = message.replace(field, "--" + field.replace("_", "-"))
    return message


@command(cli, "disable")
def links_disable(link_id: str = typer.Argument(..., metavar="LINK_ID", help="The link's id (or slug).")) -> None:
    """Turn a link off for good: its page then says so, and nobody can join through it."""
    from guildgate.store.repos import NotFoundError

    s = db_settings()

    async def go(svc: Any) -> Any:
        return await svc.links.disable(link_id)

    try:
        link = run(lambda: _with_services(s, go))
    except NotFoundError as exc:
        die(str(exc))
        return
    render.out.print(f"link [bold]{link.id}[/] disabled")


def doctor(
    app_id: str | None = typer.Option(None, "--app", metavar="CLIENT_ID", help="The app's client id."),
    guild: str | None = typer.Option(None, "--guild", metavar="GUILD_ID", help="The server's id."),
    role: list[str] = ROLES,
    on_end: str | None = typer.Option(
        None,
        "--on-end",
        metavar="ACTION",
        help="What ends the access: remove_roles, kick (checks Kick Members too) or keep.",
    ),
    link: str | None = typer.Option(
        None,
        "--link",
        metavar="LINK_ID",
        help="Check a join link as it is (its app, server, roles and end) instead of --app/--guild/--role.",
    ),
    as_json: bool = JSON,
) -> None:
    """Check, through Discord's API, that the app's bot can add people to the server (exit 1 if not); with
    --on-end kick, or a --link whose access ends with a kick, that it may kick them too.

    Example: guildgate doctor --app 11... --guild 12... --role 12... --on-end kick"""
    from guildgate.services.links import LinkInputError, report_dict, run_doctor, run_link_doctor

    if link is not None and (app_id or guild or role or on_end):
        die("give either --link, or --app and --guild (with --role and --on-end): not both")
    if link is None and not (app_id and guild):
        die("give --app and --guild (the app's client id and the server's id), or --link LINK_ID")
    s = db_settings()

    async def go(svc: Any) -> dict[str, Any]:
        if link is not None:
            return report_dict((await run_link_doctor(svc, link_id=link))[1])
        assert app_id is not None and guild is not None
        return report_dict(await run_doctor(svc, app_id=app_id, guild_id=guild, roles=role, on_end=on_end))

    try:
        report = run(lambda: _with_services(s, go))
    except LinkInputError as exc:
        die(str(exc))
        return
    if as_json:
        render.as_json(report)
    else:
        render.doctor(report)
    if not report["ok"]:
        raise typer.Exit(1)
