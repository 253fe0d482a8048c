"""After traffic with every kind of secret, none appears in the database files, the server's output or /metrics.

The first test runs last among the tests of each shared gateway (it is named so), and scans that gateway; the
second runs after every other test of the run and scans the output and SQLite files of every guildgate server
and command the run started."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    APP_A,
    GUILD,
    OUTPUT,
    ROLE_LOW,
    SECRETS,
    STARTED,
    TOKENS,
    USER_IDS,
    Gateway,
    Sandbox,
)
from tests.linkflow import close_browsers, join_through, make_link


def test_no_secret_in_database_or_server_output(gateway: Gateway, fresh: Sandbox) -> None:
    minted = fresh.mint("alice")
    bodies = [{"authorization": token, "guild_id": GUILD} for token in TOKENS.values()]
    bodies += [
        {"authorization": minted, "guild_name": "test1"},
        {"authorization": "Bearer " + minted, "guild_id": GUILD},
        {"authorization": TOKENS["alice"], "guild_id": "bad"},
    ]
    for index, body in enumerate(bodies):
        gateway.join(body, headers={"Idempotency-Key": f"scan-{index}", "Developer-Id": "scan"})
        gateway.join(body, key="b")
    gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD}, key="gg_not_a_key_but_secret_looking")
    # join links: OAuth2 codes and the tokens they were exchanged for; admin logins with the admin token
    link = make_link(gateway, "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW)
    for user in ("alice", "bob", "mallory"):
        join_through(link["url"], USER_IDS[user])
    join_through(link["url"], USER_IDS["carol"], action="cancel")
    close_browsers()
    httpx.get(gateway.proc.url + "/api/admin/links", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    issued = httpx.get(fresh.proc.url + "/_sandbox/issued").json()
    assert len(issued["codes"]) >= 3
    SECRETS.update(issued["tokens"], issued["codes"])
    assert len(SECRETS) >= 15
    files = [f for p in gateway.db_files for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    assert files
    blobs = {str(p): p.read_bytes() for p in files}
    blobs["server output"] = gateway.proc.log.read_bytes()
    blobs["/metrics"] = httpx.get(gateway.proc.url + "/metrics").content
    assert b"guildgate_" in blobs["/metrics"]
    found = [
        (where, secret[:6] + "…") for secret in SECRETS for where, blob in blobs.items() if secret.encode() in blob
    ]
    assert found == []
    assert b"alice-token" not in Path(gateway.proc.log).read_bytes()


@pytest.mark.last
def test_no_secret_in_the_output_or_sqlite_files_of_any_server_the_run_started(
    tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox
) -> None:
    issued = httpx.get(sandbox.proc.url + "/_sandbox/issued").json()
    SECRETS.update(issued["tokens"], issued["codes"])
    # every guildgate server's log written in this run (the sandbox stands in for Discord: what it is sent is not
    # guildgate's output), and every SQLite file of this run
    logs = [
        path for path in sorted(OUTPUT.glob("*.log")) if path.name != "sandbox.log" and path.stat().st_mtime >= STARTED
    ]
    databases = [
        path
        for path in sorted(tmp_path_factory.getbasetemp().rglob("*"))
        if path.is_file() and path.name.endswith((".db", ".db-wal"))
    ]
    if not logs or not databases:
        pytest.skip("no guildgate server ran in this session: nothing to scan")
    found = [
        (str(path), secret[:6] + "…")
        for path in [*logs, *databases]
        for blob in [path.read_bytes()]
        for secret in SECRETS
        if secret.encode() in blob
    ]
    assert found == []
