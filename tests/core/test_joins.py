"""core.joins.join in this process, with the real adapters: DiscordRest against the sandbox, records in SQLite.
Every outcome ends with a finished record that says what happened."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from guildgate.core.joins import JoinOutcome, RecordedJoinError
from guildgate.core.outcomes import Outcome
from guildgate.store.models import RecordRow
from tests.conftest import GUILD, GUILD_BOTLESS, PUT, ROLE_LOW, TOKENS, USER_IDS, WORLD
from tests.core.conftest import Core

IDENTIFY = "GET /users/@me"
UNKNOWN_GUILD = "1200000000000000099"


async def test_a_consenting_user_is_added_and_the_record_says_joined(core: Core) -> None:
    result = await core.join(TOKENS["alice"], guild_id=GUILD, roles=(ROLE_LOW,))
    assert isinstance(result, JoinOutcome)
    assert (result.outcome, result.user_id, result.discord_status) == (Outcome.JOINED, USER_IDS["alice"], 201)
    member = core.sandbox.member(GUILD, USER_IDS["alice"])
    assert member is not None and ROLE_LOW in member["roles"]
    row = await core.record(result.record_id)
    assert (row.state, row.code, row.guild_id, row.user_id) == ("succeeded", "joined", GUILD, USER_IDS["alice"])
    assert row.finished_at is not None


async def test_an_invite_names_the_server(core: Core) -> None:
    result = await core.join(TOKENS["alice"], invite="test1")
    assert isinstance(result, JoinOutcome)
    assert (result.outcome, result.guild.id, result.guild.name) == (Outcome.JOINED, GUILD, "Test Server")
    row = await core.record(result.record_id)
    assert (row.guild_id, row.guild_name) == (GUILD, "Test Server")


async def test_a_member_already_in_the_server_is_already_member(core: Core) -> None:
    result = await core.join(TOKENS["bob"], guild_id=GUILD)
    assert isinstance(result, JoinOutcome)
    assert (result.outcome, result.joined, result.discord_status) == (Outcome.ALREADY_MEMBER, False, 204)
    row = await core.record(result.record_id)
    assert (row.state, row.code) == ("succeeded", "already_member")


@pytest.mark.parametrize(
    ("token", "guild", "outcome", "discord_status"),
    [
        pytest.param(TOKENS["mallory"], GUILD, Outcome.BANNED, 403, id="banned"),
        pytest.param("not-a-token-anyone-issued", GUILD, Outcome.TOKEN_EXPIRED, 401, id="invalid-token"),
        pytest.param(TOKENS["nojoin"], GUILD, Outcome.INVALID_OAUTH_TOKEN, 403, id="token-without-guilds-join"),
        pytest.param(TOKENS["alice"], UNKNOWN_GUILD, Outcome.UNKNOWN_GUILD, 404, id="unknown-guild"),
        pytest.param(TOKENS["alice"], GUILD_BOTLESS, Outcome.UNKNOWN_GUILD, 404, id="guild-without-the-bot"),
    ],
)
async def test_a_refusal_is_a_failed_record_with_discords_answer(
    core: Core, token: str, guild: str, outcome: Outcome, discord_status: int
) -> None:
    result = await core.join(token, guild_id=guild)
    assert isinstance(result, RecordedJoinError), result
    assert result.error.outcome is outcome
    assert result.record_id is not None
    row = await core.record(result.record_id)
    assert (row.state, row.code, row.discord_status) == ("failed", outcome.value, discord_status)
    if guild != UNKNOWN_GUILD:
        assert core.sandbox.member(guild, USER_IDS["alice"]) is None


async def test_a_server_whose_bot_has_no_access_is_bot_not_in_guild(core: Core) -> None:
    core.sandbox.reset({**WORLD, "options": {"bot_not_in_guild": "50001"}})
    result = await core.join(TOKENS["alice"], guild_id=GUILD_BOTLESS)
    assert isinstance(result, RecordedJoinError)
    assert (result.error.outcome, result.record_id is not None) == (Outcome.BOT_NOT_IN_GUILD, True)
    assert result.record_id is not None
    row = await core.record(result.record_id)
    assert (row.state, row.code, row.discord_code) == ("failed", "bot_not_in_guild", 50001)


async def test_an_unknown_invite_is_refused_and_recorded(core: Core) -> None:
    result = await core.join(TOKENS["alice"], invite="no-such-invite")
    assert isinstance(result, RecordedJoinError)
    assert result.error.outcome is Outcome.UNKNOWN_INVITE
    assert result.record_id is not None
    assert (await core.record(result.record_id)).state == "failed"


async def test_discord_failing_before_the_add_is_a_failed_record(core: Core) -> None:
    core.sandbox.faults({"routes": {IDENTIFY: {"error_rate": 1.0, "status": 502}}})
    result = await core.join(TOKENS["alice"], guild_id=GUILD)
    assert isinstance(result, RecordedJoinError)
    assert result.error.outcome is Outcome.DISCORD_UNAVAILABLE
    assert result.record_id is not None
    row = await core.record(result.record_id)
    assert (row.state, row.code) == ("failed", "discord_unavailable")
    assert core.sandbox.member(GUILD, USER_IDS["alice"]) is None


async def test_discord_failing_after_the_add_leaves_the_record_unknown(core: Core) -> None:
    # The 502 comes after the sandbox added the user: nobody can tell, so the record says "unknown".
    core.sandbox.faults({"routes": {PUT: {"error_rate": 1.0, "status": 502, "when": "after"}}})
    result = await core.join(TOKENS["alice"], guild_id=GUILD)
    assert isinstance(result, RecordedJoinError)
    assert result.error.outcome is Outcome.DISCORD_UNAVAILABLE
    assert result.record_id is not None
    row = await core.record(result.record_id)
    assert (row.state, row.code, row.user_id) == ("unknown", "discord_unavailable", USER_IDS["alice"])


async def test_a_deadline_passed_while_discord_holds_the_add_leaves_the_record_unknown(core: Core) -> None:
    core.sandbox.faults({"routes": {PUT: {"latency_ms": 4000}}})
    result = await core.join(TOKENS["alice"], guild_id=GUILD, seconds=2)
    assert isinstance(result, RecordedJoinError)
    assert (result.error.outcome, result.error.http_status) == (Outcome.DISCORD_UNAVAILABLE, 504)
    assert result.record_id is not None
    row = await core.record(result.record_id)
    assert (row.state, row.code, row.user_id) == ("unknown", "discord_unavailable", USER_IDS["alice"])


async def test_no_outcome_leaves_a_record_pending(core: Core) -> None:
    await core.join(TOKENS["alice"], guild_id=GUILD)
    await core.join(TOKENS["bob"], guild_id=GUILD)
    await core.join(TOKENS["mallory"], guild_id=GUILD)
    await core.join("not-a-token-anyone-issued", guild_id=GUILD)
    await core.join(TOKENS["erin"], guild_id=GUILD_BOTLESS)
    core.sandbox.faults({"routes": {IDENTIFY: {"error_rate": 1.0, "status": 502}}})
    await core.join(TOKENS["carol"], guild_id=GUILD)
    core.sandbox.faults({"routes": {PUT: {"error_rate": 1.0, "status": 502, "when": "after"}}})
    await core.join(TOKENS["carol"], guild_id=GUILD)
    assert await core.records.pending(limit=100) == []
    async with core.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(RecordRow)) == 7
