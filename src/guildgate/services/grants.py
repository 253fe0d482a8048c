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

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement

from guildgate.core.errors import (
    DiscordUnavailableError,
    ExternalRefTakenError,
    GrantEndedError,
    InvalidRequestError,
    NotAMemberError,
    UnknownGrantError,
)
from guildgate.core.grants import (
    EndReason,
    Grant,
    GrantState,
    GrantTerms,
    OnEnd,
    new_grant,
    new_grant_id,
    stale,
)
from guildgate.core.ports import AppCredentials
from guildgate.discord.rest import DiscordRest
from guildgate.services.grant_ends import Ended, GrantEnds, reason_text, utcnow
from guildgate.services.grant_joins import GrantJoins
from guildgate.services.grant_sync import SyncSummary, sync_grants
from guildgate.services.grant_types import UNSET, GrantFilters, GrantResult, _Unset, checked_ref, checked_roles
from guildgate.store.apps import AppRepo
from guildgate.store.base import NotFoundError
from guildgate.store.db import Database
from guildgate.store.grants import GrantConflictError, GrantRepo, new_lease_token, to_grant
from guildgate.store.models import GrantRow

log = logging.getLogger("guildgate.grants")
HOLD_SECONDS: Final = 30.0  # how long an API call waits for a grant another worker is acting on


__all__ = ["UNSET", "GrantFilters", "GrantResult", "GrantService", "SyncSummary"]


def _unknown() -> UnknownGrantError:
    return UnknownGrantError("no such grant")


def _same_person(found: Grant, user_id: str) -> None:
    """An ``external_ref`` names another person's active grant: it is not taken over (``external_ref_taken``)."""
    if found.user_id != user_id:
        raise ExternalRefTakenError("external_ref: it names another person's active grant in this server")


