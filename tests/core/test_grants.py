"""Grants in-process: GrantService over a migrated SQLite database and DiscordRest against the sandbox (what
the server wires), with the sandbox's own controls standing in for a server's staff (a role taken away by hand,
a member who leaves). Checked at the sandbox: what was given, removed and kicked; in the database: the events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from guildgate.core.errors import GrantEndedError, NotAMemberError, UnknownGrantError
from guildgate.core.grants import EndReason, GrantState, GrantTerms, OnEnd, parse_time
from guildgate.services.grant_ends import Ended
from guildgate.services.grants import GrantFilters, GrantService
from guildgate.store.models import EventRow
from guildgate.workers.grants import GrantSweeper
from tests.conftest import APP_A, APP_B, GUILD, ROLE_LOW, SECRETS, USER_IDS, WORLD
from tests.core.conftest import Core

BOB = USER_IDS["bob"]  # a member of GUILD in the fixture
ALICE = USER_IDS["alice"]  # not a member
ROLE_2 = "1200000000000000021"  # a second role below the bot's, added per test


@pytest.fixture
async def svc(core: Core) -> AsyncIterator[GrantService]:
    control(core, "PATCH", f"/guilds/{GUILD}", {"roles": {ROLE_2: {"name": "cohort", "position": 2}}})
    yield GrantService(db=core.db, apps=core.apps, discord=core.discord)


def control(core: Core, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.request(method, core.sandbox.proc.url + "/_sandbox" + path, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def roles_of(core: Core, user: str) -> list[str]:
    member = core.sandbox.member(GUILD, user)
    assert member is not None, f"{user} is not a member"
    return list(member["roles"])


async def events(core: Core, grant_id: str) -> list[dict[str, Any]]:
    async with core.db.session() as s:
        rows = (await s.scalars(select(EventRow).order_by(EventRow.created_at))).all()
    bodies = [json.loads(r.body) for r in rows]
    return [b for b in bodies if b["data"].get("id") == grant_id]


def terms(seconds: float | None = 3600, **extra: Any) -> GrantTerms:
    ends = None if seconds is None else datetime.now(UTC) + timedelta(seconds=seconds)
    return GrantTerms(ends_at=ends, **extra)


async def test_a_grant_gives_its_roles_and_its_end_takes_them_once(core: Core, svc: GrantService) -> None:
    app = await core.app()
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms())
    assert made.created and made.grant.state is GrantState.ACTIVE and made.grant.revision == 1
    assert ROLE_LOW in roles_of(core, BOB)
    assert made.grant.as_json()["roles_preexisting"] == []

    ended = await svc.end(app=app, app_id=APP_A, grant_id=made.grant.id)
    assert ended.grant.state is GrantState.ENDED and ended.grant.end_reason is EndReason.REVOKED
    assert ended.grant.revision == 2
    assert ROLE_LOW not in roles_of(core, BOB)
    assert core.sandbox.stats()["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 1}
    again = await svc.end(app=app, app_id=APP_A, grant_id=made.grant.id)  # ending an ended grant: unchanged
    assert again.grant == ended.grant
    assert core.sandbox.stats()["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 1}

    seen = await events(core, made.grant.id)
    assert [(e["type"], e["data"]["revision"]) for e in seen] == [("grant.started", 1), ("grant.ended", 2)]
    assert seen[1]["data"]["action"] == "roles_removed" and seen[1]["data"]["end_reason"] == "revoked"
    audit = control(core, "GET", f"/audit?target_id={BOB}")["entries"]
    assert any(made.grant.id in (e.get("reason") or "") for e in audit), audit
    with pytest.raises(GrantEndedError):
        await svc.update(app=app, app_id=APP_A, grant_id=made.grant.id, ends_at=None)


async def test_a_role_held_before_the_grant_survives_its_end(core: Core, svc: GrantService) -> None:
    control(core, "PUT", f"/guilds/{GUILD}/members/{BOB}/roles/{ROLE_LOW}")
    app = await core.app()
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW, ROLE_2), terms=terms())
    assert made.grant.roles_preexisting == (ROLE_LOW,)
    await svc.end(app=app, app_id=APP_A, grant_id=made.grant.id)
    assert ROLE_LOW in roles_of(core, BOB) and ROLE_2 not in roles_of(core, BOB)
    assert core.sandbox.stats()["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_2}": 1}


async def test_the_overlap_rule_keeps_a_role_another_active_grant_gives(core: Core, svc: GrantService) -> None:
    app = await core.app()
    first = await svc.create(
        app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms(external_ref="sub_1")
    )
    second = await svc.create(
        app=app,
        app_id=APP_A,
        guild_id=GUILD,
        user_id=BOB,
        roles=(ROLE_LOW, ROLE_2),
        terms=terms(external_ref="sub_2"),
    )
    assert second.created and second.grant.id != first.grant.id
    await svc.end(app=app, app_id=APP_A, grant_id=second.grant.id)
    assert ROLE_LOW in roles_of(core, BOB) and ROLE_2 not in roles_of(core, BOB)
    await svc.end(app=app, app_id=APP_A, grant_id=first.grant.id)
    assert ROLE_LOW not in roles_of(core, BOB)
    removals = core.sandbox.stats()["role_removals"]
    assert removals == {f"{GUILD}/{BOB}/{ROLE_2}": 1, f"{GUILD}/{BOB}/{ROLE_LOW}": 1}


async def test_a_kick_is_a_role_removal_while_another_grant_is_active(core: Core, svc: GrantService) -> None:
    control(core, "PATCH", f"/guilds/{GUILD}", {"bots": {APP_A: ["MANAGE_ROLES", "KICK_MEMBERS"]}})
    app = await core.app()
    keep = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_2,), terms=terms())
    kick = await svc.create(
        app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms(on_end=OnEnd.KICK)
    )
    ended = await svc.end(app=app, app_id=APP_A, grant_id=kick.grant.id)
    assert ended.grant.end_action is not None and ended.grant.end_action.value == "roles_removed"
    assert core.sandbox.stats()["kicks"] == {} and ROLE_LOW not in roles_of(core, BOB)

    last = await svc.end(app=app, app_id=APP_A, grant_id=keep.grant.id, on_end=OnEnd.KICK)
    assert last.grant.end_action is not None and last.grant.end_action.value == "kicked"
    assert core.sandbox.stats()["kicks"] == {f"{GUILD}/{BOB}": 1}
    assert core.sandbox.member(GUILD, BOB) is None


async def test_without_manage_roles_the_end_fails_with_the_reason_and_sync_retries_it(
    core: Core, svc: GrantService
) -> None:
    app = await core.app()
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms())
    control(core, "PATCH", f"/guilds/{GUILD}", {"bots": {APP_A: ["CREATE_INSTANT_INVITE"]}})
    failed = await svc.end(app=app, app_id=APP_A, grant_id=made.grant.id)
    assert failed.grant.state is GrantState.END_FAILED
    assert failed.grant.last_error is not None
    assert "bot_missing_permissions" in failed.grant.last_error and "50013" in failed.grant.last_error
    assert ROLE_LOW in roles_of(core, BOB)
    assert [e["type"] for e in await events(core, made.grant.id)][-1] == "grant.end_failed"
    assert [g.id for g in await svc.failures()] == [made.grant.id]

    control(core, "PATCH", f"/guilds/{GUILD}", {"bots": {APP_A: ["MANAGE_ROLES"]}})
    summary = await svc.sync()
    assert (summary.retried, summary.failed) == (1, 0)
    now = await svc.get(app_id=None, grant_id=made.grant.id)
    assert now.state is GrantState.ENDED and ROLE_LOW not in roles_of(core, BOB)


async def test_a_member_already_gone_ends_the_grant_with_action_none(core: Core, svc: GrantService) -> None:
    app = await core.app()
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms())
    control(core, "DELETE", f"/guilds/{GUILD}/members/{BOB}")  # leaves by themselves
    ended = await svc.end(app=app, app_id=APP_A, grant_id=made.grant.id)
    assert ended.grant.state is GrantState.ENDED
    assert [e["data"].get("action") for e in await events(core, made.grant.id)][-1] == "none"


async def test_not_a_member_and_another_apps_grant(core: Core, svc: GrantService) -> None:
    app = await core.app()
    with pytest.raises(NotAMemberError):
        await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=ALICE, roles=(ROLE_LOW,), terms=terms())
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms())
    with pytest.raises(UnknownGrantError):
        await svc.get(app_id=APP_B, grant_id=made.grant.id)
    with pytest.raises(UnknownGrantError):
        await svc.end(app=await core.app(APP_B), app_id=APP_B, grant_id=made.grant.id)
    with pytest.raises(UnknownGrantError):
        await svc.get(app_id=APP_A, grant_id="grt_0000000000000000")
    assert (await svc.get(app_id=APP_A, grant_id=made.grant.id)).state is GrantState.ACTIVE


async def test_an_external_ref_renews_and_late_facts_lose(core: Core, svc: GrantService) -> None:
    app = await core.app()
    t0 = parse_time("2026-12-01T00:00:00Z")
    made = await svc.create(
        app=app,
        app_id=APP_A,
        guild_id=GUILD,
        user_id=BOB,
        roles=(ROLE_LOW,),
        terms=terms(3600, external_ref="sub_9", as_of=t0),
    )
    later_end = datetime.now(UTC) + timedelta(days=30)
    renewed = await svc.create(
        app=app,
        app_id=APP_A,
        guild_id=GUILD,
        user_id=BOB,
        roles=(ROLE_LOW,),
        terms=GrantTerms(ends_at=later_end, external_ref="sub_9", as_of=t0 + timedelta(days=1)),
    )
    assert not renewed.created and renewed.grant.id == made.grant.id
    assert renewed.grant.ends_at == later_end and renewed.grant.revision == 2
    late = await svc.end_by_ref(app=app, app_id=APP_A, external_ref="sub_9", as_of=t0)  # an older cancel
    assert [(r.stale, r.grant.state) for r in late] == [(True, GrantState.ACTIVE)]
    assert ROLE_LOW in roles_of(core, BOB)
    ended = await svc.end_by_ref(app=app, app_id=APP_A, external_ref="sub_9", as_of=t0 + timedelta(days=2))
    assert [(r.stale, r.grant.state) for r in ended] == [(False, GrantState.ENDED)]
    assert await svc.end_by_ref(app=app, app_id=APP_A, external_ref="sub_9") == []


async def test_sync_repairs_a_role_taken_by_hand_and_marks_a_departed_member_absent(
    core: Core, svc: GrantService
) -> None:
    app = await core.app()
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms())
    control(core, "DELETE", f"/guilds/{GUILD}/members/{BOB}/roles/{ROLE_LOW}")
    seen: list[tuple[int, int]] = []
    dry = await svc.sync(dry_run=True)
    assert (dry.checked, dry.repaired) == (1, 1) and ROLE_LOW not in roles_of(core, BOB)
    summary = await svc.sync(progress=lambda done, total: seen.append((done, total)))
    assert (summary.checked, summary.repaired, summary.absent, summary.failed) == (1, 1, 0, 0)
    assert seen == [(1, 1)] and ROLE_LOW in roles_of(core, BOB)
    repaired = (await events(core, made.grant.id))[-1]
    assert repaired["type"] == "grant.repaired" and repaired["data"]["roles_restored"] == [ROLE_LOW]

    control(core, "DELETE", f"/guilds/{GUILD}/members/{BOB}")
    summary = await svc.sync()
    assert (summary.checked, summary.absent) == (1, 1)
    absent = await svc.get(app_id=APP_A, grant_id=made.grant.id)
    assert absent.state is GrantState.ACTIVE and absent.absent_since is not None
    assert (await svc.sync()).absent == 1  # still absent: counted at every sync, marked (and told) once
    assert [e["type"] for e in await events(core, made.grant.id)].count("grant.absent") == 1

    control(core, "PUT", f"/guilds/{GUILD}/members/{BOB}", {"roles": []})  # back, as a join would bring them
    await svc.after_join(
        app=app,
        app_id=APP_A,
        guild_id=GUILD,
        user_id=BOB,
        joined=True,
        roles=(),
        terms=None,
        source="api",
        link_id=None,
        record_id="r1",
        grant_id=None,
    )
    back = await svc.get(app_id=APP_A, grant_id=made.grant.id)
    assert back.absent_since is None and ROLE_LOW in roles_of(core, BOB)
    assert [e["type"] for e in await events(core, made.grant.id)][-2:] == ["grant.absent", "grant.restored"]


async def test_a_join_makes_one_grant_per_link_and_person(core: Core, svc: GrantService) -> None:
    app = await core.app()
    link_terms = terms(600)
    first_id = await svc.prepare(app_id=APP_A, guild_id=GUILD, external_ref=None, link_id="lnk_1", user_id=BOB)
    made = await svc.after_join(
        app=app,
        app_id=APP_A,
        guild_id=GUILD,
        user_id=BOB,
        joined=False,
        roles=(ROLE_LOW,),
        terms=link_terms,
        source="link",
        link_id="lnk_1",
        record_id="r1",
        grant_id=first_id,
        preexisting=(),
    )
    assert made is not None and made.id == first_id and made.link_id == "lnk_1"
    assert await svc.prepare(app_id=APP_A, guild_id=GUILD, external_ref=None, link_id="lnk_1", user_id=BOB) == first_id
    again = await svc.after_join(
        app=app,
        app_id=APP_A,
        guild_id=GUILD,
        user_id=BOB,
        joined=False,
        roles=(ROLE_LOW,),
        terms=terms(9999),
        source="link",
        link_id="lnk_1",
        record_id="r2",
        grant_id=first_id,
        preexisting=(ROLE_LOW,),
    )
    assert again is not None and again.id == first_id and again.ends_at == made.ends_at  # no new time
    await svc.check_link_access(link_id="lnk_1", user_id=BOB)
    await svc.end(app=app, app_id=APP_A, grant_id=first_id)
    with pytest.raises(Exception, match="access") as refused:
        await svc.check_link_access(link_id="lnk_1", user_id=BOB)
    assert getattr(refused.value, "outcome", None) is not None and refused.value.outcome.value == "access_ended"


async def test_no_secret_in_any_grant_or_event(core: Core, svc: GrantService) -> None:
    app = await core.app()
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms())
    await svc.end(app=app, app_id=APP_A, grant_id=made.grant.id)
    async with core.db.session() as s:
        bodies = b"".join(r.body for r in (await s.scalars(select(EventRow))).all())
    text = bodies.decode() + json.dumps(made.grant.as_json())
    secrets = SECRETS | {a["bot_token"] for a in WORLD["applications"]}
    assert text and not [s for s in secrets if s in text]


async def test_a_discord_outage_leaves_the_grant_due_and_the_sweep_ends_it_later(core: Core, svc: GrantService) -> None:
    """5xx on every removal: the sweep leaves the grant active (retried with backoff), records no end; once
    Discord answers again, a later sweep ends it, with one removal that counted."""
    app = await core.app()
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms())
    await svc.update(app=app, app_id=APP_A, grant_id=made.grant.id, ends_at=datetime.now(UTC) + timedelta(seconds=1))
    sweeper = GrantSweeper(grants=svc, interval=1.0)
    remove = "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
    core.sandbox.faults({"routes": {remove: {"error_rate": 1.0, "status": 503}}})
    await asyncio.sleep(1.1)
    counts = await sweeper.sweep()
    assert counts[Ended.RETRY] == 1 and counts[Ended.ENDED] == 0
    held = await svc.get(app_id=APP_A, grant_id=made.grant.id)
    assert held.state is GrantState.ACTIVE and held.revision == 2  # a retry is no change of the grant
    assert (await sweeper.sweep())[Ended.RETRY] == 0  # held back for its backoff
    core.sandbox.faults({})
    give_up = time.monotonic() + 30
    while (await svc.get(app_id=APP_A, grant_id=made.grant.id)).state is GrantState.ACTIVE:
        assert time.monotonic() < give_up, "the retried end never came"
        await sweeper.sweep()
        await asyncio.sleep(0.5)
    ended = await svc.get(app_id=APP_A, grant_id=made.grant.id)
    assert ended.end_reason is EndReason.EXPIRED and ROLE_LOW not in roles_of(core, BOB)
    assert core.sandbox.stats()["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 1}


async def test_a_past_end_in_a_change_revokes_the_grant_now(core: Core, svc: GrantService) -> None:
    app = await core.app()
    made = await svc.create(
        app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW,), terms=terms(seconds=None)
    )
    assert made.grant.ends_at is None
    changed = await svc.update(
        app=None, app_id=None, grant_id=made.grant.id, ends_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert changed.grant.state is GrantState.ENDED and changed.grant.end_reason is EndReason.REVOKED
    assert [e["type"] for e in await events(core, made.grant.id)] == ["grant.started", "grant.updated", "grant.ended"]


async def test_grants_are_read_newest_first_in_pages_with_filters(core: Core, svc: GrantService) -> None:
    app = await core.app()
    made = [
        await svc.create(
            app=app,
            app_id=APP_A,
            guild_id=GUILD,
            user_id=BOB,
            roles=(ROLE_LOW,),
            terms=terms(external_ref=f"ref_{n}"),
        )
        for n in range(5)
    ]
    await svc.end(app=app, app_id=APP_A, grant_id=made[0].grant.id)
    first, cursor = await svc.page(app_id=APP_A, filters=GrantFilters(), cursor=None, limit=3)
    assert [g.id for g in first] == [m.grant.id for m in made[::-1][:3]] and cursor is not None
    rest, end = await svc.page(app_id=APP_A, filters=GrantFilters(), cursor=cursor, limit=3)
    assert [g.id for g in rest] == [m.grant.id for m in made[::-1][3:]] and end is None
    ended, _ = await svc.page(
        app_id=APP_A, filters=GrantFilters(state=GrantState.ENDED, user_id=BOB), cursor=None, limit=10
    )
    assert [g.id for g in ended] == [made[0].grant.id]
    by_ref, _ = await svc.page(app_id=APP_A, filters=GrantFilters(external_ref="ref_3"), cursor=None, limit=10)
    assert [g.id for g in by_ref] == [made[3].grant.id]
    assert (await svc.page(app_id=APP_B, filters=GrantFilters(), cursor=None, limit=10))[0] == []
    assert len((await svc.page(app_id=None, filters=GrantFilters(absent=False), cursor=None, limit=10))[0]) == 5
    soon = await svc.ending_soon(within=timedelta(days=7))
    assert {g.id for g in soon} == {m.grant.id for m in made[1:]}


async def test_a_change_of_roles_gives_the_new_and_takes_the_dropped_but_never_one_held_before(
    core: Core, svc: GrantService
) -> None:
    control(core, "PUT", f"/guilds/{GUILD}/members/{BOB}/roles/{ROLE_2}")  # held before any grant
    app = await core.app()
    made = await svc.create(app=app, app_id=APP_A, guild_id=GUILD, user_id=BOB, roles=(ROLE_LOW, ROLE_2), terms=terms())
    assert made.grant.roles_preexisting == (ROLE_2,)
    changed = await svc.update(app=app, app_id=APP_A, grant_id=made.grant.id, roles=(ROLE_LOW,))
    assert changed.grant.roles == (ROLE_LOW,) and changed.grant.roles_preexisting == ()
    assert ROLE_2 in roles_of(core, BOB)  # it was the person's before: dropping it from the grant takes nothing
    changed = await svc.update(app=app, app_id=APP_A, grant_id=made.grant.id, roles=(ROLE_2,))
    assert ROLE_LOW not in roles_of(core, BOB) and ROLE_2 in roles_of(core, BOB)
    assert core.sandbox.stats()["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 1}
    assert changed.grant.revision == 3
    with pytest.raises(Exception, match="roles"):
        await svc.update(app=app, app_id=APP_A, grant_id=made.grant.id, roles=("not-a-role",))
