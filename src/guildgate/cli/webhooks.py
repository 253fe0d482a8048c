"""``guildgate webhooks add|list|disable|enable|test|rotate-secret|deliveries|replay|recover``: the endpoints that
signed events are sent to (``../shared/spec/access.md``, "Webhooks"; docs/webhooks.md). A signing secret is
printed once, by ``add`` and ``rotate-secret``, and never again. Each command takes ``--json`` (one JSON object
on one line). A refused input (a URL, an event type, an unknown id) is named on standard error, exit 2."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from guildgate.cli import render
from guildgate.cli.common import db_settings, die, run
from guildgate.cli.help import command, group

if TYPE_CHECKING:
    from guildgate.services.webhooks import WebhookService
    from guildgate.settings import Settings

T = TypeVar("T")

cli = group("Webhooks: signed events sent to your systems (Standard Webhooks).")
JSON = typer.Option(False, "--json", help="Print one JSON object on one line instead of text.")
ENDPOINT = typer.Argument(..., metavar="ENDPOINT_ID", help="The endpoint's id (whe_...).")


def _call(s: Settings, fn: Callable[[WebhookService], Awaitable[T]]) -> T:
    """Run ``fn`` with the webhook service; a refusal (unknown id, bad input) ends the command (exit 2)."""
    from guildgate.core.errors import CallerError
    from guildgate.services.runtime import Services

    async def go() -> T:
        svc = Services.build(s)
        try:
            return await fn(svc.webhooks)
        finally:
            await svc.close()

    try:
        return run(go)
    except CallerError as exc:
        die(exc.outcome.message("en", detail=exc.detail))


def _times(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its times (``…_at``, an attempt's ``at``) as the CLI prints every time."""
    shown = render.times(row)
    if isinstance(shown.get("at"), str):
        shown["at"] = render.when(shown["at"])
    return shown


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since``: an RFC 3339 time (``2026-12-06T18:00:00Z``), a date (midnight UTC), or an age such as 30m, 12h,
    7d (that long ago)."""
    from guildgate.core.links import parse_duration

    value = text.strip()
    try:
        return (now or datetime.now(UTC)) - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"--since: {value[:40]!r} is not a time: give an RFC 3339 time such as 2026-12-06T18:00:00Z, "
            "a date such as 2026-12-06, or an age such as 30m, 12h or 7d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _endpoint_rows(rows: list[dict[str, Any]]) -> None:
    render.table(
        "webhook endpoints",
        ["id", "app", "url", "events", "status", "last success", "failing since"],
        [
            (
                r["id"],
                r["app_id"],
                r["url"],
                ", ".join(r["events"]) if r.get("events") is not None else "every type",
                f"disabled ({r.get('disabled_reason') or 'by the operator'})" if r.get("disabled_at") else "active",
                r.get("last_success_at") or "",
                r.get("failing_since") or "",
            )
            for r in rows
        ],
    )


@command(cli, "add")
def webhooks_add(
    app_id: str = typer.Option(..., "--app", metavar="CLIENT_ID", help="The app whose events are sent."),
    url: str = typer.Option(..., "--url", metavar="URL", help="Where to POST them (https://...)."),
    event: list[str] = typer.Option(
        [], "--event", metavar="TYPE", help="An event type to send; repeat for several (default: every type)."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"id", "secret", ...} on one line.'),
) -> None:
    """Add an endpoint and print its signing secret (shown this once: keep it in the receiver's configuration).
    Only https:// URLs to globally routable addresses are taken (GUILDGATE_WEBHOOK_ALLOW_NETWORKS admits internal
    ones; GUILDGATE_WEBHOOK_ALLOW_INSECURE=1 anything, for development).

    Example: guildgate webhooks add --app 11... --url https://crm.example.com/hooks --event join.succeeded"""
    s = db_settings()
    endpoint, secret = _call(s, lambda hooks: hooks.add(app_id=app_id, url=url, events=event or None))
    body = _times(endpoint.as_json())
    if as_json:
        render.as_json({**body, "secret": secret})
        return
    render.out.print(f"endpoint [bold]{endpoint.id}[/] for app {endpoint.app_id}: {endpoint.url}")
    render.out.print("signing secret (shown only this once; keep it in the receiver's configuration):")
    print(secret)


@command(cli, "list")
def webhooks_list(
    app_id: str | None = typer.Option(None, "--app", metavar="CLIENT_ID", help="Only this app's endpoints."),
    as_json: bool = typer.Option(False, "--json", help='Print {"endpoints": [...]} on one line.'),
) -> None:
    """List endpoints: URL, event types, whether disabled (and why), last success."""
    s = db_settings()
    endpoints = _call(s, lambda hooks: hooks.list(app_id=app_id))
    rows = [_times(e.as_json()) for e in endpoints]
    if as_json:
        render.as_json({"endpoints": rows})
        return
    if not rows:
        render.note("no webhook endpoints yet: guildgate webhooks add --app ID --url URL")
        return
    _endpoint_rows(rows)


