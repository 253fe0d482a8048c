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
