"""admin_sessions: dashboard sessions held on the server, so logging out ends one for good

A session was a signed cookie alone: one saved before logging out still opened the dashboard until it expired.
Now the cookie names a row of this table, which logging out deletes (and expired rows go at the next login).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_admin_sessions_expires_at", "admin_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_admin_sessions_expires_at", "admin_sessions")
    op.drop_table("admin_sessions")
