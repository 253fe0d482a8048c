"""The webhook sender against a receiver on 127.0.0.1 that verifies every message with ``standardwebhooks``:
retries, the attempt log, 410, no head-of-line blocking, secret rotation, and a name that resolves to loopback."""

from __future__ import annotations

import asyncio
import json

from guildgate.services.webhooks import WebhookService
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.events import add_event_sync
from guildgate.workers.webhooks import WebhookSender
from tests.workers.conftest import APP, KEY, Receiver, settings_for


def service(db: Database, db_url: str, **extra: object) -> WebhookService:
    return WebhookService(db, SecretBox(KEY), settings_for(db_url, **extra))


def sender(db: Database, db_url: str, **extra: object) -> WebhookSender:
    return WebhookSender(db, SecretBox(KEY), settings_for(db_url, **extra), poll=0.05)


async def emit(db: Database, type: str = "link.used_up", **data: object) -> str:
    payload = {"link_id": "lnk_1", "app_id": APP, "guild_id": "1200000000000000001", "uses": 1, **data}
    return await db.run(lambda conn: add_event_sync(conn, app_id=APP, type=type, data=payload))


async def test_500_500_200_delivers_on_the_third_attempt_and_logs_three(
    db: Database, db_url: str, receiver: Receiver
) -> None:
    hooks = service(db, db_url)
    endpoint, secret = await hooks.add(app_id=APP, url=receiver.url("/flaky"), events=None)
    receiver.script["/flaky"] = [500, 500]
    event_id = await emit(db)
    worker = sender(db, db_url, webhook_retry_schedule="0.2,0.2,0.2")
    worker.start()
    try:
        await receiver.wait_for(lambda: len(receiver.at("/flaky")) >= 3, "three attempts")
        await asyncio.sleep(0.3)  # the third result is written
    finally:
        await worker.stop()
    messages = receiver.at("/flaky")
    assert len(messages) == 3
    bodies = receiver.verified("/flaky", secret)  # each verifies with the library
    assert all(b["id"] == event_id and b["type"] == "link.used_up" for b in bodies)
    assert {m.headers["webhook-id"] for m in messages} == {event_id}
    assert len({m.body for m in messages}) == 1  # the same bytes every attempt
    attempts = await hooks.deliveries(app_id=APP, endpoint_id=endpoint.id)
    assert [(a.attempt, a.status) for a in attempts] == [(3, 200), (2, 500), (1, 500)]
    assert attempts[1].answer == "answer 500" and attempts[1].error == "HTTP 500"
    event = await hooks.event(app_id=APP, event_id=event_id)
    assert [d.as_json() for d in event.deliveries] == [
        {"endpoint_id": endpoint.id, "state": "delivered", "attempts": 3}
    ]
    failed = await hooks.deliveries(app_id=APP, endpoint_id=endpoint.id, failed_only=True)
    assert [a.attempt for a in failed] == [2, 1]


async def test_410_disables_the_endpoint_and_tells_the_others(db: Database, db_url: str, receiver: Receiver) -> None:
    hooks = service(db, db_url)
    gone, _ = await hooks.add(app_id=APP, url=receiver.url("/gone"), events=None)
    _, other_secret = await hooks.add(app_id=APP, url=receiver.url("/other"), events=["webhook.endpoint_disabled"])
    receiver.script["/gone"] = [410]
    await emit(db)
    worker = sender(db, db_url, webhook_retry_schedule="0.2")
    worker.start()
    try:
        await receiver.wait_for(lambda: bool(receiver.at("/other")), "the endpoint_disabled event")
        later = await emit(db)
        await asyncio.sleep(0.5)
    finally:
        await worker.stop()
    assert len(receiver.at("/gone")) == 1
    shown = await hooks.get(app_id=APP, endpoint_id=gone.id)
    assert shown.disabled_at is not None and "410" in (shown.disabled_reason or "")
    [told] = receiver.verified("/other", other_secret)
    assert told["type"] == "webhook.endpoint_disabled"
    assert told["data"] == {"endpoint_id": gone.id, "url": receiver.url("/gone"), "reason": shown.disabled_reason}
    skipped = await hooks.event(app_id=APP, event_id=later)
    assert [(d.endpoint_id, d.state) for d in skipped.deliveries] == [(gone.id, "skipped")]
    # recover after enable sends what was skipped
    await hooks.enable(app_id=APP, endpoint_id=gone.id)
    assert await hooks.recover(app_id=APP, endpoint_id=gone.id, since=skipped.created_at) == 1
    worker = sender(db, db_url, webhook_retry_schedule="0.2")
    worker.start()
    try:
        await receiver.wait_for(lambda: len(receiver.at("/gone")) >= 2, "the recovered event")
    finally:
        await worker.stop()
    assert json.loads(receiver.at("/gone")[-1].body)["id"] == later


