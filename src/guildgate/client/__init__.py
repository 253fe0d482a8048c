"""The Python client: ``Client`` (sync) and ``AsyncClient`` over one request builder and one parser.

>>> from guildgate import Client
>>> with Client("http://127.0.0.1:8080", api_key="gg_...") as gg:          # doctest: +SKIP
...     result = gg.join(authorization=user_token, guild_id="1200000000000000001")
...     print(result.joined, result.record_id)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from guildgate.core.secret import Secret

JOIN_PATH = "/api/wanda/discord/guild"


class GuildgateError(Exception):
    """A join (or a read) that did not succeed. ``code`` is the contract's outcome code."""

    def __init__(
        self,
        msg: str,
        *,
        code: str,
        http_status: int,
        record_id: str | None = None,
        retry_after: float | None = None,
        discord_code: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {msg}")
        self.msg, self.code, self.http_status = msg, code, http_status
        self.record_id, self.retry_after, self.discord_code = record_id, retry_after, discord_code


class AuthenticationError(GuildgateError):
    """The API key is missing, unknown or revoked (``invalid_api_key``)."""


class InvalidRequestError(GuildgateError):
    """The request was refused before anything was sent to Discord (bad field, not an OAuth2 token, proxy)."""


class QuotaExceededError(GuildgateError):
    """The API key's quota is spent; ``retry_after`` says when to try again."""


class RateLimitedError(GuildgateError):
    """Discord's rate limits, or the operator's velocity cap (``velocity_capped``), would not let the join happen
    now; ``retry_after`` says when to try again."""


class DiscordUnavailableError(GuildgateError):
    """Discord could not be reached or kept failing; safe to retry later (the record may be ``unknown``)."""


class JoinRefusedError(GuildgateError):
    """Discord refused the join (banned, token expired, unknown guild, ...); ``code`` says which."""


class ConnectionProblem(GuildgateError):
    """guildgate itself could not be reached or answered something that is not the envelope."""


_ERRORS: dict[str, type[GuildgateError]] = {
    "invalid_api_key": AuthenticationError,
    "invalid_request": InvalidRequestError,
    "not_an_oauth_token": InvalidRequestError,
    "proxy_not_allowed": InvalidRequestError,
    "idempotency_conflict": InvalidRequestError,
    "quota_exceeded": QuotaExceededError,
    "rate_limited": RateLimitedError,
    "velocity_capped": RateLimitedError,  # the operator's cap: retry after retry_after, like a rate limit
    "discord_unavailable": DiscordUnavailableError,
}


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A successful join: ``joined`` is False when the user was already a member."""

    record_id: str
    code: str
    msg: str
    joined: bool
    guild_id: str
    guild_name: str | None
    user_id: str
    cost: str


def _headers(
    api_key: Secret, language: str | None, developer_id: str | None, idempotency_key: str | None
) -> dict[str, str]:
    headers = {"User-Token": api_key.reveal(), "Content-Type": "application/json"}
    if language:
        headers["Accept-Language"] = language
    if developer_id:
        headers["Developer-Id"] = developer_id
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def build_join(
    *,
    authorization: str | Secret,
    guild_id: str | None,
    guild_name: str | None,
    roles: list[str] | None,
    nick: str | None,
    mute: bool | None,
    deaf: bool | None,
) -> bytes:
    token = authorization.reveal() if isinstance(authorization, Secret) else authorization
    body: dict[str, Any] = {
        "authorization": token,
        "guild_id": guild_id or "",
        "guild_name": guild_name or "",
    }
    for name, value in (("roles", roles), ("nick", nick), ("mute", mute), ("deaf", deaf)):
        if value is not None:
            body[name] = value
    return json.dumps(body).encode()


def _envelope(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        raise ConnectionProblem(
            f"unexpected answer from guildgate (HTTP {response.status_code})",
            code="bad_answer",
            http_status=response.status_code,
        )
    return body


def _raise_for(response: httpx.Response, body: dict[str, Any]) -> None:
    if body.get("status") == 1:
        return
    code = str(body.get("code") or "discord_error")
    retry = response.headers.get("retry-after")
    raise _ERRORS.get(code, JoinRefusedError)(
        str(body.get("msg", "")),
        code=code,
        http_status=response.status_code,
        record_id=body.get("id"),
        retry_after=float(retry) if retry and retry.replace(".", "", 1).isdecimal() else None,
        discord_code=body.get("discord_code"),
    )


def parse_join(response: httpx.Response) -> JoinResult:
    body = _envelope(response)
    _raise_for(response, body)
    data = json.loads(body["data"]) if isinstance(body.get("data"), str) else {}
    return JoinResult(
        record_id=body["id"],
        code=body["code"],
        msg=body["msg"],
        joined=bool(data.get("joined")),
        guild_id=str(data.get("id")),
        guild_name=data.get("name"),
        user_id=str(data.get("user_id")),
        cost=str(body.get("cost", "")),
    )


def parse_read(response: httpx.Response) -> Any:
    body = _envelope(response)
    _raise_for(response, body)
    return body.get("data")


class _Base:
    def __init__(self, base_url: str, api_key: str | Secret, *, language: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self.language = language

    def _join_args(self, developer_id: str | None, idempotency_key: str | None) -> dict[str, Any]:
        return {"headers": _headers(self._key, self.language, developer_id, idempotency_key)}

    def _read_headers(self) -> dict[str, str]:
        headers = {"User-Token": self._key.reveal()}
        if self.language:
            headers["Accept-Language"] = self.language
        return headers


class Client(_Base):
    """Synchronous client. ``transport`` lets tests or apps plug in any httpx transport."""

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret,
        *,
        timeout: float = 40.0,
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
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConnectionProblem(
                f"could not reach guildgate at {self.base_url}: {type(exc).__name__}",
                code="connection_error",
                http_status=0,
            ) from None

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
        """Add the user who granted ``authorization`` to a server (by id, or by invite via ``guild_name``).

        >>> gg.join(authorization="6qrZcUqja7812RVdnEKjpzOL4CvHBFG", guild_name="discord.gg/demo")  # doctest: +SKIP
        """
        content = build_join(
            authorization=authorization,
            guild_id=guild_id,
            guild_name=guild_name,
            roles=roles,
            nick=nick,
            mute=mute,
            deaf=deaf,
        )
        return parse_join(
            self._send("POST", JOIN_PATH, content=content, **self._join_args(developer_id, idempotency_key))
        )

    def record(self, record_id: str) -> dict[str, Any]:
        """One record: ``gg.record(result.record_id)["state"]``."""
        data = parse_read(self._send("GET", f"/api/record/{record_id}", headers=self._read_headers()))
        assert isinstance(data, dict)
        return data

    def records(self, **filters: str | int) -> dict[str, Any]:
        """One page: ``gg.records(state="failed", limit=100)`` -> {"records": [...], "next_cursor": ...}."""
        data = parse_read(self._send("GET", "/api/records", params=filters, headers=self._read_headers()))
        assert isinstance(data, dict)
        return data

    def usage(self, days: int = 30) -> dict[str, Any]:
        """Counts per day and outcome, and the quota: ``gg.usage()["quota"]["remaining"]``."""
        data = parse_read(self._send("GET", "/api/usage", params={"days": days}, headers=self._read_headers()))
        assert isinstance(data, dict)
        return data


class AsyncClient(_Base):
    """Asynchronous client with the same methods as ``Client``, awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret,
        *,
        timeout: float = 40.0,
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
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConnectionProblem(
                f"could not reach guildgate at {self.base_url}: {type(exc).__name__}",
                code="connection_error",
                http_status=0,
            ) from None

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
        """``await gg.join(authorization=token, guild_id="1200000000000000001")``."""
        content = build_join(
            authorization=authorization,
            guild_id=guild_id,
            guild_name=guild_name,
            roles=roles,
            nick=nick,
            mute=mute,
            deaf=deaf,
        )
        return parse_join(
            await self._send("POST", JOIN_PATH, content=content, **self._join_args(developer_id, idempotency_key))
        )

    async def record(self, record_id: str) -> dict[str, Any]:
        """``(await gg.record(record_id))["state"]``."""
        data = parse_read(await self._send("GET", f"/api/record/{record_id}", headers=self._read_headers()))
        assert isinstance(data, dict)
        return data

    async def records(self, **filters: str | int) -> dict[str, Any]:
        """``await gg.records(state="failed")``."""
        data = parse_read(await self._send("GET", "/api/records", params=filters, headers=self._read_headers()))
        assert isinstance(data, dict)
        return data

    async def usage(self, days: int = 30) -> dict[str, Any]:
        """``await gg.usage()``."""
        data = parse_read(await self._send("GET", "/api/usage", params={"days": days}, headers=self._read_headers()))
        assert isinstance(data, dict)
        return data
