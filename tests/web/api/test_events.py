"""GET /api/events and GET /api/events/{id}: a receiver catching up by itself, with its app's API key, over real
HTTP against a running ``serve`` (SQLite, the real sender) and a receiver on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import APP_A, APP_B, GUILD, SECRETS, TOKENS, Gateway, Sandbox, cli, new_key, one_worker_gateway
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def hooked(session_dir: Path, sandbox: Sandbox) -> Iterator[Gateway]:
    home = session_dir / "events-api"
    home.mkdir(exist_ok=True)
    gateway = one_worker_gateway(
        home,
        sandbox,
        "events-api",
        GUILDGATE_WEBHOOK_ALLOW_INSECURE="1",
        GUILDGATE_WEBHOOK_RETRY_SCHEDULE="0.2",
        GUILDGATE_READS_PER_MINUTE="1000000",  # this module reads more than the default 120 a minute
    )
    gateway.keys["b"] = new_key(gateway.env, APP_B)
    yield gateway
    gateway.proc.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def events(gateway: Gateway, key: str = "a", **params: Any) -> httpx.Response:
    return gateway.get("/api/events", key=key, **params)


def data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 1
    return dict(body["data"])


def add(gateway: Gateway, url: str, *extra: str) -> dict[str, Any]:
    out = cli(["webhooks", "add", "--app", APP_A, "--url", url, "--json", *extra], env=gateway.env).stdout
    made = dict(json.loads(out))
    SECRETS.add(made["secret"])
    return made


def test_a_join_is_an_event_with_the_contracts_fields_and_its_deliveries(
    hooked: Gateway, receiver: Receiver, fresh: Sandbox
) -> None:
    endpoint = add(hooked, receiver.url("/ok"))
    joined = hooked.join({"authorization": TOKENS["alice"], "guild_id": GUILD})
    record_id = joined.json()["id"]
    page = data(events(hooked, type="join.succeeded"))
    event = next(e for e in page["events"] if e["data"]["record_id"] == record_id)
    assert event["id"].startswith("evt_") and len(event["id"]) == 30 and event["type"] == "join.succeeded"
    assert event["timestamp"].endswith("Z")
    assert set(event["data"]) >= {
        "record_id",
        "app_id",
        "guild_id",
        "user_id",
        "joined",
        "source",
        "link_id",
        "grant_id",
        "developer_id",
    }
    assert event["data"]["app_id"] == APP_A and event["data"]["guild_id"] == GUILD and event["data"]["source"] == "api"
    mine = [d for d in event["deliveries"] if d["endpoint_id"] == endpoint["id"]]
    assert mine and mine[0]["state"] in ("pending", "delivered")
    receiver.wait(lambda: [m for m in receiver.got("/ok") if m.id == event["id"]], about="the join's event")

    def delivered() -> bool:
        one = data(hooked.get(f"/api/events/{event['id']}"))
        return any(d["endpoint_id"] == endpoint["id"] and d["state"] == "delivered" for d in one["deliveries"])

    receiver.wait(delivered, about="the delivery shown delivered")
    one = data(hooked.get(f"/api/events/{event['id']}"))
    assert {k: one[k] for k in ("id", "type", "timestamp", "data")} == {
        k: event[k] for k in ("id", "type", "timestamp", "data")
    }
    # the body a receiver got is the event as this API shows it
    sent = json.loads(next(m for m in receiver.got("/ok") if m.id == event["id"]).body)
    assert sent == {k: one[k] for k in ("id", "type", "timestamp", "data")}


def test_events_are_newest_first_and_cursor_paged_without_gaps(hooked: Gateway, receiver: Receiver) -> None:
    endpoint = add(hooked, receiver.url("/paged"))
    made = [
        json.loads(cli(["webhooks", "test", endpoint["id"], "--json"], env=hooked.env).stdout)["event_id"]
        for _ in range(5)
    ]
    seen: list[str] = []
    cursor = ""
    for _ in range(50):
        page = data(events(hooked, limit=2, cursor=cursor, endpoint_id=endpoint["id"]))
        assert len(page["events"]) <= 2
        seen += [e["id"] for e in page["events"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(made))


def test_filters_type_since_endpoint_and_failed_delivery(hooked: Gateway, receiver: Receiver) -> None:
    receiver.status["/down"] = 500
    down = add(hooked, receiver.url("/down"), "--event", "link.used_up")  # and its own tests
    event_id = json.loads(cli(["webhooks", "test", down["id"], "--json"], env=hooked.env).stdout)["event_id"]

    def failed() -> list[str]:
        return [e["id"] for e in data(events(hooked, delivery="failed"))["events"]]

    assert event_id in receiver.wait(lambda: event_id in failed() and failed(), about="the delivery failed")
    shown = data(events(hooked, delivery="failed", endpoint_id=down["id"]))["events"]
    assert [e["id"] for e in shown] == [event_id]
    assert shown[0]["deliveries"] == [{"endpoint_id": down["id"], "state": "failed", "attempts": 2}]
    assert all(e["type"] == "webhook.test" for e in data(events(hooked, type="webhook.test"))["events"])
    assert data(events(hooked, since="2999-01-01T00:00:00Z"))["events"] == []
    assert event_id in [e["id"] for e in data(events(hooked, since="2000-01-01"))["events"]]
    assert event_id not in [e["id"] for e in data(events(hooked, delivery="skipped"))["events"]]


def test_another_apps_key_and_unknown_ids_get_the_same_404(hooked: Gateway, receiver: Receiver) -> None:
    endpoint = add(hooked, receiver.url("/theirs"))
    event_id = json.loads(cli(["webhooks", "test", endpoint["id"], "--json"], env=hooked.env).stdout)["event_id"]
    assert data(hooked.get(f"/api/events/{event_id}"))["id"] == event_id
    other = hooked.get(f"/api/events/{event_id}", key="b")
    unknown = hooked.get("/api/events/evt_aaaaaaaaaaaaaaaaaaaaaaaaaa")
    for answer in (other, unknown):
        assert answer.status_code == 404 and answer.json()["code"] == "unknown_event", answer.text
    assert event_id not in [e["id"] for e in data(events(hooked, key="b"))["events"]]
    assert hooked.get("/api/events", key="").status_code == 401


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("type", "join.exploded"),
        ("delivery", "delivered"),
        ("endpoint_id", "whe_zz"),
        ("since", "yesterday"),
        ("cursor", "not-a-cursor"),
        ("limit", "0"),
    ],
)
def test_bad_queries_are_400_naming_the_parameter(hooked: Gateway, param: str, value: str) -> None:
    answer = events(hooked, lang="en", **{param: value})
    assert answer.status_code == 400, answer.text
    assert param in answer.json()["msg"]


def test_empty_filters_count_as_absent(hooked: Gateway) -> None:
    everything = data(events(hooked))["events"]
    same = data(events(hooked, type="", since="", endpoint_id="", delivery="", cursor=""))["events"]
    assert [e["id"] for e in same] == [e["id"] for e in everything]
