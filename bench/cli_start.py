"""How long a ``guildgate`` command takes, start to exit, with and without the start-up collector setting.

    python bench/cli_start.py                  # each command 8 times a way, taking turns
    python bench/cli_start.py --runs 15

An operator's command (``keys list``, ``records show``) is mostly start-up: importing SQLAlchemy, pydantic,
Typer and Rich, then the interpreter's exit. The entry point (``guildgate.cli.start``) runs start-up with the
cyclic garbage collector off and skips the collector's last walk at exit (``guildgate/cli/__init__.py``). This
runs each command both ways on a throwaway SQLite database — ``guildgate`` as installed, and the same command
with the collector left on throughout (``guildgate.cli.main.main`` called directly, as the entry point did
before) — taking turns so the machine's drift hits both alike, and prints the median wall time of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = [["--help"], ["keys", "list"], ["apps", "list"], ["records", "list"], ["migrate"]]
COLLECTOR_ON = "import sys; from guildgate.cli.main import main; sys.argv[0] = 'guildgate'; main()"


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="runs of each command, each way")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GUILDGATE_")},
            "GUILDGATE_DATABASE_URL": f"sqlite:///{Path(tmp) / 'cli.db'}",
            "GUILDGATE_SECRET_KEY": "cli-bench-secret-key-0123456789ab",
        }
        subprocess.run([str(BIN / "guildgate"), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        print("| command | collector on throughout, s (median) | `guildgate` as installed, s (median) | ratio |")
        print("|---|---|---|---|")
        for command in COMMANDS:
            on: list[float] = []
            entry: list[float] = []
            for turn in range(args.runs):  # on, entry, entry, on, ...: drift hits both alike
                ways = [
                    (on, [sys.executable, "-c", COLLECTOR_ON, *command]),
                    (entry, [str(BIN / "guildgate"), *command]),
                ]
                for times, argv in ways if turn % 2 == 0 else reversed(ways):
                    times.append(timed(argv, env))
            a, b = statistics.median(on), statistics.median(entry)
            print(f"| `guildgate {' '.join(command)}` | {a:.2f} | {b:.2f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
