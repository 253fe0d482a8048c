"""Discord-shaped answers: JSON with Python-style spacing, the error bodies, the ban page."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

# Real Discord answers pass through Google's front end; discord.py uses the Via header to tell a Discord
# answer from a Cloudflare ban page.
VIA = {"Via": "1.1 google"}


def djson(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={**VIA, **(headers or {})},
    )


def error(status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return djson(body, status)


def http_error(status: int, reason: str) -> Response:
    return error(status, 0, f"{status}: {reason}")


def form_error(field: str, code: str, message: str) -> Response:
    errors: dict[str, Any] = {}
    node = errors
    parts = field.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = {"_errors": [{"code": code, "message": message}]}
    return error(400, 50035, "Invalid Form Body", errors)


def not_snowflake(field: str, value: str) -> Response:
    return form_error(field, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')


def oauth_error(status: int, error_name: str, description: str | None = None) -> Response:
    body: dict[str, str] = {"error": error_name}
    if description is not None:
        body["error_description"] = description
    return djson(body, status)


BAN_PAGE = (
    "<!DOCTYPE html><html><head><title>Access denied | discord.com used Cloudflare to restrict access</title>"
    "</head><body><h1>Error 1015</h1><p>You are being rate limited</p>"
    "<p>The owner of this website (discord.com) has banned you temporarily from accessing this website.</p>"
    "</body></html>"
)


def ban() -> Response:
    # No Via header and no JSON: the shape clients use to recognise a Cloudflare ban.
    return Response(BAN_PAGE, status_code=429, media_type="text/html", headers={"Retry-After": "3600"})
