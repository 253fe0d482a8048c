"""guildgate.Client and guildgate.AsyncClient against the running service."""

from __future__ import annotations

import asyncio

import pytest

import guildgate
from guildgate import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConnectionProblem,
    DiscordUnavailableError,
    InvalidRequestError,
    JoinRefusedError,
    JoinResult,
    QuotaExceededError,
    RateLimitedError,
)
from tests.conftest import APP_A, GUILD, TOKENS, USER_IDS, WORLD, Gateway, Sandbox, free_port, new_key


def test_public_names_equal_all() -> None:
    public = {n for n in dir(guildgate) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(guildgate.__all__)
    assert guildgate.__all__ == sorted(guildgate.__all__)


def test_sync_client_join_and_reads(gateway: Gateway, fresh: Sandbox) -> None:
    with Client(gateway.proc.url, gateway.keys["a"], language="en") as gg:
        result = gg.join(authorization=TOKENS["alice"], guild_name="test1", developer_id="client")
        assert isinstance(result, JoinResult)
        assert (result.joined, result.code, result.user_id, result.guild_name) == (
            True,
            "joined",
            USER_IDS["alice"],
            "Test Server",
        )
        assert result.msg == "Joined the server"
        again = gg.join(authorization=TOKENS["alice"], guild_id=GUILD)
        assert (again.joined, again.code) == (False, "already_member")
        assert gg.record(result.record_id)["state"] == "succeeded"
        page = gg.records(developer_id="client")
        assert [r["id"] for r in page["records"]] == [result.record_id]
        assert gg.usage()["total"] >= 2


def test_sync_client_raises_typed_errors(gateway: Gateway, fresh: Sandbox) -> None:
    with Client(gateway.proc.url, gateway.keys["a"]) as gg:
        with pytest.raises(JoinRefusedError) as refused:
            gg.join(authorization=TOKENS["mallory"], guild_id=GUILD)
        assert (refused.value.code, refused.value.discord_code) == ("banned", 40007)
        assert refused.value.record_id
        with pytest.raises(InvalidRequestError) as bad:
            gg.join(authorization="a.b.c", guild_id=GUILD)
        assert bad.value.code == "not_an_oauth_token" and bad.value.http_status == 400
        with pytest.raises(InvalidRequestError):
            gg.join(authorization=TOKENS["alice"])
    with Client(gateway.proc.url, "gg_wrong") as gg, pytest.raises(AuthenticationError):
        gg.join(authorization=TOKENS["alice"], guild_id=GUILD)
    with Client(gateway.proc.url, new_key(gateway.env, APP_A, "--quota-per-minute", "2")) as gg:
        with pytest.raises(QuotaExceededError) as spent:
            for _ in range(5):
                gg.join(authorization=TOKENS["bob"], guild_id=GUILD)
        assert spent.value.retry_after is not None and spent.value.retry_after >= 1
    with Client(f"http://127.0.0.1:{free_port()}", "gg_x") as gg, pytest.raises(ConnectionProblem):
        gg.join(authorization=TOKENS["alice"], guild_id=GUILD)


def test_async_client(gateway: Gateway, fresh: Sandbox) -> None:
    async def go() -> None:
        async with AsyncClient(gateway.proc.url, gateway.keys["a"]) as gg:
            results = await asyncio.gather(
                gg.join(authorization=TOKENS["alice"], guild_id=GUILD),
                gg.join(authorization=TOKENS["carol"], guild_id=GUILD),
            )
            assert {r.code for r in results} == {"joined"}
            assert (await gg.record(results[0].record_id))["code"] == "joined"
            fresh.faults({"routes": {"GET /users/@me": {"error_rate": 1.0, "status": 500}}})
            with pytest.raises(DiscordUnavailableError):
                await gg.join(authorization=TOKENS["bob"], guild_id=GUILD)

    asyncio.run(go())


def test_rate_limited_error_carries_retry_after(gateway: Gateway, fresh: Sandbox) -> None:
    world = {
        "applications": WORLD["applications"],
        "guilds": [
            {"id": "1200000000000000005", "name": "Busy", "bots": {"1100000000000000001": ["CREATE_INSTANT_INVITE"]}}
        ],
        "users": WORLD["users"],
        "rate_limits": {
            "routes": {
                "PUT /guilds/{guild_id}/members/{user_id}": {"limit": 1, "reset_after": 120.0, "window": "fixed"}
            }
        },
    }
    fresh.reset(world)
    with Client(gateway.proc.url, gateway.keys["a"]) as gg:
        gg.join(authorization=TOKENS["alice"], guild_id="1200000000000000005")
        with pytest.raises(RateLimitedError) as limited:
            gg.join(authorization=TOKENS["carol"], guild_id="1200000000000000005")
    assert limited.value.retry_after is not None and limited.value.retry_after > 60
