"""Grants: made, changed, ended, read, synced (``../shared/spec/access.md``, "Grants"). Built once per process
(``services.grants``); the web API, the join and link flows, the CLI, the dashboard and the sweep
(``workers/grants.py``) all go through it.

Every method is keyword-only. ``app_id`` scopes every read and write: another app's grant is
``UnknownGrantError``, the same answer as an unknown id. Admin callers (CLI, dashboard) pass ``app_id=None`` and
``app=None``: the service then loads the grant's own app's credentials (``AppRepo.credentials``).

Discord calls are the bot's own (Add/Remove Guild Member Role, Remove Guild Member, Get Guild Member), through
the shared limiter, each with an ``X-Audit-Log-Reason`` naming the grant and why. A grant is changed at Discord
only while this process holds its lease (``store/grants.py``), so the sweep, the API and another worker never
act on one grant at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final, Literal

from guildgate.core.grants import Grant, GrantState, GrantTerms, OnEnd
from guildgate.core.ports import AppCredentials
from guildgate.discord.rest import DiscordRest
from guildgate.store.apps import AppRepo
from guildgate.store.db import Database
from guildgate.store.grants import GrantRepo


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""An argument left out (``ends_at=UNSET``), as opposed to ``None`` (``ends_at=None``: open-ended)."""


@dataclass(frozen=True)
class GrantResult:
    grant: Grant
    created: bool = False  # a new grant (HTTP 201); False: an existing one was updated or answered as it is
    stale: bool = False  # the call's ``as_of`` was older than the grant's: nothing was changed


@dataclass(frozen=True)
class GrantFilters:
    guild_id: str | None = None
    user_id: str | None = None
    state: GrantState | None = None
    external_ref: str | None = None
    ends_before: datetime | None = None
    updated_since: datetime | None = None
    link_id: str | None = None
    absent: bool | None = None  # True: only absent members' grants; False: only present ones


@dataclass
class SyncSummary:
    checked: int = 0  # active grants looked up at Discord
    repaired: int = 0  # grants whose missing roles were given again
    absent: int = 0  # grants newly marked absent (the person left)
    retried: int = 0  # end_failed grants tried again (and ended)
    failed: int = 0  # grants that could not be checked, repaired or ended (with the reason on the grant)


