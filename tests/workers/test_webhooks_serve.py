"""Webhooks from a real ``guildgate serve`` against the sandbox: joins through the API make signed events with
the contract's fields; a server killed with SIGKILL while events wait delivers every one after a restart, and
none for a join that has no record."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from guildgate.services.webhooks import Endpoint, WebhookService
from guildgate.settings import Settings
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from tests.conftest import (
    APP_A,
    GUILD,
    OUTPUT,
    SECRET_KEY,
    SECRETS,
    TOKENS,
    USER_IDS,
    WORLD,
    Proc,
    Sandbox,
    add_app,
    base_env,
    free_port,
    new_key,
    start,
)
from tests.helpers import crowd
from tests.workers.conftest import ThreadReceiver

JOINED = {"record_id", "app_id", "guild_id", "user_id", "joined", "source", "link_id", "grant_id", "developer_id"}
FAILED = {"record_id", "app_id", "guild_id", "user_id", "code", "discord_code", "source", "link_id", "developer_id"}


def add_endpoint(env: dict[str, str], url: str) -> tuple[Endpoint, str]:
    async def go() -> tuple[Endpoint, str]:
        db = Database(env["GUILDGATE_DATABASE_URL"])
        try:
            settings = Settings(database_url=env["GUILDGATE_DATABASE_URL"], secret_key=SECRET_KEY, sandbox=True)
            return await WebhookService(db, SecretBox(SECRET_KEY), settings).add(app_id=APP_A, url=url, events=None)
        finally:
            await db.dispose()

    endpoint, secret = asyncio.run(go())
    SECRETS.add(secret)
    return endpoint, secret


def wait_until(done: Callable[[], bool], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within:g} s for {what}")
        time.sleep(0.1)


def join(url: str, key: str, token: str, *, developer_id: str | None = None) -> httpx.Response:
    headers = {"User-Token": key} | ({"Developer-Id": developer_id} if developer_id else {})
    body = {"authorization": token, "guild_id": GUILD}
    return httpx.post(f"{url}/api/wanda/discord/guild", json=body, headers=headers, timeout=60)


def serve(env: dict[str, str], port: int, name: str) -> Proc:
    return start(["serve", "--port", str(port)], env=env, log=OUTPUT / name, ready_path="/readyz", port=port)


def test_joins_through_the_api_make_signed_events_with_the_contracts_fields(
    tmp_path: Path, fresh: Sandbox, thread_receiver: ThreadReceiver
) -> None:
    fresh.reset(WORLD)
    env = base_env(tmp_path, GUILDGATE_DISCORD_API_BASE=fresh.api, GUILDGATE_WEBHOOK_ALLOW_INSECURE="1")
    for app in WORLD["applications"]:
        add_app(env, app)
    key = new_key(env, APP_A)
    _, secret = add_endpoint(env, thread_receiver.url)
    port = free_port()
    server = serve(env, port, "webhooks-joins.log")
    try:
        joined = join(server.url, key, TOKENS["alice"], developer_id="dev-7").json()
        refused = join(server.url, key, TOKENS["mallory"]).json()
        no_record = join(server.url, "gg_not-a-key-of-anyone-0123456789", TOKENS["bob"])
        assert joined["code"] == "joined" and refused["status"] == 0 and no_record.status_code == 401
        wait_until(lambda: len(thread_receiver.messages) >= 2, "two events")
        time.sleep(1.0)  # a third, if there were one, would come by now
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert 'guildgate_webhook_attempts_total{outcome="delivered"} 2.0' in metrics
    assert "guildgate_webhook_events_waiting 0.0" in metrics
    assert "guildgate_webhook_oldest_waiting_seconds 0.0" in metrics
    events = thread_receiver.delivered(secret)  # every message verifies with the library
    by_type = {body["type"]: body for body in events.values()}
    assert sorted(by_type) == ["join.failed", "join.succeeded"] and len(events) == 2
    ok = by_type["join.succeeded"]["data"]
    assert set(ok) == JOINED
    assert ok == {
        "record_id": joined["id"],
        "app_id": APP_A,
        "guild_id": GUILD,
        "user_id": USER_IDS["alice"],
        "joined": True,
        "source": "api",
        "link_id": None,
        "grant_id": None,
        "developer_id": "dev-7",
    }
    failed = by_type["join.failed"]["data"]
    assert set(failed) == FAILED
    assert failed["record_id"] == refused["id"] and failed["code"] == refused["code"]
    assert failed["user_id"] == USER_IDS["mallory"] and failed["source"] == "api"
    for event_id, body in events.items():
        assert body["id"] == event_id and event_id.startswith("evt_") and len(event_id) == 30
    assert secret not in server.output()


def test_sigkill_with_events_waiting_then_restart_delivers_every_committed_one(
    tmp_path: Path, fresh: Sandbox, thread_receiver: ThreadReceiver
) -> None:
    world, people = crowd(6)
    fresh.reset(world)
    env = base_env(
        tmp_path,
        GUILDGATE_DISCORD_API_BASE=fresh.api,
        GUILDGATE_WEBHOOK_ALLOW_INSECURE="1",
        GUILDGATE_WEBHOOK_RETRY_SCHEDULE="1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
        GUILDGATE_WEBHOOK_TIMEOUT="2",
    )
    for app in WORLD["applications"]:
        add_app(env, app)
    key = new_key(env, APP_A)
    _, secret = add_endpoint(env, thread_receiver.url)
    thread_receiver.status = 503  # the receiver is down: every event waits
    port = free_port()
    server = serve(env, port, "webhooks-kill-before.log")
    answered = [join(server.url, key, token).json() for _, token in people]
    assert all(a["code"] == "joined" for a in answered)
    refused = join(server.url, "gg_not-a-key-of-anyone-0123456789", people[0][1])
    assert refused.status_code == 401
    wait_until(lambda: len(thread_receiver.messages) >= 6, "the first attempts")
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    failing = thread_receiver.delivered(secret)
    assert {body["data"]["record_id"] for body in failing.values()} <= {a["id"] for a in answered}

    thread_receiver.status = 200
    count_before = len(thread_receiver.messages)
    wanted = {a["id"] for a in answered}

    def arrived_after_restart() -> set[str]:
        after = thread_receiver.messages[count_before:]
        return {Webhook(secret).verify(m.body, m.headers)["data"]["record_id"] for m in after}

    again = serve(env, port, "webhooks-kill-after.log")
    try:
        wait_until(lambda: arrived_after_restart() >= wanted, "every waiting event after the restart")
        time.sleep(1.5)  # an event of a join without a record, if there were one, would come by now
    finally:
        again.stop()
    assert arrived_after_restart() == wanted  # each committed join's event, and no other
    events = thread_receiver.delivered(secret)
    assert {body["type"] for body in events.values()} == {"join.succeeded"} and len(events) == len(wanted)


def test_a_join_through_a_link_makes_its_events_and_the_last_use_link_used_up(
    tmp_path: Path, fresh: Sandbox, thread_receiver: ThreadReceiver
) -> None:
    from tests.conftest import one_worker_gateway
    from tests.linkflow import cli_link, join_through

    fresh.reset(WORLD)
    gateway = one_worker_gateway(tmp_path, fresh, "webhooks-link", GUILDGATE_WEBHOOK_ALLOW_INSECURE="1")
    try:
        _, secret = add_endpoint(gateway.env, thread_receiver.url)
        link = cli_link(gateway, "--app", APP_A, "--guild", GUILD, "--max-uses", "1")
        flow = join_through(link["url"], USER_IDS["erin"])
        assert flow.outcome == "joined"
        wait_until(lambda: len(thread_receiver.messages) >= 2, "the join's and the link's events")
        time.sleep(1.0)
    finally:
        gateway.proc.stop()
    by_type = {body["type"]: body["data"] for body in thread_receiver.delivered(secret).values()}
    assert sorted(by_type) == ["join.succeeded", "link.used_up"]
    joined = by_type["join.succeeded"]
    assert (joined["source"], joined["link_id"], joined["user_id"]) == ("link", link["id"], USER_IDS["erin"])
    assert joined["joined"] is True and set(joined) == JOINED
    assert by_type["link.used_up"] == {"link_id": link["id"], "app_id": APP_A, "guild_id": GUILD, "uses": 1}
