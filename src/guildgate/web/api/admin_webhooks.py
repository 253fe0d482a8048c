"""The admin JSON API's webhooks: what ``guildgate webhooks`` does, for scripts (``../shared/spec/access.md``,
"Webhooks"; docs/webhooks.md). The same admin token and limits as the rest of /api/admin (web/api/admin.py), and
like it absent (404, not in /openapi.json) without GUILDGATE_ADMIN_TOKEN. A signing secret is in the answer of
``POST /api/admin/webhooks`` and of ``rotate-secret`` only.

    curl -s -X POST $URL/api/admin/webhooks -H "Authorization: Bearer $GUILDGATE_ADMIN_TOKEN" \\
         -H 'Content-Type: application/json' -d '{"app_id": "11...", "url": "https://crm.example.com/hooks"}'
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guildgate.core.errors import CallerError, InvalidRequestError
from guildgate.core.webhooks import EVENT_TYPES
from guildgate.web.api.admin import authorize
from guildgate.web.api.events import time_schema
from guildgate.web.api.records import _time
from guildgate.web.api.schemas import AdminErrorBody
from guildgate.web.dashboard.webhooks import SUBSCRIBABLE
from guildgate.web.deps import services
from guildgate.web.errors import AdminError

T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": AdminErrorBody} for status in (400, 401, 403, 404, 429)}
router = APIRouter(prefix="/api/admin", dependencies=[Depends(authorize)], responses=_ERRORS)
MAX_URL = 2048


class EndpointIn(BaseModel):
    """A new webhook endpoint. No ``events`` (or null): every type, new ones included."""

    model_config = ConfigDict(extra="forbid")
    app_id: str = Field(description="The app whose events are sent (its client id)")
    url: str = Field(description="https:// URL to POST the events to", max_length=MAX_URL)
    events: list[str] | None = Field(default=None, max_length=len(EVENT_TYPES))


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: str = Field(description="RFC 3339: events made since then that failed or were skipped are sent again")


class EndpointOut(BaseModel):
    id: str
    app_id: str
    url: str
    events: list[str] | None
    disabled: bool
    disabled_at: str | None
    disabled_reason: str | None
    created_at: str | None
    last_success_at: str | None
    failing_since: str | None


class NewEndpointOut(EndpointOut):
    secret: str = Field(description="The signing secret (whsec_...), shown only in this answer")


class EndpointsOut(BaseModel):
    endpoints: list[EndpointOut]


class SecretOut(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret, shown only in this answer")


class TestOut(BaseModel):
    id: str
    event_id: str


class AttemptOut(BaseModel):
    event_id: str
    endpoint_id: str
    type: str
    attempt: int
    at: str
    status: int | None
    duration_ms: int
    error: str | None
    answer: str | None


class AttemptsOut(BaseModel):
    attempts: list[AttemptOut]


class ReplayOut(BaseModel):
    event_id: str
    endpoints: list[str]


class RecoverOut(BaseModel):
    id: str
    queued: int


async def _done(coroutine: Awaitable[T]) -> T:
    """The service's answer; its refusals as the admin API's: 404 unknown_endpoint / unknown_event, 400."""
    try:
        return await coroutine
    except CallerError as exc:
        status = exc.http_status if exc.http_status in (400, 404) else 400
        raise AdminError(status, exc.outcome.value, exc.outcome.message("en", detail=exc.detail)) from None


async def _body(request: Request, model: type[BaseModel]) -> Any:
    """The JSON body, read after the admin token was checked (a declared body would be parsed before it)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


@router.get("/webhooks", summary="List webhook endpoints", response_model=EndpointsOut)
async def list_endpoints(
    request: Request, app_id: str | None = Query(default=None, pattern=r"^[0-9]{17,20}$")
) -> JSONResponse:
    endpoints = await _done(services(request).webhooks.list(app_id=app_id))
    return JSONResponse({"endpoints": [e.as_json() for e in endpoints]})


@router.post(
    "/webhooks",
    summary="Add a webhook endpoint (its signing secret is in this answer only)",
    status_code=201,
    response_model=NewEndpointOut,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": EndpointIn.model_json_schema()}}}
    },
)
async def add_endpoint(request: Request) -> JSONResponse:
    body: EndpointIn = await _body(request, EndpointIn)
    svc = services(request)
    if body.app_id not in {a.client_id for a in await svc.apps.list()}:
        raise AdminError(404, "not_found", f"no app with client id {body.app_id}: add it with guildgate apps add")
    endpoint, secret = await _done(svc.webhooks.add(app_id=body.app_id, url=body.url, events=body.events))
    return JSONResponse({**endpoint.as_json(), "secret": secret}, status_code=201)


