"""The grants API (``../shared/spec/access.md``, "Grants"): ``POST /api/grants`` for someone already in the
server, ``PATCH`` and ``DELETE`` by id or by ``external_ref``, ``GET`` one and a paged, filtered list. The same
``User-Token`` API key and envelope as the records API; an API key sees only its own app's grants (another
app's grant answers 404 ``unknown_grant``, as an unknown id does). Writes count against the key's quota, reads
against its reads per minute.

    curl -X POST $URL/api/grants -H 'User-Token: gg_...' -H 'Content-Type: application/json' \\
         -d '{"guild_id": "12...", "user_id": "13...", "roles": ["12..."], "duration": "30d", "external_ref": "sub_1"}'
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.responses import Response

from guildgate.core.errors import InvalidRequestError, JoinError
from guildgate.core.grants import GrantState, GrantTerms, OnEnd
from guildgate.core.invites import is_snowflake
from guildgate.discord.ratelimit.shares import key_spender
from guildgate.services.grants import UNSET, GrantFilters, GrantResult
from guildgate.store.repos import KeyInfo
from guildgate.web.api.body import check_content_type, parse_json
from guildgate.web.api.grant_body import (
    EXTERNAL_REF_PATTERN,
    LINK_ID_PATTERN,
    GrantChange,
    change_schema,
    external_ref_of,
    link_id_of,
    new_grant_schema,
    on_end_of,
    parse_change,
    parse_new,
    time_of,
)
from guildgate.web.api.join import read_body
from guildgate.web.api.records import _TIME_PATTERN, _time
from guildgate.web.api.schemas import Envelope, GrantAnswer, GrantListWritten, GrantPageAnswer, GrantWritten
from guildgate.web.deps import authenticate, services
from guildgate.web.errors import EnvelopeResponse, error_response
from guildgate.web.i18n import OK_MSG, pick_language


def _headers(
    user_token: str | None = Header(default=None, alias="User-Token", description="API key"),
    accept_language: str | None = Header(
        default=None, alias="Accept-Language", description="language of msg: zh by default, en when it prefers en"
    ),
) -> None:
    """The headers every grants call reads (listed in the schema; read from the request where needed)."""


class _Timed(APIRoute):
    """A refusal's ``cost`` is the wall time of the whole request, Discord's calls included (as the join API's),
    not the moment the error was turned into an answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def timed(request: Request) -> Response:
            started = time.perf_counter()
            try:
                return await handle(request)
            except JoinError as exc:
                lang = pick_language(request.headers.get("accept-language"))
                return error_response(exc, record_id=None, lang=lang, started=started)

        return timed


router = APIRouter(dependencies=[Depends(_headers)], route_class=_Timed)

GRANTS = "/api/grants"
GRANT = "/api/grants/{grant_id}"
# The cursor GET /api/grants gives out: the grant's creation (microseconds since 1970) and its id.
CURSOR_PATTERN = r"[0-9]{1,16}\.grt_[0-9a-f]{16}"
_CURSOR = re.compile(CURSOR_PATTERN)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Envelope} for status in (400, 401, 404, 409, 413, 415, 429, 502, 503, 504)
}


def _ok(request: Request, data: Any, status: int = 200) -> JSONResponse:
    lang = pick_language(request.headers.get("accept-language"))
    return EnvelopeResponse({"status": 1, "msg": OK_MSG[lang], "data": data}, status_code=status)


def _written(result: GrantResult) -> dict[str, Any]:
    """A grant as a write answers it: the grant object, and ``stale`` (true: the call's as_of was older than the
    grant's, and nothing was changed)."""
    return {**result.grant.as_json(), "stale": result.stale}


async def _body(request: Request) -> dict[str, Any]:
    check_content_type(request.headers.get("content-type"))
    return parse_json(await read_body(request))


async def _writer(request: Request) -> KeyInfo:
    """The key of a write; it counts against the key's quota once its input was found good."""
    return await authenticate(request)


