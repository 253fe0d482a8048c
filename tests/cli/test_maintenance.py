"""``guildgate secrets rotate`` and ``guildgate records prune`` against a real database and the sandbox."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import sqlite3
import stat
import subprocess
from pathlib import Path

from tests.conftest import APP_A, BIN, GUILD, SECRETS, WORLD, Sandbox, add_app, base_env, cli

NEW_KEY = "rotated-secret-key-5d1c9e7a3b2f40"
SECRETS.add(NEW_KEY)


def test_secrets_rotate_re_encrypts_every_app_under_the_new_key(tmp_path: Path, sandbox: Sandbox) -> None:
    old_env = base_env(tmp_path, GUILDGATE_DISCORD_API_BASE=sandbox.api)
    for app in WORLD["applications"]:
        add_app(old_env, app)
    before = (tmp_path / "guildgate.db").read_bytes()
    new_env = {**old_env, "GUILDGATE_SECRET_KEY": NEW_KEY, "OLD_KEY": old_env["GUILDGATE_SECRET_KEY"]}
    # without rotating, the new key cannot open the stored secrets, and says so
    refused = cli(["doctor", "--app", APP_A, "--guild", GUILD], env=new_env, check=False)
    assert refused.returncode == 2 and "GUILDGATE_SECRET_KEY is not the key it was stored with" in refused.stderr
    assert "Traceback" not in refused.stderr
    wrong = cli(["secrets", "rotate", "--old-key-env", "GUILDGATE_DISCORD_API_BASE"], env=new_env, check=False)
    assert wrong.returncode == 2 and "nothing was changed" in wrong.stderr
    done = cli(["secrets", "rotate", "--old-key-env", "OLD_KEY"], env=new_env)
    assert "re-encrypted 2 app(s) under the new key; 0 already were" in done.stdout
    again = cli(["secrets", "rotate", "--old-key-env", "OLD_KEY"], env=new_env)
    assert "re-encrypted 0 app(s) under the new key; 2 already were" in again.stdout
    assert (tmp_path / "guildgate.db").read_bytes() != before
    works = cli(["doctor", "--app", APP_A, "--guild", GUILD], env=new_env)
    assert "all checks passed" in works.stdout
    stale = cli(["doctor", "--app", APP_A, "--guild", GUILD], env=old_env, check=False)
    assert stale.returncode == 2 and "not the key it was stored with" in stale.stderr


def test_records_prune_deletes_old_finished_records_only(tmp_path: Path, sandbox: Sandbox) -> None:
    env = base_env(tmp_path)
    add_app(env, WORLD["applications"][0])
    db = tmp_path / "guildgate.db"
    with sqlite3.connect(db) as conn:
        rows = [
            ("old-1", "succeeded", "2020-01-01 00:00:00"),
            ("old-2", "failed", "2020-06-01 00:00:00"),
            ("old-pending", "pending", "2020-06-01 00:00:00"),
            ("new-1", "succeeded", "2999-01-01 00:00:00"),
        ]
        for record_id, state, created in rows:
            conn.execute(
                "INSERT INTO records (id, app_id, source, state, created_at) VALUES (?, ?, 'api', ?, ?)",
                (record_id, APP_A, state, created),
            )
    dry = cli(["records", "prune", "--older-than", "90d", "--dry-run"], env=env)
    assert "2 record(s)" in dry.stdout and "would be deleted" in dry.stdout
    done = cli(["records", "prune", "--older-than", "90d"], env=env)
    assert "deleted 2 record(s)" in done.stdout
    left = {r["id"] for r in json.loads(cli(["records", "list", "--json"], env=env).stdout)}
    assert left == {"old-pending", "new-1"}
    bad = cli(["records", "prune", "--older-than", "ninety days"], env=env, check=False)
    assert bad.returncode == 2 and "--older-than" in bad.stderr


def _with_records(tmp_path: Path, count: int, created_at: str) -> dict[str, str]:
    """A database with an app and ``count`` succeeded records made at ``created_at`` (ids rec-00000, ...)."""
    env = base_env(tmp_path)
    add_app(env, WORLD["applications"][0])
    with sqlite3.connect(tmp_path / "guildgate.db") as conn:
        conn.executemany(
            "INSERT INTO records (id, app_id, source, state, created_at) VALUES (?, ?, 'api', 'succeeded', ?)",
            [(f"rec-{i:05}", APP_A, created_at) for i in range(count)],
        )
    return env


def test_records_prune_shows_its_progress_batch_by_batch(tmp_path: Path, sandbox: Sandbox) -> None:
    env = _with_records(tmp_path, 12_000, "2020-01-01 00:00:00")
    done = cli(["records", "prune", "--older-than", "90d"], env=env)
    assert "deleted 12000 record(s)" in done.stdout
    steps = [line for line in done.stderr.splitlines() if line.startswith("deleted ")]
    assert steps == [
        "deleted 5000 of 12000 records…",
        "deleted 10000 of 12000 records…",
        "deleted 12000 of 12000 records…",
    ]
    with sqlite3.connect(tmp_path / "guildgate.db") as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone() == (0,)


def test_an_interrupted_export_leaves_the_file_as_it_was(tmp_path: Path, sandbox: Sandbox) -> None:
    env = _with_records(tmp_path, 5_000, "2026-01-01 00:00:00.000000")
    target = tmp_path / "out" / "records.jsonl"
    target.parent.mkdir()
    target.write_text("last week's export\n")
    with subprocess.Popen(
        [str(BIN / "guildgate"), "records", "export", "-o", str(target)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as export:
        assert export.stderr is not None
        first = export.stderr.readline()
        assert first.startswith("exported 500 records"), first
        export.send_signal(signal.SIGINT)  # Ctrl-C, 500 of 5,000 records in
        rest = export.stderr.read()
        assert export.wait(30) != 0
    assert "exported 5000" not in rest and "Traceback" not in rest
    assert target.read_text() == "last week's export\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["records.jsonl"]  # no half-written file left
    # run to the end, the export replaces the file whole
    done = cli(["records", "export", "-o", str(target)], env=env)
    assert "exported 5000 records" in done.stderr
    lines = target.read_text().splitlines()
    assert len(lines) == 5_000 and json.loads(lines[0])["id"].startswith("rec-")
    assert sorted(p.name for p in target.parent.iterdir()) == ["records.jsonl"]
    # what cannot be written is said before anything is read, and names the option
    nowhere = cli(["records", "export", "-o", str(tmp_path / "missing" / "r.csv")], env=env, check=False)
    assert nowhere.returncode == 2 and "--output" in nowhere.stderr and "No such file or directory" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr
    a_dir = cli(["records", "export", "-o", str(target.parent)], env=env, check=False)
    assert a_dir.returncode == 2 and "is a directory" in a_dir.stderr
    not_an_app = cli(["records", "export", "--app", "abc"], env=env, check=False)
    assert not_an_app.returncode == 2 and "--app" in not_an_app.stderr


def test_an_export_keeps_the_files_mode_and_link_and_writes_a_pipe_as_it_goes(tmp_path: Path, sandbox: Sandbox) -> None:
    env = _with_records(tmp_path, 1_200, "2026-01-01 00:00:00.000000")
    private = tmp_path / "private.jsonl"
    private.write_text("old\n")
    private.chmod(0o600)  # records name users and servers: an operator who narrowed the file keeps it narrow
    cli(["records", "export", "-o", str(private)], env=env)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and len(private.read_text().splitlines()) == 1_200

    real = tmp_path / "exports" / "latest.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(real)
    cli(["records", "export", "--format", "csv", "-o", str(link)], env=env)
    assert link.is_symlink() and len(real.read_text().splitlines()) == 1_201  # the header and every record
    assert sorted(p.name for p in real.parent.iterdir()) == ["latest.csv"]

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)  # a pipe (or /dev/stdout) is written as the export goes, never renamed over
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        read = pool.submit(pipe.read_text)
        cli(["records", "export", "-o", str(pipe)], env=env)
        assert len(read.result(timeout=60).splitlines()) == 1_200
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == []


def test_records_prune_takes_old_webhook_events_no_delivery_waits_for(tmp_path: Path, sandbox: Sandbox) -> None:
    env = base_env(tmp_path)
    add_app(env, WORLD["applications"][0])
    old = "2020-01-01 00:00:00"
    with sqlite3.connect(tmp_path / "guildgate.db") as conn:
        for event_id, state in (("evt_delivered", "delivered"), ("evt_failed", "failed"), ("evt_waiting", "pending")):
            conn.execute(
                "INSERT INTO events (id, app_id, type, body, created_at) VALUES (?, ?, 'link.used_up', X'7B7D', ?)",
                (event_id, APP_A, old),
            )
            conn.execute(
                "INSERT INTO webhook_deliveries (event_id, endpoint_id, app_id, state, attempts, tries, created_at) "
                "VALUES (?, 'whe_1', ?, ?, 1, 1, ?)",
                (event_id, APP_A, state, old),
            )
            conn.execute(
                "INSERT INTO webhook_attempts (event_id, endpoint_id, attempt, at, status, duration_ms) "
                "VALUES (?, 'whe_1', 1, ?, 500, 3)",
                (event_id, old),
            )
    done = cli(["records", "prune", "--older-than", "90d"], env=env)
    assert "2 webhook event(s) with their attempts" in done.stdout
    with sqlite3.connect(tmp_path / "guildgate.db") as conn:
        assert conn.execute("SELECT id FROM events").fetchall() == [("evt_waiting",)]
        assert conn.execute("SELECT event_id FROM webhook_deliveries").fetchall() == [("evt_waiting",)]
        assert conn.execute("SELECT event_id FROM webhook_attempts").fetchall() == [("evt_waiting",)]


def test_secrets_rotate_re_encrypts_the_webhook_endpoints_secrets_too(tmp_path: Path, sandbox: Sandbox) -> None:
    import asyncio

    from guildgate.services.webhooks import WebhookService
    from guildgate.settings import Settings
    from guildgate.store.crypto import SecretBox
    from guildgate.store.db import Database
    from guildgate.store.webhooks import open_secrets

    env = base_env(tmp_path)
    for app in WORLD["applications"]:
        add_app(env, app)
    url, old_key = env["GUILDGATE_DATABASE_URL"], env["GUILDGATE_SECRET_KEY"]

    async def add() -> str:
        db = Database(url)
        try:
            hooks = WebhookService(db, SecretBox(old_key), Settings(database_url=url, secret_key=old_key))
            return (await hooks.add(app_id=APP_A, url="https://hooks.example.com/x", events=None))[1]
        finally:
            await db.dispose()

    secret = asyncio.run(add())
    SECRETS.add(secret)
    new_env = {**env, "GUILDGATE_SECRET_KEY": NEW_KEY, "OLD_KEY": old_key}
    done = cli(["secrets", "rotate", "--old-key-env", "OLD_KEY"], env=new_env)
    assert "re-encrypted 1 webhook endpoint(s)' secrets; 0 already were" in done.stdout
    with sqlite3.connect(tmp_path / "guildgate.db") as conn:
        [(sealed,)] = conn.execute("SELECT secrets_enc FROM webhook_endpoints").fetchall()
    assert [e["secret"] for e in open_secrets(SecretBox(NEW_KEY), sealed)] == [secret]
