"""The operator CLI (Typer): main.py puts the commands together, one module per group of them; common.py is
what they share; help.py makes every command's help; all Rich rendering lives in render.py."""

from __future__ import annotations


def start() -> None:
    """The ``guildgate`` command (its entry point)."""
    from guildgate.cli.main import app

    app()
