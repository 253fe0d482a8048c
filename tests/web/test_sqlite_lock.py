"""A gateway on SQLite while another process holds the database's write lock (a CLI command, another worker):
the writes wait for the lock off the event loop, so the server keeps answering meanwhile — /healthz in well
under half a second every time — and the joins and join-link starts that waited go through once the lock is
given back."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.conftest import APP_A, GUILD, TOKENS, Sandbox, one_worker_gateway
from tests.helpers import envelope
from tests.linkflow import make_link, start
from tests.store.locked import lock_in_another_process

LOCKED_FOR = 3.0  # seconds the other process holds the lock
HEALTHZ_WITHIN = 0.5  # the bound issue 23 sets for /healthz meanwhile
T = TypeVar("T")


def test_the_server_answers_while_another_process_holds_the_database(tmp_path: Path, fresh: Sandbox) -> None:
    gateway = one_worker_gateway(tmp_path, fresh, "sqlite-lock")
    try:
        link = make_link(gateway, "--app", APP_A, "--guild", GUILD)
        warm = envelope(gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}))
        assert warm["code"] == "already_member"

        tokens = [TOKENS["alice"], TOKENS["carol"], TOKENS["bob"], fresh.mint("erin")]

        def join(token: str) -> httpx.Response:
            return gateway.join({"authorization": token, "guild_id": GUILD})

        holder = lock_in_another_process(tmp_path / "guildgate.db", LOCKED_FOR)
        locked_at = time.monotonic()
        answered: dict[int, float] = {}

        def timed(what: Callable[[], T]) -> Callable[[], T]:
            def run() -> T:
                result = what()
                answered[id(result)] = time.monotonic()
                return result

            return run

        with ThreadPoolExecutor(len(tokens) + 2) as pool:
            joins: list[Future[httpx.Response]] = [pool.submit(timed(partial(join, token))) for token in tokens]
            starts: list[Future[Any]] = [pool.submit(timed(lambda: start(link["url"]))) for _ in range(2)]
            pending: list[Future[Any]] = [*joins, *starts]
            health: list[float] = []
            while not all(f.done() for f in pending):
                sent = time.monotonic()
                r = httpx.get(gateway.proc.url + "/healthz", timeout=10)
                health.append(time.monotonic() - sent)
                assert r.status_code == 200
                time.sleep(0.02)
        out, _ = holder.communicate(timeout=10)
        assert holder.returncode == 0 and out.strip() == "released"

        # /healthz was asked all along (many times while the lock was held), and answered in time every time
        assert len(health) >= 20, health
        assert max(health) < HEALTHZ_WITHIN, f"/healthz took {max(health):.3f} s while the database was locked"
        # the joins and link starts waited for the lock (they write to the database) and went through after it
        for future in pending:
            assert answered[id(future.result())] - locked_at > LOCKED_FOR - 0.1, "answered before the lock was free"
        for future in joins:
            result = envelope(future.result())
            assert (result["status"], result["code"]) in {(1, "joined"), (1, "already_member")}, result
        for future in starts:
            assert future.result().authorize_url.startswith(fresh.proc.url + "/oauth2/authorize?")
        assert gateway.pending() == []  # every record that waited is written and finished
    finally:
        gateway.proc.stop()
