"""The admin dashboard (``/admin``): log in with GUILDGATE_ADMIN_TOKEN, then records with filters, the success
rate and latency chart, links with their funnel (create, disable; creating is refused when the doctor finds the
bot missing or short of a permission, unless its checks are skipped) and API keys (create, shown once; revoke).

Without GUILDGATE_ADMIN_TOKEN the dashboard is off: web/app.py serves ``off_router`` instead, which answers 404
under ``/admin`` with a page saying how to turn it on. Without a session, ``/admin`` answers 401 with the login
form. A session is a row in the database named by a signed cookie (HttpOnly, SameSite=Strict, path /admin,
8 hours; web/adminauth.py): logging out (a form post with its CSRF token) deletes the row, and a new admin token
ends every session. Scripts may send ``Authorization: Bearer <admin token>`` instead.
Every form carries a CSRF token (an HMAC of the session id; before login, of a pre-login id) and is refused
without it. A form post's body is read only once the session (for the login form, the pre-login cookie) is
there, and then at most 64 KiB of it, URL-encoded, without files or control characters (web/forms.py). Filters
with a control character are refused (400, naming the filter). Wrong admin tokens (login form or bearer) are
limited per client address and in total (web/adminauth.py). API keys never open the dashboard.
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from guildgate.core.outcomes import Outcome, RecordState, Source
from guildgate.core.text import has_control
from guildgate.discord.ratelimit.shares import LINKS, key_spender
from guildgate.services.keys import MAX_QUOTA, create_key, revoke_key
from guildgate.services.links import (
    ChecksFailedError,
    LinkInputError,
    create_link,
    funnel,
    link_url,
    links_with_outcomes,
    report_dict,
)
from guildgate.services.runtime import Services
from guildgate.store.repos import NotFoundError, RecordFilters, decode_cursor
from guildgate.web.adminauth import check_token, end_session, open_session, session
from guildgate.web.dashboard import charts
from guildgate.web.dashboard.session import PRE_COOKIE, SESSION_COOKIE, SESSION_SECONDS, sessions
from guildgate.web.deps import services
from guildgate.web.errors import AdminError
from guildgate.web.forms import read_form
from guildgate.web.page_text import text
from guildgate.web.pages import page_language, render, security_headers

router = APIRouter(prefix="/admin", include_in_schema=False)
off_router = APIRouter(include_in_schema=False)


def _secure(svc: Services) -> bool:
    return svc.settings.public_url.startswith("https://")


def _page(request: Request, template: str, sid: str, context: dict[str, Any], status: int = 200) -> Response:
    return render(
        request,
        template,
        {
            "csrf": sessions(request).csrf(sid),
            "section": template.removeprefix("admin_").removesuffix(".html"),
            **context,
        },
        status=status,
        no_store=True,
    )


def _message(request: Request, key: str, status: int, detail: str | None = None) -> Response:
    lang, _ = page_language(request)
    return render(
        request,
        "admin_message.html",
        {"message": text(key, lang), "detail": detail},
        status=status,
        no_store=True,
    )


def _to(path: str) -> Response:
    response = RedirectResponse(path, status_code=303)
    security_headers(response, no_store=True)
    return response


async def _checked(request: Request) -> tuple[str | None, dict[str, str]]:
    """The session id of a valid, CSRF-checked form post, or None; and the form. Without a session the body is
    not read at all (web/forms.py)."""
    sid = await session(request)
    if sid is None:
        return None, {}
    form = await read_form(request)
    ok = sessions(request).csrf_ok(sid, form.get("csrf"))
    return (sid if ok else None), form


# ---- off ----------------------------------------------------------------------------------------------------
_EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@off_router.api_route("/admin", methods=_EVERY_METHOD)
@off_router.api_route("/admin/{rest:path}", methods=_EVERY_METHOD)
async def off(request: Request) -> Response:
    """Every dashboard address when GUILDGATE_ADMIN_TOKEN is not set: not there, and a page saying so."""
    return _message(request, "a_off", 404)


# ---- log in / out -----------------------------------------------------------------------------------------
@router.get("")
async def home(request: Request) -> Response:
    sid = await session(request)
    if sid is None:  # refused: the body is the login form
        return _login_page(request, error=None, status=401)
    return await _dashboard(request, sid)


def _login_page(request: Request, *, error: str | None, status: int) -> Response:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(16)
    lang, _ = page_language(request)
    response = render(
        request,
        "admin_login.html",
        {"csrf": sessions(request).csrf("pre:" + pre), "error": text(error, lang) if error else None},
        status=status,
        no_store=True,
    )
    response.set_cookie(PRE_COOKIE, pre, max_age=3600, path="/admin", httponly=True, samesite="strict")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    svc = services(request)
    token = svc.settings.admin_token
    if token is None:  # off_router answers then (web/app.py)
        return _message(request, "a_off", 404)
    pre = request.cookies.get(PRE_COOKIE)
    if not pre or len(pre) > 64:  # no login form was given to this browser: its post is not read
        return _login_page(request, error="a_expired", status=403)
    form = await read_form(request)
    if not sessions(request).csrf_ok("pre:" + pre, form.get("csrf")):
        return _login_page(request, error="a_expired", status=403)
    try:
        right = await check_token(request, form.get("token", "").strip())
    except AdminError as exc:
        response = _login_page(request, error="a_too_many", status=429)
        response.headers["Retry-After"] = str(max(math.ceil(exc.retry_after or 1), 1))
        return response
    if not right:
        return _login_page(request, error="a_wrong", status=401)
    response = _to("/admin")
    response.set_cookie(
        SESSION_COOKIE,
        await open_session(request),
        max_age=SESSION_SECONDS,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=_secure(svc),
    )
    response.delete_cookie(PRE_COOKIE, path="/admin")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Ends the session on the server (its cookie, saved or not, opens nothing after); needs the CSRF token."""
    sid, _ = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    await end_session(services(request), sid)
    response = _to("/admin")
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response


