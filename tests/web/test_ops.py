"""Operations endpoints and the generated API description."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import GUILD, OUTPUT, TOKENS, Gateway, Sandbox, base_env, free_port, start
from tests.helpers import children


def test_health_ready_metrics(gateway: Gateway, fresh: Sandbox) -> None:
    assert httpx.get(gateway.proc.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.proc.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    if gateway.kind != "sqlite":
        assert ready.json()["checks"]["redis"] == "ok"
    for _ in range(4):  # with several workers, each answers some: /metrics adds them all up
        gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD})
    text = httpx.get(gateway.proc.url + "/metrics").text
    joins = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('guildgate_joins_total{code="already_member"}')
    )
    assert joins >= 4
    for name in (
        "guildgate_discord_requests_total",
        "guildgate_limiter_wait_seconds_bucket",
        "guildgate_global_slots_used",
        "guildgate_invalid_requests_used",
        "guildgate_limiter_queue_depth",
    ):
        assert name in text, name
    assert any(
        line.startswith("guildgate_discord_requests_total{")
        and 'status="204"' in line
        and 'route="/guilds/{guild_id}/members/{user_id}"' in line
        for line in text.splitlines()
    )


def test_openapi_describes_the_join_call(gateway: Gateway) -> None:
    spec = httpx.get(gateway.proc.url + "/openapi.json").json()
    op = spec["paths"]["/api/wanda/discord/guild"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert {"authorization", "guild_id", "guild_name", "roles", "nick", "mute", "deaf", "proxy"} <= set(
        schema["properties"]
    )
    assert {p["name"] for p in op["parameters"]} >= {"User-Token", "Developer-Id", "Idempotency-Key"}
    assert {"/api/record/{record_id}", "/api/records", "/api/usage", "/healthz", "/readyz"} <= set(spec["paths"])
    assert httpx.get(gateway.proc.url + "/docs").status_code == 200


def test_serve_workers_starts_that_many_processes(gateway: Gateway) -> None:
    expected = 4 if gateway.kind.endswith("4workers") else 0  # one process serves itself; N workers are children
    started = children(gateway.proc.proc.pid)
    # multiprocessing's resource tracker is a child too; the workers are the spawned ones
    workers = [pid for pid in started if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == expected, started


def test_oversized_headers_get_431_before_any_handler(gateway: Gateway, fresh: Sandbox) -> None:
    big = gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD}, headers={"X-Padding": "a" * 20_000})
    assert big.status_code == 431 and big.json()["code"] == "invalid_request" and "16384 bytes" in big.json()["msg"]
    many = {f"X-H{i}": "1" for i in range(120)}
    assert httpx.get(gateway.proc.url + "/healthz", headers=many).status_code == 431
    assert fresh.stats()["requests"].get("PUT /guilds/{guild_id}/members/{user_id}", 0) == 0
    assert httpx.get(gateway.proc.url + "/healthz", headers={"X-Padding": "a" * 2_000}).status_code == 200


def test_readyz_says_redis_is_not_answering(tmp_path: Path) -> None:
    """A worker whose Redis went away is not ready, and /readyz says which part and why; /healthz (the
    process is up) still answers."""
    port = free_port()
    env = base_env(tmp_path, GUILDGATE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    proc = start(
        ["serve", "--port", str(port)], env=env, log=OUTPUT / "gateway-no-redis.log", ready_path="/healthz", port=port
    )
    try:
        ready = httpx.get(proc.url + "/readyz", timeout=30)
    finally:
        proc.stop()
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: the shared rate-limit store (Redis) is not answering")