@router.get("/webhooks/{endpoint_id}", summary="One webhook endpoint", response_model=EndpointOut)
async def get_endpoint(endpoint_id: str, request: Request) -> JSONResponse:
    endpoint = await _done(services(request).webhooks.get(app_id=None, endpoint_id=endpoint_id))
    return JSONResponse(endpoint.as_json())


@router.post("/webhooks/{endpoint_id}/disable", summary="Disable a webhook endpoint", response_model=EndpointOut)
async def disable_endpoint(endpoint_id: str, request: Request) -> JSONResponse:
    endpoint = await _done(services(request).webhooks.disable(app_id=None, endpoint_id=endpoint_id))
    return JSONResponse(endpoint.as_json())


@router.post("/webhooks/{endpoint_id}/enable", summary="Enable a webhook endpoint", response_model=EndpointOut)
async def enable_endpoint(endpoint_id: str, request: Request) -> JSONResponse:
    endpoint = await _done(services(request).webhooks.enable(app_id=None, endpoint_id=endpoint_id))
    return JSONResponse(endpoint.as_json())


@router.post(
    "/webhooks/{endpoint_id}/test", summary="Send a webhook.test event to one endpoint", response_model=TestOut
)
async def test_endpoint(endpoint_id: str, request: Request) -> JSONResponse:
    event_id = await _done(services(request).webhooks.test(app_id=None, endpoint_id=endpoint_id))
    return JSONResponse({"id": endpoint_id, "event_id": event_id})


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    summary="A new signing secret (in this answer only; the previous one stays valid 24 h)",
    response_model=SecretOut,
)
async def rotate_secret(endpoint_id: str, request: Request) -> JSONResponse:
    secret = await _done(services(request).webhooks.rotate_secret(app_id=None, endpoint_id=endpoint_id))
    return JSONResponse({"id": endpoint_id, "secret": secret})


@router.get(
    "/webhooks/{endpoint_id}/deliveries",
    summary="An endpoint's delivery attempts, newest first",
    response_model=AttemptsOut,
)
async def deliveries(
    endpoint_id: str,
    request: Request,
    failed: bool = Query(default=False, description="Only attempts that did not succeed"),
    limit: int = Query(default=50, ge=1, le=500),
) -> JSONResponse:
    attempts = await _done(
        services(request).webhooks.deliveries(app_id=None, endpoint_id=endpoint_id, failed_only=failed, limit=limit)
    )
    return JSONResponse({"attempts": [a.as_json() for a in attempts]})


@router.post(
    "/webhooks/{endpoint_id}/recover",
    summary="Send again an endpoint's events since a time that failed or were skipped",
    response_model=RecoverOut,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": RecoverIn.model_json_schema()}}}
    },
)
async def recover(endpoint_id: str, request: Request) -> JSONResponse:
    body: RecoverIn = await _body(request, RecoverIn)
    try:
        since = _time("since", body.since)
    except InvalidRequestError as exc:
        raise AdminError(400, "invalid_request", exc.detail) from None
    if since is None:
        raise AdminError(400, "invalid_request", "since: give an RFC 3339 time such as 2026-01-31T12:00:00Z")
    queued = await _done(services(request).webhooks.recover(app_id=None, endpoint_id=endpoint_id, since=since))
    return JSONResponse({"id": endpoint_id, "queued": queued})


@router.post(
    "/events/{event_id}/replay",
    summary="Send one event again (the same bytes and webhook-id) to its endpoints",
    response_model=ReplayOut,
)
async def replay(event_id: str, request: Request) -> JSONResponse:
    endpoints = await _done(services(request).webhooks.replay(app_id=None, event_id=event_id))
    return JSONResponse({"event_id": event_id, "endpoints": endpoints})


def describe_admin_webhooks(schema: dict[str, Any], *, snowflake: str) -> None:
    """The bodies with every rule the handlers apply, into ``schema``."""
    paths = schema["paths"]
    if "/api/admin/webhooks" not in paths:  # the admin API is off
        return
    body = EndpointIn.model_json_schema()
    props = body["properties"]
    props["app_id"] = {"type": "string", "pattern": f"^{snowflake}$", "description": "The app's client id"}
    props["events"] = {
        "anyOf": [
            {"type": "array", "items": {"type": "string", "enum": list(SUBSCRIBABLE)}, "maxItems": len(SUBSCRIBABLE)},
            {"type": "null"},
        ]
    }
    paths["/api/admin/webhooks"]["post"]["requestBody"]["content"]["application/json"]["schema"] = body
    recover_body = RecoverIn.model_json_schema()
    since = time_schema()
    since["anyOf"] = [s for s in since["anyOf"] if s.get("maxLength") != 0]  # required here: "" is no time
    recover_body["properties"]["since"] = since
    recover_path = paths["/api/admin/webhooks/{endpoint_id}/recover"]["post"]
    recover_path["requestBody"]["content"]["application/json"]["schema"] = recover_body
