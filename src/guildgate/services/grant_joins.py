"""The grant side of joins and join links (``GrantService`` inherits it): the grant id a join will make or
renew, the link's refusal of a person whose access ended, the roles a member held before, and what every
successful join does for grants — gives back the roles of a person who left while entitled, and makes or renews
the grant its terms ask for."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Literal, Protocol

from guildgate.core.errors import AccessEndedError, ExternalRefTakenError, JoinError
from guildgate.core.grants import Grant, GrantTerms, OnEnd, check_roles, new_grant, new_grant_id
from guildgate.core.ports import AppCredentials
from guildgate.discord.rest import DiscordRest
from guildgate.services.grant_ends import GrantEnds, utcnow
from guildgate.services.grant_types import GrantResult, _Unset
from guildgate.store.base import NotFoundError
from guildgate.store.grants import GrantConflictError, GrantRepo, new_lease_token

log = logging.getLogger("guildgate.grants")


class _Joining(Protocol):
    """What ``after_join`` needs of the service it is part of (a mixin's self type)."""

    repo: GrantRepo

    async def restore(self, *, guild_id: str, user_id: str, app: AppCredentials | None = None) -> list[Grant]: ...

    async def read_roles(self, *, app: AppCredentials, guild_id: str, user_id: str) -> tuple[str, ...] | None: ...

    async def held_before(
        self, *, guild_id: str, user_id: str, roles: tuple[str, ...], current: tuple[str, ...], grant_id: str | None
    ) -> tuple[str, ...]: ...

    async def update(
        self,
        *,
        app: AppCredentials | None,
        app_id: str | None,
        grant_id: str,
        ends_at: datetime | _Unset | None = ...,
        roles: tuple[str, ...] | _Unset = ...,
        on_end: OnEnd | _Unset = ...,
        as_of: datetime | None = None,
    ) -> GrantResult: ...


class GrantJoins:
    repo: GrantRepo
    ends: GrantEnds
    discord: DiscordRest

    async def prepare(
        self, *, app_id: str, guild_id: str, external_ref: str | None, link_id: str | None, user_id: str | None
    ) -> str:
        """The id of the grant a join will make or renew (it goes into ``NewRecord.grant_id`` before the join):
        the active grant of the app with ``external_ref`` in that server, or the link's grant for that user, or
        a new id. ``ExternalRefTakenError`` when ``user_id`` is given and the reference names another person's
        active grant (a join must not take it over)."""
        if external_ref is not None:
            found = await self.repo.active_by_ref(app_id=app_id, guild_id=guild_id, external_ref=external_ref)
            if found is not None:
                if user_id is not None and found.user_id != user_id:
                    raise ExternalRefTakenError("external_ref: it names another person's active grant in this server")
                return found.id
        if link_id is not None and user_id is not None:
            mine = await self.repo.link_grant(link_id=link_id, user_id=user_id)
            if mine is not None:
                return mine.id
        return new_grant_id()

    async def check_link_access(self, *, link_id: str, user_id: str) -> None:
        """Raise ``AccessEndedError`` when this person's grant through this link has ended (or failed to end)."""
        mine = await self.repo.link_grant(link_id=link_id, user_id=user_id)
        if mine is not None and not mine.active:
            raise AccessEndedError("this person's access through this link has ended")

    async def read_roles(self, *, app: AppCredentials, guild_id: str, user_id: str) -> tuple[str, ...] | None:
        """The member's roles now (Get Guild Member), or None when they are not in the server. A join flow that
        gives roles to someone already in the server calls this *before* giving them, and passes the answer to
        ``after_join(preexisting=...)``, so that roles the person held before are never taken by the end."""
        return await self.discord.member_roles(
            app=app, guild_id=guild_id, user_id=user_id, deadline=time.monotonic() + 30
        )

    async def held_before(
        self, *, guild_id: str, user_id: str, roles: tuple[str, ...], current: tuple[str, ...], grant_id: str | None
    ) -> tuple[str, ...]:
        """Those of ``roles`` the member holds (``current``) on their own: not a role held only because another
        active grant in this server (any app's; not ``grant_id``) gave it, which that grant's end takes back."""
        given = {
            role
            for g in await self.repo.member_grants(guild_id=guild_id, user_id=user_id)
            if g.id != grant_id
            for role in g.roles
            if role not in g.roles_preexisting
        }
        return tuple(r for r in roles if r in current and r not in given)

    async def after_join(
        self: _Joining,
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
        await self.restore(guild_id=guild_id, user_id=user_id, app=app)
        if terms is None:
            return None
        existing: Grant | None = None
        if grant_id is not None:
            try:
                existing = await self.repo.get(grant_id, app_id=app_id)
            except NotFoundError:
                existing = None
        if existing is None and link_id is not None:
            existing = await self.repo.link_grant(link_id=link_id, user_id=user_id)
        if existing is None and terms.external_ref is not None:
            existing = await self.repo.active_by_ref(app_id=app_id, guild_id=guild_id, external_ref=terms.external_ref)
        if existing is not None and existing.active and existing.user_id != user_id:
            raise ExternalRefTakenError("external_ref: it names another person's active grant in this server")
        if existing is not None and existing.active:
            if existing.link_id is not None:  # one grant per link and person: its roles are back, no new time
                return existing
            result = await self.update(
                app=app,
                app_id=app_id,
                grant_id=existing.id,
                ends_at=terms.ends_at,
                roles=roles or existing.roles,
                on_end=terms.on_end,
                as_of=terms.as_of,
            )
            return result.grant
        if existing is not None and existing.link_id is not None:
            return existing  # an ended link grant: the link refuses the person before the join (check_link_access)
        if preexisting is None:
            current = () if joined else await self.read_roles(app=app, guild_id=guild_id, user_id=user_id)
            preexisting = current or ()
        now = utcnow()
        new_id = grant_id if grant_id is not None and existing is None else new_grant_id()
        held = await self.held_before(
            guild_id=guild_id, user_id=user_id, roles=roles, current=preexisting, grant_id=new_id
        )
        grant = new_grant(
            grant_id=new_id,
            app_id=app_id,
            guild_id=guild_id,
            user_id=user_id,
            roles=check_roles(roles, allow_empty=True),
            terms=terms,
            source=source,
            link_id=link_id,
            record_id=record_id,
            held=held,
            now=now,
        )
        try:
            return await self.repo.insert(grant)
        except GrantConflictError:  # another request made it a moment ago: that one stands
            again = await (
                self.repo.link_grant(link_id=link_id, user_id=user_id)
                if link_id is not None
                else self.repo.active_by_ref(app_id=app_id, guild_id=guild_id, external_ref=terms.external_ref or "")
            )
            if again is None:
                raise
            return again

    async def restore(self, *, guild_id: str, user_id: str, app: AppCredentials | None = None) -> list[Grant]:
        """Give back the roles of every active grant of this person in this server that is marked absent
        (any app's, each with its own bot), clear ``absent_since`` and emit ``grant.restored``. Failures are logged:
        the join that called this has succeeded."""
        restored: list[Grant] = []
        for grant in await self.repo.member_grants(guild_id=guild_id, user_id=user_id):
            if grant.absent_since is None:
                continue
            token = new_lease_token()
            if await self.repo.claim(grant.id, token=token) is None:
                continue
            try:
                await self.ends.give_roles(grant, roles=grant.roles, why="restored", app=app)
            except (JoinError, NotFoundError) as exc:
                log.warning("grant %s: roles not given back: %s", grant.id, exc)
                await self.repo.release(grant.id, token=token)
                continue
            done = await self.repo.change(
                grant.id, values={"absent_since": None}, event="grant.restored", lease_token=token, release=True
            )
            if done is not None:
                restored.append(done)
        return restored
