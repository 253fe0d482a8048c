"""The clients' grant methods against the running service and the sandbox: typed answers, typed errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guildgate import AsyncClient, Client, Grant, GrantEndedError, GrantPage, NotAMemberError, NotFoundError
from tests.conftest import Gateway, Sandbox
from tests.grantworld import ALICE, BOB, CAROL, removals, roles_at, servers


def test_sync_client_grant_calls(gateway: Gateway, fresh: Sandbox) -> None:
    first, second = servers(fresh, 2)
    ref = f"cl_{first.id[-6:]}"
    with Client(gateway.proc.url, gateway.keys["a"], language="en") as gg:
        made = gg.create_grant(guild_id=first.id, user_id=BOB, roles=[first.roles[0]], duration="7d", external_ref=ref)
        assert isinstance(made, Grant) and made.created and not made.stale
        assert (made.state, made.roles, made.revision, made.on_end) == ("active", (first.roles[0],), 1, "remove_roles")
        assert made.ends_at is not None and made.ends_at.tzinfo is not None
        assert timedelta(days=7) - timedelta(minutes=1) < made.ends_at - datetime.now(UTC) <= timedelta(days=7)
        assert first.roles[0] in roles_at(fresh, first, BOB)

        renewed = gg.create_grant(
            guild_id=first.id, user_id=BOB, roles=[first.roles[0]], duration="30d", external_ref=ref
        )
        assert renewed.id == made.id and not renewed.created and renewed.revision == 2
        assert gg.get_grant(made.id).ends_at == renewed.ends_at

        changed = gg.update_grant(made.id, roles=[first.roles[1]], on_end="keep")
        assert (changed.roles, changed.on_end) == ((first.roles[1],), "keep")
        opened = gg.update_grant(made.id, ends_at=None)
        assert opened.ends_at is None
        assert gg.update_grant(made.id, ends_at="2027-06-01T00:00:00Z").ends_at == datetime(2027, 6, 1, tzinfo=UTC)

        other = gg.create_grant(guild_id=second.id, user_id=BOB, roles=[second.roles[0]], external_ref=ref)
        extended = gg.update_grants_by_ref(ref, ends_at=datetime(2027, 7, 1, tzinfo=UTC))
        assert sorted(g.id for g in extended) == sorted([made.id, other.id])

        older = gg.update_grant(made.id, ends_at=None, as_of=datetime(2000, 1, 1, tzinfo=UTC))
        assert older.as_of == datetime(2000, 1, 1, tzinfo=UTC) and not older.stale  # the first fact told
        stale = gg.update_grant(made.id, ends_at=None, as_of=datetime(1999, 1, 1, tzinfo=UTC))
        assert stale.stale and stale.revision == older.revision

        ended = gg.end_grants_by_ref(ref, on_end="remove_roles")
        assert {(g.state, g.end_reason) for g in ended} == {("ended", "revoked")}
        assert removals(fresh, second, BOB, second.roles[0]) == 1
        with pytest.raises(GrantEndedError) as finished:
            gg.update_grant(made.id, roles=[first.roles[0]])
        assert finished.value.http_status == 409

        carols = gg.create_grant(guild_id=first.id, user_id=CAROL, roles=[first.roles[2]])
        assert gg.end_grant(carols.id).state == "ended"
        assert first.roles[2] not in roles_at(fresh, first, CAROL)

        with pytest.raises(NotAMemberError) as not_member:
            gg.create_grant(guild_id=first.id, user_id=ALICE, roles=[first.roles[0]])
        assert not_member.value.code == "not_a_member"
        with pytest.raises(NotFoundError) as unknown:
            gg.get_grant("grt_0000000000000000")
        assert unknown.value.code == "unknown_grant"

        page = gg.list_grants(guild_id=first.id, limit=1)
        assert isinstance(page, GrantPage) and page.grants[0].id == carols.id and page.next_cursor
        everything = list(gg.iter_grants(guild_id=first.id, limit=1))
        assert [g.id for g in everything] == [carols.id, made.id]
        assert [g.id for g in gg.iter_grants(guild_id=first.id, user_id=CAROL, state="ended")] == [carols.id]
    with Client(gateway.proc.url, gateway.keys["b"]) as other_app, pytest.raises(NotFoundError):
        other_app.get_grant(made.id)


async def test_async_client_grant_calls(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    async with AsyncClient(gateway.proc.url, gateway.keys["a"]) as gg:
        made = await gg.create_grant(guild_id=server.id, user_id=BOB, roles=[server.roles[0]], duration="1d")
        assert made.created and (await gg.get_grant(made.id)).id == made.id
        changed = await gg.update_grant(made.id, roles=[server.roles[0], server.roles[1]])
        assert changed.roles == (server.roles[0], server.roles[1])
        assert [g.id async for g in gg.iter_grants(guild_id=server.id)] == [made.id]
        assert (await gg.list_grants(guild_id=server.id, absent=False)).grants[0].id == made.id
        assert await gg.update_grants_by_ref("no_such_ref", on_end="kick") == []
        assert await gg.end_grants_by_ref("no_such_ref") == []
        ended = await gg.end_grant(made.id)
        assert ended.state == "ended" and not ended.stale
        assert roles_at(fresh, server, BOB) == set()
        with pytest.raises(NotAMemberError):
            await gg.create_grant(guild_id=server.id, user_id=ALICE, roles=[server.roles[0]])
