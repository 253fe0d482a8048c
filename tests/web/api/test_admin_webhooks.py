"""The admin API's webhooks over real HTTP: what ``guildgate webhooks`` does, with the admin token, against a
running ``serve`` (SQLite, the real sender) and a receiver on 127.0.0.1 that verifies every message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, APP_A, SECRETS, Gateway, Sandbox, one_worker_gateway
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def hooked(session_dir: Path, sandbox: Sandbox) -> Iterator[Gateway]:
    home = session_dir / "admin-webhooks"
    home.mkdir(exist_ok=True)
    gateway = one_worker_gateway(
        home, sandbox, "admin-webhooks", GUILDGATE_WEBHOOK_ALLOW_INSECURE="1", GUILDGATE_WEBHOOK_RETRY_SCHEDULE="0.2"
    )
    yield gateway
    gateway.proc.stop()


@pytest.fixture
def admin(hooked: Gateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=hooked.proc.url + "/api/admin", headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_add_list_test_deliveries_rotate_replay_and_recover(admin: httpx.Client, receiver: Receiver) -> None:
    made = ok(admin.post("/webhooks", json={"app_id": APP_A, "url": receiver.url("/admin")}), 201)
    SECRETS.add(made["secret"])
    receiver.secrets.append(made["secret"])
    endpoint_id = made["id"]
    assert made["secret"].startswith("whsec_") and made["events"] is None and made["disabled"] is False
    listed = ok(admin.get("/webhooks", params={"app_id": APP_A}))["endpoints"]
    assert endpoint_id in [e["id"] for e in listed] and made["secret"] not in json.dumps(listed)
    assert "secret" not in ok(admin.get(f"/webhooks/{endpoint_id}"))

    receiver.fail_first["/admin"] = 1
    event_id = ok(admin.post(f"/webhooks/{endpoint_id}/test"))["event_id"]
    receiver.wait(lambda: [m for m in receiver.got("/admin") if m.status == 204], about="the retried test event")

    def two() -> list[dict[str, Any]]:
        rows = ok(admin.get(f"/webhooks/{endpoint_id}/deliveries"))["attempts"]
        return rows if len(rows) == 2 else []

    rows = receiver.wait(two, about="both attempts in the log")
    assert [(r["attempt"], r["status"]) for r in rows] == [(2, 204), (1, 500)]  # newest first
    assert {r["event_id"] for r in rows} == {event_id}
    failed = ok(admin.get(f"/webhooks/{endpoint_id}/deliveries", params={"failed": "true"}))["attempts"]
    assert [r["status"] for r in failed] == [500]

    rotated = ok(admin.post(f"/webhooks/{endpoint_id}/rotate-secret"))
    SECRETS.add(rotated["secret"])
    assert rotated["id"] == endpoint_id and rotated["secret"] != made["secret"]
    receiver.secrets.append(rotated["secret"])

    replayed = ok(admin.post(f"/events/{event_id}/replay"))
    assert replayed == {"event_id": event_id, "endpoints": [endpoint_id]}
    again = receiver.wait(lambda: [m for m in receiver.got("/admin") if m.id == event_id][2:], about="the replay")[0]
    assert again.verified[made["secret"]] and again.verified[rotated["secret"]]

    assert ok(admin.post(f"/webhooks/{endpoint_id}/disable"))["disabled"] is True
    assert ok(admin.post(f"/webhooks/{endpoint_id}/enable"))["disabled"] is False
    recovered = ok(admin.post(f"/webhooks/{endpoint_id}/recover", json={"since": "2000-01-01T00:00:00Z"}))
    assert recovered["id"] == endpoint_id and isinstance(recovered["queued"], int)


def test_refusals_name_the_problem(admin: httpx.Client, hooked: Gateway, receiver: Receiver) -> None:
    bad_type = admin.post("/webhooks", json={"app_id": APP_A, "url": receiver.url(), "events": ["join.exploded"]})
    assert bad_type.status_code == 400 and "events" in bad_type.json()["detail"]
    unknown_app = admin.post("/webhooks", json={"app_id": "1100000000000009999", "url": receiver.url()})
    assert unknown_app.status_code == 404 and "1100000000000009999" in unknown_app.json()["detail"]
    for path in ("/webhooks/whe_0000000000000000/disable", "/webhooks/whe_0000000000000000/test"):
        unknown = admin.post(path)
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_endpoint"
    replay = admin.post("/events/evt_aaaaaaaaaaaaaaaaaaaaaaaaaa/replay")
    assert replay.status_code == 404 and replay.json()["error"] == "unknown_event"
    bad_since = admin.post("/webhooks/whe_0000000000000000/recover", json={"since": "yesterday"})
    assert bad_since.status_code == 400 and "since" in bad_since.json()["detail"]
    anonymous = httpx.get(hooked.proc.url + "/api/admin/webhooks")
    assert anonymous.status_code == 401
    with_key = httpx.get(hooked.proc.url + "/api/admin/webhooks", headers={"User-Token": hooked.keys["a"]})
    assert with_key.status_code == 403
