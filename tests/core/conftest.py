"""The core's adapters as the service wires them, in this process: a migrated SQLite database in the test's
directory (every fixture app added), the records repository, and ``DiscordRest`` against the session's
sandbox. Nothing of our own is replaced."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from guildgate.core.joins import JoinOutcome, JoinRequest, RecordedJoinError, join
from guildgate.core.outcomes import Source
from guildgate.core.ports import AppCredentials, MemberOptions, NewRecord
from guildgate.core.secret import Secret
from guildgate.discord.guilds import DiscordLookups
from guildgate.discord.oauth import DiscordConsent
from guildgate.discord.ratelimit import Limiter, Stores
from guildgate.discord.rest import DiscordRest
from guildgate.store.apps import AppRepo
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.links import LinkRepo
from guildgate.store.migrate import upgrade
from guildgate.store.models import RecordRow
from guildgate.store.records import RecordRepo
from tests.conftest import APP_A, SECRET_KEY, WORLD, Sandbox


@dataclass
class Core:
    """What a running service holds for the core, minus the web layer."""

    db: Database
    apps: AppRepo
    records: RecordRepo
    links: LinkRepo
    discord: DiscordRest
    consent: DiscordConsent
    lookups: DiscordLookups
    sandbox: Sandbox

    async def app(self, client_id: str = APP_A) -> AppCredentials:
        return await self.apps.credentials(client_id)

    async def record(self, record_id: str) -> RecordRow:
        return await self.records.get(record_id, app_id=None)

    async def join(
        self,
        token: str,
        *,
        guild_id: str | None = None,
        invite: str | None = None,
        roles: tuple[str, ...] | None = None,
        seconds: float = 10.0,
    ) -> JoinOutcome | RecordedJoinError:
        """One join through the API's path (source "api"): its result, or the RecordedJoinError it raised."""
        request = JoinRequest(
            authorization=Secret(token), guild_id=guild_id, invite_code=invite, options=MemberOptions(roles=roles)
        )
        try:
            return await join(
                request,
                app=await self.app(),
                new_record=NewRecord(app_id=APP_A, key_id=None, source=Source.API, guild_id=guild_id),
                discord=self.discord,
                records=self.records,
                deadline=time.monotonic() + seconds,
                started=time.perf_counter(),
            )
        except RecordedJoinError as exc:
            return exc


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'core.db'}"
    upgrade(url)  # what `guildgate migrate` runs
    return url


@pytest.fixture
async def core(database_url: str, fresh: Sandbox) -> AsyncIterator[Core]:
    db = Database(database_url)
    apps = AppRepo(db, SecretBox(SECRET_KEY))
    for app in WORLD["applications"]:
        await apps.add(
            client_id=app["client_id"],
            name=app["name"],
            client_secret=Secret(app["client_secret"]),
            bot_token=Secret(app["bot_token"]),
        )
    stores = Stores.open(None)
    limiter = Limiter(stores.backend)
    rest = DiscordRest(api_base=fresh.api, limiter=limiter, cache=stores.cache, windows=stores.windows)
    records = RecordRepo(db)
    yield Core(
        db=db,
        apps=apps,
        records=records,
        links=LinkRepo(db),
        discord=rest,
        consent=DiscordConsent(rest),
        lookups=DiscordLookups(rest),
        sandbox=fresh,
    )
    await records.aclose()
    await rest.aclose()
    await limiter.backend.aclose()
    await db.dispose()
