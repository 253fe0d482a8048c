"""usage_days, a roll-up of finished records for GET /api/usage; indexes for an app's records by server and by
developer id

``GET /api/usage`` counted an app's records by day and outcome from the records themselves: at a million records,
all time took 1.6 s (docs/performance.md). ``usage_days`` holds the counts per app, day, outcome, API key and
developer id, kept in the transaction that finishes each record (store/usage.py); this migration fills it from
the records there are. A filter by server (or developer id) that matched few records, or none, read the app's
records newest first until it had a page, or all of them: ``ix_records_app_guild`` and
``ix_records_app_developer`` go straight to them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

HAS_GUILD = sa.text("guild_id IS NOT NULL")
HAS_DEVELOPER = sa.text("developer_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "usage_days",
        sa.Column("app_id", sa.String(20), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("developer_id", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "day", "code", "key_id", "developer_id"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    day = "to_char(created_at, 'YYYY-MM-DD')" if postgres else "substr(created_at, 1, 10)"
    groups = f"app_id, {day}, code, coalesce(key_id, ''), coalesce(developer_id, '')"
    insert = "INSERT INTO usage_days (app_id, day, code, key_id, developer_id, count)"
    op.execute(" ".join([insert, "SELECT", groups, ", count(*) FROM records WHERE code IS NOT NULL GROUP BY", groups]))
    for name, column, where in (
        ("ix_records_app_guild", "guild_id", HAS_GUILD),
        ("ix_records_app_developer", "developer_id", HAS_DEVELOPER),
    ):
        op.create_index(
            name, "records", ["app_id", column, "created_at", "id"], sqlite_where=where, postgresql_where=where
        )


def downgrade() -> None:
    op.drop_index("ix_records_app_developer", "records")
    op.drop_index("ix_records_app_guild", "records")
    op.drop_table("usage_days")
