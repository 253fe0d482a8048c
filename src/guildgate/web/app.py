"""The FastAPI application (routers, error handlers, lifespan) and the front door every request meets first."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import chain
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from guildgate import __version__
from guildgate.core.invites import snowflake_pattern
from guildgate.core.outcomes import Outcome
from guildgate.services.runtime import Services
from guildgate.settings import Settings
from guildgate.web import apidocs, errors, forms, ops
from guildgate.web.api import admin as admin_api
from guildgate.web.api import grants as grants_api
from guildgate.web.api import join as api
from guildgate.web.api import records
from guildgate.web.dashboard import admin
from guildgate.web.dashboard.session import Sessions
from guildgate.web.links import consent as links
from guildgate.web.links.flow import FlowSigner
from guildgate.web.pages import STATIC, render
from guildgate.workers.grants import GrantSweeper


class _NoQueryStrings(logging.Filter):
    """Access logs keep the path, never the query string (OAuth2 codes and states travel there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            path = args[2]
            if isinstance(path, str):
                args[2] = path.split("?", 1)[0]
            record.args = tuple(args)
        return True


class _OneName(logging.Formatter):
    """Every line the service logs is named ``guildgate``: its own loggers' and the HTTP server's (uvicorn's
    start-up and access lines); a library's warning keeps the library's name."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name.startswith(("guildgate.", "uvicorn")):
            record.name = "guildgate"
        return super().format(record)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_OneName("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("uvicorn.access").addFilter(_NoQueryStrings())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for noisy in ("httpcore", "aiosqlite", "asyncio", "multipart"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100


def headers_too_large(headers: list[tuple[bytes, bytes]]) -> bool:
    """More than MAX_HEADERS headers, or more than MAX_HEADER_BYTES of them: answered 431 by the front door."""
    return len(headers) > MAX_HEADERS or sum(map(len, chain.from_iterable(headers))) > MAX_HEADER_BYTES


class Front:
    """The ASGI app a server runs: what every request meets before FastAPI.

    Requests with more than 16 KiB of headers, or more than 100 of them, get 431 before any handler runs. (The
    HTTP server itself accepts up to 80 KB of headers; nothing here needs more than a few hundred bytes.)
    ``read_timeout`` is what ``serve``'s HTTP protocol gives a client to send a whole request
    (web/readtimeout.py).
    """

    def __init__(self, app: FastAPI, *, read_timeout: float) -> None:
        self.app = app
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and headers_too_large(scope["headers"]):
            detail = f"the request's headers are larger than {MAX_HEADER_BYTES} bytes or more than {MAX_HEADERS}"
            body = errors.envelope(
                outcome=Outcome.INVALID_REQUEST,
                msg=Outcome.INVALID_REQUEST.message("en", detail=detail),
                record_id=None,
                data=None,
                cost="0.00ms",
            )
            await JSONResponse(body, status_code=431)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            pass  # the client went (or was sent away: a slow body) before its request was read: no one to answer


def create_app(settings: Settings) -> FastAPI:
    services = Services.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything imported and built so far lives as long as the process: freeze it out of the garbage
        # collector's view, so its collections walk only what requests create (docs/performance.md).
        gc.collect()
        gc.freeze()
        sweeper = GrantSweeper(
            grants=services.grants,
            interval=settings.grant_sweep_interval,
            remind_before=settings.grant_remind_before,
            sync_hours=settings.grant_sync_interval,
            windows=services.windows,
        )
        sweeper.start()  # the grant sweep, at start (catch-up) and every GUILDGATE_GRANT_SWEEP_INTERVAL s
        yield
        await sweeper.stop()
        await services.close()

    app = FastAPI(
        title="guildgate",
        version=__version__,
        description="Adds consenting people to Discord servers through OAuth2 guilds.join and your own bot.",
        lifespan=lifespan,
        docs_url=None,  # web/apidocs.py serves /docs from this origin only
        redoc_url=None,
    )
    app.state.services = services
    app.state.flow_signer = FlowSigner(settings.secret_key_value())
    app.state.sessions = Sessions(settings.secret_key_value())
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    errors.install(app)
    app.add_exception_handler(forms.FormRefusedError, forms.on_refused)
    app.include_router(api.router, tags=["join"])
    app.include_router(records.router, tags=["records"])
    app.include_router(grants_api.router, tags=["grants"])
    app.include_router(ops.router, tags=["operations"])
    if settings.admin_token is not None:  # off, the admin API and the dashboard are not there (404)
        app.include_router(admin_api.router, tags=["admin"])
    app.include_router(links.router)
    app.include_router(apidocs.router)
    app.include_router(admin.router if settings.admin_token is not None else admin.off_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/", _home, methods=["GET"], include_in_schema=False)
    return app


async def _home(request: Request) -> Response:
    """What this is and where to go: a small page, or JSON for a client that asks for it."""
    settings: Settings = request.app.state.services.settings
    admin_on = settings.admin_token is not None
    if "application/json" in request.headers.get("accept", ""):
        base = settings.public_url
        return JSONResponse(
            {
                "name": "guildgate",
                "version": __version__,
                "about": "Adds people to Discord servers after they consent (OAuth2 guilds.join, your own bot).",
                "dashboard": f"{base}/admin" if admin_on else None,
                "docs": f"{base}/docs",
                "openapi": f"{base}/openapi.json",
                "join_api": f"POST {base}/api/wanda/discord/guild",
                "readme": "README.md and docs/ in the project's source",
            }
        )
    return render(request, "home.html", {"admin": admin_on})


def create_front(settings: Settings) -> Front:
    """What ``serve`` runs: the app behind its front door."""
    return Front(create_app(settings), read_timeout=settings.request_read_timeout)


def _die_with_parent() -> None:
    """A worker must not outlive its supervisor: if ``serve`` is killed (even with SIGKILL), its workers are
    killed too, so nothing keeps serving on the port with nobody to restart or stop it, and the next ``serve``
    can bind the port and settle what was left pending. Linux only (prctl PR_SET_PDEATHSIG). ``serve`` names
    itself in GUILDGATE_SUPERVISOR_PID: a worker whose supervisor died while it was still starting exits."""
    supervisor = os.environ.get("GUILDGATE_SUPERVISOR_PID")
    if not sys.platform.startswith("linux") or not supervisor:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if str(os.getppid()) != supervisor:  # the supervisor died before the line above
        os._exit(1)


SCHEMA_FRESH_FOR = 60.0  # seconds; the snowflakes that can exist grow with time, and the schema says which


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with the framework's 422 replaced by what this service answers: 400 (a body or
    parameter problem is answered by web/errors.py in the envelope, or ``{error, detail}`` on /api/admin), and
    every rule the handlers apply to their input written into it (patterns, enums, exactly-one-of), so that what
    the schema allows is taken and what it does not is refused. Made again after SCHEMA_FRESH_FOR seconds."""
    made = getattr(app.state, "openapi_made", None)
    if app.openapi_schema is None or made is None or time.monotonic() - made > SCHEMA_FRESH_FOR:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.get("responses", {})
                invalid = responses.pop("422", None)
                if invalid is not None and "400" not in responses:
                    model = "AdminErrorBody" if path.startswith("/api/admin/") else "Envelope"
                    responses["400"] = {
                        "description": "Bad Request",
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
                    }
        for unused in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
        snowflake = snowflake_pattern()
        api.describe_join(schema, snowflake=snowflake)
        records.describe_records(schema, snowflake=snowflake)
        admin_api.describe_admin(schema, snowflake=snowflake)
        grants_api.describe_grants(schema, snowflake=snowflake)
        app.openapi_schema = schema
        app.state.openapi_made = time.monotonic()
    return app.openapi_schema


def create_app_from_env() -> Front:
    """The app factory each worker process calls (``serve --workers N``): settings from the environment."""
    from guildgate.settings import load_settings

    _die_with_parent()
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_front(settings)