class GrantService(GrantJoins):
    def __init__(self, *, db: Database, apps: AppRepo, discord: DiscordRest) -> None:
        self.db = db
        self.apps = apps
        self.discord = discord
        self.repo = GrantRepo(db)
        self.ends = GrantEnds(repo=self.repo, apps=apps, discord=discord)

    # -- the join and link flows ------------------------------------------------------------------------------
    # -- the API ----------------------------------------------------------------------------------------------
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
        (``created=False``; ``roles`` replaces its set; a past ``ends_at`` ends it). ``ExternalRefTakenError``
        when that grant is another person's (before any Discord call)."""
        roles = checked_roles(roles)
        if terms.external_ref is not None:
            checked_ref(terms.external_ref)
            found = await self.repo.active_by_ref(app_id=app_id, guild_id=guild_id, external_ref=terms.external_ref)
            if found is not None:
                _same_person(found, user_id)
                return await self.update(
                    app=app,
                    app_id=app_id,
                    grant_id=found.id,
                    ends_at=terms.ends_at,
                    roles=roles,
                    on_end=terms.on_end,
                    as_of=terms.as_of,
                )
        now = utcnow()
        if terms.ends_at is not None and terms.ends_at <= now:
            raise InvalidRequestError("ends_at: the end of a new grant must be in the future")
        current = await self.read_roles(app=app, guild_id=guild_id, user_id=user_id)
        if current is None:
            raise NotAMemberError("the user is not a member of this server")
        grant_id = new_grant_id()
        held = await self.held_before(
            guild_id=guild_id, user_id=user_id, roles=roles, current=current, grant_id=grant_id
        )
        grant = new_grant(
            grant_id=grant_id,
            app_id=app_id,
            guild_id=guild_id,
            user_id=user_id,
            roles=roles,
            terms=terms,
            source="api",
            link_id=None,
            record_id=None,
            held=held,
            now=now,
        )
        await self.ends.give_roles(grant, roles=tuple(r for r in roles if r not in current), why="granted", app=app)
        try:
            return GrantResult(await self.repo.insert(grant), created=True)
        except GrantConflictError:
            if terms.external_ref is None:
                raise
            found = await self.repo.active_by_ref(app_id=app_id, guild_id=guild_id, external_ref=terms.external_ref)
            if found is None:
                raise
            _same_person(found, user_id)
            return await self.update(
                app=app,
                app_id=app_id,
                grant_id=found.id,
                ends_at=terms.ends_at,
                roles=roles,
                on_end=terms.on_end,
                as_of=terms.as_of,
            )

    async def _hold(self, grant_id: str, *, app_id: str | None, token: str) -> GrantRow:
        """Take the grant's lease, waiting (HOLD_SECONDS at most) while the sweep or another call acts on it."""
        await self._row(grant_id, app_id=app_id)
        give_up = time.monotonic() + HOLD_SECONDS
        while True:
            row = await self.repo.claim(grant_id, token=token)
            if row is not None:
                return row
            if time.monotonic() > give_up:
                raise DiscordUnavailableError(
                    "the grant is being changed by another request; retry", http_status=503, retry_after=1.0
                )
            await asyncio.sleep(0.2)

    async def _row(self, grant_id: str, *, app_id: str | None) -> GrantRow:
        try:
            return await self.repo.row(grant_id, app_id=app_id)
        except NotFoundError:
            raise _unknown() from None

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
        if not isinstance(roles, _Unset):
            roles = checked_roles(roles)
        first = to_grant(await self._row(grant_id, app_id=app_id))
        if not first.active:
            raise GrantEndedError("this grant has ended")
        if stale(first.as_of, as_of):
            return GrantResult(first, stale=True)
        token = new_lease_token()
        row = await self._hold(grant_id, app_id=app_id, token=token)
        try:
            grant = to_grant(row)
            if not grant.active:
                raise GrantEndedError("this grant has ended")
            if stale(grant.as_of, as_of):
                return GrantResult(grant, stale=True)
            values: dict[str, Any] = {}
            if as_of is not None:
                values["as_of"] = as_of
            if not isinstance(on_end, _Unset):
                values["on_end"] = on_end.value
            if not isinstance(ends_at, _Unset):
                values["ends_at"] = ends_at
                values["reminders"] = "[]" if ends_at != grant.ends_at else row.reminders
            if not isinstance(roles, _Unset) and roles != grant.roles:
                values.update(await self._change_roles(grant, roles, app=app))
            if values:
                changed = await self.repo.change(grant_id, values=values, event="grant.updated", lease_token=token)
                if changed is None:
                    raise DiscordUnavailableError("the grant was taken over by another worker; retry", http_status=503)
                grant = changed
            if grant.ends_at is not None and grant.ends_at <= utcnow():
                held = await self.repo.row(grant_id)
                outcome, ended = await self.ends.end_held(held, token=token, reason=EndReason.REVOKED, app=app)
                return GrantResult(await self._after_end(grant_id, outcome, ended, token))
            return GrantResult(grant)
        finally:
            await self.repo.release(grant_id, token=token)

    async def _change_roles(
        self, grant: Grant, roles: tuple[str, ...], *, app: AppCredentials | None
    ) -> dict[str, Any]:
        """Give the roles added and take those dropped (the overlap rule; never a role held before the grant)."""
        added = tuple(r for r in roles if r not in grant.roles)
        dropped = [r for r in grant.roles if r not in roles]
        preexisting = [r for r in grant.roles_preexisting if r in roles]
        if grant.absent_since is None:
            creds = await self.ends.credentials(grant.app_id, app)
            current = await self.read_roles(app=creds, guild_id=grant.guild_id, user_id=grant.user_id)
            if current is not None:
                preexisting += await self.held_before(
                    guild_id=grant.guild_id, user_id=grant.user_id, roles=added, current=current, grant_id=grant.id
                )
                await self.ends.give_roles(
                    grant, roles=tuple(r for r in added if r not in current), why="roles changed", app=creds
                )
                others = [g for g in await self.repo.member_grants(guild_id=grant.guild_id, user_id=grant.user_id)]
                kept = {r for g in others if g.id != grant.id for r in g.roles} | set(grant.roles_preexisting)
                for role in dropped:
                    if role not in kept and role in current:
                        await self.discord.remove_member_role(
                            app=creds,
                            guild_id=grant.guild_id,
                            user_id=grant.user_id,
                            role_id=role,
                            deadline=time.monotonic() + 45,
                            reason=reason_text(grant.id, "roles changed"),
                        )
        return {"roles": roles, "roles_preexisting": tuple(preexisting)}

    async def _after_end(self, grant_id: str, outcome: Ended, ended: Grant | None, token: str) -> Grant:
        if outcome is Ended.RETRY:
            # Discord could not be reached: the grant stays due (now), to end as revoked at the next sweep
            await self.repo.change(
                grant_id, values={"ends_at": utcnow(), "end_reason": EndReason.REVOKED.value}, event="grant.updated"
            )
            raise DiscordUnavailableError("Discord could not be reached; the grant will be ended by the next sweep")
        if ended is None:
            return await self.repo.get(grant_id)
        return ended

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
        first = to_grant(await self._row(grant_id, app_id=app_id))
        if first.state is GrantState.ENDED:
            return GrantResult(first)
        if stale(first.as_of, as_of):
            return GrantResult(first, stale=True)
        token = new_lease_token()
        row = await self._hold(grant_id, app_id=app_id, token=token)
        try:
            grant = to_grant(row)
            if grant.state is GrantState.ENDED:
                return GrantResult(grant)
            if as_of is not None and grant.as_of != as_of:
                await self.repo.change(grant_id, values={"as_of": as_of}, event=None, bump=False, lease_token=token)
                row = await self.repo.row(grant_id)
            outcome, ended = await self.ends.end_held(
                row, token=token, reason=EndReason.REVOKED, on_end=on_end, app=app
            )
            return GrantResult(await self._after_end(grant_id, outcome, ended, token))
        finally:
            await self.repo.release(grant_id, token=token)

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
        checked_ref(external_ref)
        return [
            await self.update(
                app=app, app_id=app_id, grant_id=g.id, ends_at=ends_at, roles=roles, on_end=on_end, as_of=as_of
            )
            for g in await self.repo.by_ref(app_id=app_id, external_ref=external_ref)
        ]

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
        checked_ref(external_ref)
        return [
            await self.end(app=app, app_id=app_id, grant_id=g.id, on_end=on_end, as_of=as_of)
            for g in await self.repo.by_ref(app_id=app_id, external_ref=external_ref)
        ]

    async def extend(
        self, *, app_id: str | None, grant_id: str, by: timedelta | None = None, until: datetime | None = None
    ) -> GrantResult:
        """The CLI's and dashboard's ``extend ID --by DURATION | --until TIME`` (``by`` counts from the current
        end, or from now for a past one). It never shortens: ``until`` must be later than the current end, and
        ``by`` on an open-ended grant is refused (``until`` sets an end)."""
        grant = await self.get(app_id=app_id, grant_id=grant_id)
        now = utcnow()
        if (by is None) == (until is None):
            raise InvalidRequestError("give one of --by or --until")
        if grant.state is not GrantState.ENDED and until is not None and grant.ends_at and until <= grant.ends_at:
            end = grant.ends_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise InvalidRequestError(
                f"until: must be later than the grant's current end, {end} (extend never shortens)"
            )
        if grant.state is not GrantState.ENDED and by is not None and grant.ends_at is None:
            raise InvalidRequestError("by: this grant has no end; use until to set one")
        new_end = until if until is not None else max(grant.ends_at or now, now) + (by or timedelta())
        if new_end <= now:
            raise InvalidRequestError("until: the new end must be in the future")
        return await self.update(app=None, app_id=app_id, grant_id=grant_id, ends_at=new_end)

    # -- reads ------------------------------------------------------------------------------------------------
    async def get(self, *, app_id: str | None, grant_id: str) -> Grant:
        """One grant; ``app_id`` None: any app's (admin)."""
        return to_grant(await self._row(grant_id, app_id=app_id))

    async def page(
        self, *, app_id: str | None, filters: GrantFilters, cursor: str | None, limit: int
    ) -> tuple[list[Grant], str | None]:
        """Newest first, cursor-paged like records. ValueError for a cursor this service did not give."""
        return await self.repo.page(app_id=app_id, where=_where(filters), cursor=cursor, limit=limit)

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
        return await sync_grants(
            repo=self.repo, ends=self.ends, app_id=app_id, guild_id=guild_id, dry_run=dry_run, progress=progress
        )

    async def ending_soon(self, *, within: timedelta) -> list[Grant]:
        """Active grants ending within ``within`` from now, soonest first (the dashboard's overview)."""
        now = datetime.now(UTC)
        return await self.repo.ending_within(now=now, until=now + within)

    async def failures(self) -> list[Grant]:
        """``end_failed`` grants, newest first (the dashboard's overview)."""
        return await self.repo.failures()


def _where(f: GrantFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    for column, value in (
        (GrantRow.guild_id, f.guild_id),
        (GrantRow.user_id, f.user_id),
        (GrantRow.state, f.state.value if f.state is not None else None),
        (GrantRow.external_ref, f.external_ref),
        (GrantRow.link_id, f.link_id),
    ):
        if value is not None:
            where.append(column == value)
    if f.ends_before is not None:
        where.append(GrantRow.ends_at < f.ends_before)
    if f.updated_since is not None:
        where.append(GrantRow.updated_at >= f.updated_since)
    if f.absent is True:
        where.append(GrantRow.absent_since.is_not(None))
    elif f.absent is False:
        where.append(GrantRow.absent_since.is_(None))
    return where
