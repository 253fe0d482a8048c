"""Response shapes, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Envelope(BaseModel):
    status: int = Field(description="1 success, 0 failure")
    msg: str = Field(description="Human text, zh by default, en by Accept-Language")
    id: str | None = Field(description="The record id (UUID)")
    data: str | None = Field(description="On success a JSON-encoded string: id, name, user_id, joined")
    cost: str = Field(description="Wall time, e.g. '182.40ms'")
    code: str = Field(description="Stable outcome code")
    discord_code: int | None = Field(default=None, description="Discord's JSON error code, on Discord failures")


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
