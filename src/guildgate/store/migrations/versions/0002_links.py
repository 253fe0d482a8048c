"""join links and OAuth2 states

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("slug", sa.String(32), nullable=False, unique=True),
        sa.Column("app_id", sa.String(20), sa.ForeignKey("apps.client_id"), nullable=False),
        sa.Column("guild_id", sa.String(20), nullable=False),
        sa.Column("guild_name", sa.String(200), nullable=True),
        sa.Column("guild_icon", sa.String(200), nullable=True),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_links_app_id", "links", ["app_id"])
    op.create_table(
        "oauth_states",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("link_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_oauth_states_link_id", "oauth_states", ["link_id"])
    op.create_index("ix_records_link", "records", ["link_id", "code"])


def downgrade() -> None:
    op.drop_index("ix_records_link", "records")
    op.drop_table("oauth_states")
    op.drop_table("links")
