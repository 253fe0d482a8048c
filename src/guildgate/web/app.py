"""The FastAPI application: routers, error handlers, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from guildgate import __version__
from guildgate.settings import Settings
from guildgate.web import admin, admin_api, api, errors, links, ops, records
from guildgate.web.pages import STATIC
from guildgate.web.services import Services


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


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.access").addFilter(_NoQueryStrings())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for noisy in ("httpcore", "aiosqlite", "asyncio", "multipart"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def create_app(settings: Settings) -> FastAPI:
    services = Services.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await services.close()

    app = FastAPI(
        title="guildgate",
        version=__version__,
        description="Adds consenting people to Discord servers through OAuth2 guilds.join and your own bot.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    errors.install(app)
    app.include_router(api.router, tags=["join"])
    app.include_router(records.router, tags=["records"])
    app.include_router(ops.router, tags=["operations"])
    app.include_router(admin_api.router, tags=["admin"])
    app.include_router(links.router)
    app.include_router(admin.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with the framework's 422 replaced by what this service answers: 400 (a body or
    parameter problem is answered by web/errors.py in the envelope, or ``{error, detail}`` on /api/admin)."""
    if app.openapi_schema is None:
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
        app.openapi_schema = schema
    return app.openapi_schema


def create_app_from_env() -> FastAPI:
    """The app factory each worker process calls (``serve --workers N``): settings from the environment."""
    from guildgate.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
