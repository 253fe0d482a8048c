"""The one place errors become HTTP: the envelope, its statuses and headers."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guildgate.core.envelope import Envelope, JoinedData
from guildgate.core.errors import DiscordRefusedError, InvalidRequestError, JoinError
from guildgate.core.joins import JoinOutcome
from guildgate.core.outcomes import Outcome
from guildgate.web.i18n import Lang, pick_language


class EnvelopeResponse(JSONResponse):
    """The envelope as JSON, serialised by orjson: the same bytes as Starlette's JSONResponse (compact, UTF-8,
    no NaN), in a fraction of the time — every join answers with one."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def cost_text(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.2f}ms"


def retry_header(seconds: float | None) -> dict[str, str]:
    return {} if seconds is None else {"Retry-After": str(max(1, math.ceil(seconds)))}


def envelope(
    *,
    outcome: Outcome,
    msg: str,
    record_id: str | None,
    data: str | None,
    cost: str,
    discord_code: int | None = None,
) -> Envelope:
    body: Envelope = {
        "status": outcome.status,
        "msg": msg,
        "id": record_id,
        "data": data,
        "cost": cost,
        "code": outcome.value,
    }
    if discord_code is not None:
        body["discord_code"] = discord_code
    return body


def error_message(error: JoinError, lang: Lang) -> str:
    if error.outcome is Outcome.DISCORD_ERROR:
        return error.outcome.message(lang, detail=error.detail or "Discord refused the request")
    return error.outcome.message(lang, detail=error.detail, retry=error.retry_after)


def error_body(error: JoinError, *, record_id: str | None, lang: Lang, started: float) -> Envelope:
    discord_code = error.discord_code if isinstance(error, DiscordRefusedError) else None
    return envelope(
        outcome=error.outcome,
        msg=error_message(error, lang),
        record_id=record_id,
        data=None,
        cost=cost_text(started),
        discord_code=discord_code,
    )


def error_response(error: JoinError, *, record_id: str | None, lang: Lang, started: float) -> JSONResponse:
    return EnvelopeResponse(
        error_body(error, record_id=record_id, lang=lang, started=started),
        status_code=error.http_status,
        headers=retry_header(error.retry_after),
    )


def success_data(
    *, guild_id: str | None, name: str | None, user_id: str | None, joined: bool, grant_id: str | None = None
) -> str:
    """The envelope's ``data`` on success: a JSON-encoded string (the contract); ``grant_id`` when the join made
    or renewed a grant."""
    data: JoinedData = {"id": guild_id, "name": name, "user_id": user_id, "joined": joined}
    if grant_id is not None:
        data["grant_id"] = grant_id
    return orjson.dumps(data).decode()


def success_body(result: JoinOutcome, *, lang: Lang, started: float, grant_id: str | None = None) -> Envelope:
    return envelope(
        outcome=result.outcome,
        msg=result.outcome.message(lang),
        record_id=result.record_id,
        data=success_data(
            guild_id=result.guild.id,
            name=result.guild.name,
            user_id=result.user_id,
            joined=result.joined,
            grant_id=grant_id,
        ),
        cost=cost_text(started),
    )


class AdminError(Exception):
    """An admin API refusal: ``{"error": ..., "detail": ...}`` with its HTTP status."""

    def __init__(self, status: int, error: str, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.retry_after = retry_after  # seconds; sent as Retry-After (whole seconds, rounded up)


def admin_error_response(exc: AdminError, headers: dict[str, str] | None = None) -> JSONResponse:
    """``headers``: the framework's own for the status (a 405's ``Allow``), kept."""
    headers = dict(headers or {})
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="guildgate admin"'
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(math.ceil(exc.retry_after), 1))
    return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status, headers=headers)


def allowed_methods(request: Request) -> str | None:
    """The methods the OpenAPI schema documents at this path (RFC 9110's ``Allow``; HEAD wherever GET is): a path
    served by several routes (GET and POST /api/admin/links) has them all, where the framework names only its
    first route's. None for a path the schema does not document (a page): the framework's own stands."""
    documented = request.app.openapi().get("paths", {})
    for template, operations in documented.items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
            methods = {method.upper() for method in operations}
            if "GET" in methods:
                methods.add("HEAD")
            return ", ".join(sorted(methods))
    return None


def join_error_response(request: Request, exc: JoinError) -> JSONResponse:
    """A JoinError raised before there was a record (a bad API key, say), in the caller's language."""
    lang = pick_language(request.headers.get("accept-language"))
    return error_response(exc, record_id=None, lang=lang, started=time.perf_counter())


def install(app: FastAPI) -> None:
    """Every error, including the framework's own, answers in the envelope."""

    async def on_join_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, JoinError)
        return join_error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "header", "body"))
            message = str(err.get("msg", "invalid"))
            problems.append(f"{where}: {message}" if where else message)
        if request.url.path.startswith("/api/admin/"):
            return admin_error_response(AdminError(400, "invalid_request", "; ".join(problems)))
        return await on_join_error(request, InvalidRequestError("; ".join(problems) or "invalid request"))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        if request.url.path.startswith("/api/admin/"):
            error = "not_found" if exc.status_code == 404 else "invalid_request"
            return admin_error_response(AdminError(exc.status_code, error, str(exc.detail)), headers)
        lang = pick_language(request.headers.get("accept-language"))
        detail = str(exc.detail)
        body = envelope(
            outcome=Outcome.INVALID_REQUEST,
            msg=Outcome.INVALID_REQUEST.message(lang, detail=detail),
            record_id=None,
            data=None,
            cost=cost_text(time.perf_counter()),
        )
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    async def on_admin(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AdminError)
        return admin_error_response(exc)

    app.add_exception_handler(AdminError, on_admin)
    app.add_exception_handler(JoinError, on_join_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
