"""The API-key lookup is remembered for KEY_CACHED_FOR seconds in each process: a revocation through the same
process is seen at once, one through another process (another worker, the CLI) once the remembered lookup
expires. The clock is the test's; the database is real."""

from __future__ import annotations

from pathlib import Path

import pytest

from guildgate.store import keys as keys_module
from guildgate.store.db import Database
from guildgate.store.keys import KEY_CACHED_FOR, KeyRepo
from guildgate.store.models import AppRow
from tests.helpers import Clock

APP = "1100000000000000001"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(keys_module, "monotonic", fake)
    return fake


async def _with_app(db: Database) -> None:
    async with db.session() as s:
        s.add(AppRow(client_id=APP, name="a", client_secret_enc="x", bot_token_enc="y"))
        await s.commit()


async def test_a_key_revoked_by_another_process_is_refused_once_its_lookup_expires(
    sqlite_path: Path, clock: Clock
) -> None:
    worker, cli = Database(f"sqlite:///{sqlite_path}"), Database(f"sqlite:///{sqlite_path}")
    await _with_app(cli)
    info, key = await KeyRepo(cli).create(app_id=APP, name=None, quota_per_minute=None)
    keys = KeyRepo(worker)
    seen = [await keys.authenticate(key.reveal()) == info]
    await KeyRepo(cli).revoke(info.id)  # through another KeyRepo: another process
    clock.now += KEY_CACHED_FOR - 0.01
    seen.append(await keys.authenticate(key.reveal()) == info)  # still the lookup made before the revocation
    clock.now += 0.02
    seen.append(await keys.authenticate(key.reveal()) is None)  # past the bound: read again, refused
    clock.now -= 1  # refused for good, whatever the clock says: a refusal is not remembered as valid
    seen.append(await keys.authenticate(key.reveal()) is None)
    await worker.dispose()
    await cli.dispose()
    result = seen

    assert result == [True, True, True, True]


async def test_a_key_revoked_through_the_same_process_is_refused_at_once(sqlite_path: Path, clock: Clock) -> None:
    db = Database(f"sqlite:///{sqlite_path}")
    await _with_app(db)
    keys = KeyRepo(db)
    info, key = await keys.create(app_id=APP, name=None, quota_per_minute=None)
    other, other_key = await keys.create(app_id=APP, name=None, quota_per_minute=None)
    before = await keys.authenticate(key.reveal()) == info and await keys.authenticate(other_key.reveal()) == other
    await keys.revoke(info.id)
    refused = await keys.authenticate(key.reveal()) is None
    kept = await keys.authenticate(other_key.reveal()) == other  # the other key is not touched
    await db.dispose()
    result = before, refused, kept

    assert result == (True, True, True)
