"""``serve`` as a newcomer meets it: ``make run``'s sandbox in a database of its own, the banner that says how to
run the CLI, GUILDGATE_PUBLIC_URL following --port, and start-up and access logs that are short and true."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import BIN, SECRET_KEY, base_env, free_port
from tests.servers import wait_http

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ (\S+): (.*)$")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = base_env(tmp, **extra)
    for name in ("GUILDGATE_DATABASE_URL", "GUILDGATE_SECRET_KEY"):  # a fresh clone: nothing set
        if name not in extra:
            env.pop(name)
    return env


def _serve(args: list[str], *, cwd: Path, env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "guildgate"), "serve", "--port", str(port), *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _guildgate(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "guildgate"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=True
    )


def test_sandbox_data_stays_out_of_the_real_database_and_each_serve_answers_on_its_own_port(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    port = free_port()
    log = tmp_path / "sandbox-serve.log"
    proc = _serve(["--sandbox"], cwd=clone, env=_env(tmp_path, GUILDGATE_REQUEST_READ_TIMEOUT="1"), log=log, port=port)
    try:
        deadline = time.monotonic() + 30
        while "Try a join" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        banner = log.read_text()
        # the CLI is at hand: its path in the virtualenv, and the activate script beside it
        assert f"The CLI: {BIN / 'guildgate'} --help" in banner, banner
        assert f"source {BIN / 'activate'}" in banner, banner
        home = httpx.get(f"http://127.0.0.1:{port}/", headers={"Accept": "application/json"}).json()
        assert home["docs"] == f"http://127.0.0.1:{port}/docs" and home["dashboard"] == f"http://127.0.0.1:{port}/admin"
        assert f"Demo join link (open it in a browser): http://127.0.0.1:{port}/j/" in banner
        curl = next(line for line in banner.splitlines() if line.startswith("curl "))
        joined = json.loads(subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30).stdout)
        assert joined["code"] == "joined"
        key = re.search(r"Demo API key \(shown once\): (\S+)", banner)
        assert key is not None
        assert httpx.get(f"http://127.0.0.1:{port}/nope").status_code == 404
        too_big = httpx.post(
            f"http://127.0.0.1:{port}/api/wanda/discord/guild",
            headers={"User-Token": key.group(1), "Content-Type": "application/json"},
            content=b'{"authorization": "' + b"a" * 40_000 + b'"}',
        )
        assert too_big.status_code == 413
        with socket.create_connection(("127.0.0.1", port)) as slow:  # a body that never comes: 408
            head = f"POST /api/wanda/discord/guild HTTP/1.1\r\nHost: x\r\nUser-Token: {key.group(1)}\r\n"
            slow.sendall(head.encode() + b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\nab")
            slow.settimeout(10)
            assert slow.recv(100).startswith(b"HTTP/1.1 408")
    finally:
        _stop(proc)
    assert (clone / "guildgate-sandbox.db").is_file() and not (clone / "guildgate.db").exists()

    output = log.read_text()
    assert "alembic" not in output.lower()
    lines = [m.groups() for line in output.splitlines() if (m := LOG_LINE.match(line))]
    assert {name for name, _ in lines} == {"guildgate"}, output
    said = [message for _, message in lines]
    assert "the database was migrated from schema none (empty) to 0004" in said
    access = [m for m in said if m.startswith("127.0.0.1:")]
    assert any(m.endswith('"POST /api/wanda/discord/guild HTTP/1.1" 200') for m in access), access
    assert any(m.endswith('"GET /nope HTTP/1.1" 404') for m in access), access
    assert any(m.endswith('"POST /api/wanda/discord/guild HTTP/1.1" 413') for m in access), access
    assert not any("/api/v10/" in m for m in access), access  # the sandbox's own requests are not guildgate's
    assert any(m.startswith("closing a connection whose request was not received within 1 s") for m in said)
    assert any(m.endswith('"POST /api/wanda/discord/guild HTTP/1.1" 408') for m in access), access

    # later, for real: a new secret key, the default database: no sandbox app in it
    real = _env(tmp_path, GUILDGATE_SECRET_KEY=SECRET_KEY)
    assert json.loads(_guildgate(["apps", "list", "--json"], cwd=clone, env=real).stdout) == []
    sandboxed = json.loads(
        _guildgate(["apps", "list", "--json"], cwd=clone, env={**real, "GUILDGATE_SANDBOX": "1"}).stdout
    )
    assert [a["name"] for a in sandboxed] == ["Demo App"]
    other = free_port()
    log = tmp_path / "real-serve.log"
    proc = _serve([], cwd=clone, env=real, log=log, port=other)
    try:
        home = httpx.get(f"http://127.0.0.1:{other}/", headers={"Accept": "application/json"}).json()
        assert home["docs"] == f"http://127.0.0.1:{other}/docs" and home["dashboard"] is None
    finally:
        _stop(proc)
    assert "INFO guildgate: the database is up to date (schema 0004)" in log.read_text()
    assert f"GUILDGATE_PUBLIC_URL is not set: join links and the OAuth2 redirect URI use http://127.0.0.1:{other}" in (
        log.read_text().replace("\n", " ")
    )


def test_an_explicit_database_url_is_kept_in_sandbox_mode(tmp_path: Path) -> None:
    chosen = tmp_path / "mine.db"
    env = _env(tmp_path, GUILDGATE_DATABASE_URL=f"sqlite:///{chosen}")
    port = free_port()
    proc = _serve(["--sandbox"], cwd=tmp_path, env=env, log=tmp_path / "serve.log", port=port)
    _stop(proc)
    assert chosen.is_file() and not (tmp_path / "guildgate-sandbox.db").exists()
    listed = json.loads(
        _guildgate(["apps", "list", "--json"], cwd=tmp_path, env={**env, "GUILDGATE_SANDBOX": "1"}).stdout
    )
    assert [a["name"] for a in listed] == ["Demo App"]
