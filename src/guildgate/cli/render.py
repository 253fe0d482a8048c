"""All of the CLI's Rich output. Every time it prints is in one format, RFC 3339 in UTC to the second
(``2026-12-06T18:40:00Z``), in tables and JSON alike; tables show ids whole."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class _Errors:
    """``as_json``: a ``--json`` command's errors are also printed on stdout as one JSON object."""

    as_json = False


def json_errors(on: bool) -> None:
    """From here on, each error is also ``{"error": CODE, "detail": MESSAGE}`` on one line of stdout (``on``)."""
    _Errors.as_json = on


def fail(message: str, *, error: str = "failed", detail: str | None = None) -> None:
    """The message on stderr; with ``json_errors(True)``, also ``{"error": error, "detail": detail or message}`` on
    stdout."""
    if _Errors.as_json:
        as_json({"error": error, "detail": message if detail is None else detail})
    err.print(f"[bold red]error:[/] {message}")


def warn(message: str) -> None:
    err.print(f"[bold yellow]warning:[/] {message}")


def note(message: str) -> None:
    err.print(f"[dim]{message}[/]")


def when(value: datetime | str) -> str:
    """A time as the CLI prints it: ``2026-12-06T18:40:00Z`` (a naive time is taken as UTC, as stored)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def times(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its ``…_at`` fields (datetimes or ISO strings) in the CLI's format."""
    return {k: when(v) if k.endswith("_at") and isinstance(v, str | datetime) else v for k, v in row.items()}


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return when(value) if isinstance(value, datetime) else str(value)


def as_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=_shown))


def table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    """Nothing in a table is folded or cut, ids and times least of all: a table wider than the terminal is
    printed whole, and the terminal wraps its lines."""
    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column, no_wrap=True)
    for row in rows:
        t.add_row(*(_shown(v) for v in row))
    natural = Measurement.get(out, out.options.update_width(100_000), t).maximum
    wide = out if natural <= out.width else Console(highlight=False, width=natural, file=out.file)
    wide.print(t)


def record(rec: dict[str, Any]) -> None:
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    for key, value in rec.items():
        t.add_row(key, _shown(value))
    out.print(t)


def join_result(ok: bool, code: str, msg: str, record_id: str | None, data: dict[str, Any] | None) -> None:
    colour = "green" if ok else "red"
    out.print(f"[bold {colour}]{code}[/] {msg}")
    if data:
        out.print(f"  guild {data.get('guild_id')} ({data.get('guild_name') or '?'}), user {data.get('user_id')}")
    if record_id:
        out.print(f"  record {record_id}")


def doctor(report: dict[str, Any]) -> None:
    """One line per check; the fix under a failed one."""
    for check in report["checks"]:
        mark = "[green]✓[/]" if check["ok"] else "[red]✗[/]"
        out.print(f"{mark} [bold]{check['name']}[/]: {check['detail']}")
        if not check["ok"] and check.get("fix"):
            out.print(f"    fix: {check['fix']}")
    if report["ok"]:
        out.print("[green]all checks passed[/]")
    elif all(c["ok"] or c["name"] == "Kick Members" for c in report["checks"]):  # joins work; ends with kick fail
        out.print("[red]some checks failed: ends with a kick will fail (end_failed) until they are fixed[/]")
    else:
        out.print("[red]some checks failed: joins through this bot and server will fail until they are fixed[/]")
