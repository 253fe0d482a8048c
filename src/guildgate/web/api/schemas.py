"""Response shapes, for the OpenAPI document. ``Envelope`` is made from core/envelope.py's definition, the one
the server writes and the client reads."""

from __future__ import annotations

from typing import Any, get_type_hints

from pydantic import BaseModel, Field, create_model

from guildgate.core import envelope


def _envelope_model() -> type[BaseModel]:
    """core.envelope.Envelope as a pydantic model: each field with its description; an optional one defaults to
    None."""
    fields: dict[str, Any] = {}
    for name, hint in get_type_hints(envelope.Envelope).items():
        described = envelope.ENVELOPE_FIELDS[name]
        if name in envelope.Envelope.__optional_keys__:
            fields[name] = (hint, Field(default=None, description=described))
        else:
            fields[name] = (hint, Field(description=described))
    return create_model("Envelope", **fields)


Envelope = _envelope_model()


class Record(BaseModel):
    id: str
    state: str
    code: str | None
    msg: str
    guild_id: str | None
    guild_name: str | None
    user_id: str | None
    developer_id: str | None
    cost_ms: float | None
    discord_status: int | None
    discord_code: int | None
    created_at: str | None
    finished_at: str | None
    source: str
    link_id: str | None = None


class RecordAnswer(BaseModel):
    status: int
    msg: str
    data: Record


class RecordPage(BaseModel):
    records: list[Record]
    next_cursor: str | None


class RecordsAnswer(BaseModel):
    status: int
    msg: str
    data: RecordPage


class UsageAnswer(BaseModel):
    status: int
    msg: str
    data: dict[str, Any]


class AdminErrorBody(BaseModel):
    """An admin API refusal."""

    error: str
    detail: str


class Grant(BaseModel):
    """A grant (access.md, "Grants"): times RFC 3339 in UTC, ids as strings."""

    id: str
    app_id: str
    guild_id: str
    user_id: str
    roles: list[str]
    state: str
    starts_at: str
    ends_at: str | None
    on_end: str
    external_ref: str | None
    source: str
    link_id: str | None
    record_id: str | None
    roles_preexisting: list[str]
    absent_since: str | None
    revision: int
    as_of: str | None
    ended_at: str | None
    end_reason: str | None
    last_error: str | None
    created_at: str
    updated_at: str


class WrittenGrant(Grant):
    """A grant as a write answers it; ``stale``: the call's ``as_of`` was older than the grant's, so nothing
    was changed."""

    stale: bool


class GrantAnswer(BaseModel):
    status: int
    msg: str
    data: Grant


class GrantWritten(BaseModel):
    status: int
    msg: str
    data: WrittenGrant


class GrantsWritten(BaseModel):
    grants: list[WrittenGrant]


class GrantListWritten(BaseModel):
    status: int
    msg: str
    data: GrantsWritten


class GrantPage(BaseModel):
    grants: list[Grant]
    next_cursor: str | None


class GrantPageAnswer(BaseModel):
    status: int
    msg: str
    data: GrantPage