# ---- overview ---------------------------------------------------------------------------------------------
FILTERS = ("state", "code", "source", "link_id", "guild_id")


async def _dashboard(request: Request, sid: str) -> Response:
    svc = services(request)
    q = request.query_params
    for name in (*FILTERS, "cursor"):
        if has_control(q.get(name) or ""):  # a NUL would reach the database (PostgreSQL's text holds none)
            return _message(request, "a_error", 400, f"{name}: no control characters (line breaks, tabs, NUL)")
    chosen = {name: (q.get(name) or None) for name in FILTERS}
    allowed = {
        "state": {s.value for s in RecordState},
        "code": {o.value for o in Outcome},
        "source": {s.value for s in Source},
    }
    for name, values in allowed.items():
        if chosen[name] not in values:
            chosen[name] = None
    cursor = q.get("cursor") or None
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except ValueError:
            cursor = None
    filters = RecordFilters(
        state=chosen["state"],
        code=chosen["code"],
        source=chosen["source"],
        link_id=chosen["link_id"],
        guild_id=chosen["guild_id"],
    )
    rows, next_cursor = await svc.records.list(app_id=None, filters=filters, limit=50, cursor=cursor)
    now = datetime.now(UTC)
    buckets = charts.hourly(await svc.records.per_hour(first=now - timedelta(hours=23), hours=24))
    lang, _ = page_language(request)
    links = await svc.links.list()
    from guildgate.web.dashboard import grants  # it imports this module's helpers

    older = None
    if next_cursor:
        older = "?" + urlencode({**{k: v for k, v in chosen.items() if v}, "cursor": next_cursor})
    return _page(
        request,
        "admin_home.html",
        sid,
        {
            "records": rows,
            "filters": chosen,
            "states": [s.value for s in RecordState],
            "codes": [o.value for o in Outcome],
            "sources": [s.value for s in Source],
            "links": links,
            "summary": charts.summary(buckets),
            "chart": charts.svg(buckets, label=text("a_chart", lang)),
            "older": older,
            **await grants.overview(svc),
        },
    )


