"""Does a long-running worker keep its memory? Joins through guildgate for a while, round after round, with the
worker's resident memory after each round.

    python bench/soak.py                         # 16 callers, 24 rounds of 10 s (~4 minutes, ~350,000 joins)
    python bench/soak.py --concurrency 64 --rounds 60 --seconds 10
    python bench/soak.py --workers 2             # two workers sharing a throwaway Redis: each worker's RSS, Redis's

bench/load.py's stack (one worker, SQLite, in-process limits, the global limit raised out of the way, 2,000
users coming back again and again) and its load generator. Prints one row per round: joins, failures, joins
so far, and the resident memory (VmRSS) of guildgate's worker (each worker, with ``--workers``, and the memory
Redis says it uses) and of the sandbox. A worker that keeps something
for every join grows row after row; one that keeps only what is live levels off after the first rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load


def workers(stack: load.Stack) -> list[int]:
    """``serve`` itself with one worker; with several, its children: multiprocessing's resource tracker, then
    the workers."""
    children = subprocess.run(["pgrep", "-P", str(stack.gateway.pid)], capture_output=True, text=True).stdout
    return sorted(int(pid) for pid in children.split()) or [stack.gateway.pid]


def redis_mb(stack: load.Stack) -> str:
    if stack.redis is None:
        return ""
    import redis

    return f" {redis.Redis.from_url(stack.redis.url).info('memory')['used_memory'] / 2**20:.1f} |"


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
    parser.add_argument("--workers", type=int, default=1, help="guildgate worker processes (above 1: with Redis)")
    args = parser.parse_args()
    print(f"concurrency {args.concurrency}, {args.workers} worker(s), {args.rounds} rounds of {args.seconds:.0f} s\n")
    redis_column = (" Redis MB |", "---|") if args.workers > 1 else ("", "")
    print(f"| round | joins | failures | joins so far | guildgate RSS MB | sandbox RSS MB |{redis_column[0]}")
    print(f"|---|---|---|---|---|---|{redis_column[1]}", flush=True)
    with tempfile.TemporaryDirectory(prefix="guildgate-soak-") as tmp:
        stack = load.Stack(Path(tmp), workers=args.workers)
        try:
            total = 0
            for i in range(args.rounds):
                count, failures = asyncio.run(one_round(stack, args.concurrency, args.seconds))
                total += count
                gateway = " + ".join(f"{resident_mb(pid):.0f}" for pid in workers(stack))
                sandbox = resident_mb(stack.sandbox.pid)
                print(
                    f"| {i + 1} | {count} | {failures} | {total} | {gateway} | {sandbox:.0f} |{redis_mb(stack)}",
                    flush=True,
                )
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