def _switch(endpoint_id: str, as_json: bool, *, enable: bool) -> None:
    s = db_settings()
    if enable:
        endpoint = _call(s, lambda hooks: hooks.enable(app_id=None, endpoint_id=endpoint_id))
    else:
        endpoint = _call(s, lambda hooks: hooks.disable(app_id=None, endpoint_id=endpoint_id))
    if as_json:
        render.as_json(_times(endpoint.as_json()))
        return
    render.out.print(f"endpoint [bold]{endpoint.id}[/] {'enabled' if enable else 'disabled'}")
    if enable:
        render.note(f"events made while it was disabled: guildgate webhooks recover {endpoint.id} --since TIME")


@command(cli, "disable")
def webhooks_disable(endpoint_id: str = ENDPOINT, as_json: bool = JSON) -> None:
    """Stop sending to an endpoint; events made meanwhile are recorded as skipped (recoverable after enable)."""
    _switch(endpoint_id, as_json, enable=False)


@command(cli, "enable")
def webhooks_enable(endpoint_id: str = ENDPOINT, as_json: bool = JSON) -> None:
    """Send to an endpoint again (a disabled one; events it missed: webhooks recover)."""
    _switch(endpoint_id, as_json, enable=True)


@command(cli, "test")
def webhooks_test(endpoint_id: str = ENDPOINT, as_json: bool = JSON) -> None:
    """Send a webhook.test event to this endpoint only; its attempts show in webhooks deliveries."""
    s = db_settings()
    event_id = _call(s, lambda hooks: hooks.test(app_id=None, endpoint_id=endpoint_id))
    if as_json:
        render.as_json({"id": endpoint_id, "event_id": event_id})
        return
    render.out.print(f"webhook.test event [bold]{event_id}[/] queued for {endpoint_id}")
    render.note(f"see how it went: guildgate webhooks deliveries {endpoint_id}")


@command(cli, "rotate-secret")
def webhooks_rotate(
    endpoint_id: str = ENDPOINT,
    as_json: bool = typer.Option(False, "--json", help='Print {"id", "secret"} on one line.'),
) -> None:
    """Make a new signing secret and print it (shown this once). Each previous secret stays valid for 24 hours
    from its own rotation (at most 3 at once): meanwhile every message carries one signature per valid secret."""
    s = db_settings()
    secret = _call(s, lambda hooks: hooks.rotate_secret(app_id=None, endpoint_id=endpoint_id))
    if as_json:
        render.as_json({"id": endpoint_id, "secret": secret})
        return
    render.out.print(f"new signing secret of [bold]{endpoint_id}[/] (shown only this once; the old one works 24 h):")
    print(secret)


@command(cli, "deliveries")
def webhooks_deliveries(
    endpoint_id: str = ENDPOINT,
    failed: bool = typer.Option(False, "--failed", help="Only failed attempts."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, metavar="N", help="At most N attempts (default 50)."),
    as_json: bool = typer.Option(False, "--json", help='Print {"attempts": [...]} on one line.'),
) -> None:
    """One row per delivery attempt to this endpoint, newest first: event id, type, attempt number, time, HTTP
    status (empty when no answer came), duration, error."""
    s = db_settings()
    attempts = _call(
        s, lambda hooks: hooks.deliveries(app_id=None, endpoint_id=endpoint_id, failed_only=failed, limit=limit)
    )
    rows = [_times(a.as_json()) for a in attempts]
    if as_json:
        render.as_json({"attempts": rows})
        return
    if not rows:
        render.note("no attempts yet")
        return
    render.table(
        f"deliveries to {endpoint_id}",
        ["event", "type", "attempt", "time", "status", "duration", "error"],
        [
            (
                r["event_id"],
                r["type"],
                r["attempt"],
                r["at"],
                "" if r.get("status") is None else r["status"],
                f"{r['duration_ms']} ms" if r.get("duration_ms") is not None else "",
                r.get("error") or "",
            )
            for r in rows
        ],
    )


@command(cli, "replay")
def webhooks_replay(
    event_id: str = typer.Argument(..., metavar="EVENT_ID", help="The event's id (evt_...)."), as_json: bool = JSON
) -> None:
    """Send one event again (the same bytes, the same webhook-id) to the endpoints it was for."""
    s = db_settings()
    endpoints = _call(s, lambda hooks: hooks.replay(app_id=None, event_id=event_id))
    if as_json:
        render.as_json({"event_id": event_id, "endpoints": endpoints})
        return
    if endpoints:
        render.out.print(f"event [bold]{event_id}[/] queued again for {', '.join(endpoints)}")
    else:
        render.out.print(f"event [bold]{event_id}[/] was for no endpoint that is enabled now: nothing queued")


@command(cli, "recover")
def webhooks_recover(
    endpoint_id: str = ENDPOINT,
    since: str = typer.Option(
        ..., "--since", metavar="TIME", help="An RFC 3339 time or date, or an age such as 12h or 7d."
    ),
    as_json: bool = JSON,
) -> None:
    """Send again every event of this endpoint since TIME that failed, or was skipped while it was disabled.

    Example: guildgate webhooks recover whe_... --since 2026-12-01T00:00:00Z"""
    try:
        moment = parse_since(since)
    except ValueError as exc:
        die(str(exc))
    s = db_settings()
    queued = _call(s, lambda hooks: hooks.recover(app_id=None, endpoint_id=endpoint_id, since=moment))
    if as_json:
        render.as_json({"id": endpoint_id, "since": render.when(moment), "queued": queued})
        return
    render.out.print(f"{queued} event(s) since {render.when(moment)} queued again for [bold]{endpoint_id}[/]")
