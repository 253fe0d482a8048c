"""The sandbox's member routes behave like Discord's: Remove Guild Member Role, Remove Guild Member (kick), Add
Guild Member Role and Get Guild Member, with their permissions, role order, errors, per-guild buckets, the
X-Audit-Log-Reason header, the counts in /_sandbox/stats, and the controls that change the world by hand."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

import httpx

from tests.conftest import APP_A, GUILD, GUILD_NOPERMS, ROLE_HIGH, ROLE_LOW, TOKENS, USER_IDS, WORLD, Sandbox

BOT = {"Authorization": "Bot " + WORLD["applications"][0]["bot_token"]}
BOB, ALICE = USER_IDS["bob"], USER_IDS["alice"]
DEL_ROLE = "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
KICK = "DELETE /guilds/{guild_id}/members/{user_id}"


def assert_error(r: httpx.Response, status: int, code: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.json() == {"message": message, "code": code}
    assert r.headers["via"] == "1.1 google"


def member_url(sb: Sandbox, user: str = BOB, guild: str = GUILD) -> str:
    return f"{sb.api}/guilds/{guild}/members/{user}"


def control(sb: Sandbox, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.request(method, f"{sb.proc.url}/_sandbox{path}", json=body)


def bot_role(guild: str = GUILD, app: str = APP_A) -> str:
    """The bot's managed role id, as the sandbox derives it (see GET /guilds/{id})."""
    return str(10**17 + int(hashlib.sha256(f"{guild}:{app}".encode()).hexdigest()[:14], 16))


def with_kick(sb: Sandbox, **guild: Any) -> None:
    """The world with the test app's bot holding Kick Members in the test guild (and ``guild``'s fields)."""
    world = json.loads(json.dumps(WORLD))
    world["guilds"][0]["bots"][APP_A].append("KICK_MEMBERS")
    world["guilds"][0].update(guild)
    sb.reset(world)


