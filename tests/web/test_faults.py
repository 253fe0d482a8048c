"""Faults on Add Guild Member (502s and hangs): every join answers within its deadline with the right outcome,
retries stay bounded, no join is reported that did not happen, and no record stays pending."""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import GUILD, PUT, Gateway, Sandbox
from tests.helpers import crowd

JOINS = 200
DEADLINE = 4.0  # GUILDGATE_REQUEST_TIMEOUT of the test gateways


def _timed_join(gateway: Gateway, person: tuple[str, str]) -> tuple[str, float, dict[str, Any]]:
    """(user id, seconds the answer took, the answer's JSON with its HTTP status as ``http``)."""
    started = time.monotonic()
    r = gateway.join({"authorization": person[1], "guild_id": GUILD})
    return person[0], time.monotonic() - started, {"http": r.status_code, **r.json()}


@pytest.mark.parametrize("gateway", ["postgres+redis+4workers"], indirect=True)
def test_502s_and_hangs_on_add_member(gateway: Gateway, fresh: Sandbox) -> None:
    world, people = crowd(JOINS)
    fresh.reset(world)
    fresh.faults({"seed": 11, "routes": {PUT: {"error_rate": 0.30, "status": 502, "timeout_rate": 0.05}}})
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda person: _timed_join(gateway, person), people))
    fresh.faults({})

    members = fresh.state()["guilds"][GUILD]["members"]
    slowest = max(elapsed for _, elapsed, _ in answers)
    assert slowest < DEADLINE + 1.0, f"an answer took {slowest:.2f}s against a {DEADLINE}s deadline"
    succeeded = [(u, a) for u, _, a in answers if a["status"] == 1]
    falsely = [u for u, a in succeeded if u not in members]
    assert falsely == [], "reported joined, not a member"
    others = {a["code"] for _, _, a in answers if a["status"] != 1}
    assert others <= {"discord_unavailable"}, others
    assert len(succeeded) >= 0.8 * JOINS, f"only {len(succeeded)} of {JOINS} succeeded through retries"
    puts = fresh.stats()["requests"].get(PUT, 0)
    assert JOINS < puts <= 4 * JOINS  # retried, and boundedly
    assert gateway.pending() == []
    print(f"faults: {len(succeeded)}/{JOINS} succeeded, {puts} PUTs, slowest answer {slowest:.2f}s")
    # a failed answer whose PUT may have reached Discord is recorded as unknown, never as failed
    for user_id, _, answer in answers:
        if answer["status"] != 1 and user_id in members:
            record = httpx.get(
                f"{gateway.proc.url}/api/record/{answer['id']}", headers={"User-Token": gateway.keys["a"]}
            )
            assert record.json()["data"]["state"] == "unknown"


@pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)
def test_a_caller_who_hangs_up_mid_join_still_leaves_a_finished_record(gateway: Gateway, fresh: Sandbox) -> None:
    world, people = crowd(1)
    fresh.reset(world)
    user_id, token = people[0]
    # Discord adds the member, then answers a second late; the caller gives up after 0.3 s.
    fresh.faults({"routes": {PUT: {"latency_after_ms": 1000}}})
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.proc.url}/api/wanda/discord/guild",
            json={"authorization": token, "guild_id": GUILD},
            headers={"User-Token": gateway.keys["a"]},
            timeout=0.3,
        )
    fresh.faults({})
    records: list[dict[str, Any]] = []
    for _ in range(50):  # the join goes on without its caller, and finishes its record
        records = gateway.get("/api/records", limit=5).json()["data"]["records"]
        if any(r.get("user_id") == user_id and r["state"] != "pending" for r in records):
            break
        time.sleep(0.1)
    mine = [r for r in records if r.get("user_id") == user_id]
    assert [(r["state"], r["code"]) for r in mine] == [("succeeded", "joined")]
    assert fresh.member(GUILD, user_id) is not None
    assert gateway.pending() == []


@pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)
def test_a_join_whose_answer_was_lost_is_reported_joined_not_already_member(gateway: Gateway, fresh: Sandbox) -> None:
    # Discord adds the member, then answers 502 (the answer lost on the way): the retry is answered 204, as for
    # someone who was a member already. Five of them were; the others were not.
    world, people = crowd(30)
    already = people[:5]
    for guild in world["guilds"]:
        if guild["id"] == GUILD:
            guild["members"] = [*guild.get("members", []), *(user_id for user_id, _ in already)]
    fresh.reset(world)
    routes = {PUT: {"error_rate": 0.5, "status": 502, "when": "after"}}
    fresh.faults({"seed": 5, "routes": routes})
    answers = {user_id: gateway.join({"authorization": token, "guild_id": GUILD}).json() for user_id, token in people}
    injected = fresh.stats()["faults_injected"]
    fresh.faults({})

    assert sum(injected.values()) >= 10, injected  # enough lost answers for the point to be made
    succeeded = {u: a for u, a in answers.items() if a["status"] == 1}
    assert len(succeeded) >= 25
    for user_id, answer in succeeded.items():
        was_member = user_id in dict(already)
        assert (answer["code"], json.loads(answer["data"])["joined"]) == (
            ("already_member", False) if was_member else ("joined", True)
        ), user_id
    # Each record keeps the status Discord last answered: a join whose 201 was lost was answered 204 on retry.
    statuses: dict[tuple[str, int], int] = {}
    for answer in succeeded.values():
        record = gateway.get(f"/api/record/{answer['id']}").json()["data"]
        pair = (record["code"], record["discord_status"])
        statuses[pair] = statuses.get(pair, 0) + 1
    assert set(statuses) <= {("joined", 201), ("joined", 204), ("already_member", 204)}, statuses
    assert statuses.get(("joined", 204), 0) >= 1, statuses


@pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)
def test_connection_resets_on_both_join_calls(gateway: Gateway, fresh: Sandbox) -> None:
    # Discord's connection drops mid-request on Get Current User and on Add Guild Member: each join still
    # answers in time, is retried a bounded number of times, and is never reported joined without the member.
    world, people = crowd(60)
    fresh.reset(world)
    routes = {"GET /users/@me": {"reset_rate": 0.2}, PUT: {"reset_rate": 0.3}}
    fresh.faults({"seed": 23, "routes": routes})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda person: _timed_join(gateway, person), people))
    stats = fresh.stats()
    fresh.faults({})

    injected = stats["faults_injected"]
    assert injected.get("GET /users/@me reset before", 0) >= 5, injected
    assert injected.get(f"{PUT} reset before", 0) >= 10, injected
    assert max(elapsed for _, elapsed, _ in answers) < DEADLINE + 1.0
    members = fresh.state()["guilds"][GUILD]["members"]
    succeeded = [(u, a) for u, _, a in answers if a["status"] == 1]
    assert [u for u, _ in succeeded if u not in members] == []
    assert {a["code"] for _, a in succeeded} == {"joined"}
    assert len(succeeded) >= 0.9 * len(people), [a["code"] for _, _, a in answers if a["status"] != 1]
    assert stats["requests"][PUT] <= 4 * len(people)
    assert gateway.pending() == []


@pytest.mark.parametrize("gateway", ["sqlite"], indirect=True)
def test_connections_reset_after_discord_added_the_member(gateway: Gateway, fresh: Sandbox) -> None:
    # The connection drops after Discord made the change, before its answer: the retry is answered 204, and the
    # join is still reported joined (Get Guild Member's joined_at is after the lost attempt), never failed.
    world, people = crowd(30)
    fresh.reset(world)
    fresh.faults({"seed": 29, "routes": {PUT: {"reset_rate": 0.4, "when": "after"}}})
    answers = {user_id: gateway.join({"authorization": token, "guild_id": GUILD}).json() for user_id, token in people}
    injected = fresh.stats()["faults_injected"].get(f"{PUT} reset after", 0)
    fresh.faults({})

    assert injected >= 8
    members = fresh.state()["guilds"][GUILD]["members"]
    assert all(user_id in members for user_id, _ in people)
    codes = [answers[user_id]["code"] for user_id, _ in people]
    assert codes.count("joined") >= 27, codes  # a join whose every attempt was reset may answer unknown
    assert set(codes) <= {"joined", "discord_unavailable"}, codes
    assert gateway.pending() == []
