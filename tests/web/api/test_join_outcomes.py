"""Every row of the contract's outcome table, over real HTTP against the sandbox."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.conftest import (
    APP_A,
    GUILD,
    GUILD_BOTLESS,
    GUILD_NOPERMS,
    PUT,
    ROLE_HIGH,
    ROLE_LOW,
    TOKENS,
    USER_IDS,
    WORLD,
    Gateway,
    Sandbox,
)
from tests.helpers import UUID, envelope


def test_joined_by_guild_id_gives_member_and_data_string(gateway: Gateway, fresh: Sandbox) -> None:
    r = gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD})
    body = envelope(r)
    assert r.status_code == 200
    assert (body["status"], body["code"], body["msg"]) == (1, "joined", "加入成功")
    assert UUID.match(body["id"])
    data = json.loads(body["data"])
    assert data == {"id": GUILD, "name": None, "user_id": USER_IDS["alice"], "joined": True}
    assert fresh.member(GUILD, USER_IDS["alice"]) is not None


def test_joined_by_invite_url_names_the_guild(gateway: Gateway, fresh: Sandbox) -> None:
    r = gateway.join(
        {"authorization": TOKENS["alice"], "guild_name": "https://discord.gg/test1/?ref=x"},
        headers={"Accept-Language": "en-US,en;q=0.9"},
    )
    body = envelope(r)
    assert (body["status"], body["code"], body["msg"]) == (1, "joined", "Joined the server")
    assert json.loads(body["data"])["name"] == "Test Server"


def test_already_member_is_status_1_joined_false(gateway: Gateway, fresh: Sandbox) -> None:
    body = envelope(
        gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}, headers={"Accept-Language": "en"})
    )
    assert (body["status"], body["code"], body["msg"]) == (1, "already_member", "Already a member of the server")
    assert json.loads(body["data"])["joined"] is False


def test_roles_nick_mute_deaf_reach_discord(gateway: Gateway, fresh: Sandbox) -> None:
    body = envelope(
        gateway.join(
            {
                "authorization": TOKENS["alice"],
                "guild_id": GUILD,
                "roles": [ROLE_LOW],
                "nick": "  Alice   the  Great ",
                "mute": True,
                "deaf": False,
            }
        )
    )
    assert body["code"] == "joined"
    member = fresh.member(GUILD, USER_IDS["alice"])
    assert member is not None
    assert member["roles"] == [ROLE_LOW]
    assert member["nick"] == "Alice the Great"
    assert (member["mute"], member["deaf"]) == (True, False)


REFUSALS = [
    # (token, guild, extra body, code, discord_code, en message)
    ("erin", GUILD, {}, "token_expired", 0, "Authorization expired or invalid (not logged in)"),
    ("noident", GUILD, {}, "token_expired", 0, "Authorization expired or invalid (not logged in)"),
    (
        "nojoin",
        GUILD,
        {},
        "invalid_oauth_token",
        50025,
        "The token was not granted to this application with guilds.join",
    ),
    (
        "otherapp",
        GUILD,
        {},
        "invalid_oauth_token",
        50025,
        "The token was not granted to this application with guilds.join",
    ),
    ("alice", GUILD_BOTLESS, {}, "unknown_guild", 10004, "Unknown server: check the id, or the bot is not in it"),
    (
        "alice",
        "1200000000000000999",
        {},
        "unknown_guild",
        10004,
        "Unknown server: check the id, or the bot is not in it",
    ),
    (
        "alice",
        GUILD_NOPERMS,
        {},
        "bot_missing_permissions",
        50013,
        "The bot lacks a permission (Create Invite, Manage Roles or role order)",
    ),
    (
        "alice",
        GUILD,
        {"roles": [ROLE_HIGH]},
        "bot_missing_permissions",
        50013,
        "The bot lacks a permission (Create Invite, Manage Roles or role order)",
    ),
    ("mallory", GUILD, {}, "banned", 40007, "The user is banned from this server"),
    ("full", GUILD, {}, "max_guilds", 30001, "The user is in the maximum number of servers"),
    ("alice", GUILD, {"roles": ["1200000000000000777"]}, "discord_error", 10011, "Unknown Role"),
]


@pytest.mark.parametrize(
    ("user", "guild", "extra", "code", "discord_code", "msg_en"), REFUSALS, ids=[f"{r[3]}-{r[0]}" for r in REFUSALS]
)
def test_discord_refusals(
    gateway: Gateway,
    fresh: Sandbox,
    user: str,
    guild: str,
    extra: dict[str, Any],
    code: str,
    discord_code: int,
    msg_en: str,
) -> None:
    r = gateway.join({"authorization": TOKENS[user], "guild_id": guild, **extra}, headers={"Accept-Language": "en"})
    body = envelope(r)
    assert r.status_code == 200
    assert (body["status"], body["code"]) == (0, code)
    assert body["msg"] == msg_en
    assert body["data"] is None
    assert UUID.match(body["id"])
    if code != "token_expired":
        assert body["discord_code"] == discord_code
    zh = envelope(gateway.join({"authorization": TOKENS[user], "guild_id": guild, **extra}))
    assert zh["code"] == code and zh["msg"] != msg_en
    assert re.search(r"[\u4e00-\u9fff]", zh["msg"]), zh["msg"]


def test_a_token_refused_through_another_apps_bot_still_joins_through_its_own(gateway: Gateway, fresh: Sandbox) -> None:
    """A token granted to app A, sent with app B's key: Discord refuses it (403 50025) and the refusal is
    remembered for app B (its next try sends no second Add Guild Member), but not for app A: the same person's
    join through the app the token was granted to goes through."""
    token = fresh.mint("alice")
    body = {"authorization": token, "guild_id": GUILD}
    assert envelope(gateway.join(body, key="b"))["code"] == "invalid_oauth_token"
    assert envelope(gateway.join(body, key="b"))["code"] == "invalid_oauth_token"
    assert fresh.stats()["requests"][PUT] == 1
    joined = envelope(gateway.join(body, key="a"))
    assert (joined["status"], joined["code"]) == (1, "joined")
    assert fresh.member(GUILD, USER_IDS["alice"]) is not None


def test_token_expired_uses_the_existing_apis_chinese_wording(gateway: Gateway, fresh: Sandbox) -> None:
    body = envelope(gateway.join({"authorization": TOKENS["erin"], "guild_id": GUILD}))
    assert body["msg"] == "token 过期(账号未登录)"


def test_bot_not_in_guild_when_discord_answers_50001(gateway: Gateway, fresh: Sandbox) -> None:
    fresh.reset({**WORLD, "options": {"bot_not_in_guild": "50001"}})
    body = envelope(
        gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD_BOTLESS}, headers={"Accept-Language": "en"})
    )
    assert (body["code"], body["discord_code"], body["msg"]) == (
        "bot_not_in_guild",
        50001,
        "The bot has no access to this server",
    )


def test_unknown_invite(gateway: Gateway, fresh: Sandbox) -> None:
    body = envelope(
        gateway.join(
            {"authorization": TOKENS["alice"], "guild_name": "discord.gg/nosuchinvite"},
            headers={"Accept-Language": "en"},
        )
    )
    assert (body["status"], body["code"], body["discord_code"]) == (0, "unknown_invite", 10006)
    assert body["msg"] == "Unknown or expired invite"


def test_invite_urls_in_every_form_resolve(gateway: Gateway, fresh: Sandbox) -> None:
    forms = [
        "Mixed-Case_9",
        "discord.gg/Mixed-Case_9",
        "https://discord.gg/Mixed-Case_9/",
        "https://discord.com/invite/Mixed-Case_9",
        "https://discordapp.com/invite/Mixed-Case_9?x=1",
        "http://www.discord.gg/Mixed-Case_9#frag",
    ]
    for form in forms:
        body = envelope(gateway.join({"authorization": TOKENS["bob"], "guild_name": form}))
        assert body["code"] == "already_member", (form, body)


def test_bad_bot_token_is_passed_through_as_discord_error(gateway: Gateway, fresh: Sandbox) -> None:
    world = json.loads(json.dumps(WORLD))
    world["applications"][0]["bot_token"] = "rotated-bot-token-0000"
    fresh.reset(world)
    body = envelope(
        gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD}, headers={"Accept-Language": "en"})
    )
    assert (body["status"], body["code"], body["discord_code"]) == (0, "discord_error", 0)
    assert body["msg"] == "401: Unauthorized"


def test_discord_unavailable_after_bounded_retries(gateway: Gateway, fresh: Sandbox) -> None:
    fresh.faults({"routes": {"PUT /guilds/{guild_id}/members/{user_id}": {"error_rate": 1.0, "status": 502}}})
    r = gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD}, headers={"Accept-Language": "en"})
    body = envelope(r)
    assert r.status_code == 502
    assert (body["status"], body["code"]) == (0, "discord_unavailable")
    assert body["msg"] == "Discord is unavailable, try again later"
    attempts = fresh.stats()["responses"]["PUT /guilds/{guild_id}/members/{user_id}"]["502"]
    assert 2 <= attempts <= 4
    record = gateway.get(f"/api/record/{body['id']}").json()["data"]
    assert record["state"] == "unknown"  # a PUT may have reached Discord: not claimed either way


def test_retries_recover_from_a_transient_5xx(gateway: Gateway, fresh: Sandbox) -> None:
    # Half of all answers fail; with up to 4 attempts a join fails only when all 4 do (1 in 16). The seed makes
    # the sequence repeatable; without retries about 6 of the 12 would fail.
    fresh.faults({"seed": 7, "routes": {"GET /users/@me": {"error_rate": 0.5, "status": 503}}})
    codes = [envelope(gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}))["code"] for _ in range(12)]
    assert codes.count("already_member") >= 10, codes
    assert set(codes) <= {"already_member", "discord_unavailable"}
    assert fresh.stats()["faults_injected"]["GET /users/@me 503 before"] >= 4


def test_a_hanging_discord_answers_within_the_deadline(gateway: Gateway, fresh: Sandbox) -> None:
    fresh.faults({"routes": {"GET /users/@me": {"timeout_rate": 1.0, "hang_seconds": 30}}})
    r = gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD}, headers={"Accept-Language": "en"})
    body = envelope(r)
    assert r.status_code == 504
    assert body["code"] == "discord_unavailable"
    assert float(body["cost"][:-2]) < 4000 + 1500  # GUILDGATE_REQUEST_TIMEOUT=4 in the harness
    record = gateway.get(f"/api/record/{body['id']}").json()["data"]
    assert record["state"] == "failed"  # nothing was sent to Add Guild Member


def test_rate_limited_when_the_wait_passes_the_deadline(gateway: Gateway, fresh: Sandbox) -> None:
    # A guild of its own: the gateway keeps what it learned about this bucket after the test.
    slow = "1200000000000000004"
    world = {
        **WORLD,
        "guilds": [*WORLD["guilds"], {"id": slow, "name": "Slow", "bots": {APP_A: ["CREATE_INSTANT_INVITE"]}}],
        "rate_limits": {
            "routes": {"PUT /guilds/{guild_id}/members/{user_id}": {"limit": 1, "reset_after": 60.0, "window": "fixed"}}
        },
    }
    fresh.reset(world)
    first = envelope(gateway.join({"authorization": TOKENS["carol"], "guild_id": slow}))
    assert first["code"] == "joined"
    r = gateway.join({"authorization": TOKENS["alice"], "guild_id": slow}, headers={"Accept-Language": "en"})
    body = envelope(r)
    assert r.status_code == 503
    assert body["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 61
    assert body["msg"].startswith("Rate limited by Discord, retry after ")
    assert float(body["cost"][:-2]) < 1000  # answered at once, not after waiting
    assert fresh.stats()["rate_limited"] == {"user": 0, "global": 0, "shared": 0}


def test_a_server_name_with_control_characters_is_stored_without_them(gateway: Gateway, fresh: Sandbox) -> None:
    """Discord's answers are not trusted to be clean: a server named with a NUL (which PostgreSQL's text cannot
    hold) and a line break, reached through its invite, still joins, and its record keeps the name without them."""
    world = json.loads(json.dumps(WORLD))
    world["guilds"][0]["name"] = "Evil\x00Server\nName"
    world["guilds"][0]["invites"].append("evilname")  # an invite not looked up before (lookups are cached)
    fresh.reset(world)
    r = gateway.join({"authorization": TOKENS["alice"], "guild_name": "evilname"})
    body = envelope(r)
    assert body["status"] == 1, body
    assert json.loads(body["data"])["name"] == "Evil Server Name"
    record = gateway.get(f"/api/record/{body['id']}").json()["data"]
    assert (record["state"], record["guild_name"]) == ("succeeded", "Evil Server Name")
