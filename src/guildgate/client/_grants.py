"""The grant calls as both clients send them, and their answers as typed objects (``Grant``, ``GrantPage``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final
from urllib.parse import quote

import httpx

from guildgate.client._wire import _bad_answer as bad_answer
from guildgate.client._wire import _envelope as envelope
from guildgate.client._wire import query

GRANTS_PATH = "/api/grants"


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET  # an argument left out, as opposed to None (``ends_at=None``: open-ended)

Time = datetime | str


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant: this user holds these roles in this server until ``ends_at`` (None: open-ended); when it ends,
    ``on_end`` is done. Times are aware datetimes in UTC. ``created``: this call made it (HTTP 201); ``stale``:
    this call's ``as_of`` was older than the grant's, so nothing was changed (both False on reads)."""

    id: str
    app_id: str
    guild_id: str
    user_id: str
    roles: tuple[str, ...]
    state: str
    starts_at: datetime
    ends_at: datetime | None
    on_end: str
    external_ref: str | None
    source: str
    link_id: str | None
    record_id: str | None
    roles_preexisting: tuple[str, ...]
    absent_since: datetime | None
    revision: int
    as_of: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    created: bool = False
    stale: bool = False


@dataclass(frozen=True, slots=True)
class GrantPage:
    """One page of ``list_grants``, newest first; ``next_cursor`` (None: the last page) goes back as ``cursor``."""

    grants: tuple[Grant, ...]
    next_cursor: str | None


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _grant(data: dict[str, Any], *, created: bool = False) -> Grant:
    starts_at, created_at, updated_at = (_time(data[k]) for k in ("starts_at", "created_at", "updated_at"))
    assert starts_at is not None and created_at is not None and updated_at is not None
    return Grant(
        id=str(data["id"]),
        app_id=str(data["app_id"]),
        guild_id=str(data["guild_id"]),
        user_id=str(data["user_id"]),
        roles=tuple(str(r) for r in data["roles"]),
        state=str(data["state"]),
        starts_at=starts_at,
        ends_at=_time(data["ends_at"]),
        on_end=str(data["on_end"]),
        external_ref=data["external_ref"],
        source=str(data["source"]),
        link_id=data["link_id"],
        record_id=data["record_id"],
        roles_preexisting=tuple(str(r) for r in data["roles_preexisting"]),
        absent_since=_time(data["absent_since"]),
        revision=int(data["revision"]),
        as_of=_time(data["as_of"]),
        ended_at=_time(data["ended_at"]),
        end_reason=data["end_reason"],
        last_error=data["last_error"],
        created_at=created_at,
        updated_at=updated_at,
        created=created,
        stale=bool(data.get("stale", False)),
    )


def _data(response: httpx.Response) -> dict[str, Any]:
    data = envelope(response).get("data")
    if not isinstance(data, dict):
        raise bad_answer(response)
    return data


def parse_grant(response: httpx.Response) -> Grant:
    """One grant's answer (a read or a write); a failure as its GuildgateError."""
    data = _data(response)
    try:
        return _grant(data, created=response.status_code == 201)
    except (AssertionError, KeyError, TypeError, ValueError):
        raise bad_answer(response) from None


def parse_grants(response: httpx.Response) -> list[Grant]:
    """A by-reference write's answer: ``{"grants": [...]}``."""
    data = _data(response)
    try:
        return [_grant(g) for g in data["grants"]]
    except (AssertionError, KeyError, TypeError, ValueError):
        raise bad_answer(response) from None


def parse_grant_page(response: httpx.Response) -> GrantPage:
    data = _data(response)
    try:
        return GrantPage(grants=tuple(_grant(g) for g in data["grants"]), next_cursor=data["next_cursor"])
    except (AssertionError, KeyError, TypeError, ValueError):
        raise bad_answer(response) from None


def _text(value: Time) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


def grant_path(grant_id: str) -> str:
    return f"{GRANTS_PATH}/{quote(grant_id, safe='')}"


def new_grant_body(
    *,
    guild_id: str,
    user_id: str,
    roles: list[str],
    ends_at: Time | None,
    duration: str | None,
    on_end: str | None,
    external_ref: str | None,
    as_of: Time | None,
) -> bytes:
    body: dict[str, Any] = {"guild_id": guild_id, "user_id": user_id, "roles": list(roles)}
    optional = {"duration": duration, "on_end": on_end, "external_ref": external_ref}
    body.update({name: value for name, value in optional.items() if value is not None})
    for name, moment in (("ends_at", ends_at), ("as_of", as_of)):
        if moment is not None:
            body[name] = _text(moment)
    return json.dumps(body).encode()


def change_body(
    *, ends_at: Time | _Unset | None, roles: list[str] | None, on_end: str | None, as_of: Time | None
) -> bytes:
    body: dict[str, Any] = {}
    if ends_at is not UNSET:
        body["ends_at"] = None if ends_at is None else _text(ends_at)
    if roles is not None:
        body["roles"] = list(roles)
    if on_end is not None:
        body["on_end"] = on_end
    if as_of is not None:
        body["as_of"] = _text(as_of)
    return json.dumps(body).encode()


def end_params(on_end: str | None, as_of: Time | None) -> dict[str, str | int]:
    return query(on_end=on_end, as_of=as_of)


def list_params(
    *,
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
) -> dict[str, str | int]:
    return query(
        guild_id=guild_id,
        user_id=user_id,
        state=state,
        external_ref=external_ref,
        ends_before=ends_before,
        updated_since=updated_since,
        link_id=link_id,
        absent=None if absent is None else ("true" if absent else "false"),
        limit=limit,
        cursor=cursor,
    )
