"""Server-rendered pages: the Jinja2 environment, the page language, and the security headers every page gets.

No script anywhere: the Content-Security-Policy allows none (not even inline), styles come from /static only,
and no page can be framed. Language: ``?lang=en|zh`` (remembered in a cookie) over the cookie over
``Accept-Language``; Chinese by default, like the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from guildgate import __version__
from guildgate.web.i18n import Lang, pick_language
from guildgate.web.page_text import text

HERE = Path(__file__).parent
STATIC = HERE / "static"
LANG_COOKIE = "gg_lang"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def page_language(request: Request) -> tuple[Lang, bool]:
    """The page's language, and whether it was chosen just now (then remember it)."""
    asked = request.query_params.get("lang")
    if asked in ("en", "zh"):
        return asked, True  # type: ignore[return-value]
    saved = request.cookies.get(LANG_COOKIE)
    if saved in ("en", "zh"):
        return saved, False  # type: ignore[return-value]
    return pick_language(request.headers.get("accept-language")), False


def security_headers(response: Response, *, form_targets: tuple[str, ...] = (), no_store: bool = False) -> None:
    form_action = " ".join(("'self'", *form_targets))
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' https://cdn.discordapp.com data:; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # codes and states must not leak through Referer
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store" if no_store else "private, max-age=0, must-revalidate"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    no_store: bool = False,
    form_targets: tuple[str, ...] = (),
) -> HTMLResponse:
    lang, chosen = page_language(request)
    values = {
        "lang": lang,
        "other_lang": "zh" if lang == "en" else "en",
        "t": lambda key, **fields: text(key, lang, **fields),
        "version": __version__,
        "path": request.url.path,
        **context,
    }
    response = HTMLResponse(_env.get_template(template).render(values), status_code=status)
    security_headers(response, form_targets=form_targets, no_store=no_store)
    if chosen:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return response
