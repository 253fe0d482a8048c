"""The webhooks' store: the outbox's fan-out in the change's transaction, claims and their leases, retention,
and secrets never in clear in the database."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, update

from guildgate.core.secret import Secret
from guildgate.services.webhooks import WebhookService
from guildgate.settings import Settings
from guildgate.store import deliveries
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.events import add_event_sync
from guildgate.store.models import WebhookDeliveryRow
from guildgate.store.repos import AppRepo
from tests.workers.conftest import migrated_url

APP = "1100000000000000001"
KEY = "test-secret-key-0123456789abcdef-Zq"


async def service_on(url: str) -> WebhookService:
    db = Database(url)
    box = SecretBox(KEY)
    await AppRepo(db, box).add(client_id=APP, name="a", client_secret=Secret("s" * 32), bot_token=Secret("t" * 40))
    return WebhookService(db, box, Settings(database_url=url, secret_key=KEY))


@pytest.fixture(params=["sqlite", "postgres"])
def hooks_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_url(request, tmp_path, request.param)


@pytest.fixture
async def hooks(hooks_url: str) -> AsyncIterator[WebhookService]:
    service = await service_on(hooks_url)
    yield service
    await service.db.dispose()


@pytest.fixture
async def sqlite_hooks(migrated_path: Path) -> AsyncIterator[WebhookService]:
    service = await service_on(f"sqlite:///{migrated_path}")
    yield service
    await service.db.dispose()


async def emit(db: Database, type: str = "link.used_up") -> str:
    data = {"link_id": "lnk_1", "app_id": APP, "guild_id": "1200000000000000001", "uses": 3}
    return await db.run(lambda conn: add_event_sync(conn, app_id=APP, type=type, data=data))


async def states(hooks: WebhookService, event_id: str) -> dict[str, str]:
    event = await hooks.event(app_id=APP, event_id=event_id)
    return {d.endpoint_id: d.state for d in event.deliveries}


async def test_an_event_is_written_for_each_subscribed_endpoint_made_before_it(hooks: WebhookService) -> None:
    every, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/all", events=None)
    joins, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/joins", events=["join.succeeded"])
    off, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/off", events=None)
    await hooks.disable(app_id=APP, endpoint_id=off.id)
    event_id = await emit(hooks.db)
    later, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/later", events=None)
    assert await states(hooks, event_id) == {every.id: "pending", off.id: "skipped"}
    assert joins.id not in await states(hooks, event_id) and later.id not in await states(hooks, event_id)
    page, cursor = await hooks.events_page(
        app_id=APP, type=None, since=None, endpoint_id=None, delivery="skipped", cursor=None, limit=10
    )
    assert [e.id for e in page] == [event_id] and cursor is None
    assert (await hooks.event(app_id=APP, event_id=event_id)).as_json()["data"]["uses"] == 3


async def test_an_event_of_a_change_rolled_back_is_not_there(hooks: WebhookService) -> None:
    await hooks.add(app_id=APP, url="https://hooks.example.com/all", events=None)
    made: list[str] = []

    def change(conn: Connection) -> None:
        made.append(add_event_sync(conn, app_id=APP, type="link.used_up", data={"link_id": "lnk_x"}))
        raise RuntimeError("the change fails")

    with pytest.raises(RuntimeError):
        await hooks.db.run(change)
    page, _ = await hooks.events_page(
        app_id=APP, type=None, since=None, endpoint_id=None, delivery=None, cursor=None, limit=10
    )
    assert made and page == []
    assert await hooks.db.run(lambda conn: conn.execute(select(WebhookDeliveryRow.id)).all()) == []


async def test_at_most_ten_leases_per_endpoint_and_a_taken_over_lease_records_nothing(hooks: WebhookService) -> None:
    busy, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/busy", events=None)
    for _ in range(25):
        await emit(hooks.db)
    first = await hooks.db.run(lambda conn: deliveries.claim(conn, lease_seconds=20))
    assert len(first) == 10 and {c.endpoint_id for c in first} == {busy.id}
    assert await hooks.db.run(lambda conn: deliveries.claim(conn, lease_seconds=20)) == []  # 10 in flight
    # the first worker's leases run out (it hangs); another takes them over
    await hooks.db.run(lambda conn: conn.execute(update(WebhookDeliveryRow).values(lease_until=datetime(2000, 1, 1))))
    second = await hooks.db.run(lambda conn: deliveries.claim(conn, lease_seconds=20))
    assert {c.id for c in second} == {c.id for c in first}
    ok = deliveries.Result(at=datetime.now(UTC), status=200, duration_ms=5, error=None, answer="ok")
    late = deliveries.Result(at=datetime.now(UTC), status=500, duration_ms=5, error="HTTP 500", answer="no")
    taken = second[0]
    done = await hooks.db.run(lambda conn: deliveries.record(conn, taken, ok, schedule=(1.0,), jitter=False))
    stale = next(c for c in first if c.id == taken.id)
    lost = await hooks.db.run(lambda conn: deliveries.record(conn, stale, late, schedule=(1.0,), jitter=False))
    assert done.kept and not lost.kept
    attempts = await hooks.deliveries(app_id=APP, endpoint_id=busy.id)
    assert [(a.event_id, a.status) for a in attempts] == [(taken.event_id, 200)]
    assert await states(hooks, taken.event_id) == {busy.id: "delivered"}


async def test_prune_takes_delivered_events_and_their_attempts_never_one_waiting(hooks: WebhookService) -> None:
    endpoint, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/p", events=None)
    delivered, waiting = await emit(hooks.db), await emit(hooks.db)
    [claim, _] = await hooks.db.run(lambda conn: deliveries.claim(conn, lease_seconds=20))
    assert claim.event_id == delivered
    ok = deliveries.Result(at=datetime.now(UTC), status=204, duration_ms=1, error=None, answer=None)
    await hooks.db.run(lambda conn: deliveries.record(conn, claim, ok, schedule=(1.0,), jitter=False))
    assert await hooks.prune(before=datetime.now(UTC) + timedelta(minutes=1)) == 1
    assert await hooks.deliveries(app_id=APP, endpoint_id=endpoint.id) == []
    page, _ = await hooks.events_page(
        app_id=APP, type=None, since=None, endpoint_id=None, delivery=None, cursor=None, limit=10
    )
    assert [e.id for e in page] == [waiting]


def everything_stored(path: Path) -> tuple[str, bytes]:
    """Every row as SQL text, and the database file's bytes (the WAL checkpointed into it)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dump = "\n".join(conn.iterdump())
    return dump, path.read_bytes()


