"""grants and events: access that lasts and ends, and the outbox of what happened

``records`` gain ``grant_id`` (the grant a join makes or renews, named by its ``join.succeeded`` event);
``links`` gain the access options (``--access-for``, ``--access-until``, ``--access-open``, ``--on-end``);
``grants`` holds each grant with the lease that lets one worker end it; ``events`` is the outbox the webhook
sender reads, written in the transaction of the change each event reports.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _partial(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    with op.batch_alter_table("records") as records:
        records.add_column(sa.Column("grant_id", sa.String(32)))
    with op.batch_alter_table("links") as links:
        links.add_column(sa.Column("access_for", sa.String(16)))
        links.add_column(sa.Column("access_until", sa.DateTime()))
        links.add_column(sa.Column("access_open", sa.Boolean(), nullable=False, server_default=sa.false()))
        links.add_column(sa.Column("on_end", sa.String(16)))
    op.create_table(
        "grants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("app_id", sa.String(20), nullable=False),
        sa.Column("guild_id", sa.String(20), nullable=False),
        sa.Column("user_id", sa.String(20), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("roles_preexisting", sa.Text(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime()),
        sa.Column("on_end", sa.String(16), nullable=False),
        sa.Column("external_ref", sa.String(128)),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("link_id", sa.String(32)),
        sa.Column("record_id", sa.String(36)),
        sa.Column("absent_since", sa.DateTime()),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime()),
        sa.Column("ended_at", sa.DateTime()),
        sa.Column("end_reason", sa.String(12)),
        sa.Column("end_action", sa.String(16)),
        sa.Column("last_error", sa.String(400)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("lease_token", sa.String(32)),
        sa.Column("lease_until", sa.DateTime()),
        sa.Column("next_try_at", sa.DateTime()),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("reminders", sa.Text(), nullable=False),
    )
    op.create_index("ix_grants_app_created", "grants", ["app_id", "created_at", "id"])
    op.create_index("ix_grants_member", "grants", ["guild_id", "user_id", "state"])
    op.create_index("ix_grants_due", "grants", ["ends_at"], **_partial("state = 'active' AND ends_at IS NOT NULL"))
    op.create_index(
        "uq_grants_external_ref",
        "grants",
        ["app_id", "guild_id", "external_ref"],
        unique=True,
        **_partial("state = 'active' AND external_ref IS NOT NULL"),
    )
    op.create_index(
        "uq_grants_link_user", "grants", ["link_id", "user_id"], unique=True, **_partial("link_id IS NOT NULL")
    )
    op.create_index(
        "ix_grants_external_ref", "grants", ["app_id", "external_ref"], **_partial("external_ref IS NOT NULL")
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("app_id", sa.String(20), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_events_app_created", "events", ["app_id", "created_at", "id"])
    op.create_index("ix_events_created", "events", ["created_at"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("grants")
    with op.batch_alter_table("links") as links:
        for column in ("on_end", "access_open", "access_until", "access_for"):
            links.drop_column(column)
    with op.batch_alter_table("records") as records:
        records.drop_column("grant_id")
