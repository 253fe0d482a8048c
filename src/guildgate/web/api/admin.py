"""The admin JSON API: links and the doctor, for scripts. ``Authorization: Bearer <GUILDGATE_ADMIN_TOKEN>``;
API keys are refused (they belong to an app, not to the operator); wrong tokens are limited per client and in
total (web/adminauth.py). Without the admin token it is not there at
all: web/app.py leaves its routes out (404, and not in /openapi.json).

    curl -s -X POST $URL/api/admin/links -H "Authorization: Bearer $GUILDGATE_ADMIN_TOKEN" \\
         -H 'Content-Type: application/json' -d '{"app_id": "11...", "guild_id": "12...", "max_uses": 1}'
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from guildgate.core.access import ON_END_VALUES, future_time_pattern
from guildgate.core.invites import INVITE_PATTERN
from guildgate.core.links import ACCESS_MAX_DAYS, Link, duration_pattern
from guildgate.core.patterns import NOT_CONTROL
from guildgate.services.links import (
    ACCESS_FOR_LENGTH,
    LinkInputError,
    create_link,
    link_dict,
    links_with_outcomes,
    report_dict,
    run_doctor,
    run_link_doctor,
)
from guildgate.store.repos import NotFoundError
from guildgate.web.adminauth import bearer_value, check_token
from guildgate.web.api.schemas import AdminErrorBody
from guildgate.web.deps import services
from guildgate.web.errors import AdminError


async def authorize(request: Request) -> None:
    """The admin token, or AdminError (401 without or with a wrong one, 403 for an API key, 429 past the limit
    of wrong tokens: web/adminauth.py)."""
    token = services(request).settings.admin_token
    if token is None:  # the routes are left out then (web/app.py): as if they were
        raise AdminError(404, "not_found", "Not Found")
    value = bearer_value(request)
    if request.headers.get("user-token") or (value or "").startswith("gg_"):
        raise AdminError(403, "api_key_not_allowed", "API keys cannot use the admin API: use the admin token")
    if value is None:
        raise AdminError(401, "admin_token_required", "send Authorization: Bearer <GUILDGATE_ADMIN_TOKEN>")
    if not await check_token(request, value):
        raise AdminError(401, "invalid_admin_token", "the admin token is not right")


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": AdminErrorBody} for status in (400, 401, 403, 404, 409, 429, 502)
}
router = APIRouter(prefix="/api/admin", dependencies=[Depends(authorize)], responses=_ERRORS)


class LinkIn(BaseModel):
    """A new join link: one of ``guild_id`` and ``invite``."""

    model_config = ConfigDict(extra="forbid")
    app_id: str = Field(description="The app's client id")
    guild_id: str | None = Field(default=None, description="The server's id")
    invite: str | None = Field(default=None, description="An invite code or URL of the server")
    roles: list[str] = Field(default_factory=list, max_length=20)
    max_uses: int | None = Field(default=None, ge=1, le=1_000_000)
    expires: str | None = Field(default=None, description="Lifetime like 30m, 12h, 7d, 2w", max_length=16)
    title: str | None = Field(default=None, max_length=200)
    skip_checks: bool = Field(
        default=False, description="Make the link even when the doctor finds the bot missing or short of a permission"
    )
    access_for: str | None = Field(
        default=None, max_length=ACCESS_FOR_LENGTH, description="Each person's grant ends this long after their join"
    )
    access_until: str | None = Field(default=None, max_length=40, description="Every grant ends at this RFC 3339 time")
    access_open: StrictBool = Field(default=False, description="Each person's grant never ends by itself")
    on_end: str | None = Field(
        default=None, description="What a grant's end does: remove_roles (default), kick or keep; with an access option"
    )


@router.get("/links", summary="List join links with their funnel")
async def list_links(
    request: Request, app_id: str | None = Query(default=None, pattern=r"^[0-9]{17,20}$")
) -> JSONResponse:
    svc = services(request)
    rows = await links_with_outcomes(svc.links, app_id=app_id)
    return JSONResponse({"links": [link_dict(svc.settings.public_url, link, outcomes) for link, outcomes in rows]})


@router.post(
    "/links",
    summary="Create a join link (runs the doctor first: 409 checks_failed when the bot cannot add people)",
    status_code=201,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": LinkIn.model_json_schema()}}}
    },
)
async def post_link(request: Request) -> JSONResponse:
    # The body is read here, after the admin token was checked (a declared body would be parsed before it).
    try:
        body = LinkIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    svc = services(request)
    try:
        link, report = await create_link(
            svc,
            app_id=body.app_id,
            guild_id=body.guild_id,
            invite=body.invite,
            roles=body.roles,
            max_uses=body.max_uses,
            expires=body.expires,
            title=body.title,
            skip_checks=body.skip_checks,
            access_for=body.access_for,
            access_until=body.access_until,
            access_open=body.access_open,
            on_end=body.on_end,
        )
    except LinkInputError as exc:
        raise _refused(exc) from None
    return JSONResponse(
        {**link_dict(svc.settings.public_url, link, {}), "doctor": report_dict(report)}, status_code=201
    )


def _refused(exc: LinkInputError) -> AdminError:
    error = {404: "not_found", 409: "conflict", 429: "rate_limited", 502: "discord_unavailable"}
    return AdminError(exc.status, exc.error or error.get(exc.status, "invalid_request"), str(exc))


# No control character (core.text.is_control, Unicode's Cc; its lone surrogates, Cs, are not JSON text and no
# generator makes them: a pattern naming them is one some validators cannot read).
_NO_CONTROL = f"^{NOT_CONTROL}*$"


def describe_admin(schema: dict[str, Any], *, snowflake: str) -> None:
    """The link body and the doctor's parameters with every rule the handlers apply, into ``schema``."""
    paths = schema["paths"]
    if "/api/admin/links" not in paths:  # the admin API is off
        return
    body = LinkIn.model_json_schema()
    props = body["properties"]
    props["app_id"] = {"type": "string", "pattern": f"^{snowflake}$", "description": "The app's client id"}
    props["guild_id"] = {"anyOf": [{"type": "string", "pattern": f"^{snowflake}$"}, {"type": "null"}]}
    props["invite"] = {"anyOf": [{"type": "string", "pattern": f"^{INVITE_PATTERN}$"}, {"type": "null"}]}
    props["roles"]["items"] = {"type": "string", "pattern": f"^{snowflake}$"}
    props["expires"] = {
        "anyOf": [{"type": "string", "pattern": f"^(?:{duration_pattern()})?$", "maxLength": 16}, {"type": "null"}]
    }
    props["title"] = {"anyOf": [{"type": "string", "pattern": _NO_CONTROL, "maxLength": 200}, {"type": "null"}]}
    body["oneOf"] = [{"required": [name], "properties": {name: {"type": "string"}}} for name in ("guild_id", "invite")]
    _describe_access(props, body)
    paths["/api/admin/links"]["post"]["requestBody"]["content"]["application/json"]["schema"] = body
    for parameter in paths["/api/admin/doctor"]["get"]["parameters"]:
        if parameter["name"] in ("app_id", "guild_id"):
            parameter["schema"] = {"type": "string", "pattern": f"^{snowflake}$"}
        elif parameter["name"] == "role":
            parameter["schema"]["items"] = {"type": "string", "pattern": f"^{snowflake}$"}


