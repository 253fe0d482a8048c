"""Operations endpoints and the generated API description."""

from __future__ import annotations

import httpx

from tests.conftest import Gateway


def test_health_ready_metrics(gateway: Gateway) -> None:
    assert httpx.get(gateway.proc.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.proc.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    metrics = httpx.get(gateway.proc.url + "/metrics")
    assert metrics.status_code == 200
    assert "guildgate_invalid_requests_used" in metrics.text


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
