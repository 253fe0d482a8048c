"""All of the CLI's Rich output."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")


def note(message: str) -> None:
    err.print(f"[dim]{message}[/]")


def as_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str))


def table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    out.print(t)


def record(rec: dict[str, Any]) -> None:
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    for key, value in rec.items():
        t.add_row(key, "" if value is None else str(value))
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
    else:
        out.print("[red]some checks failed: joins through this bot and server will fail until they are fixed[/]")
