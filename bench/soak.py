"""Does a long-running worker keep its memory? Joins through guildgate for a while, round after round, with the
worker's resident memory after each round.

    python bench/soak.py                         # 16 callers, 24 rounds of 10 s (~4 minutes, ~350,000 joins)
    python bench/soak.py --concurrency 64 --rounds 60 --seconds 10

bench/load.py's stack (one worker, SQLite, in-process limits, the global limit raised out of the way, 2,000
users coming back again and again) and its load generator. Prints one row per round: joins, failures, joins
so far, and the resident memory (VmRSS) of guildgate's worker and of the sandbox. A worker that keeps something
for every join grows row after row; one that keeps only what is live levels off after the first rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_round(stack: load.Stack, concurrency: int, seconds: float) -> tuple[int, int]:
    async with load._Client("aiohttp", concurrency) as client:
        count, _, failures, _ = await load.through_gateway(stack, client, concurrency, seconds)
    return count, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one round")
    args = parser.parse_args()
    print(f"concurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:.0f} s\n")
    print("| round | joins | failures | joins so far | guildgate RSS MB | sandbox RSS MB |")
    print("|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="guildgate-soak-") as tmp:
        stack = load.Stack(Path(tmp))
        try:
            total = 0
            for i in range(args.rounds):
                count, failures = asyncio.run(one_round(stack, args.concurrency, args.seconds))
                total += count
                gateway, sandbox = resident_mb(stack.gateway.pid), resident_mb(stack.sandbox.pid)
                print(f"| {i + 1} | {count} | {failures} | {total} | {gateway:.0f} | {sandbox:.0f} |", flush=True)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