async def test_a_slow_endpoint_does_not_delay_another(db: Database, db_url: str, receiver: Receiver) -> None:
    hooks = service(db, db_url)
    await hooks.add(app_id=APP, url=receiver.url("/slow"), events=None)
    await hooks.add(app_id=APP, url=receiver.url("/fast"), events=None)
    receiver.held.add("/slow")  # its answers never come while the test runs
    for _ in range(30):
        await emit(db)
    worker = sender(db, db_url, webhook_timeout=60)
    worker.start()
    try:
        await receiver.wait_for(lambda: len(receiver.at("/fast")) >= 30, "every event at the fast endpoint")
        hanging = len(receiver.at("/slow"))
    finally:
        await worker.stop()
    assert hanging == 10  # at most 10 in flight to one endpoint; the other got all 30 meanwhile


async def test_after_rotation_the_old_and_the_new_secret_both_verify(
    db: Database, db_url: str, receiver: Receiver
) -> None:
    hooks = service(db, db_url)
    endpoint, old = await hooks.add(app_id=APP, url=receiver.url("/rot"), events=None)
    new = await hooks.rotate_secret(app_id=APP, endpoint_id=endpoint.id)
    assert new != old and new.startswith("whsec_")
    event_id = await hooks.test(app_id=APP, endpoint_id=endpoint.id)
    worker = sender(db, db_url)
    worker.start()
    try:
        await receiver.wait_for(lambda: bool(receiver.at("/rot")), "the test event")
    finally:
        await worker.stop()
    [message] = receiver.at("/rot")
    signatures = message.headers["webhook-signature"]
    assert len(signatures.split(" ")) == 2 and not signatures.endswith(" ")
    assert receiver.verified("/rot", old)[0]["id"] == event_id  # a receiver holding only the old secret
    assert receiver.verified("/rot", new)[0]["data"] == {"endpoint_id": endpoint.id}  # only the new one


async def test_a_name_resolving_to_loopback_is_refused_at_delivery(
    db: Database, db_url: str, receiver: Receiver
) -> None:
    port = receiver.base.rsplit(":", 1)[1]
    hooks = service(db, db_url, webhook_allow_insecure=False)
    endpoint, _ = await hooks.add(app_id=APP, url=f"https://localhost:{port}/internal", events=None)
    await emit(db)
    worker = sender(db, db_url, webhook_allow_insecure=False, webhook_retry_schedule="60")
    worker.start()
    try:
        for _ in range(200):
            if await hooks.deliveries(app_id=APP, endpoint_id=endpoint.id):
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    [attempt] = await hooks.deliveries(app_id=APP, endpoint_id=endpoint.id)
    assert attempt.status is None and attempt.error is not None
    assert attempt.error.startswith("refused:") and "loopback" in attempt.error
    assert receiver.messages == []  # nothing reached the listener


async def test_no_redirect_is_followed_and_a_large_answers_first_2_kib_are_kept(
    db: Database, db_url: str, receiver: Receiver
) -> None:
    hooks = service(db, db_url)
    moved, _ = await hooks.add(app_id=APP, url=receiver.url("/moved"), events=None)
    big, _ = await hooks.add(app_id=APP, url=receiver.url("/big"), events=None)
    receiver.script["/moved"] = [307]
    receiver.headers["/moved"] = {"Location": receiver.url("/elsewhere")}
    receiver.bodies["/big"] = b"x" * 5_000_000
    await emit(db)
    worker = sender(db, db_url, webhook_retry_schedule="60")
    worker.start()
    try:
        for _ in range(200):
            if await hooks.deliveries(app_id=APP, endpoint_id=moved.id) and await hooks.deliveries(
                app_id=APP, endpoint_id=big.id
            ):
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    [redirected] = await hooks.deliveries(app_id=APP, endpoint_id=moved.id)
    assert redirected.status == 307 and redirected.error == "HTTP 307"
    assert receiver.at("/elsewhere") == []  # the redirect was not followed
    [answered] = await hooks.deliveries(app_id=APP, endpoint_id=big.id)
    assert answered.status == 200 and answered.answer == "x" * 2048
