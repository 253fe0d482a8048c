"""Where a join's CPU goes, by subtraction: the serving process's CPU per request for requests that stop
earlier and earlier in the pipeline, one worker against the sandbox (the same stack as ``bench/load.py``).

    python bench/request_cost.py                      # concurrency 1 and 4, 5 s per row
    python bench/request_cost.py --concurrency 1,4,16 --seconds 10

Rows: ``/healthz`` (HTTP in and out, nothing else); a join refused before Discord (a malformed ``guild_id``:
the API key is checked and the body parsed, no record, no Discord call); a full join (a record written three
times, Get Current User and Add Guild Member). Prints a table of requests/s and CPU ms per request.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load

JOIN = "/api/wanda/discord/guild"


def requests(stack: load.Stack) -> list[tuple[str, str, str, Any, dict[str, str]]]:
    key = {"User-Token": stack.key}
    return [
        ("/healthz", "GET", "/healthz", None, {}),
        ("join refused before Discord", "POST", JOIN, {"authorization": "x", "guild_id": "not-a-snowflake"}, key),
        ("join", "POST", JOIN, None, key),  # a body per call: a different user each time
    ]


async def cost(
    stack: load.Stack, concurrency: int, seconds: float, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[float, float]:
    """(requests per second, the serving process's CPU ms per request) over ``seconds``, after a 1 s warm-up."""
    async with load._Client("aiohttp", concurrency) as client:

        async def one(user: int) -> bool:
            payload = body if body is not None else {"authorization": f"load-user-{user}", "guild_id": load.GUILD}
            status, _ = await client.send(method, stack.url + path, payload if method == "POST" else None, headers)
            return status < 500

        await load.drive(one, concurrency, 1.0)
        before = load.cpu_seconds(stack.gateway.pid)
        count, _, failures = await load.drive(one, concurrency, seconds)
        if failures:
            raise SystemExit(f"{failures} requests to {path} failed")
        return count / seconds, (load.cpu_seconds(stack.gateway.pid) - before) * 1000 / max(count, 1)


async def measure(stack: load.Stack, levels: list[int], seconds: float) -> list[str]:
    rows = ["| concurrency | request | requests/s | server CPU ms/request |", "|---|---|---|---|"]
    for concurrency in levels:
        for name, method, path, body, headers in requests(stack):
            rate, ms = await cost(stack, concurrency, seconds, method, path, body, headers)
            rows.append(f"| {concurrency} | {name} | {rate:.0f} | {ms:.2f} |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,4", help="comma-separated levels (default 1,4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per row (default 5)")
    args = parser.parse_args()
    try:
        levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error(f"--concurrency takes numbers separated by commas, not {args.concurrency!r}")
    if any(c < 1 for c in levels) or args.seconds <= 0:
        parser.error("concurrency levels and --seconds must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        stack = load.Stack(Path(tmp))
        try:
            rows = asyncio.run(measure(stack, levels, args.seconds))
        finally:
            stack.stop()
    print()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
