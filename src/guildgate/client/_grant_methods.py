"""The grant methods of ``Client`` (``SyncGrants``) and ``AsyncClient`` (``AsyncGrants``): the same calls, built
once (``_GrantCalls``), sent the one way or the other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx

from guildgate.client._grants import (
    GRANTS_PATH,
    UNSET,
    Grant,
    GrantPage,
    Time,
    _Unset,
    change_body,
    end_params,
    grant_path,
    list_params,
    new_grant_body,
    parse_grant,
    parse_grant_page,
    parse_grants,
)
from guildgate.client._wire import Call, headers
from guildgate.core.secret import Secret


class _GrantCalls:
    _key: Secret
    language: str | None

    def _json(self, method: str, path: str, content: bytes, params: dict[str, str | int] | None = None) -> Call:
        sent = headers(self._key, self.language, {"Content-Type": "application/json"})
        return Call(method, path, sent, params=params, content=content)

    def _plain(self, method: str, path: str, params: dict[str, str | int] | None = None) -> Call:
        return Call(method, path, headers(self._key, self.language), params=params or None)

    def _create_call(
        self,
        guild_id: str,
        user_id: str,
        roles: list[str],
        ends_at: Time | None,
        duration: str | None,
        on_end: str | None,
        external_ref: str | None,
        as_of: Time | None,
    ) -> Call:
        body = new_grant_body(
            guild_id=guild_id,
            user_id=user_id,
            roles=roles,
            ends_at=ends_at,
            duration=duration,
            on_end=on_end,
            external_ref=external_ref,
            as_of=as_of,
        )
        return self._json("POST", GRANTS_PATH, body)

    def _list_call(
        self,
        guild_id: str | None,
        user_id: str | None,
        state: str | None,
        external_ref: str | None,
        ends_before: Time | None,
        updated_since: Time | None,
        link_id: str | None,
        absent: bool | None,
        limit: int | None,
        cursor: str | None,
    ) -> Call:
        params = list_params(
            guild_id=guild_id,
            user_id=user_id,
            state=state,
            external_ref=external_ref,
            ends_before=ends_before,
            updated_since=updated_since,
            link_id=link_id,
            absent=absent,
            limit=limit,
            cursor=cursor,
        )
        return self._plain("GET", GRANTS_PATH, params)


class SyncGrants(_GrantCalls):
    def _send(self, call: Call) -> httpx.Response:
        raise NotImplementedError

    def create_grant(
        self,
        *,
        guild_id: str,
        user_id: str,
        roles: list[str],
        ends_at: Time | None = None,
        duration: str | None = None,
        on_end: str | None = None,
        external_ref: str | None = None,
        as_of: Time | None = None,
    ) -> Grant:
        """Give ``roles`` to someone already in the server, as a grant ending at ``ends_at`` or ``duration``
        from now (``"30d"``; neither: open-ended). ``grant.created`` is False when ``external_ref`` named an
        active grant in that server, which was updated instead. NotAMemberError when they are not in it."""
        call = self._create_call(guild_id, user_id, roles, ends_at, duration, on_end, external_ref, as_of)
        return parse_grant(self._send(call))

    def get_grant(self, grant_id: str) -> Grant:
        """One grant of this API key's app; NotFoundError (``unknown_grant``) when there is none."""
        return parse_grant(self._send(self._plain("GET", grant_path(grant_id))))

    def list_grants(
        self,
        *,
        guild_id: str | None = None,
        user_id: str | None = None,
        state: str | None = None,
        external_ref: str | None = None,
        ends_before: Time | None = None,
        updated_since: Time | None = None,
        link_id: str | None = None,
        absent: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> GrantPage:
        """One page, newest first; pass ``page.next_cursor`` back as ``cursor`` (or use ``iter_grants``)."""
        call = self._list_call(
            guild_id, user_id, state, external_ref, ends_before, updated_since, link_id, absent, limit, cursor
        )
        return parse_grant_page(self._send(call))

    def iter_grants(
        self,
        *,
        guild_id: str | None = None,
        user_id: str | None = None,
        state: str | None = None,
        external_ref: str | None = None,
        ends_before: Time | None = None,
        updated_since: Time | None = None,
        link_id: str | None = None,
        absent: bool | None = None,
        limit: int | None = None,
    ) -> Iterator[Grant]:
        """Every grant the filters select, newest first, page after page (``limit`` a page)."""
        cursor: str | None = None
        while True:
            call = self._list_call(
                guild_id, user_id, state, external_ref, ends_before, updated_since, link_id, absent, limit, cursor
            )
            page = parse_grant_page(self._send(call))
            yield from page.grants
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def update_grant(
        self,
        grant_id: str,
        *,
        ends_at: Time | _Unset | None = UNSET,
        roles: list[str] | None = None,
        on_end: str | None = None,
        as_of: Time | None = None,
    ) -> Grant:
        """Change a grant: ``ends_at`` (None: open-ended; a past one ends it now), ``roles`` (the new set),
        ``on_end``. Leave an argument out to keep it. GrantEndedError when it has ended."""
        body = change_body(ends_at=ends_at, roles=roles, on_end=on_end, as_of=as_of)
        return parse_grant(self._send(self._json("PATCH", grant_path(grant_id), body)))

    def end_grant(self, grant_id: str, *, on_end: str | None = None, as_of: Time | None = None) -> Grant:
        """End a grant now (``end_reason`` ``revoked``); ``on_end`` instead of the grant's own."""
        return parse_grant(self._send(self._plain("DELETE", grant_path(grant_id), end_params(on_end, as_of))))

    def update_grants_by_ref(
        self,
        external_ref: str,
        *,
        ends_at: Time | _Unset | None = UNSET,
        roles: list[str] | None = None,
        on_end: str | None = None,
        as_of: Time | None = None,
    ) -> list[Grant]:
        """``update_grant`` for every active grant of this app with ``external_ref``, in every server."""
        body = change_body(ends_at=ends_at, roles=roles, on_end=on_end, as_of=as_of)
        params: dict[str, str | int] = {"external_ref": external_ref}
        return parse_grants(self._send(self._json("PATCH", GRANTS_PATH, body, params)))

    def end_grants_by_ref(
        self, external_ref: str, *, on_end: str | None = None, as_of: Time | None = None
    ) -> list[Grant]:
        """End every active grant of this app with ``external_ref``, in every server (a cancelled subscription)."""
        params = {"external_ref": external_ref, **end_params(on_end, as_of)}
        return parse_grants(self._send(self._plain("DELETE", GRANTS_PATH, params)))


class AsyncGrants(_GrantCalls):
    async def _send(self, call: Call) -> httpx.Response:
        raise NotImplementedError

    async def create_grant(
        self,
        *,
        guild_id: str,
        user_id: str,
        roles: list[str],
        ends_at: Time | None = None,
        duration: str | None = None,
        on_end: str | None = None,
        external_ref: str | None = None,
        as_of: Time | None = None,
    ) -> Grant:
        """As ``Client.create_grant``."""
        call = self._create_call(guild_id, user_id, roles, ends_at, duration, on_end, external_ref, as_of)
        return parse_grant(await self._send(call))

    async def get_grant(self, grant_id: str) -> Grant:
        """As ``Client.get_grant``."""
        return parse_grant(await self._send(self._plain("GET", grant_path(grant_id))))

    async def list_grants(
        self,
        *,
        guild_id: str | None = None,
        user_id: str | None = None,
        state: str | None = None,
        external_ref: str | None = None,
        ends_before: Time | None = None,
        updated_since: Time | None = None,
        link_id: str | None = None,
        absent: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> GrantPage:
        """As ``Client.list_grants``."""
        call = self._list_call(
            guild_id, user_id, state, external_ref, ends_before, updated_since, link_id, absent, limit, cursor
        )
        return parse_grant_page(await self._send(call))

    async def iter_grants(
        self,
        *,
        guild_id: str | None = None,
        user_id: str | None = None,
        state: str | None = None,
        external_ref: str | None = None,
        ends_before: Time | None = None,
        updated_since: Time | None = None,
        link_id: str | None = None,
        absent: bool | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Grant]:
        """``async for grant in gg.iter_grants(...)``: as ``Client.iter_grants``."""
        cursor: str | None = None
        while True:
            call = self._list_call(
                guild_id, user_id, state, external_ref, ends_before, updated_since, link_id, absent, limit, cursor
            )
            page = parse_grant_page(await self._send(call))
            for grant in page.grants:
                yield grant
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def update_grant(
        self,
        grant_id: str,
        *,
        ends_at: Time | _Unset | None = UNSET,
        roles: list[str] | None = None,
        on_end: str | None = None,
        as_of: Time | None = None,
    ) -> Grant:
        """As ``Client.update_grant``."""
        body = change_body(ends_at=ends_at, roles=roles, on_end=on_end, as_of=as_of)
        return parse_grant(await self._send(self._json("PATCH", grant_path(grant_id), body)))

    async def end_grant(self, grant_id: str, *, on_end: str | None = None, as_of: Time | None = None) -> Grant:
        """As ``Client.end_grant``."""
        return parse_grant(await self._send(self._plain("DELETE", grant_path(grant_id), end_params(on_end, as_of))))

    async def update_grants_by_ref(
        self,
        external_ref: str,
        *,
        ends_at: Time | _Unset | None = UNSET,
        roles: list[str] | None = None,
        on_end: str | None = None,
        as_of: Time | None = None,
    ) -> list[Grant]:
        """As ``Client.update_grants_by_ref``."""
        body = change_body(ends_at=ends_at, roles=roles, on_end=on_end, as_of=as_of)
        params: dict[str, str | int] = {"external_ref": external_ref}
        return parse_grants(await self._send(self._json("PATCH", GRANTS_PATH, body, params)))

    async def end_grants_by_ref(
        self, external_ref: str, *, on_end: str | None = None, as_of: Time | None = None
    ) -> list[Grant]:
        """As ``Client.end_grants_by_ref``."""
        params = {"external_ref": external_ref, **end_params(on_end, as_of)}
        return parse_grants(await self._send(self._plain("DELETE", GRANTS_PATH, params)))