def test_remove_role_204_even_when_not_held_and_every_call_counted(fresh: Sandbox) -> None:
    url = f"{member_url(fresh)}/roles/{ROLE_LOW}"
    assert httpx.put(url, headers=BOT).status_code == 204
    reason = "grant g_1 expired: 30 días"
    first = httpx.delete(url, headers={**BOT, "X-Audit-Log-Reason": quote(reason)})
    assert (first.status_code, first.content) == (204, b"")
    assert httpx.get(member_url(fresh), headers=BOT).json()["roles"] == []
    again = httpx.delete(url, headers=BOT)  # the member no longer holds it: still 204, as on Discord
    assert again.status_code == 204
    stats = fresh.stats()
    assert stats["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 2}
    assert stats["role_additions"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 1}
    entries = httpx.get(f"{fresh.proc.url}/_sandbox/audit", params={"target_id": BOB}).json()["entries"]
    removals = [e for e in entries if e.get("change") == "$remove"]
    assert [(e["reason"], e["changed"], e["action_type"]) for e in removals] == [(reason, True, 25), (None, False, 25)]


def test_role_route_refusals(fresh: Sandbox) -> None:
    for method in ("PUT", "DELETE"):
        stranger = f"{member_url(fresh, ALICE)}/roles/{ROLE_LOW}"
        assert_error(httpx.request(method, stranger, headers=BOT), 404, 10007, "Unknown Member")
        unknown = f"{member_url(fresh)}/roles/1200000000000000999"
        assert_error(httpx.request(method, unknown, headers=BOT), 404, 10011, "Unknown Role")
        high = f"{member_url(fresh)}/roles/{ROLE_HIGH}"  # above the bot's highest role
        assert_error(httpx.request(method, high, headers=BOT), 403, 50013, "Missing Permissions")
        managed = f"{member_url(fresh)}/roles/{bot_role()}"  # the bot's own managed role
        assert_error(httpx.request(method, managed, headers=BOT), 403, 50013, "Missing Permissions")
        bearer = {"Authorization": "Bearer " + TOKENS["bob"]}
        low = f"{member_url(fresh)}/roles/{ROLE_LOW}"
        assert_error(httpx.request(method, low, headers=bearer), 401, 0, "401: Unauthorized")
        bad_id = httpx.request(method, f"{fresh.api}/guilds/{GUILD}/members/{BOB}/roles/x", headers=BOT)
        assert bad_id.status_code == 400 and bad_id.json()["code"] == 50035
    # without Manage Roles, taken away by hand
    assert control(fresh, "PATCH", f"/guilds/{GUILD}", {"bots": {APP_A: ["CREATE_INSTANT_INVITE"]}}).status_code == 200
    for method in ("PUT", "DELETE"):
        low = f"{member_url(fresh)}/roles/{ROLE_LOW}"
        assert_error(httpx.request(method, low, headers=BOT), 403, 50013, "Missing Permissions")
    assert fresh.stats()["role_removals"] == {}


def test_role_order_changed_by_hand(fresh: Sandbox) -> None:
    low = f"{member_url(fresh)}/roles/{ROLE_LOW}"
    moved = control(fresh, "PATCH", f"/guilds/{GUILD}", {"roles": {ROLE_LOW: {"position": 5}}})
    assert moved.status_code == 200
    assert next(r for r in moved.json()["roles"] if r["id"] == ROLE_LOW)["position"] == 5
    assert_error(httpx.put(low, headers=BOT), 403, 50013, "Missing Permissions")  # level with the bot: not below
    assert control(fresh, "PATCH", f"/guilds/{GUILD}", {"bot_role_position": 6}).status_code == 200
    assert httpx.put(low, headers=BOT).status_code == 204
    refused = control(fresh, "PATCH", f"/guilds/{GUILD}", {"roles": {"1200000000000000999": {"position": 2}}})
    assert refused.status_code == 400 and "unknown role" in refused.json()["error"]


def test_kick(fresh: Sandbox) -> None:
    assert_error(httpx.delete(member_url(fresh), headers=BOT), 403, 50013, "Missing Permissions")  # no Kick Members
    with_kick(fresh)
    reason = "grant g_2 ended"
    r = httpx.delete(member_url(fresh), headers={**BOT, "X-Audit-Log-Reason": quote(reason)})
    assert (r.status_code, r.content) == (204, b"")
    assert_error(httpx.get(member_url(fresh), headers=BOT), 404, 10007, "Unknown Member")
    assert_error(httpx.delete(member_url(fresh), headers=BOT), 404, 10007, "Unknown Member")
    assert fresh.member(GUILD, BOB) is None
    assert fresh.stats()["kicks"] == {f"{GUILD}/{BOB}": 1}
    entries = httpx.get(f"{fresh.proc.url}/_sandbox/audit", params={"guild_id": GUILD}).json()["entries"]
    assert [(e["action_type"], e["target_id"], e["reason"]) for e in entries] == [(20, BOB, reason)]
    # kicked, then added again: a rejoin
    again = httpx.put(member_url(fresh), json={"access_token": TOKENS["bob"]}, headers=BOT)
    assert again.status_code == 201 and again.json()["flags"] == 1


def test_kick_refused_by_hierarchy_and_for_the_owner(fresh: Sandbox) -> None:
    with_kick(fresh, owner_id=BOB)
    assert_error(httpx.delete(member_url(fresh), headers=BOT), 403, 50013, "Missing Permissions")  # the owner
    with_kick(fresh, members=[BOB, ALICE], member_roles={ALICE: [ROLE_HIGH]})
    assert_error(httpx.delete(member_url(fresh, ALICE), headers=BOT), 403, 50013, "Missing Permissions")
    assert control(fresh, "DELETE", f"/guilds/{GUILD}/members/{ALICE}/roles/{ROLE_HIGH}").status_code == 200
    assert httpx.delete(member_url(fresh, ALICE), headers=BOT).status_code == 204
    assert fresh.stats()["kicks"] == {f"{GUILD}/{ALICE}": 1}


def test_world_changed_by_hand_is_not_counted(fresh: Sandbox) -> None:
    assert control(fresh, "PUT", f"/guilds/{GUILD}/members/{ALICE}", {"roles": [ROLE_LOW]}).status_code == 200
    assert httpx.get(member_url(fresh, ALICE), headers=BOT).json()["roles"] == [ROLE_LOW]
    assert control(fresh, "DELETE", f"/guilds/{GUILD}/members/{ALICE}/roles/{ROLE_LOW}").json()["roles"] == []
    assert control(fresh, "DELETE", f"/guilds/{GUILD}/members/{ALICE}").status_code == 200
    assert_error(httpx.get(member_url(fresh, ALICE), headers=BOT), 404, 10007, "Unknown Member")
    assert control(fresh, "DELETE", f"/guilds/{GUILD}/members/{ALICE}").status_code == 404
    stats = fresh.stats()
    assert (stats["role_removals"], stats["kicks"]) == ({}, {})
    bad = control(fresh, "PATCH", f"/guilds/{GUILD}", {"bots": {APP_A: ["FLY"]}})
    assert bad.status_code == 400 and "permission" in bad.json()["error"]


def test_member_routes_have_per_guild_buckets(fresh: Sandbox) -> None:
    world = json.loads(json.dumps(WORLD))
    world["guilds"][1]["members"] = [BOB]
    world["rate_limits"] = {"routes": {DEL_ROLE: {"limit": 2, "reset_after": 10.0, "window": "fixed"}}}
    fresh.reset(world)
    url = f"{member_url(fresh)}/roles/{ROLE_LOW}"
    codes = [httpx.delete(url, headers=BOT) for _ in range(3)]
    assert [c.status_code for c in codes] == [204, 204, 429]
    assert codes[0].headers["x-ratelimit-remaining"] == "1" and len(codes[0].headers["x-ratelimit-bucket"]) == 32
    other_guild = f"{member_url(fresh, guild=GUILD_NOPERMS)}/roles/{ROLE_LOW}"
    assert httpx.delete(other_guild, headers=BOT).status_code == 404  # another guild's bucket: not limited
    assert fresh.stats()["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 2}
