"""The operator CLI (Typer); all Rich rendering lives in render.py."""

from __future__ import annotations

import atexit
import gc


def start() -> None:
    """The ``guildgate`` command (its entry point; ``cli/main.py`` is the commands).

    A command imports a few hundred thousand objects (SQLAlchemy, pydantic, Typer, Rich) that live until it
    ends. With the cyclic garbage collector on, start-up walks them again and again as they are made, and the
    interpreter's exit walks them once more: 0.1 to 0.5 s of a short command's 1 to 1.4 s on the project's
    machine (``bench/cli_start.py``, docs/performance.md). So start-up runs with the collector off;
    ``cli.main.settle`` turns it back on, for what the command itself makes, before the command's work starts;
    and at exit nothing is walked, since the process's memory goes back to the system whole."""
    gc.disable()
    atexit.register(gc.freeze)
    from guildgate.cli.main import main as run_command

    run_command()
