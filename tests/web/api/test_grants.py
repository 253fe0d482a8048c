"""The grants API over real HTTP, with the real database, against the sandbox: what a billing system or a bot
sees (access.md, "Grants": "Where grants come from" item 3, and "Changing, ending, reading")."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import Gateway, Sandbox
from tests.grantworld import ALICE, BOB, CAROL, Server, call, removals, roles_at, servers

GRANT_FIELDS = {
    "id",
    "app_id",
    "guild_id",
    "user_id",
    "roles",
    "state",
    "starts_at",
    "ends_at",
    "on_end",
    "external_ref",
    "source",
    "link_id",
    "record_id",
    "roles_preexisting",
    "absent_since",
    "revision",
    "as_of",
    "ended_at",
    "end_reason",
    "last_error",
    "created_at",
    "updated_at",
}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post(gateway: Gateway, body: dict[str, Any], key: str = "a") -> httpx.Response:
    return call(gateway.proc.url, "POST", "/api/grants", gateway.keys[key], json=body)


def grant(server: Server, user: str = BOB, **more: Any) -> dict[str, Any]:
    return {"guild_id": server.id, "user_id": user, "roles": [server.roles[0]], **more}


def data(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == 1, body
    return dict(body["data"])


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["code"]) == (0, code), body
    return str(body["msg"])


def test_post_gives_the_roles_now_and_answers_the_grant(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    before = datetime.now(UTC)
    made = data(post(gateway, grant(server, duration="30d", external_ref="sub_first")), 201)
    assert set(made) == GRANT_FIELDS | {"stale"}
    assert made["id"].startswith("grt_") and made["stale"] is False
    assert (made["state"], made["source"], made["revision"], made["on_end"]) == ("active", "api", 1, "remove_roles")
    assert (made["guild_id"], made["user_id"], made["roles"], made["external_ref"]) == (
        server.id,
        BOB,
        [server.roles[0]],
        "sub_first",
    )
    assert before + timedelta(days=30) - timedelta(minutes=1) < _at(made["ends_at"]) < before + timedelta(days=31)
    assert made["ends_at"].endswith("Z") and made["ended_at"] is None
    assert server.roles[0] in roles_at(fresh, server, BOB)  # given at Discord, now
    shown = data(call(gateway.proc.url, "GET", f"/api/grants/{made['id']}", gateway.keys["a"]))
    assert shown == {k: v for k, v in made.items() if k != "stale"}


def test_post_with_the_same_external_ref_extends_the_grant_instead_of_making_a_second(
    gateway: Gateway, fresh: Sandbox
) -> None:
    (server,) = servers(fresh)
    first = data(post(gateway, grant(server, duration="1d", external_ref="sub_renew")), 201)
    renewed = data(post(gateway, grant(server, duration="30d", external_ref="sub_renew")), 200)
    assert renewed["id"] == first["id"]
    assert _at(renewed["ends_at"]) > _at(first["ends_at"]) + timedelta(days=28)
    assert renewed["revision"] == first["revision"] + 1
    listed = data(call(gateway.proc.url, "GET", "/api/grants", gateway.keys["a"], params={"guild_id": server.id}))
    assert [g["id"] for g in listed["grants"]] == [first["id"]]


def test_patch_roles_replaces_the_set_at_discord(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    low, middle, _ = server.roles
    made = data(post(gateway, grant(server, roles=[low], duration="7d")), 201)
    changed = data(
        call(gateway.proc.url, "PATCH", f"/api/grants/{made['id']}", gateway.keys["a"], json={"roles": [middle]})
    )
    assert changed["roles"] == [middle] and changed["revision"] == 2
    held = roles_at(fresh, server, BOB)
    assert middle in held and low not in held
    assert removals(fresh, server, BOB, low) == 1
    later = datetime.now(UTC) + timedelta(days=60)
    extended = data(
        call(gateway.proc.url, "PATCH", f"/api/grants/{made['id']}", gateway.keys["a"], json={"ends_at": _z(later)})
    )
    assert extended["ends_at"] == _z(later) and extended["state"] == "active"
    opened = data(
        call(gateway.proc.url, "PATCH", f"/api/grants/{made['id']}", gateway.keys["a"], json={"ends_at": None})
    )
    assert opened["ends_at"] is None and opened["state"] == "active"


def test_delete_ends_the_grant_now_and_removes_the_role_exactly_once(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    made = data(post(gateway, grant(server, duration="30d")), 201)
    path = f"/api/grants/{made['id']}"
    ended = data(call(gateway.proc.url, "DELETE", path, gateway.keys["a"]))
    assert (ended["state"], ended["end_reason"]) == ("ended", "revoked")
    assert ended["ended_at"] is not None
    assert server.roles[0] not in roles_at(fresh, server, BOB)
    again = data(call(gateway.proc.url, "DELETE", path, gateway.keys["a"]))  # an ended grant: as it is
    assert (again["revision"], again["state"]) == (ended["revision"], "ended")
    assert removals(fresh, server, BOB, server.roles[0]) == 1
    msg = refused(call(gateway.proc.url, "PATCH", path, gateway.keys["a"], json={"ends_at": None}), 409, "grant_ended")
    assert "ended" in msg


def test_delete_with_on_end_keep_leaves_the_roles(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    made = data(post(gateway, grant(server)), 201)
    assert made["ends_at"] is None  # neither ends_at nor duration: open-ended
    path = f"/api/grants/{made['id']}"
    ended = data(call(gateway.proc.url, "DELETE", path, gateway.keys["a"], params={"on_end": "keep"}))
    assert ended["state"] == "ended"
    assert server.roles[0] in roles_at(fresh, server, BOB)
    assert removals(fresh, server, BOB, server.roles[0]) == 0


def test_by_external_ref_acts_on_every_server(gateway: Gateway, fresh: Sandbox) -> None:
    first, second = servers(fresh, 2)
    ref = f"sub_many_{first.id[-6:]}"
    made = [data(post(gateway, grant(s, duration="30d", external_ref=ref)), 201) for s in (first, second)]
    until = datetime.now(UTC) + timedelta(days=90)
    patched = data(
        call(
            gateway.proc.url,
            "PATCH",
            "/api/grants",
            gateway.keys["a"],
            params={"external_ref": ref},
            json={"ends_at": _z(until)},
        )
    )
    assert sorted(g["id"] for g in patched["grants"]) == sorted(g["id"] for g in made)
    assert {g["ends_at"] for g in patched["grants"]} == {_z(until)}
    ended = data(call(gateway.proc.url, "DELETE", "/api/grants", gateway.keys["a"], params={"external_ref": ref}))
    assert sorted(g["id"] for g in ended["grants"]) == sorted(g["id"] for g in made)
    assert {(g["state"], g["end_reason"]) for g in ended["grants"]} == {("ended", "revoked")}
    for server in (first, second):
        assert server.roles[0] not in roles_at(fresh, server, BOB)
        assert removals(fresh, server, BOB, server.roles[0]) == 1
    none = data(call(gateway.proc.url, "DELETE", "/api/grants", gateway.keys["a"], params={"external_ref": ref}))
    assert none == {"grants": []}  # none active any more
    refused(call(gateway.proc.url, "DELETE", "/api/grants", gateway.keys["a"]), 400, "invalid_request")


def test_a_late_fact_changes_nothing_and_says_stale(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    newer, older = "2026-12-01T10:00:00Z", "2026-11-01T10:00:00Z"
    made = data(post(gateway, grant(server, duration="30d", external_ref="sub_late", as_of=newer)), 201)
    path = f"/api/grants/{made['id']}"
    late = data(call(gateway.proc.url, "PATCH", path, gateway.keys["a"], json={"ends_at": None, "as_of": older}))
    assert late["stale"] is True
    assert (late["ends_at"], late["revision"], late["as_of"]) == (made["ends_at"], 1, newer)
    late_end = data(call(gateway.proc.url, "DELETE", path, gateway.keys["a"], params={"as_of": older}))
    assert late_end["stale"] is True and late_end["state"] == "active"
    late_post = data(post(gateway, grant(server, duration="1d", external_ref="sub_late", as_of=older)), 200)
    assert late_post["stale"] is True and late_post["ends_at"] == made["ends_at"]
    assert server.roles[0] in roles_at(fresh, server, BOB)


def test_another_apps_grant_answers_as_an_unknown_one(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    made = data(post(gateway, grant(server, duration="30d")), 201)
    answers = []
    for grant_id, key in ((made["id"], "b"), ("grt_0000000000000000", "a")):
        for method, body in (("GET", None), ("PATCH", {"on_end": "kick"}), ("DELETE", None)):
            response = call(gateway.proc.url, method, f"/api/grants/{grant_id}", gateway.keys[key], json=body)
            refused(response, 404, "unknown_grant")
            answers.append({k: v for k, v in response.json().items() if k != "cost"})
    assert all(a == answers[0] for a in answers)
    other = data(call(gateway.proc.url, "GET", "/api/grants", gateway.keys["b"], params={"guild_id": server.id}))
    assert other["grants"] == []  # nor in its list
    assert server.roles[0] in roles_at(fresh, server, BOB)  # the other app's DELETE did nothing


def test_someone_not_in_the_server_is_refused_with_not_a_member(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    msg = refused(post(gateway, grant(server, user=ALICE, duration="30d")), 409, "not_a_member")
    assert "join" in msg
    assert fresh.member(server.id, ALICE) is None
    listed = data(
        call(
            gateway.proc.url, "GET", "/api/grants", gateway.keys["a"], params={"user_id": ALICE, "guild_id": server.id}
        )
    )
    assert listed["grants"] == []


def test_bad_input_is_refused_naming_the_field(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    past = _z(datetime.now(UTC) - timedelta(hours=1))
    cases: list[tuple[dict[str, Any], str]] = [
        (grant(server, roles=[]), "roles"),
        (grant(server, roles=[server.roles[0]] * 251), "roles"),
        (grant(server, roles=["abc"]), "roles.0"),
        (grant(server, duration="30 days"), "duration"),
        (grant(server, ends_at=past), "past"),
        (grant(server, ends_at="tomorrow"), "ends_at"),
        (grant(server, ends_at=_z(datetime.now(UTC) + timedelta(days=3)), duration="3d"), "not both"),
        (grant(server, on_end="ban"), "on_end"),
        (grant(server, external_ref=" padded"), "external_ref"),
        (grant(server, external_ref="x" * 129), "external_ref"),
        (grant(server, endsat="2027-01-01T00:00:00Z"), "endsat"),
        (grant(server, as_of=None), "as_of"),
        ({"guild_id": server.id, "roles": [server.roles[0]]}, "user_id"),
    ]
    for body, named in cases:
        msg = refused(post(gateway, body), 400, "invalid_request")
        assert named in msg, (body, msg)
    msg = refused(
        call(gateway.proc.url, "PATCH", "/api/grants/grt_0000000000000000", gateway.keys["a"], json={}),
        400,
        "invalid_request",
    )
    assert "nothing to change" in msg
    for params, named in (
        ({"state": "paused"}, "state"),
        ({"absent": "yes"}, "absent"),
        ({"cursor": "x"}, "cursor"),
        ({"ends_before": "soon"}, "ends_before"),
        ({"user_id": "12"}, "user_id"),
    ):
        msg = refused(
            call(gateway.proc.url, "GET", "/api/grants", gateway.keys["a"], params=params), 400, "invalid_request"
        )
        assert named in msg, (params, msg)
    assert roles_at(fresh, server, BOB) == set()  # nothing was given
    refused(call(gateway.proc.url, "GET", "/api/grants", ""), 401, "invalid_api_key")


def test_paging_newest_first_and_every_filter(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    url, key = gateway.proc.url, gateway.keys["a"]
    started = datetime.now(UTC) - timedelta(seconds=1)
    made = [data(post(gateway, grant(server, duration=f"{i + 1}d", external_ref=f"page_{i}")), 201) for i in range(5)]
    made.append(data(post(gateway, grant(server, user=CAROL, duration="10d")), 201))
    ids = [g["id"] for g in reversed(made)]  # newest first

    seen: list[str] = []
    cursor = None
    while True:
        params = {"guild_id": server.id, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = data(call(url, "GET", "/api/grants", key, params=params))
        assert len(page["grants"]) <= 2
        seen += [g["id"] for g in page["grants"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    data(call(url, "DELETE", f"/api/grants/{made[0]['id']}", key))

    def ids_for(**params: Any) -> list[str]:
        return [
            g["id"]
            for g in data(call(url, "GET", "/api/grants", key, params={"guild_id": server.id, **params}))["grants"]
        ]

    assert ids_for(user_id=CAROL) == [made[5]["id"]]
    assert ids_for(state="ended") == [made[0]["id"]]
    assert ids_for(state="active") == ids[:-1]
    assert ids_for(external_ref="page_3") == [made[3]["id"]]
    assert set(ids_for(ends_before=_z(datetime.now(UTC) + timedelta(days=2, hours=12)))) == {
        made[0]["id"],
        made[1]["id"],
    }
    assert ids_for(updated_since=_z(started)) == ids
    assert ids_for(updated_since=_z(datetime.now(UTC) + timedelta(hours=1))) == []
    assert ids_for(link_id="lnk_000000000000") == []
    assert ids_for(absent="true") == []
    assert ids_for(absent="false") == ids
    assert ids_for(state="", user_id="") == ids  # an empty value counts as absent


def test_discords_refusal_answers_as_the_join_api_does_and_makes_no_grant(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    response = post(gateway, grant(server, roles=[server.high], duration="1d"))  # a role above the bot's
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["code"], body["discord_code"], body["data"]) == (
        0,
        "bot_missing_permissions",
        50013,
        None,
    )
    listed = data(call(gateway.proc.url, "GET", "/api/grants", gateway.keys["a"], params={"guild_id": server.id}))
    assert listed["grants"] == []
    assert roles_at(fresh, server, BOB) == set()


def test_another_persons_external_ref_is_refused_and_their_grant_is_untouched(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    low, middle, _ = server.roles
    bobs = data(post(gateway, grant(server, roles=[low], duration="30d", external_ref="dup")), 201)
    calls = dict(fresh.stats()["requests"])
    msg = refused(post(gateway, grant(server, CAROL, roles=[middle], external_ref="dup")), 409, "external_ref_taken")
    assert "another person" in msg and "external_ref" in msg
    assert dict(fresh.stats()["requests"]) == calls  # refused before any Discord call
    shown = data(call(gateway.proc.url, "GET", f"/api/grants/{bobs['id']}", gateway.keys["a"]))
    assert (shown["user_id"], shown["roles"], shown["revision"], shown["ends_at"]) == (
        BOB,
        [low],
        1,
        bobs["ends_at"],
    )
    assert middle not in roles_at(fresh, server, CAROL) and middle not in roles_at(fresh, server, BOB)
    carols = data(call(gateway.proc.url, "GET", "/api/grants", gateway.keys["a"], params={"user_id": CAROL}))
    assert [g for g in carols["grants"] if g["guild_id"] == server.id] == []
    # the same reference in another app is that app's own: app B may use it for carol
    data(post(gateway, grant(server, CAROL, roles=[middle], external_ref="dup"), key="b"), 201)


def test_a_duration_grant_ends_exactly_its_duration_after_it_starts(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    made = data(post(gateway, grant(server, duration="30d")), 201)
    assert _at(made["ends_at"]) - _at(made["starts_at"]) == timedelta(days=30)


def test_a_role_only_another_grant_gave_is_taken_back_once_both_grants_end(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    low, middle, _ = server.roles
    long = data(post(gateway, grant(server, roles=[low], duration="30d")), 201)
    short = data(post(gateway, grant(server, roles=[low], duration="5s")), 201)
    assert short["roles_preexisting"] == []  # bob holds low only because the other grant gave it
    # app B's grant adding middle to its set: middle came from app A's grant, not held before either
    other = data(post(gateway, grant(server, roles=[middle], duration="30d")), 201)
    b_grant = data(post(gateway, grant(server, roles=[low], duration="30d"), key="b"), 201)
    changed = data(
        call(
            gateway.proc.url, "PATCH", f"/api/grants/{b_grant['id']}", gateway.keys["b"], json={"roles": [low, middle]}
        )
    )
    assert changed["roles_preexisting"] == []
    for ending, key in ((other, "a"), (b_grant, "b"), (long, "a")):
        data(call(gateway.proc.url, "DELETE", f"/api/grants/{ending['id']}", gateway.keys[key]))
    assert low in roles_at(fresh, server, BOB)  # the short grant still gives it
    assert middle not in roles_at(fresh, server, BOB) and removals(fresh, server, BOB, middle) == 1
    assert removals(fresh, server, BOB, low) == 0
    give_up = time.monotonic() + 90  # the 5 s grant ends at the sweep (every 15 s)
    shown = data(call(gateway.proc.url, "GET", f"/api/grants/{short['id']}", gateway.keys["a"]))
    while shown["state"] == "active" and time.monotonic() < give_up:
        time.sleep(0.5)
        shown = data(call(gateway.proc.url, "GET", f"/api/grants/{short['id']}", gateway.keys["a"]))
    assert (shown["state"], shown["end_reason"]) == ("ended", "expired"), shown
    assert low not in roles_at(fresh, server, BOB)
    assert removals(fresh, server, BOB, low) == 1


def _ms(cost: str) -> float:
    assert cost.endswith("ms"), cost
    return float(cost[:-2])


def test_a_refusals_cost_counts_the_discord_calls_it_waited_for(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    fresh.faults({"latency_ms": 300})  # every Discord call answers 300 ms late
    answer = post(gateway, grant(server, user=ALICE, duration="30d"))
    refused(answer, 409, "not_a_member")  # Discord was asked, and said the user is not a member
    assert _ms(answer.json()["cost"]) >= 300, answer.json()  # the whole request, not the moment it was refused
