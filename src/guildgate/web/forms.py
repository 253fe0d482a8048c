"""Form posts of the pages (the dashboard's, a join link's Continue): read only after the caller has shown it may
post (a session, or the login form's pre-login cookie), at most MAX_FORM bytes, URL-encoded only.

Starlette's own form reader takes 1 MB a field and 1,000 fields, and parses files to disk and memory before a
handler can look at who is asking. Here the body is counted as it arrives: a ``Content-Length`` over the cap,
or a stream that passes it, is refused with 413 at once (and the connection closed, so nothing more of it is
read); a multipart body (files) is refused with 415 before any of it is read. Every value is text without
control characters (core/text.py): one that holds any is refused with 400 naming the field.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response

from guildgate.core.text import has_control
from guildgate.web.page_text import text
from guildgate.web.pages import page_language, render

MAX_FORM = 64 * 1024
MAX_FIELDS = 64


class FormRefusedError(Exception):
    """A form post that is not read (or not taken): ``status`` and the page text's ``key``; ``detail`` names the
    field when one is at fault. ``close``: the rest of the body is not read (the connection is closed)."""

    def __init__(self, status: int, key: str, detail: str | None = None, *, close: bool = False) -> None:
        super().__init__(detail or key)
        self.status, self.key, self.detail, self.close = status, key, detail, close


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of ``request`` (the first value of each field), or FormRefusedError."""
    media = _media_type(request)
    if media not in ("", "application/x-www-form-urlencoded"):
        raise FormRefusedError(415, "a_form_type", f"Content-Type: {media[:60]}", close=True)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdecimal() or int(declared) > MAX_FORM):
        raise FormRefusedError(413, "a_form_large", f"at most {MAX_FORM} bytes", close=True)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM:
            raise FormRefusedError(413, "a_form_large", f"at most {MAX_FORM} bytes", close=True)
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):  # not URL-encoded (raw bytes, bad UTF-8), or too many fields
        raise FormRefusedError(400, "a_form_bad", "the form is not URL-encoded UTF-8 text") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if has_control(name) or has_control(value):
            raise FormRefusedError(400, "a_form_bad", f"{_shown(name)}: no control characters (line breaks, tabs, NUL)")
        form.setdefault(name, value)
    return form


def _shown(name: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in name[:40])


async def on_refused(request: Request, exc: Exception) -> Response:
    """The page for a refused form post: the dashboard's message page under /admin, the result page elsewhere."""
    assert isinstance(exc, FormRefusedError)
    lang, _ = page_language(request)
    if request.url.path.startswith("/admin"):
        context: dict[str, Any] = {"message": text(exc.key, lang), "detail": exc.detail}
        response = render(request, "admin_message.html", context, status=exc.status, no_store=True)
    else:
        context = {
            "title": text(exc.key, lang),
            "next_step": exc.detail or "",
            "tone": "bad",
            "outcome": "form_refused",
            "lines": [],
            "lang_query": "",
        }
        response = render(request, "result.html", context, status=exc.status, no_store=True)
    if exc.close:
        response.headers["Connection"] = "close"  # uvicorn closes the connection: the rest is not read
    return response
