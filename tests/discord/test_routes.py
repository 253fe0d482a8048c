"""The route table (``discord/routes.py``): every call guildgate makes is one the Discord sandbox serves, under the
route's name, with the bucket split by the route's major parameter; paths keep each parameter in its segment."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from guildgate.core.errors import DiscordRefusedError, RateLimitedError
from guildgate.core.ports import AppCredentials
from guildgate.core.secret import Secret
from guildgate.discord import routes
from guildgate.discord.guilds import DiscordLookups
from guildgate.discord.oauth import exchange_code, revoke
from guildgate.discord.ratelimit import Limiter, MemoryBackend
from guildgate.discord.rest import DiscordRest
from guildgate.sandbox.routes import ROUTES as SANDBOX_ROUTES
from tests.conftest import APP_A, GUILD, ROLE_LOW, TOKENS, USER_IDS, WORLD, Sandbox
from tests.discord.test_transport import answers, json_answer, scripted

APP = next(
    AppCredentials(client_id=a["client_id"], bot_token=Secret(a["bot_token"]), client_secret=Secret(a["client_secret"]))
    for a in WORLD["applications"]
    if a["id"] == APP_A
)


async def test_every_route_is_one_the_sandbox_serves_under_its_name(fresh: Sandbox) -> None:
    """Each route of the table, called the way guildgate calls it (the join's, the join link's, the doctor's),
    reaches a route the sandbox knows — none is answered as an unknown route — and is counted under its name."""

    rest = DiscordRest(api_base=fresh.api, limiter=Limiter(MemoryBackend()))
    deadline = time.monotonic() + 20
    lookups = DiscordLookups(rest)
    try:
        user = await rest.current_user(Secret(TOKENS["alice"]), app=APP, deadline=deadline)
        await rest.resolve_invite("test1", app=APP, deadline=deadline)
        await lookups.application(APP, deadline=deadline)
        await rest.bot_get(routes.GET_CURRENT_APPLICATION_OLD, {}, app=APP, deadline=deadline)
        await lookups.guild(APP, GUILD, deadline=deadline)
        await rest.call(
            routes.ADD_GUILD_MEMBER,
            {"guild_id": GUILD, "user_id": user.id},
            auth=("Bot", APP.bot_token),
            deadline=deadline,
            json_body={"access_token": TOKENS["alice"]},
        )
        assert await rest.get_member(app=APP, guild_id=GUILD, user_id=user.id, deadline=deadline) is True
        await rest.add_member_role(app=APP, guild_id=GUILD, user_id=user.id, role_id=ROLE_LOW, deadline=deadline)
        assert await rest.member_roles(app=APP, guild_id=GUILD, user_id=user.id, deadline=deadline) == (ROLE_LOW,)
        removed = await rest.remove_member_role(
            app=APP, guild_id=GUILD, user_id=user.id, role_id=ROLE_LOW, deadline=deadline
        )
        assert removed == "removed"
        with pytest.raises(DiscordRefusedError) as no_kick:  # the fixture's bot has no Kick Members
            await rest.kick_member(app=APP, guild_id=GUILD, user_id=user.id, deadline=deadline)
        assert no_kick.value.discord_code == 50013
        with pytest.raises(Exception, match="authorization code"):
            await exchange_code(
                rest, app=APP, code="no-such-code", redirect_uri="http://x/cb", verifier="v", deadline=deadline
            )
        assert await revoke(rest, app=APP, token=Secret("no-such-token"), deadline=deadline) is True
    finally:
        await rest.aclose()

    counted = fresh.stats()["requests"]
    assert not [name for name in counted if "(unknown)" in name], counted
    assert {route.name for route in routes.ALL} <= set(counted), counted
    assert fresh.member(GUILD, USER_IDS["alice"]) is not None


def test_the_majors_agree_with_the_sandboxs_buckets() -> None:
    """The sandbox splits its buckets as Discord does (facts §10); the client's table names the same major for every
    route the two share, and every guild route has ``guild_id`` as its major."""
    served = {(r.method, r.template): r.major for r in SANDBOX_ROUTES}
    shared = [r for r in routes.ALL if (r.method, r.template) in served]
    assert len(shared) == len(routes.ALL) - 2  # the token endpoints are served apart (sandbox/app.py)
    assert [(r.name, r.major) for r in shared] == [(r.name, served[(r.method, r.template)]) for r in shared]
    assert all(r.major == "guild_id" for r in routes.ALL if r.template.startswith("/guilds/"))
    assert len({r.name for r in routes.ALL}) == len(routes.ALL)


def test_a_parameter_stays_in_its_segment() -> None:
    """Ids and codes go into the path percent-encoded, one segment each: a slash, a dot-dot or a space cannot
    change which route is called; a missing parameter or one the route does not have is a programming error."""
    route = routes.ADD_GUILD_MEMBER_ROLE
    assert route.path({"guild_id": "1", "user_id": "2", "role_id": "3"}) == "/guilds/1/members/2/roles/3"
    assert route.path({"guild_id": "1", "user_id": "../x y", "role_id": "a/b"}) == (
        "/guilds/1/members/..%2Fx%20y/roles/a%2Fb"
    )
    assert routes.GET_INVITE.path({"invite_code": "Mixed-Case_9"}) == "/invites/Mixed-Case_9"
    assert routes.GET_CURRENT_USER.path({}) == "/users/@me"
    with pytest.raises(KeyError):
        route.path({"guild_id": "1", "user_id": "2"})
    with pytest.raises(ValueError, match="no parameter"):
        routes.GET_GUILD.path({"guild_id": "1", "user_id": "2"})


async def test_a_servers_exhausted_bucket_holds_back_that_server_only() -> None:
    """Add Guild Member's bucket is split by server (its major): once Discord says server 1's bucket is empty, the
    next add to server 1 — another person — is answered ``rate_limited`` at once without being sent, while an add
    to server 2 goes out."""
    empty = (
        b"X-RateLimit-Limit: 1\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset-After: 60\r\nX-RateLimit-Bucket: b\r\n"
    )
    added = json_answer(b"{}", b"201 Created", headers=empty)

    server = await scripted(answers(added, added))
    rest = DiscordRest(api_base=server.base, limiter=Limiter(MemoryBackend()))

    async def add(guild: str, user: str) -> Any:
        return await rest.call(
            routes.ADD_GUILD_MEMBER,
            {"guild_id": guild, "user_id": user},
            auth=("Bot", APP.bot_token),
            deadline=time.monotonic() + 5,
            json_body={"access_token": "t"},
        )

    try:
        assert (await add("1", "10")).status == 201
        with pytest.raises(RateLimitedError) as held:
            await add("1", "11")
        assert (await add("2", "12")).status == 201
    finally:
        await rest.aclose()
        await server.__aexit__()
    held, sent = held.value, server.requests

    assert held.retry_after is not None and held.retry_after > 50
    assert [r.split(b" HTTP/1.1")[0] for r in sent] == [
        b"PUT /api/v10/guilds/1/members/10",
        b"PUT /api/v10/guilds/2/members/12",
    ]


async def test_member_calls_carry_the_audit_log_reason_and_say_what_discord_meant(fresh: Sandbox) -> None:
    """Every member call of a grant may name why in the audit log (URL-encoded UTF-8, as Discord documents); a
    removal of a role that is gone counts as removed, a member who is gone is None to Get Guild Member and
    not_a_member to the others."""
    rest = DiscordRest(api_base=fresh.api, limiter=Limiter(MemoryBackend()))
    deadline = time.monotonic() + 20
    bob = USER_IDS["bob"]
    why = "guildgate grant grt_0123456789abcdef: expired — «30 jours» 100%"
    try:
        await rest.add_member_role(
            app=APP, guild_id=GUILD, user_id=bob, role_id=ROLE_LOW, deadline=deadline, reason=why
        )
        assert (
            await rest.remove_member_role(
                app=APP, guild_id=GUILD, user_id=bob, role_id=ROLE_LOW, deadline=deadline, reason=why
            )
            == "removed"
        )
        gone = "1200000000000000099"
        assert (
            await rest.remove_member_role(app=APP, guild_id=GUILD, user_id=bob, role_id=gone, deadline=deadline)
            == "unknown_role"
        )
        stranger = USER_IDS["alice"]
        assert await rest.member_roles(app=APP, guild_id=GUILD, user_id=stranger, deadline=deadline) is None
        with pytest.raises(DiscordRefusedError) as unknown:
            await rest.remove_member_role(
                app=APP, guild_id=GUILD, user_id=stranger, role_id=ROLE_LOW, deadline=deadline
            )
        assert (unknown.value.discord_code, unknown.value.outcome.value) == (10007, "not_a_member")
    finally:
        await rest.aclose()
    entries = audit(fresh, bob)
    assert [e.get("reason") for e in entries][-2:] == [why, why], entries


def audit(sandbox: Sandbox, target: str) -> list[dict[str, Any]]:
    return list(httpx.get(sandbox.proc.url + "/_sandbox/audit", params={"target_id": target}).json()["entries"])
