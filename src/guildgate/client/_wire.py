"""What the clients send and how they read the answer: one request builder and one envelope parser for both."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

import httpx

from guildgate.client._errors import ConnectionFailedError, error_class
from guildgate.core.envelope import Envelope, JoinedData
from guildgate.core.secret import Secret

JOIN_PATH = "/api/wanda/discord/guild"


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A join that succeeded: ``joined`` is False when the user was already a member (``code``
    ``already_member``). ``guild_name`` is known when the server was given by invite."""

    record_id: str
    code: str
    msg: str
    joined: bool
    guild_id: str
    guild_name: str | None
    user_id: str
    cost: str


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request, as both clients send it."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str | int] | None = None
    content: bytes | None = None


def headers(api_key: Secret, language: str | None, more: dict[str, str | None] | None = None) -> dict[str, str]:
    """``User-Token``, ``Accept-Language`` when a language is set, and each header of ``more`` that has a value."""
    out = {"User-Token": api_key.reveal()}
    if language:
        out["Accept-Language"] = language
    out.update({name: value for name, value in (more or {}).items() if value})
    return out


def join_body(
    *,
    authorization: str | Secret,
    guild_id: str | None,
    guild_name: str | None,
    roles: list[str] | None,
    nick: str | None,
    mute: bool | None,
    deaf: bool | None,
) -> bytes:
    """The join body as existing clients send it: the unused one of guild_id / guild_name as ``""``."""
    token = authorization.reveal() if isinstance(authorization, Secret) else authorization
    body: dict[str, Any] = {"authorization": token, "guild_id": guild_id or "", "guild_name": guild_name or ""}
    for name, value in (("roles", roles), ("nick", nick), ("mute", mute), ("deaf", deaf)):
        if value is not None:
            body[name] = value
    return json.dumps(body).encode()


def record_path(record_id: str) -> str:
    return f"/api/record/{quote(record_id, safe='')}"


def query(**params: str | int | datetime | None) -> dict[str, str | int]:
    """The parameters that have a value; a datetime as RFC 3339 (a naive one is read as UTC by the server)."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in params.items()
        if value is not None
    }


def no_answer(base_url: str, exc: httpx.HTTPError) -> ConnectionFailedError:
    if isinstance(exc, httpx.TimeoutException):
        msg = f"no answer from guildgate at {base_url} in time ({type(exc).__name__})"
    else:
        msg = f"could not reach guildgate at {base_url}: {type(exc).__name__}"
    return ConnectionFailedError(msg, code="connection_error", http_status=0)


def _bad_answer(response: httpx.Response) -> ConnectionFailedError:
    return ConnectionFailedError(
        f"unexpected answer from guildgate (HTTP {response.status_code})",
        code="bad_answer",
        http_status=response.status_code,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdecimal() else None


def _envelope(response: httpx.Response) -> dict[str, Any]:
    """The answer's envelope, or the error it says; a success's ``data`` is left as it came."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") not in (0, 1):
        raise _bad_answer(response)
    if body["status"] == 1:
        return body
    code = str(body.get("code") or "discord_error")
    raise error_class(code, response.status_code)(
        str(body.get("msg", "")),
        code=code,
        http_status=response.status_code,
        record_id=body.get("id"),
        retry_after=_retry_after(response),
        discord_code=body.get("discord_code"),
    )


def parse_join_answer(response: httpx.Response) -> JoinResult:
    """The join API's answer as a JoinResult; a failure as its GuildgateError."""
    body = cast(Envelope, _envelope(response))
    try:
        data = cast(JoinedData, json.loads(body["data"] or ""))
        return JoinResult(
            record_id=str(body["id"]),
            code=str(body["code"]),
            msg=str(body["msg"]),
            joined=bool(data["joined"]),
            guild_id=str(data["id"]),
            guild_name=data.get("name"),
            user_id=str(data["user_id"]),
            cost=str(body.get("cost", "")),
        )
    except (AttributeError, KeyError, TypeError, ValueError):  # the envelope without a success's fields
        raise _bad_answer(response) from None


def parse_read_answer(response: httpx.Response) -> dict[str, Any]:
    """A read's answer (record, records, usage): the envelope's ``data`` object."""
    data = _envelope(response).get("data")
    if not isinstance(data, dict):
        raise _bad_answer(response)
    return data
