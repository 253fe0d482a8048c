"""The join pipeline's ``admit`` hook, in this process with the real adapters (DiscordRest against the sandbox,
records in SQLite): it runs once the user is known and before anything is added; a refusal there is a finished,
failed record with its code and nothing added; the grant id it names is on the record."""

from __future__ import annotations

import time

from guildgate.core.errors import AccessEndedError
from guildgate.core.joins import Admit, JoinOutcome, JoinRequest, RecordedJoinError, join
from guildgate.core.outcomes import Outcome, Source
from guildgate.core.ports import MemberOptions, NewRecord
from guildgate.core.secret import Secret
from tests.conftest import APP_A, GUILD, PUT, ROLE_LOW, TOKENS, USER_IDS
from tests.core.conftest import Core


async def _join(core: Core, token: str, admit: Admit) -> JoinOutcome | RecordedJoinError:
    request = JoinRequest(authorization=Secret(token), guild_id=GUILD, options=MemberOptions(roles=(ROLE_LOW,)))
    try:
        return await join(
            request,
            app=await core.app(),
            new_record=NewRecord(app_id=APP_A, key_id=None, source=Source.LINK, guild_id=GUILD, link_id="lnk_x"),
            discord=core.discord,
            records=core.records,
            deadline=time.monotonic() + 10,
            started=time.perf_counter(),
            admit=admit,
        )
    except RecordedJoinError as exc:
        return exc


async def test_a_refusal_in_admit_adds_nobody_and_fails_the_record_with_its_code(core: Core) -> None:
    seen: list[tuple[str, str]] = []

    async def admit(guild_id: str, user_id: str) -> str | None:
        seen.append((guild_id, user_id))
        raise AccessEndedError("this person's access through this link has ended")

    result = await _join(core, TOKENS["alice"], admit)
    assert isinstance(result, RecordedJoinError) and result.error.outcome is Outcome.ACCESS_ENDED
    assert seen == [(GUILD, USER_IDS["alice"])]  # called with the user Discord named
    assert core.sandbox.stats()["requests"].get(PUT, 0) == 0
    assert core.sandbox.member(GUILD, USER_IDS["alice"]) is None
    assert result.record_id is not None
    row = await core.record(result.record_id)
    assert (row.state, row.code, row.user_id, row.guild_id) == ("failed", "access_ended", USER_IDS["alice"], GUILD)
    assert row.finished_at is not None


async def test_the_grant_admit_names_is_on_the_record_and_the_join_goes_on(core: Core) -> None:
    async def admit(guild_id: str, user_id: str) -> str | None:
        return "grt_0123456789abcdef"

    result = await _join(core, TOKENS["alice"], admit)
    assert isinstance(result, JoinOutcome) and result.outcome is Outcome.JOINED
    row = await core.record(result.record_id)
    assert (row.state, row.grant_id) == ("succeeded", "grt_0123456789abcdef")
    member = core.sandbox.member(GUILD, USER_IDS["alice"])
    assert member is not None and member["roles"] == [ROLE_LOW]
