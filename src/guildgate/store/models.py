"""The tables. Secrets are stored encrypted (apps) or hashed (API keys); user tokens are never stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (every backend), read back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class AppRow(Base):
    __tablename__ = "apps"
    client_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    client_secret_enc: Mapped[str] = mapped_column(Text)
    bot_token_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.client_id"), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    quota_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecordRow(Base):
    __tablename__ = "records"
    __table_args__ = (
        # Partial indexes (migration 0003): a row outside one costs that index no write.
        Index(
            "uq_records_idempotency",
            "key_id",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_records_app_created", "app_id", "created_at", "id"),
        Index("ix_records_created", "created_at", "id"),
        # An app's records for one server or one developer id, newest first, whether there are many or none
        # (migration 0005); partial: a record without one costs the index no write.
        Index(
            "ix_records_app_guild",
            "app_id",
            "guild_id",
            "created_at",
            "id",
            sqlite_where=text("guild_id IS NOT NULL"),
            postgresql_where=text("guild_id IS NOT NULL"),
        ),
        Index(
            "ix_records_app_developer",
            "app_id",
            "developer_id",
            "created_at",
            "id",
            sqlite_where=text("developer_id IS NOT NULL"),
            postgresql_where=text("developer_id IS NOT NULL"),
        ),
        Index(
            "ix_records_pending",
            "created_at",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        Index(
            "ix_records_link",
            "link_id",
            "code",
            sqlite_where=text("link_id IS NOT NULL"),
            postgresql_where=text("link_id IS NOT NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(20))
    key_id: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(12))
    code: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(400))
    guild_id: Mapped[str | None] = mapped_column(String(20))
    guild_name: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(20))
    developer_id: Mapped[str | None] = mapped_column(String(64))
    link_id: Mapped[str | None] = mapped_column(String(32))
    grant_id: Mapped[str | None] = mapped_column(String(32))  # the grant the join makes or renews (migration 0007)
    cost_ms: Mapped[float | None] = mapped_column(Float)
    discord_status: Mapped[int | None] = mapped_column(Integer)
    discord_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[str | None] = mapped_column(Text)


class UsageDayRow(Base):
    """Finished records counted per app, day (UTC, ``YYYY-MM-DD``), outcome, API key and developer id: what
    ``GET /api/usage`` reads. Kept by the records' writes, in their transaction (store/usage.py); not touched by
    ``records prune``. "" stands for no key (a join link's records) and no developer id."""

    __tablename__ = "usage_days"
    app_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    developer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class LinkRow(Base):
    """A join link: one server, optional roles, uses, expiry. ``opens`` and ``sends`` feed the funnel."""

    __tablename__ = "links"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.client_id"), index=True)
    guild_id: Mapped[str] = mapped_column(String(20))
    guild_name: Mapped[str | None] = mapped_column(String(200))
    guild_icon: Mapped[str | None] = mapped_column(String(200))
    roles: Mapped[str] = mapped_column(Text, default="[]")  # JSON [{"id": ..., "name": ...}]
    title: Mapped[str | None] = mapped_column(String(200))
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    opens: Mapped[int] = mapped_column(Integer, default=0)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Access (migration 0007): with one of these, each person who gets in through the link gets a grant.
    access_for: Mapped[str | None] = mapped_column(String(16))  # a DURATION as given ("30d"), from their join
    access_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a fixed end
    access_open: Mapped[bool] = mapped_column(Boolean, default=False)  # a grant that never ends by itself
    on_end: Mapped[str | None] = mapped_column(String(16))  # remove_roles | kick | keep (None: remove_roles)


class OAuthStateRow(Base):
    """One started consent flow. The nonce is in the signed ``state``; ``used_at`` makes it single-use."""

    __tablename__ = "oauth_states"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    link_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminSessionRow(Base):
    """One dashboard session (store/sessions.py). The cookie carries the session id; the row holds its SHA-256,
    so logging out (deleting the row) ends it on every worker and host, and across restarts."""

    __tablename__ = "admin_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class GrantRow(Base):
    """A grant (``../shared/spec/access.md``, "Grants"): this user holds these roles in this server until
    ``ends_at`` (or open-ended), and then ``on_end`` is done. ``lease_token``/``lease_until`` claim a due grant for
    one worker (the sweep, workers/); ``next_try_at`` holds a retried end back; ``reminders`` lists the offsets
    (seconds before the end) whose ``grant.ending_soon`` was emitted."""

    __tablename__ = "grants"
    __table_args__ = (
        Index("ix_grants_app_created", "app_id", "created_at", "id"),
        Index("ix_grants_member", "guild_id", "user_id", "state"),
        Index(
            "ix_grants_due",
            "ends_at",
            sqlite_where=text("state = 'active' AND ends_at IS NOT NULL"),
            postgresql_where=text("state = 'active' AND ends_at IS NOT NULL"),
        ),
        # At most one active grant per app and server carries a given external_ref.
        Index(
            "uq_grants_external_ref",
            "app_id",
            "guild_id",
            "external_ref",
            unique=True,
            sqlite_where=text("state = 'active' AND external_ref IS NOT NULL"),
            postgresql_where=text("state = 'active' AND external_ref IS NOT NULL"),
        ),
        # One grant per link and person.
        Index(
            "uq_grants_link_user",
            "link_id",
            "user_id",
            unique=True,
            sqlite_where=text("link_id IS NOT NULL"),
            postgresql_where=text("link_id IS NOT NULL"),
        ),
        Index(
            "ix_grants_external_ref",
            "app_id",
            "external_ref",
            sqlite_where=text("external_ref IS NOT NULL"),
            postgresql_where=text("external_ref IS NOT NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(20))
    guild_id: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str] = mapped_column(String(20))
    roles: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of role ids
    roles_preexisting: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of role ids
    state: Mapped[str] = mapped_column(String(12), default="active")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_end: Mapped[str] = mapped_column(String(16), default="remove_roles")
    external_ref: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(8))
    link_id: Mapped[str | None] = mapped_column(String(32))
    record_id: Mapped[str | None] = mapped_column(String(36))
    absent_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    as_of: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(12))
    end_action: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    reminders: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of offsets (seconds) already emitted


class EventRow(Base):
    """The outbox (store/events.py): one event, written in the transaction of the change it reports. ``body`` is
    the exact bytes every delivery attempt and replay sends."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_app_created", "app_id", "created_at", "id"),
        Index("ix_events_created", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # evt_ + 26 base32 characters
    app_id: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(40))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpointRow(Base):
    """A webhook endpoint (services/webhooks.py). ``secrets_enc``: its secrets, newest first, sealed together with
    GUILDGATE_SECRET_KEY like the apps' (a JSON list of ``{"secret", "retired_at"}`` inside the seal)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_app", "app_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # whe_ + 16 hex
    app_id: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[str | None] = mapped_column(Text)  # JSON list of types; NULL: every type
    secrets_enc: Mapped[str] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDeliveryRow(Base):
    """One event for one endpoint: written with the event (store/events.py), claimed with a lease by a sender
    (workers/webhooks.py); every write of an attempt's result names the lease token it was claimed with."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("uq_webhook_deliveries", "event_id", "endpoint_id", unique=True),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
        Index(
            "ix_webhook_deliveries_waiting",
            "endpoint_id",
            "next_at",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    endpoint_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(10))  # core.webhooks.DeliveryState
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # over its whole life (replays continue the count)
    tries: Mapped[int] = mapped_column(Integer, default=0)  # failed attempts in this round (the retry schedule)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # the event's time
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttemptRow(Base):
    """One delivery attempt's log line: never a secret; the answer's first 2 KiB."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),
        Index("ix_webhook_attempts_event", "event_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    endpoint_id: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(400))
    answer: Mapped[str | None] = mapped_column(Text)
