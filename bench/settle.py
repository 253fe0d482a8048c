"""How long a restart after a crash takes to serve again: ``serve`` settles every record a crash left pending
(Get Guild Member for each) before it takes requests.

    python bench/settle.py                                # 50 and 200 pending records, Discord answering in 0 / 300 ms
    python bench/settle.py --pending 400 --latency 1000
    python bench/settle.py --base 6c64f4c                 # the same, a git revision beside the working tree

bench/load.py's stack (a sandbox, one app, SQLite). For each row: the gateway is stopped, that many pending
records that reached Add Guild Member (a user and a server each) are written into its database, the sandbox
answers Get Guild Member that late, and ``guildgate serve`` is started again; the time is from its start to
its first ``/readyz`` answer, and every record must be settled by then. With ``--base``, the revision's
``serve`` is timed on the same database contents, row by row.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load
from load_ab import LAUNCH

MEMBER = "GET /guilds/{guild_id}/members/{user_id}"


def pend(db: Path, count: int) -> None:
    now = datetime.now(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO records (id, app_id, source, state, guild_id, user_id, created_at) "
            "VALUES (?, ?, 'api', 'pending', ?, ?, ?)",
            [(uuid.uuid4().hex, load.APP, load.GUILD, str(1300000000000000000 + i), now) for i in range(count)],
        )


def restart(stack: load.Stack, command: list[str], pending: int, latency_ms: float) -> float:
    stack.gateway.terminate()
    stack.gateway.wait(30)
    db = stack.tmp / "load.db"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM records")
    pend(db, pending)
    sandbox = f"http://127.0.0.1:{stack.sandbox_port}/_sandbox/faults"
    httpx.put(sandbox, json={"routes": {MEMBER: {"latency_ms": latency_ms}}}).raise_for_status()
    started = time.monotonic()
    with (stack.tmp / "restart.log").open("ab") as log:
        stack.gateway = subprocess.Popen(
            [*command, "serve", "--port", str(stack.port)], stdout=log, stderr=subprocess.STDOUT, env=stack.env
        )
    stack.procs.append(stack.gateway)
    load.wait_http(f"{stack.url}/readyz", stack.gateway, timeout=3600)
    took = time.monotonic() - started
    httpx.put(sandbox, json={}).raise_for_status()
    with sqlite3.connect(db) as conn:
        left = conn.execute("SELECT count(*) FROM records WHERE state = 'pending'").fetchone()[0]
    if left:
        raise SystemExit(f"{left} records still pending after the restart")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pending", default="50,200", help="pending records, comma-separated")
    parser.add_argument("--latency", default="0,300", help="Get Guild Member's answer delay in ms, comma-separated")
    parser.add_argument("--base", help="a git revision to time beside the working tree")
    args = parser.parse_args()
    rows = [(int(p), float(ms)) for p in args.pending.split(",") for ms in args.latency.split(",")]
    with tempfile.TemporaryDirectory(prefix="guildgate-settle-") as tmp:
        commands = {"work tree": [str(load.BIN / "guildgate")]}
        tree = Path(tmp) / "base"
        if args.base:
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), args.base], check=True, capture_output=True
            )
            commands = {args.base: [sys.executable, "-c", LAUNCH], **commands}
        (Path(tmp) / "stack").mkdir()
        stack = load.Stack(Path(tmp) / "stack")
        try:
            print("| pending records | Get Guild Member answers after | " + " | ".join(commands) + " |")
            print("|---|---|" + "---|" * len(commands), flush=True)
            for pending, latency in rows:
                took = []
                for name, command in commands.items():
                    if name != "work tree":
                        stack.env["PYTHONPATH"] = str(tree / "src")  # the revision's package
                    took.append(restart(stack, command, pending, latency))
                    stack.env.pop("PYTHONPATH", None)
                cells = " | ".join(f"{t:.1f} s to ready" for t in took)
                print(f"| {pending} | {latency:.0f} ms | {cells} |", flush=True)
        finally:
            stack.stop()
            if args.base:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], capture_output=True)


if __name__ == "__main__":
    main()
