"""core.reconcile.reconcile in this process: records left pending (as a crash leaves them) are settled from
Get Guild Member against the sandbox, and written to SQLite."""

from __future__ import annotations

from guildgate.core.outcomes import Source
from guildgate.core.ports import NewRecord
from guildgate.core.reconcile import reconcile
from tests.conftest import APP_A, GUILD, USER_IDS
from tests.core.conftest import Core

GET_MEMBER = "GET /guilds/{guild_id}/members/{user_id}"


async def left_pending(core: Core, user: str | None) -> str:
    """A record as a process killed mid-join leaves it: created, and (with a user) marked as being sent."""
    record_id = await core.records.create(NewRecord(app_id=APP_A, key_id=None, source=Source.API, guild_id=GUILD))
    if user is not None:
        await core.records.sending(record_id, guild_id=GUILD, guild_name=None, user_id=USER_IDS[user])
    return record_id


async def test_pending_records_are_settled_from_get_guild_member(core: Core) -> None:
    in_server = await left_pending(core, "bob")  # the fixture has bob in the server
    not_in = await left_pending(core, "alice")
    nothing_sent = await left_pending(core, None)
    settled = await reconcile(records=core.records, discord=core.discord, apps=core.apps)
    assert (settled.total, dict(settled.counts)) == (3, {"succeeded": 1, "failed": 2})
    row = await core.record(in_server)
    assert (row.state, row.code, row.discord_status) == ("succeeded", "joined", 200)
    row = await core.record(not_in)
    assert (row.state, row.code, row.discord_status) == ("failed", "discord_unavailable", 404)
    row = await core.record(nothing_sent)
    assert (row.state, row.discord_status) == ("failed", None)
    assert await core.records.pending(limit=10) == []


async def test_discord_not_answering_leaves_the_record_unknown(core: Core) -> None:
    record_id = await left_pending(core, "bob")
    core.sandbox.faults({"routes": {GET_MEMBER: {"error_rate": 1.0, "status": 503}}})
    settled = await reconcile(records=core.records, discord=core.discord, apps=core.apps, seconds_per_call=3)
    assert dict(settled.counts) == {"unknown": 1}
    assert (await core.record(record_id)).state == "unknown"
    assert await core.records.pending(limit=10) == []
