"""What the repositories share: the not-found error, the checks on names and ids, adding a row to an app."""

from __future__ import annotations

from typing import Any

from guildgate.core.text import has_control
from guildgate.store.db import Database
from guildgate.store.models import AppRow


class NotFoundError(LookupError):
    pass


def checked_name(value: str | None, what: str) -> str | None:
    """An operator's name for an app or a key as it may be stored on every backend: at most 100 characters and no
    control characters (PostgreSQL's text holds no NUL). ValueError naming ``what`` otherwise."""
    if value is not None and (len(value) > 100 or has_control(value)):
        raise ValueError(f"{what}: at most 100 characters, without control characters (line breaks, tabs, NUL)")
    return value


def could_be_id(value: str) -> bool:
    """Whether ``value`` could name a row: this service's ids and slugs and Discord's snowflakes are printable
    ASCII of at most 64 characters. Anything else (a NUL, which PostgreSQL's text cannot even hold, a line break,
    a 2,000-character path) is not looked up: it is not found."""
    return len(value) <= 64 and value.isascii() and value.isprintable()


async def add_for_app(db: Database, row: Any, *, app_id: str) -> None:
    """Insert a row that belongs to an app (an API key, a link), refusing an app that was never added."""
    async with db.session() as s:
        if not could_be_id(app_id) or await s.get(AppRow, app_id) is None:
            raise NotFoundError(f"no app with client id {app_id}: add it first with 'guildgate apps add'")
        s.add(row)
        await s.commit()