class GrantService:
    def __init__(self, *, db: Database, apps: AppRepo, discord: DiscordRest) -> None:
        self.db = db
        self.apps = apps
        self.discord = discord
        self.repo = GrantRepo(db)

    async def prepare(
        self, *, app_id: str, guild_id: str, external_ref: str | None, link_id: str | None, user_id: str | None
    ) -> str:
        """The id of the grant a join will make or renew (it goes into ``NewRecord.grant_id`` before the join):
        the active grant of the app with ``external_ref`` in that server, or the link's grant for that user, or
        a new id."""
        raise NotImplementedError

    async def check_link_access(self, *, link_id: str, user_id: str) -> None:
        """Raise ``AccessEndedError`` when this person's grant through this link has ended (or failed to end)."""
        raise NotImplementedError

    async def read_roles(self, *, app: AppCredentials, guild_id: str, user_id: str) -> tuple[str, ...] | None:
        """The member's roles now (Get Guild Member), or None when they are not in the server. A join flow that
        gives roles to someone already in the server calls this *before* giving them, and passes the answer to
        ``after_join(preexisting=...)``, so that roles the person held before are never taken by the end."""
        raise NotImplementedError

    async def after_join(
        self,
        *,
        app: AppCredentials,
        app_id: str,
        guild_id: str,
        user_id: str,
        joined: bool,
        roles: tuple[str, ...],
        terms: GrantTerms | None,
        source: Literal["api", "link"],
        link_id: str | None,
        record_id: str,
        grant_id: str | None,
        preexisting: tuple[str, ...] | None = None,
    ) -> Grant | None:
        """After every successful join (``joined`` or ``already_member``) through the API or a link:
        1) every active grant of this person in this server that is marked absent gets its roles back,
        ``absent_since`` cleared, ``grant.restored``; 2) with ``terms``: the grant ``grant_id`` names is made, or
        renewed (a link's: the same grant, no new time; an ``external_ref``'s: updated as the contract says).
        ``preexisting``: the roles the member held before the join gave any (``read_roles``); when left out and
        not ``joined``, read from Discord now. Returns the grant made or renewed (None without ``terms``)."""
        raise NotImplementedError

    async def create(
        self,
        *,
        app: AppCredentials,
        app_id: str,
        guild_id: str,
        user_id: str,
        roles: tuple[str, ...],
        terms: GrantTerms,
    ) -> GrantResult:
        """``POST /api/grants``: ``NotAMemberError`` when the person is not in the server; with an
        ``external_ref`` naming an active grant of the app in that server, that grant is updated
        (``created=False``; ``roles`` replaces its set; a past ``ends_at`` ends it)."""
        raise NotImplementedError

    async def update(
        self,
        *,
        app: AppCredentials | None,
        app_id: str | None,
        grant_id: str,
        ends_at: datetime | _Unset | None = UNSET,
        roles: tuple[str, ...] | _Unset = UNSET,
        on_end: OnEnd | _Unset = UNSET,
        as_of: datetime | None = None,
    ) -> GrantResult:
        """``PATCH``: ``GrantEndedError`` when the grant is no longer active; an older ``as_of`` answers it
        unchanged with ``stale=True``; a past ``ends_at`` ends it now (``revoked``)."""
        raise NotImplementedError

    async def end(
        self,
        *,
        app: AppCredentials | None,
        app_id: str | None,
        grant_id: str,
        on_end: OnEnd | None = None,
        as_of: datetime | None = None,
    ) -> GrantResult:
        """``DELETE``: ends it now (``revoked``); an ended grant is answered unchanged; an ``end_failed`` one is
        tried again."""
        raise NotImplementedError

    async def update_by_ref(
        self,
        *,
        app: AppCredentials,
        app_id: str,
        external_ref: str,
        ends_at: datetime | _Unset | None = UNSET,
        roles: tuple[str, ...] | _Unset = UNSET,
        on_end: OnEnd | _Unset = UNSET,
        as_of: datetime | None = None,
    ) -> list[GrantResult]:
        """``PATCH ?external_ref=``: every active grant of the app with that reference, in every server."""
        raise NotImplementedError

    async def end_by_ref(
        self,
        *,
        app: AppCredentials,
        app_id: str,
        external_ref: str,
        on_end: OnEnd | None = None,
        as_of: datetime | None = None,
    ) -> list[GrantResult]:
        """``DELETE ?external_ref=``: ends every active grant of the app with that reference."""
        raise NotImplementedError

    async def extend(
        self, *, app_id: str | None, grant_id: str, by: timedelta | None = None, until: datetime | None = None
    ) -> GrantResult:
        """The CLI's and dashboard's ``extend ID --by DURATION | --until TIME`` (``by`` counts from the current
        end, or from now for an open-ended or past one)."""
        raise NotImplementedError

    async def get(self, *, app_id: str | None, grant_id: str) -> Grant:
        """One grant; ``app_id`` None: any app's (admin)."""
        raise NotImplementedError

    async def page(
        self, *, app_id: str | None, filters: GrantFilters, cursor: str | None, limit: int
    ) -> tuple[list[Grant], str | None]:
        """Newest first, cursor-paged like records. ValueError for a cursor this service did not give."""
        raise NotImplementedError

    async def sync(
        self,
        *,
        app_id: str | None = None,
        guild_id: str | None = None,
        dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> SyncSummary:
        """Get Guild Member for each active grant: missing roles given again (``grant.repaired``), a person gone
        marked ``absent_since`` (``grant.absent``); ``end_failed`` grants tried again. ``progress(done, total)``."""
        raise NotImplementedError

    async def ending_soon(self, *, within: timedelta) -> list[Grant]:
        """Active grants ending within ``within`` from now, soonest first (the dashboard's overview)."""
        raise NotImplementedError

    async def failures(self) -> list[Grant]:
        """``end_failed`` grants, newest first (the dashboard's overview)."""
        raise NotImplementedError
