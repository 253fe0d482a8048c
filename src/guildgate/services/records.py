"""Records as both the API and the CLI show them: their fields, and the message that describes one."""

from __future__ import annotations

from typing import Any

from guildgate.core.outcomes import Outcome
from guildgate.store.repos import RecordView, record_dict

PENDING_MSG = {"zh": "处理中", "en": "In progress"}


def record_msg(row: RecordView, lang: str) -> str:
    """The message of a record, in ``lang`` ("zh" or "en"): its outcome's, or "in progress" while it has none."""
    if row.code is None:
        return PENDING_MSG[lang]
    outcome = Outcome(row.code)
    if outcome is Outcome.DISCORD_ERROR:
        return outcome.message(lang, detail=row.detail or "")
    return outcome.message(lang, detail=row.detail or "", retry=None)


def shown_record(row: RecordView, lang: str) -> dict[str, Any]:
    """A record as the API answers it and the CLI prints it: its fields and its message in ``lang``."""
    return record_dict(row, msg=record_msg(row, lang))