async def _reader(request: Request) -> KeyInfo:
    key = await authenticate(request)
    await services(request).quotas.take_read(key)
    return key


def _change_args(change: GrantChange) -> dict[str, Any]:
    return {
        "ends_at": change.ends_at if "ends_at" in change.given else UNSET,
        "roles": change.roles if "roles" in change.given else UNSET,
        "on_end": change.on_end if "on_end" in change.given else UNSET,
        "as_of": change.as_of,
    }


def _optional_on_end(value: str | None) -> OnEnd | None:
    return None if not value else on_end_of(value)


def _optional_as_of(value: str | None) -> datetime | None:
    return None if not value else time_of("as_of", value)


def _required_ref(value: str | None) -> str:
    if not value:
        raise InvalidRequestError("external_ref is required (the grants to act on: ?external_ref=REF)")
    return external_ref_of(value)


_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}


@router.post(
    GRANTS,
    summary="Give roles to someone already in the server, as a grant",
    status_code=201,
    response_model=None,
    responses={
        201: {"model": GrantWritten, "description": "A new grant"},
        200: {"model": GrantWritten, "description": "The active grant with this external_ref, updated"},
        **_ERRORS,
    },
    openapi_extra={"requestBody": _BODY},
)
async def create_grant(request: Request) -> JSONResponse:
    """The bot gives the roles now and the answer is the grant (201). Not in the server: 409 ``not_a_member``.
    With an ``external_ref`` that names an active grant of this app in that server, that grant is updated
    instead (200): ``roles`` replaces its set, ``ends_at`` or ``duration`` sets its end (a past one ends it)."""
    key = await _writer(request)
    new = parse_new(await _body(request))
    svc = services(request)
    await svc.quotas.take(key)
    app = await svc.apps.credentials(key.app_id)
    async with await svc.shares.spend(key_spender(key.id)):  # its 401/403/429s count against the key's share
        terms = GrantTerms(
            ends_at=new.ends_at,
            on_end=new.on_end,
            external_ref=new.external_ref,
            as_of=new.as_of,
            starts_at=new.starts_at,
        )
        result = await svc.grants.create(
            app=app, app_id=key.app_id, guild_id=new.guild_id, user_id=new.user_id, roles=new.roles, terms=terms
        )
    return _ok(request, _written(result), 201 if result.created else 200)


@router.get(GRANT, summary="One grant", response_model=None, responses={200: {"model": GrantAnswer}, **_ERRORS})
async def get_grant(request: Request, grant_id: str) -> JSONResponse:
    """One grant of this API key's app. Another app's, or an unknown id: 404 ``unknown_grant``."""
    key = await _reader(request)
    grant = await services(request).grants.get(app_id=key.app_id, grant_id=grant_id)
    return _ok(request, grant.as_json())


@router.patch(
    GRANT,
    summary="Change a grant: its end, its roles, what its end does",
    response_model=None,
    responses={200: {"model": GrantWritten}, **_ERRORS},
    openapi_extra={"requestBody": _BODY},
)
async def change_grant(request: Request, grant_id: str) -> JSONResponse:
    """``roles`` replaces the set (given or taken away at Discord at once); a later ``ends_at`` extends, an
    earlier one shortens, a past one ends the grant now; ``null`` makes it open-ended. An ended grant: 409
    ``grant_ended``. An ``as_of`` older than the grant's changes nothing (``stale``: true)."""
    key = await _writer(request)
    change = parse_change(await _body(request))
    svc = services(request)
    await svc.quotas.take(key)
    app = await svc.apps.credentials(key.app_id)
    async with await svc.shares.spend(key_spender(key.id)):  # its 401/403/429s count against the key's share
        result = await svc.grants.update(app=app, app_id=key.app_id, grant_id=grant_id, **_change_args(change))
    return _ok(request, _written(result))