async def test_no_webhook_secret_is_in_the_database_in_clear(sqlite_hooks: WebhookService, migrated_path: Path) -> None:
    hooks = sqlite_hooks
    endpoint, first = await hooks.add(app_id=APP, url="https://hooks.example.com/s", events=None)
    second = await hooks.rotate_secret(app_id=APP, endpoint_id=endpoint.id)
    await hooks.test(app_id=APP, endpoint_id=endpoint.id)
    await hooks.db.dispose()
    dump, raw = everything_stored(migrated_path)
    for secret in (first, second):
        key_bytes = base64.b64decode(secret.removeprefix("whsec_"))
        for needle in (secret, secret.removeprefix("whsec_"), key_bytes.hex()):
            assert needle not in dump
            assert needle.encode() not in raw
        assert key_bytes not in raw
    assert "whsec_" not in dump


async def test_the_use_that_reaches_max_uses_writes_link_used_up(hooks: WebhookService) -> None:
    from guildgate.store.links import LinkRepo

    endpoint, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/l", events=["link.used_up"])
    links = LinkRepo(hooks.db)
    link = await links.create(
        app_id=APP,
        guild_id="1200000000000000001",
        guild_name=None,
        guild_icon=None,
        roles=[],
        title=None,
        max_uses=2,
        expires_at=None,
    )

    async def used_up() -> list[dict[str, object]]:
        page, _ = await hooks.events_page(
            app_id=APP, type="link.used_up", since=None, endpoint_id=endpoint.id, delivery=None, cursor=None, limit=10
        )
        return [e.as_json() for e in page]

    assert await links.claim_use(link.id)
    assert await used_up() == []
    assert await links.claim_use(link.id)
    assert not await links.claim_use(link.id)  # used up: no third use, no second event
    [event] = await used_up()
    assert event["data"] == {"link_id": link.id, "app_id": APP, "guild_id": "1200000000000000001", "uses": 2}
    assert event["deliveries"] == [{"endpoint_id": endpoint.id, "state": "pending", "attempts": 0}]


