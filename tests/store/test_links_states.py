"""Consent-flow states do not pile up: every started flow writes one, and a started flow's signed state is dead
after ten minutes, so a link opened over and over (or flooded) keeps only the last hour's."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from guildgate.store.db import Database
from guildgate.store.links import PRUNE_STATES_EVERY, LinkRepo
from guildgate.store.models import Base, OAuthStateRow, utcnow
from tests.store.conftest import app_with_link


async def test_started_flows_older_than_an_hour_are_dropped_as_new_ones_start(tmp_path: Path) -> None:
    path = tmp_path / "states.db"

    db = Database(f"sqlite:///{path}")
    await db.run(Base.metadata.create_all)
    links = LinkRepo(db)
    link = await app_with_link(db)
    now = utcnow()
    async with db.session() as s:
        for i in range(300):  # flows started two hours ago, and some nine minutes ago (still usable)
            age = timedelta(hours=2) if i < 250 else timedelta(minutes=9)
            s.add(OAuthStateRow(nonce=f"old-{i}", link_id=link.id, created_at=now - age))
        await s.commit()
    for _ in range(2 * PRUNE_STATES_EVERY):
        await links.start_flow(link.id)
    await db.dispose()

    conn = sqlite3.connect(path)
    old = conn.execute("SELECT count(*) FROM oauth_states WHERE nonce LIKE 'old-%'").fetchone()[0]
    new = conn.execute("SELECT count(*) FROM oauth_states WHERE nonce NOT LIKE 'old-%'").fetchone()[0]
    conn.close()
    assert old == 50  # the two-hour-old ones are gone; the nine-minute-old ones, still usable, are kept
    assert new == 2 * PRUNE_STATES_EVERY  # every flow just started is kept
