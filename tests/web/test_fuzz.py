"""Schemathesis against /openapi.json, every operation, with an API key and with the admin token: no server error,
and every answer matches the schema (status codes, content types, bodies). A bounded budget here; a longer run
is `bench/fuzz.sh`."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ADMIN_TOKEN, BIN, OUTPUT, Gateway, Sandbox

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


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


@pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)
@pytest.mark.parametrize("who", ["api-key", "admin"])
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(gateway: Gateway, fresh: Sandbox, who: str) -> None:
    header = f"User-Token: {gateway.keys['a']}" if who == "api-key" else f"Authorization: Bearer {ADMIN_TOKEN}"
    run = schemathesis(gateway.proc.url, header, f"schemathesis-{who}.xml")
    summary = run.stdout[run.stdout.find("SUMMARY") :]
    assert "Tested: " in summary, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, summary or run.stdout[-4000:]