async def test_records_finished_by_the_group_writer_make_their_join_events(hooks: WebhookService) -> None:
    from guildgate.core.outcomes import Outcome, RecordState, Source
    from guildgate.core.ports import NewRecord, RecordUpdate
    from guildgate.store.repos import RecordRepo

    records = RecordRepo(hooks.db)
    new = NewRecord(app_id=APP, key_id=None, source=Source.LINK, developer_id=None, guild_id="1200000000000000001")
    pending = await records.create(new)
    refused = await records.create(
        new,
        finished=RecordUpdate(state=RecordState.FAILED, code=Outcome.LINK_USED_UP, detail="used up"),
    )
    page, _ = await hooks.events_page(
        app_id=APP, type=None, since=None, endpoint_id=None, delivery=None, cursor=None, limit=10
    )
    assert [(e.type, e.as_json()["data"]["record_id"]) for e in page] == [("join.failed", refused)]
    await records.finish(
        pending,
        RecordUpdate(state=RecordState.SUCCEEDED, code=Outcome.ALREADY_MEMBER, user_id="1300000000000000001"),
    )
    interrupted = await records.create(new)
    settled = RecordUpdate(state=RecordState.FAILED, code=Outcome.DISCORD_UNAVAILABLE, detail="settled at start-up")
    assert await records.settle(interrupted, settled)  # the crash's reconcile at the next start
    assert not await records.settle(interrupted, settled)  # already finished: no second event
    await records.aclose()
    failed, _ = await hooks.events_page(
        app_id=APP, type="join.failed", since=None, endpoint_id=None, delivery=None, cursor=None, limit=10
    )
    assert sorted(e.as_json()["data"]["record_id"] for e in failed) == sorted([refused, interrupted])
    page, _ = await hooks.events_page(
        app_id=APP, type="join.succeeded", since=None, endpoint_id=None, delivery=None, cursor=None, limit=10
    )
    [event] = [e.as_json() for e in page]
    assert event["data"]["record_id"] == pending and event["data"]["joined"] is False
    assert event["data"]["user_id"] == "1300000000000000001" and event["data"]["source"] == "link"


async def test_five_days_without_success_disables_and_tells_the_apps_other_endpoints(hooks: WebhookService) -> None:
    from guildgate.store.models import WebhookEndpointRow

    failing, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/down", events=None)
    other, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/up", events=None)
    since = datetime.now(UTC) - timedelta(days=4, hours=23)
    await hooks.db.run(
        lambda conn: conn.execute(
            update(WebhookEndpointRow).where(WebhookEndpointRow.id == failing.id).values(failing_since=since)
        )
    )
    assert await hooks.db.run(deliveries.disable_failing) == []  # not 5 days yet
    since = datetime.now(UTC) - timedelta(days=5, minutes=1)
    await hooks.db.run(
        lambda conn: conn.execute(
            update(WebhookEndpointRow).where(WebhookEndpointRow.id == failing.id).values(failing_since=since)
        )
    )
    [(endpoint_id, reason)] = await hooks.db.run(deliveries.disable_failing)
    assert endpoint_id == failing.id and "5 days" in reason
    assert (await hooks.get(app_id=APP, endpoint_id=failing.id)).disabled_reason == reason
    page, _ = await hooks.events_page(
        app_id=APP, type="webhook.endpoint_disabled", since=None, endpoint_id=None, delivery=None, cursor=None, limit=5
    )
    [told] = [e.as_json() for e in page]
    assert told["data"] == {"endpoint_id": failing.id, "url": "https://hooks.example.com/down", "reason": reason}
    assert told["deliveries"] == [{"endpoint_id": other.id, "state": "pending", "attempts": 0}]  # not to itself
    assert (await hooks.stats())[2] == 1


async def test_senders_claiming_at_once_stay_within_ten_in_flight_per_endpoint(
    hooks: WebhookService, hooks_url: str
) -> None:
    busy, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/busy", events=None)
    calm, _ = await hooks.add(app_id=APP, url="https://hooks.example.com/calm", events=None)
    for _ in range(40):
        await emit(hooks.db)
    senders = [Database(hooks_url) for _ in range(4)]  # four processes' connections
    try:
        claims = await asyncio.gather(
            *(db.run(partial(deliveries.claim, lease_seconds=20, first=n)) for n, db in enumerate(senders))
        )
    finally:
        for db in senders:
            await db.dispose()
    taken = [c for batch in claims for c in batch]
    assert len({c.id for c in taken}) == len(taken)  # no delivery leased twice
    for endpoint in (busy, calm):
        assert sum(c.endpoint_id == endpoint.id for c in taken) == 10
