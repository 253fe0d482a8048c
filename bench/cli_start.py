"""How long a ``guildgate`` command takes, start to exit, as installed.

    python bench/cli_start.py                  # each command 8 times
    python bench/cli_start.py --runs 15

An operator's command (``keys list``, ``records show``) is mostly start-up: importing Typer, Rich and pydantic,
then what the command itself needs (SQLAlchemy for the database ones), then the interpreter's exit. Each command
imports its work when it runs (``guildgate/cli/``), so ``--help`` loads none of it. This runs each command on a
throwaway SQLite database and prints the median and the fastest wall time.
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


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="runs of each command")
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
        print("| command | median, s | fastest, s |")
        print("|---|---|---|")
        for command in COMMANDS:
            times = [timed([str(BIN / "guildgate"), *command], env) for _ in range(args.runs)]
            print(
                f"| `guildgate {' '.join(command)}` | {statistics.median(times):.2f} | {min(times):.2f} |", flush=True
            )


if __name__ == "__main__":
    main()
