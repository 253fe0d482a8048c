"""The usage roll-up (``usage_days``): finished records counted per app, day, outcome, API key and developer id.

``count_finished`` adds the records just finished to it, in the transaction that finished them (the group
writer's batch, ``RecordRepo.settle``): one statement a batch, reading the records it names by primary key, so
the counts always agree with the records written. It comes last in the transaction: on PostgreSQL the rows it
updates stay locked until the commit, and every worker's batch of the day's joins updates the same few.
``GET /api/usage`` then sums at most a row per day, outcome, key and developer id, however many records there
are. Migration 0005 filled it from the records there were."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, TextClause, bindparam, text


def day_of(dialect: str) -> str:
    """The SQL for a record's day (UTC, ``YYYY-MM-DD``): created_at is stored as naive UTC."""
    return "to_char(created_at, 'YYYY-MM-DD')" if dialect == "postgresql" else "substr(created_at, 1, 10)"


def rollup_sql(dialect: str, where: str) -> str:
    """Add the finished records ``where`` selects to ``usage_days``."""
    day = day_of(dialect)
    groups = f"app_id, {day}, code, coalesce(key_id, ''), coalesce(developer_id, '')"
    upsert = (
        "ON CONFLICT (app_id, day, code, key_id, developer_id) DO UPDATE SET count = usage_days.count + excluded.count"
    )
    insert = "INSERT INTO usage_days (app_id, day, code, key_id, developer_id, count)"
    # SQL made of constants: the dialect's day expression, the caller's fixed condition
    # In key order: two workers' transactions on PostgreSQL then lock the rows they share in the same order, and
    # one waits for the other rather than both for each other (a deadlock would fail a whole batch of records).
    select = ["SELECT", groups, ", count(*) FROM records WHERE code IS NOT NULL AND (", where, ") GROUP BY", groups]
    return " ".join([insert, *select, "ORDER BY 1, 2, 3, 4, 5", upsert])


_STATEMENTS: dict[str, TextClause] = {}


def count_finished(conn: Connection, record_ids: Sequence[str]) -> None:
    """Count the records ``record_ids`` (just finished, in this transaction) in the roll-up."""
    if not record_ids:
        return
    dialect = conn.dialect.name
    statement = _STATEMENTS.get(dialect)
    if statement is None:
        statement = _STATEMENTS[dialect] = text(rollup_sql(dialect, "id IN :ids")).bindparams(
            bindparam("ids", expanding=True)
        )
    conn.execute(statement, {"ids": list(record_ids)})