@router.delete(
    GRANT, summary="End a grant now", response_model=None, responses={200: {"model": GrantWritten}, **_ERRORS}
)
async def end_grant(
    request: Request,
    grant_id: str,
    on_end: str | None = Query(default=None, description="remove_roles, kick or keep: instead of the grant's own"),
    as_of: str | None = Query(default=None, description="RFC 3339: the time of the fact behind this call"),
) -> JSONResponse:
    """Ends it now (``end_reason`` ``revoked``) and answers the ended grant. An ended grant is answered as it
    is."""
    key = await _writer(request)
    ending, fact = _optional_on_end(on_end), _optional_as_of(as_of)
    svc = services(request)
    await svc.quotas.take(key)
    app = await svc.apps.credentials(key.app_id)
    async with await svc.shares.spend(key_spender(key.id)):  # its 401/403/429s count against the key's share
        result = await svc.grants.end(app=app, app_id=key.app_id, grant_id=grant_id, on_end=ending, as_of=fact)
    return _ok(request, _written(result))


@router.patch(
    GRANTS,
    summary="Change every active grant with an external_ref",
    response_model=None,
    responses={200: {"model": GrantListWritten}, **_ERRORS},
    openapi_extra={"requestBody": _BODY},
)
async def change_by_ref(
    request: Request, external_ref: str | None = Query(default=None, description="Your reference")
) -> JSONResponse:
    """As ``PATCH /api/grants/{id}``, for every active grant of this app with that reference, in every server:
    ``{"grants": [...]}`` (empty when none)."""
    key = await _writer(request)
    ref = _required_ref(external_ref)
    change = parse_change(await _body(request))
    svc = services(request)
    await svc.quotas.take(key)
    app = await svc.apps.credentials(key.app_id)
    async with await svc.shares.spend(key_spender(key.id)):  # its 401/403/429s count against the key's share
        results = await svc.grants.update_by_ref(app=app, app_id=key.app_id, external_ref=ref, **_change_args(change))
    return _ok(request, {"grants": [_written(r) for r in results]})


@router.delete(
    GRANTS,
    summary="End every active grant with an external_ref",
    response_model=None,
    responses={200: {"model": GrantListWritten}, **_ERRORS},
)
async def end_by_ref(
    request: Request,
    external_ref: str | None = Query(default=None, description="Your reference"),
    on_end: str | None = Query(default=None, description="remove_roles, kick or keep: instead of each grant's"),
    as_of: str | None = Query(default=None, description="RFC 3339: the time of the fact behind this call"),
) -> JSONResponse:
    """Ends every active grant of this app with that reference, in every server: ``{"grants": [...]}``."""
    key = await _writer(request)
    ref = _required_ref(external_ref)
    ending, fact = _optional_on_end(on_end), _optional_as_of(as_of)
    svc = services(request)
    await svc.quotas.take(key)
    app = await svc.apps.credentials(key.app_id)
    async with await svc.shares.spend(key_spender(key.id)):  # its 401/403/429s count against the key's share
        results = await svc.grants.end_by_ref(app=app, app_id=key.app_id, external_ref=ref, on_end=ending, as_of=fact)
    return _ok(request, {"grants": [_written(r) for r in results]})


