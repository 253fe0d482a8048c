"""Two guildgates side by side: a git revision against the working tree, the same join load on each in turn.

    python bench/load_ab.py --base HEAD~1                      # concurrency 4, 4 s a turn, 6 turns each
    python bench/load_ab.py --base 3e4fa33 --concurrency 16 --turns 8
    python bench/load_ab.py --base HEAD~5 --rate 200 --discord-latency 20 --seconds 10 --turns 3

This machine's noise is larger than most single changes, so one run of ``bench/load.py`` per version cannot
tell them apart. Here both versions run at once (each its own sandbox and SQLite database, one worker, limits
off, as in ``bench/load.py``) and take turns — base, work tree, work tree, base, … — so drift hits both alike.
Prints each turn and the medians: joins/s and the serving process's CPU per join. With ``--rate``, each turn is
``bench/load.py --rate``'s open loop instead (R joins/s offered, then the two direct calls at the same rate), and
the table gives each version's added latency at p50/p99 and CPU per join, the median over its turns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load

# ``guildgate`` for any revision: the installed script names this tree's entry point, which an older revision may
# not have (``guildgate.cli.start`` came in the fifth session; before it, ``guildgate.cli.main.main``).
LAUNCH = """
import sys
sys.argv[0] = "guildgate"
import guildgate.cli
entry = getattr(guildgate.cli, "start", None)
if entry is None:
    from guildgate.cli.main import main as entry
sys.exit(entry())
"""


async def turn(stack: load.Stack, concurrency: int, seconds: float) -> tuple[float, float]:
    async with load._Client("aiohttp", concurrency) as client:
        count, _, failures, cpu = await load.through_gateway(stack, client, concurrency, seconds)
    if failures:
        raise SystemExit(f"{failures} joins failed: the comparison would not be like for like")
    return count / seconds, cpu * 1000 / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare the working tree against")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one turn")
    parser.add_argument("--turns", type=int, default=6, help="turns per version")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop at this many joins/s (see load.py --rate)")
    parser.add_argument("--discord-latency", type=float, default=0.0, metavar="MS", help="sandbox answers this late")
    args = parser.parse_args()
    with side_by_side(args.base, args.discord_latency) as stacks:
        if args.rate:
            rows = take_turns(
                stacks, args.turns, lambda s, t: asyncio.run(load.measure_rate(s, args.rate, t)), args.seconds
            )
        else:
            rows = take_turns(stacks, args.turns, lambda s, t: asyncio.run(turn(s, args.concurrency, t)), args.seconds)
    if args.rate:
        print_rate(args, rows)  # type: ignore[arg-type]
        return
    print(f"\nconcurrency {args.concurrency}, {args.turns} turns of {args.seconds:.0f} s each\n")
    print("| version | joins/s (median) | server CPU ms/join (median) | CPU ms/join, each turn |")
    print("|---|---|---|---|")
    for name, turns in rows.items():
        each = ", ".join(f"{c:.2f}" for _, c in turns)
        rps = statistics.median(r for r, _ in turns)
        cpu = statistics.median(c for _, c in turns)
        print(f"| {name} ({args.base if name == 'base' else 'HEAD + changes'}) | {rps:.0f} | {cpu:.2f} | {each} |")


@contextmanager
def side_by_side(base: str, latency_ms: float) -> Iterator[dict[str, load.Stack]]:
    """A stack of the ``base`` revision (from a temporary worktree) and one of the working tree, both running."""
    with tempfile.TemporaryDirectory(prefix="guildgate-ab-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), base], check=True, capture_output=True)
        stacks: dict[str, load.Stack] = {}
        try:
            (Path(tmp) / "a").mkdir()
            (Path(tmp) / "b").mkdir()
            os.environ["PYTHONPATH"] = str(tree / "src")  # the base's package, ahead of the installed one
            stacks["base"] = load.Stack(Path(tmp) / "a", latency_ms=latency_ms, command=[sys.executable, "-c", LAUNCH])
            del os.environ["PYTHONPATH"]
            stacks["work tree"] = load.Stack(Path(tmp) / "b", latency_ms=latency_ms)
            yield stacks
        finally:
            for stack in stacks.values():
                stack.stop()
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], capture_output=True)


def take_turns(
    stacks: dict[str, load.Stack], turns: int, run: Callable[[load.Stack, float], Any], seconds: float
) -> dict[str, list[Any]]:
    """Warm both, then ``turns`` turns each — base, work tree, work tree, base, … — so drift hits both alike."""
    for stack in stacks.values():
        run(stack, 2)
    results: dict[str, list[Any]] = {name: [] for name in stacks}
    order = list(stacks)
    for i in range(turns):
        for name in order if i % 2 == 0 else order[::-1]:
            results[name].append(run(stacks[name], seconds))
            print(f"turn {i + 1} {name}: {results[name][-1]}", file=sys.stderr, flush=True)
    return results


def print_rate(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> None:
    print(
        f"\n{args.rate:g} joins/s offered, sandbox {args.discord_latency:g} ms late per call, "
        f"{args.turns} turns of {args.seconds:g} s each; each turn, then the median per version\n"
    )
    rows: list[tuple[str, dict[str, Any]]] = []
    for name, turns in results.items():
        label = f"{name} ({args.base if name == 'base' else 'HEAD + changes'})"
        rows += [(f"{label}, turn {i + 1}", r) for i, r in enumerate(turns)]
    print(load.rate_table(rows))
    print(
        "\n| version | added p50 ms (median) | added p99 ms (median) | server CPU ms/join (median) |\n|---|---|---|---|"
    )
    for name, turns in results.items():
        p50 = statistics.median(r["added"][0] for r in turns)
        p99 = statistics.median(r["added"][1] for r in turns)
        cpu = statistics.median(r["cpu_ms_per_join"] for r in turns)
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
