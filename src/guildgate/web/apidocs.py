"""``/docs``: Swagger UI on ``/openapi.json``, every file of it from this service.

Swagger UI's script, style sheet and icon come from the ``fastapi-offline`` package (pinned in pyproject.toml:
Swagger UI 5, which reads OpenAPI 3.1), the script that starts it is ``web/static/swagger-init.js``; all are
served here, never from a third-party origin; its Content-Security-Policy
allows scripts, styles, fonts and requests from this origin only (images: this origin and ``data:``, which the
style sheet's icons are). Only the bundle's files the page uses are served. ReDoc is off.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)

BUNDLE = Path(str(files("fastapi_offline") / "static"))
FILES = {  # what /docs/static/ serves: name -> media type
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>guildgate API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/static/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/docs")
async def docs() -> Response:
    return _headers(HTMLResponse(PAGE))


@router.get("/docs/static/{name}")
async def docs_file(name: str) -> Response:
    media = FILES.get(name)
    if media is None:
        return _headers(Response("Not Found", status_code=404, media_type="text/plain"))
    response = FileResponse(BUNDLE / name, media_type=media)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return _headers(response)
