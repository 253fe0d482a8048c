"""The repositories, one module a table family: apps (store/apps.py), API keys (store/keys.py), records
(store/records.py), links (store/links.py); what they share in store/base.py. Keyword-only arguments
throughout. Importing them from here is the same as from their modules."""

from __future__ import annotations

from guildgate.store.apps import AppInfo, AppRepo
from guildgate.store.base import NotFoundError, add_for_app, checked_name, could_be_id
from guildgate.store.keys import KeyInfo, KeyRepo
from guildgate.store.records import (
    CURSOR_PATTERN,
    IDEMPOTENCY_WINDOW,
    ConflictError,
    HourOfRecords,
    RecordFilters,
    RecordRepo,
    RecordView,
    StoredResponse,
    decode_cursor,
    encode_cursor,
    new_record_id,
    record_dict,
)

__all__ = [
    "CURSOR_PATTERN",
    "IDEMPOTENCY_WINDOW",
    "AppInfo",
    "AppRepo",
    "ConflictError",
    "HourOfRecords",
    "KeyInfo",
    "KeyRepo",
    "NotFoundError",
    "RecordFilters",
    "RecordRepo",
    "RecordView",
    "StoredResponse",
    "add_for_app",
    "checked_name",
    "could_be_id",
    "decode_cursor",
    "encode_cursor",
    "new_record_id",
    "record_dict",
]
