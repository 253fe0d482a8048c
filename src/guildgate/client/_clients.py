"""``Client`` and ``AsyncClient``: the same methods over one request builder and one parser (``_wire``); they
differ only in how a request is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from guildgate.client._grant_methods import AsyncGrants, SyncGrants
from guildgate.client._wire import (
    JOIN_PATH,
    Call,
    JoinResult,
    headers,
    join_body,
    no_answer,
    parse_join_answer,
    parse_read_answer,
    query,
    record_path,
)
from guildgate.core.secret import Secret

DEFAULT_TIMEOUT = 40.0  # seconds: above the server's own 30 s limit on a join, so that its answer comes through


class _Calls:
    """The requests, built alike for both clients."""

    def __init__(self, base_url: str, api_key: str | Secret, *, language: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self.language = language

    def _join_call(
        self,
        *,
        authorization: str | Secret,
        guild_id: str | None,
        guild_name: str | None,
        roles: list[str] | None,
        nick: str | None,
        mute: bool | None,
        deaf: bool | None,
        developer_id: str | None,
        idempotency_key: str | None,
    ) -> Call:
        content = join_body(
            authorization=authorization,
            guild_id=guild_id,
            guild_name=guild_name,
            roles=roles,
            nick=nick,
            mute=mute,
            deaf=deaf,
        )
        sent = headers(
            self._key,
            self.language,
            {"Content-Type": "application/json", "Developer-Id": developer_id, "Idempotency-Key": idempotency_key},
        )
        return Call("POST", JOIN_PATH, sent, content=content)

    def _read_call(self, path: str, params: dict[str, str | int] | None = None) -> Call:
        return Call("GET", path, headers(self._key, self.language), params=params)

    def _records_call(
        self,
        state: str | None,
        code: str | None,
        guild_id: str | None,
        developer_id: str | None,
        since: str | datetime | None,
        until: str | datetime | None,
        limit: int | None,
        cursor: str | None,
    ) -> Call:
        params = query(
            state=state,
            code=code,
            guild_id=guild_id,
            developer_id=developer_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        return self._read_call("/api/records", params)


class Client(SyncGrants, _Calls):
    """The synchronous client. ``timeout`` bounds each request in seconds; ``language`` (``"en"`` or ``"zh"``,
    the server's default) is the language of ``msg``; ``transport`` plugs in any httpx transport. The grant
    methods (``create_grant`` ...) come from ``SyncGrants``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        language: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, language=language)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections (``with Client(...)`` does it on leaving)."""
        self._http.close()

    def _send(self, call: Call) -> httpx.Response:
        try:
            return self._http.request(
                call.method, call.path, headers=call.headers, params=call.params, content=call.content
            )
        except httpx.HTTPError as exc:
            raise no_answer(self.base_url, exc) from None

    def join(
        self,
        *,
        authorization: str | Secret,
        guild_id: str | None = None,
        guild_name: str | None = None,
        roles: list[str] | None = None,
        nick: str | None = None,
        mute: bool | None = None,
        deaf: bool | None = None,
        developer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> JoinResult:
        """Add the user who granted ``authorization`` to a server, given by ``guild_id`` or by invite
        (``guild_name``). Raises a GuildgateError subclass when the join did not happen (see docs/client.md)."""
        return parse_join_answer(
            self._send(
                self._join_call(
                    authorization=authorization,
                    guild_id=guild_id,
                    guild_name=guild_name,
                    roles=roles,
                    nick=nick,
                    mute=mute,
                    deaf=deaf,
                    developer_id=developer_id,
                    idempotency_key=idempotency_key,
                )
            )
        )

    def record(self, record_id: str) -> dict[str, Any]:
        """One record of this API key's app: ``gg.record(result.record_id)["state"]``. NotFoundError when
        there is none."""
        return parse_read_answer(self._send(self._read_call(record_path(record_id))))

    def records(
        self,
        *,
        state: str | None = None,
        code: str | None = None,
        guild_id: str | None = None,
        developer_id: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page, newest first: ``{"records": [...], "next_cursor": ...}``; pass ``next_cursor`` back as
        ``cursor`` for the next page (None: there is none)."""
        call = self._records_call(state, code, guild_id, developer_id, since, until, limit, cursor)
        return parse_read_answer(self._send(call))

    def usage(self, days: int = 30) -> dict[str, Any]:
        """Counts per day and outcome over ``days``, and this key's quota: ``gg.usage()["quota"]["remaining"]``."""
        return parse_read_answer(self._send(self._read_call("/api/usage", {"days": days})))


class AsyncClient(AsyncGrants, _Calls):
    """The asynchronous client: ``Client``'s methods, awaited (and ``aclose`` for ``close``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        language: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, language=language)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections (``async with AsyncClient(...)`` does it on leaving)."""
        await self._http.aclose()

    async def _send(self, call: Call) -> httpx.Response:
        try:
            return await self._http.request(
                call.method, call.path, headers=call.headers, params=call.params, content=call.content
            )
        except httpx.HTTPError as exc:
            raise no_answer(self.base_url, exc) from None

    async def join(
        self,
        *,
        authorization: str | Secret,
        guild_id: str | None = None,
        guild_name: str | None = None,
        roles: list[str] | None = None,
        nick: str | None = None,
        mute: bool | None = None,
        deaf: bool | None = None,
        developer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> JoinResult:
        """``await gg.join(authorization=token, guild_id="1200000000000000001")``: as ``Client.join``."""
        return parse_join_answer(
            await self._send(
                self._join_call(
                    authorization=authorization,
                    guild_id=guild_id,
                    guild_name=guild_name,
                    roles=roles,
                    nick=nick,
                    mute=mute,
                    deaf=deaf,
                    developer_id=developer_id,
                    idempotency_key=idempotency_key,
                )
            )
        )

    async def record(self, record_id: str) -> dict[str, Any]:
        """``(await gg.record(record_id))["state"]``: as ``Client.record``."""
        return parse_read_answer(await self._send(self._read_call(record_path(record_id))))

    async def records(
        self,
        *,
        state: str | None = None,
        code: str | None = None,
        guild_id: str | None = None,
        developer_id: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """``await gg.records(state="failed")``: as ``Client.records``."""
        call = self._records_call(state, code, guild_id, developer_id, since, until, limit, cursor)
        return parse_read_answer(await self._send(call))

    async def usage(self, days: int = 30) -> dict[str, Any]:
        """``await gg.usage()``: as ``Client.usage``."""
        return parse_read_answer(await self._send(self._read_call("/api/usage", {"days": days})))
