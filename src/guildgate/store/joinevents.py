"""The joins' events: ``join.succeeded`` / ``join.failed`` for the records just finished, written in the
transaction that finished them (the group writer's batch, ``RecordRepo.settle``), so an event reports exactly
the outcomes that were committed (``../shared/spec/access.md``, "Events"). A join refused before its record
(a bad API key, a quota) has no record, so no event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, select

from guildgate.core.outcomes import Outcome, RecordState
from guildgate.store.events import add_events_sync
from guildgate.store.models import RecordRow
from guildgate.store.usage import count_finished

_RECORDS: Table = RecordRow.__table__  # type: ignore[assignment]
_COLUMNS = [
    _RECORDS.c[name]
    for name in (
        "id",
        "app_id",
        "guild_id",
        "user_id",
        "state",
        "code",
        "discord_code",
        "source",
        "link_id",
        "grant_id",
        "developer_id",
    )
]


def join_event(row: Any) -> tuple[str, str, dict[str, Any]]:
    """(app_id, type, data) of one finished record."""
    common = {"record_id": row.id, "app_id": row.app_id, "guild_id": row.guild_id, "user_id": row.user_id}
    if row.state == RecordState.SUCCEEDED.value:
        data = {
            **common,
            "joined": row.code == Outcome.JOINED.value,
            "source": row.source,
            "link_id": row.link_id,
            "grant_id": row.grant_id,
            "developer_id": row.developer_id,
        }
        return row.app_id, "join.succeeded", data
    data = {
        **common,
        "code": row.code,
        "discord_code": row.discord_code,
        "source": row.source,
        "link_id": row.link_id,
        "developer_id": row.developer_id,
    }
    return row.app_id, "join.failed", data


def add_join_events(conn: Connection, record_ids: Sequence[str]) -> None:
    """Write the events of the records ``record_ids`` (just finished, in this transaction)."""
    if not record_ids:
        return
    query = select(*_COLUMNS).where(_RECORDS.c.id.in_(list(record_ids)), _RECORDS.c.code.is_not(None))
    order = {record_id: n for n, record_id in enumerate(record_ids)}
    rows = sorted(conn.execute(query).all(), key=lambda row: order.get(row.id, 0))
    add_events_sync(conn, [join_event(row) for row in rows])


def records_finished(conn: Connection, record_ids: Sequence[str]) -> None:
    """The group writer's ``finished`` hook: the events, then the usage roll-up (which comes last: see
    store/usage.py)."""
    add_join_events(conn, record_ids)
    count_finished(conn, record_ids)