# ---- links ------------------------------------------------------------------------------------------------
async def _links_page(
    request: Request, sid: str, *, created: dict[str, Any] | None = None, error: str | None = None, status: int = 200
) -> Response:
    svc = services(request)
    now = datetime.now(UTC)
    rows = [
        {
            "link": link,
            "url": link_url(svc.settings.public_url, link),
            "status": (link.problem(now) or "active"),
            "funnel": funnel(link, outcomes),
        }
        for link, outcomes in await links_with_outcomes(svc.links)
    ]
    return _page(
        request,
        "admin_links.html",
        sid,
        {"rows": rows, "apps": await svc.apps.list(), "created": created, "error": error},
        status=status,
    )


@router.get("/links")
async def links_page(request: Request) -> Response:
    sid = await session(request)
    return _to("/admin") if sid is None else await _links_page(request, sid)


@router.post("/links")
async def links_create(request: Request) -> Response:
    sid, form = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    svc = services(request)
    try:
        max_uses = int(form["max_uses"]) if form.get("max_uses", "").strip() else None
    except ValueError:
        return await _links_page(request, sid, error="max_uses: must be a whole number", status=400)
    roles = [r.strip() for r in form.get("roles", "").replace(" ", ",").split(",") if r.strip()]
    try:
        link, report = await create_link(
            svc,
            app_id=form.get("app_id", ""),
            guild_id=form.get("guild_id", "").strip() or None,
            invite=form.get("invite", "").strip() or None,
            roles=roles,
            max_uses=max_uses,
            expires=form.get("expires", "").strip() or None,
            title=form.get("title", "").strip() or None,
            skip_checks=form.get("skip_checks") == "1",
        )
    except LinkInputError as exc:  # ChecksFailedError too: no link, and what the doctor found
        status = 409 if isinstance(exc, ChecksFailedError) else 400
        return await _links_page(request, sid, error=str(exc), status=status)
    created = {"url": link_url(svc.settings.public_url, link), "doctor": report_dict(report)}
    return await _links_page(request, sid, created=created, status=201)


@router.post("/links/{link_id}/disable")
async def links_disable(link_id: str, request: Request) -> Response:
    sid, _ = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    try:
        await services(request).links.disable(link_id)
    except NotFoundError as exc:
        return _message(request, "a_error", 404, str(exc))
    return _to("/admin/links")


# ---- API keys ---------------------------------------------------------------------------------------------
async def _keys_page(
    request: Request, sid: str, *, new_key: str | None = None, error: str | None = None, status: int = 200
) -> Response:
    svc = services(request)
    keys = await svc.keys.list()
    # each key's use of its share of the invalid-request budget, and the links' (discord/ratelimit/shares.py)
    invalid = {k.id: await svc.shares.used(key_spender(k.id)) for k in keys if k.revoked_at is None}
    context = {
        "keys": keys,
        "apps": await svc.apps.list(),
        "new_key": new_key,
        "error": error,
        "invalid": invalid,
        "invalid_links": await svc.shares.used(LINKS),
        "invalid_allowed": svc.shares.allowed,
    }
    return _page(request, "admin_keys.html", sid, context, status=status)


@router.get("/keys")
async def keys_page(request: Request) -> Response:
    sid = await session(request)
    return _to("/admin") if sid is None else await _keys_page(request, sid)


@router.post("/keys")
async def keys_create(request: Request) -> Response:
    sid, form = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    svc = services(request)
    quota_text = form.get("quota", "").strip()
    if quota_text and (not quota_text.isdecimal() or len(quota_text) > 9):
        return await _keys_page(request, sid, error=f"quota: a whole number from 1 to {MAX_QUOTA}", status=400)
    name = form.get("name", "").strip()[:100] or None
    try:
        _, key = await create_key(
            svc.keys, app_id=form.get("app_id", ""), name=name, quota_per_minute=int(quota_text) if quota_text else None
        )
    except (NotFoundError, ValueError) as exc:
        return await _keys_page(request, sid, error=str(exc), status=400)
    return await _keys_page(request, sid, new_key=key.reveal(), status=201)


@router.post("/keys/{key_id}/revoke")
async def keys_revoke(key_id: str, request: Request) -> Response:
    sid, _ = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    try:
        await revoke_key(services(request).keys, key_id)
    except NotFoundError as exc:
        return _message(request, "a_error", 404, str(exc))
    return _to("/admin/keys")
