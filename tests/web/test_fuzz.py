"""Schemathesis against /openapi.json, every operation, with an API key and with the admin token: no server error,
and every answer matches the schema (status codes, content types, bodies). A bounded budget here; a longer run
is `bench/fuzz.sh`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, BIN, OUTPUT, Gateway, Sandbox, one_worker_gateway, own_gateway

CHECKS = "all"


def schemathesis(url: str, header: str, report: str, examples: int = 12) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(examples),
            "--generation-deterministic",
            "--request-timeout",
            "20",
            "--header",
            header,
            # Adding a webhook endpoint is left out: one made with a generated URL would have this gateway's sender
            # (sandbox mode: any address allowed) try to reach whatever host the URL names. The endpoint checks are
            # in tests/cli/test_webhooks_cli.py and tests/web/api/test_admin_webhooks.py.
            "--exclude-path-regex",
            "^/api/admin/webhooks$",
            "--report",
            "junit",
            "--report-junit-path",
            str(OUTPUT / report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=OUTPUT,
    )


@pytest.fixture(scope="module")
def plain_gateway(session_dir: Path, sandbox: Sandbox) -> Iterator[Gateway]:
    """guildgate as an operator starts it: no egress proxy (the suite's gateway allows one that nothing listens on,
    which the schema names, so a join through it is rightly a 502)."""
    home = session_dir / "fuzz"
    home.mkdir(exist_ok=True)
    gateway = one_worker_gateway(home, sandbox, "fuzz")
    yield gateway
    gateway.proc.stop()


@pytest.mark.parametrize("who", ["api-key", "admin"])
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    plain_gateway: Gateway, fresh: Sandbox, who: str
) -> None:
    """Every check schemathesis has (``--checks all``): no server error; every answer as documented; and the
    schema says exactly what is taken: what it allows is not refused (positive data acceptance), what it does not
    is (negative data rejection); a wrong method gets 405 with ``Allow``."""
    key = plain_gateway.keys["a"]
    header = f"User-Token: {key}" if who == "api-key" else f"Authorization: Bearer {ADMIN_TOKEN}"
    run = schemathesis(plain_gateway.proc.url, header, f"schemathesis-{who}.xml")
    summary = run.stdout[run.stdout.find("SUMMARY") :]
    assert "Tested: " in summary, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, summary or run.stdout[-4000:]


def test_schemathesis_finds_no_server_error_with_the_admin_token_unset(
    session_dir: Path, sandbox: Sandbox, fresh: Sandbox
) -> None:
    """Without GUILDGATE_ADMIN_TOKEN the admin API is not there: not in the schema, and nothing under it answers
    a server error (it answered 503 when it was listed but off)."""
    home = session_dir / "fuzz-admin-off"
    home.mkdir(exist_ok=True)
    server, key = own_gateway(home, sandbox, "gateway-fuzz-admin-off.log")
    try:
        paths = httpx.get(server.url + "/openapi.json", timeout=30).json()["paths"]
        assert paths and not [p for p in paths if p.startswith("/api/admin")]
        run = schemathesis(server.url, f"User-Token: {key}", "schemathesis-admin-off.xml")
        summary = run.stdout[run.stdout.find("SUMMARY") :]
        assert "Tested: " in summary, run.stdout[-3000:] + run.stderr[-2000:]
        assert run.returncode == 0, summary or run.stdout[-4000:]
    finally:
        server.stop()
