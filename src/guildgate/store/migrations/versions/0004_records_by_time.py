"""records: an index on (created_at, id), so listing every app's records newest first reads one page, not the table

Listing and exporting without an app filter (the admin dashboard, ``guildgate records export``) ordered the
whole table by (created_at, id) for every page: each page read every record and sorted them, and an export of
n records took time in n squared (50,000 records: 16.5 s, docs/performance.md). The index gives the order, and
the page's cursor, a row comparison ``(created_at, id) < (?, ?)``, starts where the last page ended. An app's
own listing already had ``ix_records_app_created``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_created", "records", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_records_created", "records")
