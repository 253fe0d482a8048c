"""apps, api keys and records

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("client_id", sa.String(20), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("client_secret_enc", sa.Text(), nullable=False),
        sa.Column("bot_token_enc", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("app_id", sa.String(20), sa.ForeignKey("apps.client_id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("quota_per_minute", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_api_keys_app_id", "api_keys", ["app_id"])
    op.create_table(
        "records",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("app_id", sa.String(20), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("code", sa.String(32), nullable=True),
        sa.Column("detail", sa.String(400), nullable=True),
        sa.Column("guild_id", sa.String(20), nullable=True),
        sa.Column("guild_name", sa.String(200), nullable=True),
        sa.Column("user_id", sa.String(20), nullable=True),
        sa.Column("developer_id", sa.String(64), nullable=True),
        sa.Column("link_id", sa.String(32), nullable=True),
        sa.Column("cost_ms", sa.Float(), nullable=True),
        sa.Column("discord_status", sa.Integer(), nullable=True),
        sa.Column("discord_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("response_headers", sa.Text(), nullable=True),
        sa.UniqueConstraint("key_id", "idempotency_key", name="uq_records_idempotency"),
    )
    op.create_index("ix_records_app_created", "records", ["app_id", "created_at", "id"])
    op.create_index("ix_records_state", "records", ["state"])


def downgrade() -> None:
    op.drop_table("records")
    op.drop_table("api_keys")
    op.drop_table("apps")
