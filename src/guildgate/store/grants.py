"""The grants repository (filled in below)."""

from __future__ import annotations

from guildgate.store.db import Database


class GrantRepo:
    def __init__(self, db: Database) -> None:
        self.db = db
