"""Python bytecode instructions a join executes in guildgate: a count that does not move with the machine.

    python bench/join_opcodes.py                 # 300 joins, the top 40 functions
    python bench/join_opcodes.py --joins 500 --top 80

CPU per join on this machine swings by a third from one hour to the next (docs/performance.md), more than most
single changes to the join path. The number of bytecode instructions the interpreter runs for a join does not:
it is the same from run to run, so a change's effect on guildgate's own Python code shows exactly, in one run
of each version. It leaves out what runs in C (SQLite, the parsers, orjson, the kernel), which this count does
not see and ``load.py`` / ``load_ab.py`` do.

guildgate's app runs in this process on uvicorn with ``serve``'s protocol (``web/readtimeout.py``), SQLite and
in-process limits, against the sandbox in its own process (bench/load.py's stack, limits off). Joins are sent
one at a time with aiohttp after a warm-up; every instruction executed on the server's side is counted
(``sys.settrace`` with opcode events), the client's not. Prints instructions per join by module and by function.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import uvicorn
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load

CLIENT = ("aiohttp", "yarl", "multidict", __file__)  # code on the load generator's side: not counted
LOOP = ("asyncio/runners", "uvloop/__init__")  # where a frame's chain of callers leaves the server's code


class Counter:
    def __init__(self) -> None:
        self.opcodes: collections.Counter[tuple[str, str]] = collections.Counter()

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call" and self._client(frame):
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            name = code.co_name
            if code.co_filename == "<string>":  # a generated method (a dataclass's __init__): named by its class
                owner = frame.f_locals.get("self", frame.f_locals.get("cls"))
                owner = owner if isinstance(owner, type) else type(owner)
                name = f"{owner.__qualname__}.{name}"
            self.opcodes[(_short(code.co_filename), name)] += 1
        return self.trace

    @staticmethod
    def _client(frame: FrameType | None) -> bool:
        for _ in range(64):
            if frame is None or any(part in frame.f_code.co_filename for part in LOOP):
                return False
            if any(part in frame.f_code.co_filename for part in CLIENT):
                return True
            frame = frame.f_back
        return False


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "python3.11/", "python3.12/", "python3.13/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def count(stack: load.Stack, joins: int) -> Counter:
    os.environ.update(stack.env)
    from guildgate.settings import Settings
    from guildgate.web.app import create_front
    from guildgate.web.readtimeout import ReadTimeoutProtocol

    port = load.free_port()
    config = uvicorn.Config(
        create_front(Settings()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,
        http=ReadTimeoutProtocol,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(200):  # up to 10 s
        if server.started:
            break
        await asyncio.sleep(0.05)
    else:
        raise SystemExit("guildgate did not start in 10 s")
    url = f"http://127.0.0.1:{port}/api/wanda/discord/guild"
    counter = Counter()
    async with aiohttp.ClientSession() as http:

        async def join(user: int) -> None:
            body = {"authorization": f"load-user-{user % load.USERS}", "guild_id": load.GUILD}
            async with http.post(url, json=body, headers={"User-Token": stack.key}) as answer:
                envelope = await answer.json()
            if envelope.get("status") != 1:
                raise SystemExit(f"a join failed: {envelope}")

        for user in range(100):  # warm-up: first connections, statement compilation, caches
            await join(user)
        sys.settrace(counter.trace)
        try:
            for user in range(joins):
                await join(1000 + user)
        finally:
            sys.settrace(None)
    server.should_exit = True
    await serving
    return counter


def report(counter: Counter, joins: int, top: int) -> str:
    total = sum(counter.opcodes.values())
    modules: collections.Counter[str] = collections.Counter()
    for (module, _), n in counter.opcodes.items():
        modules[module] += n
    lines = [f"{joins} joins, one at a time: **{total / joins:.0f} bytecode instructions a join** on the server side\n"]
    lines += ["| module | instructions a join | share |", "|---|---|---|"]
    lines += [f"| {m} | {n / joins:.0f} | {n * 100 / total:.1f} % |" for m, n in modules.most_common(25)]
    lines += ["", "| function | instructions a join |", "|---|---|"]
    lines += [f"| {m}:{f} | {n / joins:.0f} |" for (m, f), n in counter.opcodes.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=300)
    parser.add_argument("--top", type=int, default=40, help="functions listed")
    args = parser.parse_args()
    if args.joins < 1:
        parser.error("--joins must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        stack = load.Stack(Path(tmp))
        try:
            stack.gateway.terminate()  # guildgate runs in this process instead, where it can be traced
            stack.gateway.wait(10)
            counter = uvloop.run(count(stack, args.joins))
        finally:
            stack.stop()
    print(report(counter, args.joins, args.top))


if __name__ == "__main__":
    main()