@router.get(
    GRANTS, summary="Grants, newest first", response_model=None, responses={200: {"model": GrantPageAnswer}, **_ERRORS}
)
async def list_grants(
    request: Request,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = None,
    guild_id: str | None = None,
    user_id: str | None = None,
    state: str | None = None,
    external_ref: str | None = None,
    ends_before: str | None = Query(default=None, description="RFC 3339"),
    updated_since: str | None = Query(default=None, description="RFC 3339"),
    link_id: str | None = None,
    absent: str | None = Query(default=None, description="true: only people who left; false: only those in"),
) -> JSONResponse:
    """Newest first, cursor-paged like ``GET /api/records``: pass ``next_cursor`` back as ``cursor``. An empty
    value counts as absent. Example: ``/api/grants?state=active&ends_before=2027-01-01T00:00:00Z``."""
    key = await _reader(request)
    for name, value in (("guild_id", guild_id), ("user_id", user_id)):
        if value and not is_snowflake(value):
            raise InvalidRequestError(f"{name} must be an id (a snowflake: 17-20 digits)")
    if state and state not in {s.value for s in GrantState}:
        raise InvalidRequestError(f"state must be one of {', '.join(s.value for s in GrantState)}")
    if absent and absent not in ("true", "false"):
        raise InvalidRequestError("absent must be true or false")
    if cursor and not _CURSOR.fullmatch(cursor):
        raise InvalidRequestError("cursor: not one this service gave out (pass next_cursor back as it came)")
    filters = GrantFilters(
        guild_id=guild_id or None,
        user_id=user_id or None,
        state=GrantState(state) if state else None,
        external_ref=external_ref_of(external_ref) if external_ref else None,
        ends_before=_time("ends_before", ends_before),
        updated_since=_time("updated_since", updated_since),
        link_id=link_id_of(link_id) if link_id else None,
        absent=None if not absent else absent == "true",
    )
    try:
        grants, next_cursor = await services(request).grants.page(
            app_id=key.app_id, filters=filters, cursor=cursor or None, limit=limit
        )
    except ValueError as exc:
        raise InvalidRequestError(f"cursor: {exc}") from None
    return _ok(request, {"grants": [g.as_json() for g in grants], "next_cursor": next_cursor})


def describe_grants(schema: dict[str, Any], *, snowflake: str) -> None:
    """Every body and parameter of the grants API with the rules the handlers apply, into ``schema``."""
    paths = schema["paths"]
    # A write that Discord refused answers as the join API does: HTTP 200, status 0, the outcome's code.
    for path, method in ((GRANTS, "post"), (GRANT, "patch"), (GRANT, "delete"), (GRANTS, "patch"), (GRANTS, "delete")):
        answer = paths[path][method]["responses"]["200"]["content"]["application/json"]
        answer["schema"] = {"anyOf": [answer["schema"], {"$ref": "#/components/schemas/Envelope"}]}
    json_body = paths[GRANTS]["post"]["requestBody"]["content"]["application/json"]
    json_body["schema"] = new_grant_schema(snowflake=snowflake, now=datetime.now(UTC))
    for operation in (paths[GRANT]["patch"], paths[GRANTS]["patch"]):
        operation["requestBody"]["content"]["application/json"]["schema"] = change_schema(snowflake=snowflake)
    time = {
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
            {"type": "string", "pattern": _TIME_PATTERN},
            {"type": "string", "maxLength": 0},
        ],
        "description": "RFC 3339 (2027-01-05T10:00:00Z), or a date, or without seconds or offset (UTC)",
    }
    ref = {"type": "string", "pattern": f"^(?:{EXTERNAL_REF_PATTERN})?$", "maxLength": 128}
    exact: dict[str, dict[str, Any]] = {
        "cursor": {"type": "string", "pattern": f"^(?:{CURSOR_PATTERN})?$"},
        "guild_id": {"type": "string", "pattern": f"^(?:{snowflake})?$"},
        "user_id": {"type": "string", "pattern": f"^(?:{snowflake})?$"},
        "state": {"type": "string", "enum": ["", *(s.value for s in GrantState)]},
        "external_ref": ref,
        "ends_before": time,
        "updated_since": time,
        "as_of": time,
        "link_id": {"type": "string", "pattern": f"^(?:{LINK_ID_PATTERN})?$"},
        "absent": {"type": "string", "enum": ["", "true", "false"]},
        "on_end": {"type": "string", "enum": ["", *(o.value for o in OnEnd)]},
    }
    for path, method in ((GRANTS, "get"), (GRANTS, "patch"), (GRANTS, "delete"), (GRANT, "delete")):
        for parameter in paths[path][method].get("parameters", []):
            if parameter["in"] == "query" and parameter["name"] in exact:
                described = exact[parameter["name"]]
                if parameter["name"] == "external_ref" and method != "get":  # required to act on grants
                    parameter["required"] = True
                    described = {**ref, "pattern": f"^{EXTERNAL_REF_PATTERN}$"}
                parameter["schema"] = described
