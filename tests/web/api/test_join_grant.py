"""The join API's ``grant`` field over HTTP, against the sandbox, with the gateway's own database: a join makes a
grant (or renews the one its external_ref names), gives the requested roles to someone already in the server
(the roles they held before are noted, never the grant's to take), and gives an absent person's roles back."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import GUILD, ROLE_LOW, TOKENS, USER_IDS, Gateway, Sandbox
from tests.grantdb import grants_of, operator
from tests.helpers import envelope

ROLE_2 = "1200000000000000021"  # a second role below the bot's, added per test


def control(sandbox: Sandbox, method: str, path: str, body: dict[str, Any] | None = None) -> None:
    response = httpx.request(method, sandbox.proc.url + "/_sandbox" + path, json=body)
    assert response.status_code == 200, response.text


def join(gateway: Gateway, user: str, **fields: Any) -> dict[str, Any]:
    r = gateway.join({"authorization": TOKENS[user], "guild_id": GUILD, **fields})
    body = envelope(r)
    assert r.status_code == 200 and body["status"] == 1, body
    return {**body, "data": json.loads(body["data"])}


def ref() -> str:
    return "sub_" + secrets.token_hex(6)  # the gateway's database outlives each test: a reference of its own


def test_a_join_with_a_duration_makes_a_grant_and_the_same_reference_extends_it(
    gateway: Gateway, fresh: Sandbox
) -> None:
    sub = ref()
    first = join(gateway, "alice", roles=[ROLE_LOW], grant={"duration": "5s", "external_ref": sub})
    after = datetime.now(UTC)
    # at once, within the 5 s: the same reference renews the grant rather than making a second one
    again = join(gateway, "alice", roles=[ROLE_LOW], grant={"duration": "1h", "external_ref": sub})
    assert first["code"] == "joined" and again["code"] == "already_member"
    grant_id = first["data"]["grant_id"]
    assert grant_id.startswith("grt_") and again["data"]["grant_id"] == grant_id
    mine = [g for g in grants_of(gateway, USER_IDS["alice"]) if g.external_ref == sub]
    assert [g.id for g in mine] == [grant_id]  # no second grant
    [grant] = mine
    assert grant.roles == (ROLE_LOW,) and grant.source == "api" and grant.record_id == first["id"]
    assert grant.state.value == "active" and grant.revision >= 2
    assert grant.ends_at is not None and grant.ends_at >= after + timedelta(minutes=59)
    member = fresh.member(GUILD, USER_IDS["alice"])
    assert member is not None and ROLE_LOW in member["roles"]
    record = gateway.get(f"/api/record/{first['id']}").json()["data"]
    assert record["code"] == "joined"
    operator(gateway, "end", grant_id)  # nothing of this test's comes due later, in another test


def test_a_grant_for_5_seconds_ends_5_seconds_after_the_join(gateway: Gateway, fresh: Sandbox) -> None:
    before = datetime.now(UTC)
    made = join(gateway, "alice", roles=[ROLE_LOW], grant={"duration": "5s", "external_ref": ref()})
    after = datetime.now(UTC)
    [grant] = [g for g in grants_of(gateway, USER_IDS["alice"]) if g.id == made["data"]["grant_id"]]
    assert grant.ends_at is not None
    assert before + timedelta(seconds=5) <= grant.ends_at <= after + timedelta(seconds=5)
    operator(gateway, "end", grant.id)  # ended now, in this test: no Discord call from it in a later test


def test_an_end_time_and_an_open_grant(gateway: Gateway, fresh: Sandbox) -> None:
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    made = join(gateway, "carol", roles=[ROLE_LOW], grant={"ends_at": until.isoformat(), "on_end": "kick"})
    [grant] = [g for g in grants_of(gateway, USER_IDS["carol"]) if g.id == made["data"]["grant_id"]]
    assert grant.ends_at == until and grant.on_end.value == "kick"
    opened = join(gateway, "carol", roles=[ROLE_LOW], grant={})
    [grant] = [g for g in grants_of(gateway, USER_IDS["carol"]) if g.id == opened["data"]["grant_id"]]
    assert grant.ends_at is None and grant.on_end.value == "remove_roles"


def test_an_existing_member_gets_the_roles_and_those_held_before_are_noted(gateway: Gateway, fresh: Sandbox) -> None:
    bob = USER_IDS["bob"]  # a member in the fixture
    control(fresh, "PATCH", f"/guilds/{GUILD}", {"roles": {ROLE_2: {"name": "cohort", "position": 2}}})
    control(fresh, "PUT", f"/guilds/{GUILD}/members/{bob}/roles/{ROLE_LOW}")  # held before the grant
    made = join(gateway, "bob", roles=[ROLE_LOW, ROLE_2], grant={"duration": "1h", "external_ref": ref()})
    assert made["code"] == "already_member" and made["data"]["joined"] is False
    member = fresh.member(GUILD, bob)
    assert member is not None and set(member["roles"]) == {ROLE_LOW, ROLE_2}
    [grant] = [g for g in grants_of(gateway, bob) if g.id == made["data"]["grant_id"]]
    assert grant.roles == (ROLE_LOW, ROLE_2) and grant.roles_preexisting == (ROLE_LOW,)
    operator(gateway, "end", grant.id)  # its end takes ROLE_2 only: ROLE_LOW was bob's before
    member = fresh.member(GUILD, bob)
    assert member is not None and member["roles"] == [ROLE_LOW]


def test_plain_roles_make_no_grant_but_a_member_gets_them(gateway: Gateway, fresh: Sandbox) -> None:
    bob = USER_IDS["bob"]
    control(fresh, "PATCH", f"/guilds/{GUILD}", {"roles": {ROLE_2: {"name": "cohort", "position": 2}}})
    known = {g.id for g in grants_of(gateway, bob)}
    made = join(gateway, "bob", roles=[ROLE_2])
    assert made["code"] == "already_member" and "grant_id" not in made["data"]
    member = fresh.member(GUILD, bob)
    assert member is not None and ROLE_2 in member["roles"]
    assert {g.id for g in grants_of(gateway, bob)} == known


def test_a_bad_grant_is_refused_naming_the_field_and_nothing_is_sent(gateway: Gateway, fresh: Sandbox) -> None:
    cases = {
        "grant: give at most one of ends_at and duration": {"ends_at": "2099-01-01T00:00:00Z", "duration": "5s"},
        "grant.ends_at is not in the future": {"ends_at": "2020-01-01T00:00:00Z"},
        "grant.ends_at: '2027-02-30T00:00:00Z' is not an RFC 3339 time": {"ends_at": "2027-02-30T00:00:00Z"},
        "grant.duration:": {"duration": "forever"},
        "grant.on_end must be remove_roles, kick or keep": {"on_end": "ban"},
        "grant.external_ref must be 1-128 printable ASCII": {"external_ref": "x" * 129},
        "grant: Input should be a valid dictionary": "30d",
    }
    for message, grant in cases.items():
        r = gateway.join(
            {"authorization": TOKENS["alice"], "guild_id": GUILD, "grant": grant}, headers={"Accept-Language": "en"}
        )
        body = envelope(r)
        assert r.status_code == 400 and body["code"] == "invalid_request", body
        assert message in body["msg"], (message, body["msg"])
    assert fresh.stats()["requests"].get("PUT /guilds/{guild_id}/members/{user_id}", 0) == 0
    assert fresh.member(GUILD, USER_IDS["alice"]) is None


def test_an_absent_person_who_joins_again_gets_the_roles_back(gateway: Gateway, fresh: Sandbox) -> None:
    carol = USER_IDS["carol"]
    made = join(gateway, "carol", roles=[ROLE_LOW], grant={"duration": "1h", "external_ref": ref()})
    control(fresh, "DELETE", f"/guilds/{GUILD}/members/{carol}")  # carol leaves the server
    summary = operator(gateway, "sync", GUILD)
    assert int(str(summary["absent"])) >= 1, summary
    [grant] = [g for g in grants_of(gateway, carol) if g.id == made["data"]["grant_id"]]
    assert grant.absent_since is not None and grant.state.value == "active"

    back = join(gateway, "carol")  # no roles asked, no grant: the grant's roles come back all the same
    assert back["code"] == "joined" and "grant_id" not in back["data"]
    member = fresh.member(GUILD, carol)
    assert member is not None and ROLE_LOW in member["roles"]
    [grant] = [g for g in grants_of(gateway, carol) if g.id == made["data"]["grant_id"]]
    assert grant.absent_since is None and grant.state.value == "active"
    operator(gateway, "end", grant.id)


def test_a_reference_of_another_persons_grant_refuses_the_join_before_anything_is_added(
    gateway: Gateway, fresh: Sandbox
) -> None:
    sub = ref()
    alices = join(gateway, "alice", roles=[ROLE_LOW], grant={"duration": "1h", "external_ref": sub})
    [before] = [g for g in grants_of(gateway, USER_IDS["alice"]) if g.id == alices["data"]["grant_id"]]
    puts = dict(fresh.stats()["requests"])
    for user in ("carol", "bob"):  # carol is not in the server, bob is
        r = gateway.join(
            {"authorization": TOKENS[user], "guild_id": GUILD, "roles": [ROLE_LOW], "grant": {"external_ref": sub}},
            headers={"Accept-Language": "en"},
        )
        body = envelope(r)
        assert r.status_code == 409 and body["code"] == "external_ref_taken", body
        assert "another person's active grant" in body["msg"]
        record = gateway.get(f"/api/record/{body['id']}").json()["data"]
        assert (record["state"], record["code"]) == ("failed", "external_ref_taken")
    now = dict(fresh.stats()["requests"])
    for call in (
        "PUT /guilds/{guild_id}/members/{user_id}",
        "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}",
    ):
        assert now.get(call, 0) == puts.get(call, 0), call  # nothing added at Discord
    assert fresh.member(GUILD, USER_IDS["carol"]) is None
    member = fresh.member(GUILD, USER_IDS["bob"])
    assert member is not None and ROLE_LOW not in member["roles"]
    [after] = [g for g in grants_of(gateway, USER_IDS["alice"]) if g.id == before.id]
    assert after == before  # not renewed, not taken over
    assert [g for g in grants_of(gateway, USER_IDS["carol"]) if g.external_ref == sub] == []
    operator(gateway, "end", before.id)


def test_a_grant_without_roles_is_refused_naming_the_field(gateway: Gateway, fresh: Sandbox) -> None:
    for roles in ({}, {"roles": []}, {"roles": ""}):
        r = gateway.join(
            {"authorization": TOKENS["alice"], "guild_id": GUILD, "grant": {"on_end": "kick"}, **roles},
            headers={"Accept-Language": "en"},
        )
        body = envelope(r)
        assert r.status_code == 400 and body["code"] == "invalid_request", body
        assert "grant needs roles: give the roles this grant holds in `roles`" in body["msg"], body
    assert fresh.stats()["requests"].get("PUT /guilds/{guild_id}/members/{user_id}", 0) == 0
    assert fresh.member(GUILD, USER_IDS["alice"]) is None


def test_a_joins_grant_ends_exactly_its_duration_after_it_starts(gateway: Gateway, fresh: Sandbox) -> None:
    made = join(gateway, "alice", roles=[ROLE_LOW], grant={"duration": "5s", "external_ref": ref()})
    [grant] = [g for g in grants_of(gateway, USER_IDS["alice"]) if g.id == made["data"]["grant_id"]]
    assert grant.ends_at is not None and grant.ends_at - grant.starts_at == timedelta(seconds=5)
    operator(gateway, "end", grant.id)