def _describe_access(props: dict[str, Any], body: dict[str, Any]) -> None:
    """The access options: at most one of access_for, access_until (later than now) and access_open; on_end only
    with one of them; "" counts as absent."""
    props["access_for"] = {
        "anyOf": [
            {
                "type": "string",
                "pattern": f"^(?:{duration_pattern(max_days=ACCESS_MAX_DAYS)})?$",
                "maxLength": ACCESS_FOR_LENGTH,
            },
            {"type": "null"},
        ],
        "description": "Each person's grant ends this long after their join: 90s, 30m, 12h, 30d, 2w",
    }
    props["access_until"] = {
        "anyOf": [{"type": "string", "pattern": f"^(?:{future_time_pattern(datetime.now(UTC))})?$"}, {"type": "null"}],
        "description": "Every grant ends at this RFC 3339 time, later than now",
    }
    props["on_end"] = {"anyOf": [{"type": "string", "enum": ["", *ON_END_VALUES]}, {"type": "null"}]}
    filled = {"type": "string", "minLength": 1}
    given = {
        "access_for": {"required": ["access_for"], "properties": {"access_for": filled}},
        "access_until": {"required": ["access_until"], "properties": {"access_until": filled}},
        "access_open": {"required": ["access_open"], "properties": {"access_open": {"const": True}}},
    }
    names = list(given)
    both = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    body["allOf"] = [{"not": {"allOf": [given[a], given[b]]}} for a, b in both] + [
        {"anyOf": [{"not": {"required": ["on_end"], "properties": {"on_end": filled}}}, *given.values()]}
    ]


async def _found(coroutine: Awaitable[Link]) -> Link:
    try:
        return await coroutine
    except NotFoundError as exc:
        raise AdminError(404, "not_found", str(exc)) from None


@router.get("/links/{link_id}", summary="One join link with its funnel")
async def get_link(link_id: str, request: Request) -> JSONResponse:
    svc = services(request)
    link = await _found(svc.links.get(link_id))
    outcomes = await svc.links.outcomes([link.id])
    return JSONResponse(link_dict(svc.settings.public_url, link, outcomes.get(link.id, {})))


@router.post("/links/{link_id}/disable", summary="Disable a join link")
async def disable_link(link_id: str, request: Request) -> JSONResponse:
    svc = services(request)
    link = await _found(svc.links.disable(link_id))
    return JSONResponse(link_dict(svc.settings.public_url, link))


@router.get("/doctor", summary="Preflight checks of an app's bot in a server")
async def doctor(
    request: Request,
    app_id: str = Query(max_length=20),
    guild_id: str = Query(max_length=20),
    role: list[str] = Query(default_factory=list, max_length=20),
    on_end: Literal["remove_roles", "kick", "keep"] | None = Query(
        default=None, description="What ends the access: with kick, Kick Members is checked too"
    ),
) -> JSONResponse:
    try:
        report = await run_doctor(services(request), app_id=app_id, guild_id=guild_id, roles=role, on_end=on_end)
    except LinkInputError as exc:
        raise _refused(exc) from None
    body: dict[str, Any] = report_dict(report)
    return JSONResponse(body)


@router.get(
    "/links/{link_id}/doctor", summary="Preflight checks of a join link as it is (Kick Members when it ends with kick)"
)
async def link_doctor(link_id: str, request: Request) -> JSONResponse:
    try:
        link, report = await run_link_doctor(services(request), link_id=link_id)
    except LinkInputError as exc:
        raise _refused(exc) from None
    return JSONResponse({"link_id": link.id, **report_dict(report)})
