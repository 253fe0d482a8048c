"""What the HTTP server itself costs per request: uvicorn (httptools and uvloop, as ``guildgate serve`` runs it)
against a bare asyncio protocol on the same parser and loop, each answering a join-sized JSON body to a POST.

    python bench/http_server.py                        # back to back, then with 7 ms and 20 ms pauses
    python bench/http_server.py --requests 2000 --pauses 0,20

Both servers run in a child process of their own and are driven one request at a time over one kept-alive
connection by aiohttp. A pause between requests leaves the server asleep, as a gateway is while Discord
answers: what it then costs to wake up to a request is what a quiet server pays. Prints the server process's
CPU per request (its time on a CPU, from /proc/PID/schedstat). It answers "how much would a leaner server than
uvicorn save a join", not anything about guildgate's own code.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import free_port

BODY = (
    b'{"status":1,"msg":"\\u52a0\\u5165\\u6210\\u529f","id":"049bfae2-4e84-4f29-99aa-a33688991355",'
    b'"data":"{\\"id\\":\\"1200000000000000001\\",\\"name\\":null,\\"user_id\\":\\"1300000000000000001\\",'
    b'\\"joined\\":true}","cost":"3.21ms","code":"joined"}'
)


def serve_uvicorn(port: int) -> None:
    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_bare(port: int) -> None:
    import httptools
    import uvloop

    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            asyncio.get_running_loop().create_task(self.answer())  # a task per request, as a real handler needs

        async def answer(self) -> None:
            self.transport.write(answer)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Protocol, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


def cpu_seconds(pid: int) -> float:
    """Time ``pid``'s main thread (the servers have no other) has run, in nanoseconds' resolution: /proc's
    tick counts (10 ms) are too coarse for a few hundred requests of a tenth of a millisecond."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


async def drive(url: str, pid: int, requests: int, pause: float) -> float:
    """The server's CPU ms per request over ``requests`` POSTs, one at a time, ``pause`` s apart."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:

        async def one() -> None:
            body = b'{"authorization":"x","guild_id":"1200000000000000001"}'
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"the server answered {response.status}")

        for _ in range(200):  # warm-up
            await one()
        before = cpu_seconds(pid)
        for _ in range(requests):
            await one()
            if pause:
                await asyncio.sleep(pause)
        return (cpu_seconds(pid) - before) * 1000 / requests


def start(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}/api/wanda/discord/guild"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the {kind} server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per row (default 1000)")
    parser.add_argument("--pauses", default="0,7,20", help="ms between requests, comma-separated (default 0,7,20)")
    parser.add_argument("--serve", choices=("uvicorn", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        (serve_uvicorn if args.serve == "uvicorn" else serve_bare)(args.port)
        return
    try:
        pauses = [float(p) for p in args.pauses.split(",")]
    except ValueError:
        parser.error(f"--pauses takes milliseconds separated by commas, not {args.pauses!r}")
    if args.requests < 1 or any(p < 0 for p in pauses):
        parser.error("--requests must be positive and --pauses 0 or more")
    results: dict[str, list[float]] = {}
    for kind in ("uvicorn", "bare"):
        proc, url = start(kind)
        try:
            results[kind] = [asyncio.run(drive(url, proc.pid, args.requests, p / 1000)) for p in pauses]
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{args.requests} requests per row, one at a time\n")
    print("| pause between requests | uvicorn CPU ms/request | bare protocol CPU ms/request | difference |")
    print("|---|---|---|---|")
    for i, pause in enumerate(pauses):
        u, b = results["uvicorn"][i], results["bare"][i]
        print(f"| {pause:g} ms | {u:.3f} | {b:.3f} | {u - b:.3f} |")


if __name__ == "__main__":
    main()
