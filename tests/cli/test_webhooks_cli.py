"""``guildgate webhooks``: every command against a running ``serve`` (SQLite, the real sender) and a receiver on
127.0.0.1 that verifies each message with the ``standardwebhooks`` library. The development switch
(GUILDGATE_WEBHOOK_ALLOW_INSECURE=1) lets the endpoints be http://127.0.0.1; the refusals are tested without it,
on URLs that are refused before any connection is tried."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import APP_A, APP_B, GUILD, SECRETS, TOKENS, Gateway, Sandbox, cli, one_worker_gateway
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def hooked(session_dir: Path, sandbox: Sandbox) -> Iterator[Gateway]:
    home = session_dir / "webhooks-cli"
    home.mkdir(exist_ok=True)
    gateway = one_worker_gateway(
        home,
        sandbox,
        "webhooks-cli",
        GUILDGATE_WEBHOOK_ALLOW_INSECURE="1",
        GUILDGATE_WEBHOOK_RETRY_SCHEDULE="0.2,0.2,0.2",
    )
    yield gateway
    gateway.proc.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def run_json(gateway: Gateway, *args: str) -> dict[str, Any]:
    """``guildgate webhooks ARGS --json``: exactly one JSON object on one line."""
    out = cli(["webhooks", *args, "--json"], env=gateway.env).stdout
    assert out.count("\n") == 1 and out.endswith("\n"), out
    body = json.loads(out)
    assert isinstance(body, dict), out
    return body


def add(gateway: Gateway, receiver: Receiver, path: str = "/hook", *extra: str) -> dict[str, Any]:
    made = run_json(gateway, "add", "--app", APP_A, "--url", receiver.url(path), *extra)
    SECRETS.add(made["secret"])  # the last test scans every output and database file for it
    receiver.secrets.append(made["secret"])
    return made


def test_add_prints_a_standard_secret_once_and_list_never_shows_it(hooked: Gateway, receiver: Receiver) -> None:
    made = add(hooked, receiver)
    assert made["id"].startswith("whe_") and len(made["id"]) == 20
    assert made["url"] == receiver.url() and made["app_id"] == APP_A and made["events"] is None
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) == 32
    listing = run_json(hooked, "list")
    assert made["id"] in [e["id"] for e in listing["endpoints"]]
    text = cli(["webhooks", "list"], env=hooked.env).stdout + json.dumps(listing)
    assert secret not in text and secret[6:] not in text
    plain = cli(["webhooks", "add", "--app", APP_A, "--url", receiver.url("/plain")], env=hooked.env).stdout
    assert "whsec_" in plain and "shown only this once" in plain
    SECRETS.update(word for word in plain.split() if word.startswith("whsec_"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/hook", "https"),
        ("https://127.0.0.1/hook", "127.0.0.1"),
        ("https://[::1]/hook", "::1"),
        ("https://[::ffff:127.0.0.1]/hook", "127.0.0.1"),
        ("https://10.0.0.1/hook", "10.0.0.1"),
    ],
)
def test_add_refuses_insecure_and_internal_urls_naming_the_reason(hooked: Gateway, url: str, reason: str) -> None:
    """Without the development switch: refused at add (exit 2, the reason on stderr), an address literal in every
    spelling. Nothing is connected to: the check is on the URL itself."""
    env = {k: v for k, v in hooked.env.items() if k != "GUILDGATE_WEBHOOK_ALLOW_INSECURE"}
    refused = cli(["webhooks", "add", "--app", APP_A, "--url", url, "--json"], env=env, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert reason in refused.stderr and refused.stdout == ""
    assert url not in json.dumps(run_json(hooked, "list"))


def test_add_refuses_an_unknown_event_type_and_app(hooked: Gateway, receiver: Receiver) -> None:
    bad_type = cli(
        ["webhooks", "add", "--app", APP_A, "--url", receiver.url(), "--event", "join.exploded"],
        env=hooked.env,
        check=False,
    )
    assert bad_type.returncode == 2 and "join.exploded" in bad_type.stderr
    bad_app = cli(
        ["webhooks", "add", "--app", "1100000000000009999", "--url", receiver.url()], env=hooked.env, check=False
    )
    assert bad_app.returncode == 2 and "1100000000000009999" in bad_app.stderr


def test_a_test_event_that_fails_twice_arrives_on_the_third_attempt_and_deliveries_shows_all_three(
    hooked: Gateway, receiver: Receiver
) -> None:
    made = add(hooked, receiver, "/flaky")
    receiver.fail_first["/flaky"] = 2
    queued = run_json(hooked, "test", made["id"])
    event_id = queued["event_id"]
    assert event_id.startswith("evt_")
    arrived = receiver.wait(
        lambda: [m for m in receiver.got("/flaky") if m.status == 204], about="the third attempt's 204"
    )
    attempts = receiver.got("/flaky")
    assert [m.status for m in attempts] == [500, 500, 204]
    assert {m.id for m in attempts} == {event_id} and len({m.body for m in attempts}) == 1  # the same bytes
    assert all(m.verified[made["secret"]] for m in attempts)
    body = json.loads(arrived[0].body)
    assert body["id"] == event_id and body["type"] == "webhook.test" and body["data"]["endpoint_id"] == made["id"]

    def three() -> list[dict[str, Any]]:
        rows = run_json(hooked, "deliveries", made["id"])["attempts"]
        return rows if len(rows) == 3 else []

    rows = receiver.wait(three, about="three attempts in webhooks deliveries")
    assert [r["attempt"] for r in rows] == [3, 2, 1]  # newest first
    assert [r["status"] for r in rows] == [204, 500, 500]
    assert {r["event_id"] for r in rows} == {event_id} and {r["type"] for r in rows} == {"webhook.test"}
    assert all(isinstance(r["duration_ms"], int) and r["at"].endswith("Z") for r in rows)
    failed = run_json(hooked, "deliveries", made["id"], "--failed")["attempts"]
    assert [r["attempt"] for r in failed] == [2, 1]
    table = cli(["webhooks", "deliveries", made["id"]], env=hooked.env).stdout
    assert event_id in table and "500" in table and "204" in table


def test_after_rotate_secret_the_old_and_the_new_secret_both_verify(hooked: Gateway, receiver: Receiver) -> None:
    made = add(hooked, receiver, "/rotating")
    old = made["secret"]
    rotated = run_json(hooked, "rotate-secret", made["id"])
    new = rotated["secret"]
    SECRETS.add(new)
    assert rotated["id"] == made["id"] and new.startswith("whsec_") and new != old
    receiver.secrets.append(new)
    event_id = run_json(hooked, "test", made["id"])["event_id"]
    message = receiver.wait(lambda: [m for m in receiver.got("/rotating") if m.id == event_id], about="the test")[0]
    assert message.verified[old] and message.verified[new]
    signatures = message.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)


def test_disable_skips_events_and_recover_sends_them_after_enable(
    hooked: Gateway, receiver: Receiver, fresh: Sandbox
) -> None:
    made = add(hooked, receiver, "/paused", "--event", "join.succeeded")
    disabled = run_json(hooked, "disable", made["id"])
    assert disabled["id"] == made["id"] and disabled["disabled"] is True
    shown = cli(["webhooks", "list"], env=hooked.env).stdout
    assert "disabled" in shown
    joined = hooked.join({"authorization": TOKENS["alice"], "guild_id": GUILD})
    assert joined.json()["status"] == 1, joined.text
    record_id = joined.json()["id"]
    enabled = run_json(hooked, "enable", made["id"])
    assert enabled["disabled"] is False
    assert receiver.got("/paused") == []  # skipped while disabled: not sent on enable by itself
    recovered = run_json(hooked, "recover", made["id"], "--since", "1h")
    assert recovered["queued"] >= 1
    message = receiver.wait(lambda: receiver.got("/paused"), about="the recovered join.succeeded")[0]
    body = json.loads(message.body)
    assert body["type"] == "join.succeeded" and body["data"]["record_id"] == record_id
    assert message.verified[made["secret"]]


def test_replay_sends_the_same_bytes_and_webhook_id_again(hooked: Gateway, receiver: Receiver) -> None:
    made = add(hooked, receiver, "/replayed")
    event_id = run_json(hooked, "test", made["id"])["event_id"]
    first = receiver.wait(lambda: receiver.got("/replayed"), about="the test event")[0]
    replayed = run_json(hooked, "replay", event_id)
    assert replayed == {"event_id": event_id, "endpoints": [made["id"]]}
    again = receiver.wait(lambda: receiver.got("/replayed")[1:], about="the replay")[0]
    assert again.id == first.id == event_id and again.body == first.body
    assert again.verified[made["secret"]]


@pytest.mark.parametrize(
    "args",
    [
        ["disable", "whe_0000000000000000"],
        ["enable", "whe_0000000000000000"],
        ["test", "whe_0000000000000000"],
        ["rotate-secret", "whe_0000000000000000"],
        ["deliveries", "whe_0000000000000000"],
        ["recover", "whe_0000000000000000", "--since", "2026-01-01T00:00:00Z"],
        ["replay", "evt_aaaaaaaaaaaaaaaaaaaaaaaaaa"],
    ],
)
def test_unknown_ids_are_named_exit_2(hooked: Gateway, args: list[str]) -> None:
    refused = cli(["webhooks", *args], env=hooked.env, check=False)
    assert refused.returncode == 2 and args[1] in refused.stderr, refused.stderr


def test_recover_names_a_bad_since(hooked: Gateway, receiver: Receiver) -> None:
    made = add(hooked, receiver, "/since")
    refused = cli(["webhooks", "recover", made["id"], "--since", "yesterday"], env=hooked.env, check=False)
    assert refused.returncode == 2 and "--since" in refused.stderr and "yesterday" in refused.stderr


def test_list_filters_by_app(hooked: Gateway, receiver: Receiver) -> None:
    mine = add(hooked, receiver, "/app-a")
    theirs = run_json(hooked, "add", "--app", APP_B, "--url", receiver.url("/app-b"))
    listed = {e["id"] for e in run_json(hooked, "list", "--app", APP_B)["endpoints"]}
    assert theirs["id"] in listed and mine["id"] not in listed
