"""Throwaway redis-server and PostgreSQL instances on free loopback ports, for tests and benchmarks."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout}s")


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    """Until ``url`` answers over HTTP (any status), or fail early when ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    home: Path

    def stop(self) -> None:
        stop_process(self.proc, grace=15)
        shutil.rmtree(self.home, ignore_errors=True)


def start_redis() -> Server:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make test-deps` (Debian's redis-server)")
    home = Path(tempfile.mkdtemp(prefix="guildgate-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(home),
            "--logfile",
            str(home / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    wait_port(port, proc, "redis-server")
    return Server(proc=proc, url=f"redis://127.0.0.1:{port}/0", home=home)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError("PostgreSQL is not installed: run `make test-deps` (Debian's postgresql)")
    return binary


def start_postgres() -> Server:
    home = Path(tempfile.mkdtemp(prefix="guildgate-pg-"))
    home.chmod(0o755)
    data = home / "data"
    data.mkdir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(home, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *as_postgres,
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "guildgate",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    with (home / "postgres.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                *as_postgres,
                _pg_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(home),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    wait_port(port, proc, "postgres")
    url = f"postgresql://guildgate@127.0.0.1:{port}/postgres"
    for _ in range(100):  # the port opens a moment before connections are accepted
        ok = subprocess.run(
            [*as_postgres, shutil.which("psql") or "psql", url, "-c", "select 1"], capture_output=True, timeout=30
        )
        if ok.returncode == 0:
            break
        time.sleep(0.1)
    return Server(proc=proc, url=url, home=home)
