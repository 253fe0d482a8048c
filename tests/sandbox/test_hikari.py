"""A Discord library written against real Discord — hikari's REST client — pointed at `guildgate sandbox`: every call
guildgate makes parses and behaves as Discord's (objects, 201/204, documented errors as hikari raises them), and a
burst on one bucket, paced by hikari from the bucket headers alone, draws no 429."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import hikari
import httpx
import pytest

from tests.conftest import APP_A, GUILD, ROLE_HIGH, ROLE_LOW, TOKENS, USER_IDS, WORLD, Sandbox

BOT_TOKEN = WORLD["applications"][0]["bot_token"]
BOT_USER = int(WORLD["applications"][0]["bot_user_id"])
G, BOB, ALICE = int(GUILD), int(USER_IDS["bob"]), int(USER_IDS["alice"])
UNKNOWN = 1200000000000000999
ADD_ROLE = "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
REMOVE_ROLE = "DELETE /guilds/{guild_id}/members/{user_id}/roles/{role_id}"


@asynccontextmanager
async def rest(
    sb: Sandbox, token: str = BOT_TOKEN, kind: hikari.TokenType = hikari.TokenType.BOT
) -> AsyncIterator[Any]:
    """hikari's REST client for ``token``, its API base URL the sandbox's."""
    app = hikari.RESTApp(url=sb.api, max_retries=0)
    await app.start()
    try:
        async with app.acquire(token, kind) as client:
            yield client
    finally:
        await app.close()


def world(**guild: Any) -> dict[str, Any]:
    """The test world with the test app's bot also holding Kick Members in the test guild, and ``guild``'s fields."""
    w: dict[str, Any] = json.loads(json.dumps(WORLD))
    w["guilds"][0]["bots"][APP_A].append("KICK_MEMBERS")
    w["guilds"][0].update(guild)
    return w


async def test_own_user_as_bot_and_as_oauth_user(fresh: Sandbox) -> None:
    async with rest(fresh) as bot:
        me = await bot.fetch_my_user()
    assert (me.id, me.is_bot, me.is_mfa_enabled, me.email) == (BOT_USER, True, False, None)
    async with rest(fresh, TOKENS["alice"], hikari.TokenType.BEARER) as user:
        alice = await user.fetch_my_user()
        info = await user.fetch_authorization()
    assert (alice.id, alice.username, alice.is_bot, alice.email, alice.locale) == (ALICE, "alice", False, None, "en-US")
    assert info.application.id == int(APP_A) and set(info.scopes) == {"identify", "guilds.join"}
    assert info.user is not None and info.user.id == ALICE
    with_email = json.loads(json.dumps(WORLD))
    with_email["users"][0].update({"email": "alice@example.org", "premium_type": 2})
    fresh.reset(with_email)
    token = fresh.mint("alice", scopes=["identify", "email", "guilds.join"])
    async with rest(fresh, token, hikari.TokenType.BEARER) as user:
        alice = await user.fetch_my_user()
    assert (alice.email, alice.is_verified, alice.premium_type) == ("alice@example.org", True, hikari.PremiumType.NITRO)
    async with rest(fresh, TOKENS["erin"], hikari.TokenType.BEARER) as expired:
        with pytest.raises(hikari.UnauthorizedError):
            await expired.fetch_my_user()


async def test_guild_and_invite(fresh: Sandbox) -> None:
    async with rest(fresh) as bot:
        guild = await bot.fetch_guild(G)
        invite = await bot.fetch_invite("test1")
        with pytest.raises(hikari.NotFoundError) as unknown_guild:
            await bot.fetch_guild(UNKNOWN)
        with pytest.raises(hikari.NotFoundError) as unknown_invite:
            await bot.fetch_invite("no-such-invite")
        application = await bot.fetch_application()
    assert (
        guild.name == "Test Server" and guild.afk_channel_id is None and guild.approximate_member_count == 3
    )  # bob and two bots
    roles = guild.roles
    assert roles[G].name == "@everyone" and roles[int(ROLE_LOW)].position == 1
    mine = next(r for r in roles.values() if r.bot_id == BOT_USER)
    assert mine.is_managed and mine.position == 5
    assert (
        mine.permissions & hikari.Permissions.MANAGE_ROLES and mine.permissions & hikari.Permissions.KICK_MEMBERS == 0
    )
    assert invite.guild is not None and (invite.guild.id, invite.code, invite.expires_at) == (G, "test1", None)
    assert (unknown_guild.value.code, unknown_invite.value.code) == (10004, 10006)
    assert application.id == int(APP_A) and application.approximate_guild_count == 2


async def test_add_user_to_guild_new_then_existing_and_refusals(fresh: Sandbox) -> None:
    async with rest(fresh) as bot:
        added = await bot.add_user_to_guild(TOKENS["alice"], G, ALICE, roles=[int(ROLE_LOW)])
        again = await bot.add_user_to_guild(TOKENS["alice"], G, ALICE)
        with pytest.raises(hikari.ForbiddenError) as banned:
            await bot.add_user_to_guild(TOKENS["mallory"], G, int(USER_IDS["mallory"]))
        with pytest.raises(hikari.ForbiddenError) as wrong_token:
            await bot.add_user_to_guild(TOKENS["bob"], G, ALICE)
        with pytest.raises(hikari.ForbiddenError) as role_too_high:
            await bot.add_user_to_guild(TOKENS["carol"], G, int(USER_IDS["carol"]), roles=[int(ROLE_HIGH)])
        with pytest.raises(hikari.NotFoundError) as no_guild:
            await bot.add_user_to_guild(TOKENS["carol"], UNKNOWN, int(USER_IDS["carol"]))
    assert added is not None and added.user.id == ALICE and set(added.role_ids) == {int(ROLE_LOW), G}
    assert again is None  # 204: already a member
    assert (banned.value.code, wrong_token.value.code, role_too_high.value.code) == (40007, 50025, 50013)
    assert no_guild.value.code == 10004


async def test_member_and_its_roles(fresh: Sandbox) -> None:
    reason = "grant gr_7 ended: expired (30 días)"
    async with rest(fresh) as bot:
        await bot.add_role_to_member(G, BOB, int(ROLE_LOW), reason="grant gr_7 made")
        member = await bot.fetch_member(G, BOB)
        assert int(ROLE_LOW) in member.role_ids
        await bot.remove_role_from_member(G, BOB, int(ROLE_LOW), reason=reason)
        await bot.remove_role_from_member(G, BOB, int(ROLE_LOW))  # not held any more: still 204
        assert int(ROLE_LOW) not in (await bot.fetch_member(G, BOB)).role_ids
        errors = {}
        for name, call in {
            "unknown member": bot.fetch_member(G, ALICE),
            "unknown member (add)": bot.add_role_to_member(G, ALICE, int(ROLE_LOW)),
            "unknown member (remove)": bot.remove_role_from_member(G, ALICE, int(ROLE_LOW)),
            "unknown role (add)": bot.add_role_to_member(G, BOB, UNKNOWN),
            "unknown role (remove)": bot.remove_role_from_member(G, BOB, UNKNOWN),
            "role above the bot (add)": bot.add_role_to_member(G, BOB, int(ROLE_HIGH)),
            "role above the bot (remove)": bot.remove_role_from_member(G, BOB, int(ROLE_HIGH)),
        }.items():
            with pytest.raises(hikari.ClientHTTPResponseError) as raised:
                await call
            errors[name] = (type(raised.value).__name__, raised.value.code)
    assert errors == {
        "unknown member": ("NotFoundError", 10007),
        "unknown member (add)": ("NotFoundError", 10007),
        "unknown member (remove)": ("NotFoundError", 10007),
        "unknown role (add)": ("NotFoundError", 10011),
        "unknown role (remove)": ("NotFoundError", 10011),
        "role above the bot (add)": ("ForbiddenError", 50013),
        "role above the bot (remove)": ("ForbiddenError", 50013),
    }
    stats = fresh.stats()
    assert stats["role_removals"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 2}
    assert stats["role_additions"] == {f"{GUILD}/{BOB}/{ROLE_LOW}": 1}
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{fresh.proc.url}/_sandbox/audit", params={"target_id": str(BOB)})
    audit = answer.json()["entries"]
    assert [e["reason"] for e in audit] == ["grant gr_7 made", reason, None]  # hikari URL-encodes; decoded here
    assert quote(reason) != reason


async def test_kick(fresh: Sandbox) -> None:
    async with rest(fresh) as bot:
        with pytest.raises(hikari.ForbiddenError) as no_permission:
            await bot.kick_user(G, BOB)
        fresh.reset(world())
        await bot.kick_user(G, BOB, reason="grant gr_9 ended")
        with pytest.raises(hikari.NotFoundError) as gone:
            await bot.fetch_member(G, BOB)
        with pytest.raises(hikari.NotFoundError) as kicked_twice:
            await bot.kick_user(G, BOB)
        back = await bot.add_user_to_guild(TOKENS["bob"], G, BOB)  # a kicked member can come back
        fresh.reset(world(owner_id=USER_IDS["bob"]))
        with pytest.raises(hikari.ForbiddenError) as owner:
            await bot.kick_user(G, BOB)
    assert (no_permission.value.code, gone.value.code, kicked_twice.value.code, owner.value.code) == (
        50013,
        10007,
        10007,
        50013,
    )
    assert back is not None and back.user.id == BOB


@pytest.mark.parametrize("window", ["fixed", "sliding"])
async def test_a_burst_on_one_bucket_draws_no_429(fresh: Sandbox, window: str) -> None:
    limits = {"limit": 10, "reset_after": 2.0, "window": window}
    fresh.reset(
        {**world(), "rate_limits": {"global_per_second": 50, "routes": {ADD_ROLE: limits, REMOVE_ROLE: limits}}}
    )
    async with rest(fresh) as bot:
        await asyncio.gather(*(bot.add_role_to_member(G, BOB, int(ROLE_LOW)) for _ in range(30)))
        await asyncio.gather(*(bot.remove_role_from_member(G, BOB, int(ROLE_LOW)) for _ in range(30)))
    stats = fresh.stats()
    assert stats["responses"][ADD_ROLE] == {"204": 30} and stats["responses"][REMOVE_ROLE] == {"204": 30}
    assert stats["rate_limited"] == {"user": 0, "global": 0, "shared": 0}
    buckets = [b for b in stats["buckets"] if b["route"] in (ADD_ROLE, REMOVE_ROLE)]
    assert sorted(b["accepted"] for b in buckets) == [30, 30]  # one bucket per route and guild, all 30 let in
