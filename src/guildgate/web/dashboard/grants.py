"""The dashboard's Grants page (``/admin/grants``): every app's grants, newest first, filtered by server, user,
state, external_ref and absence; each with its roles, end, state and, for an ``end_failed`` one, the reason
Discord gave. Two actions per active (or ``end_failed``) grant: End now (with the grant's own ``on_end`` or
another) and Extend (by a DURATION from the current end, or until a TIME). Both go through ``services.grants``
as the admin (``app_id=None``: the service loads the grant's own app). The overview's "ending soon" and
failures are read here too (``overview``), for web/dashboard/admin.py.

Forms follow the dashboard's rules (web/dashboard/admin.py): the session is checked before the body is read, at
most 64 KiB of it (web/forms.py), and the CSRF token must match. A filter with a control character is refused
(400, naming the filter).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from guildgate.core.errors import GrantEndedError, InvalidRequestError, JoinError, UnknownGrantError
from guildgate.core.grants import Grant, GrantState, OnEnd, parse_time
from guildgate.core.links import parse_duration
from guildgate.core.text import has_control
from guildgate.services.grants import GrantFilters
from guildgate.services.runtime import Services
from guildgate.web.adminauth import session
from guildgate.web.dashboard.admin import _checked, _message, _page, _to
from guildgate.web.deps import services

router = APIRouter(prefix="/admin", include_in_schema=False)

FILTERS = ("guild_id", "user_id", "state", "external_ref", "absent")
PAGE_SIZE = 50
SOON = timedelta(days=7)  # the overview's "ending soon"
SHOWN = 20  # grants listed per overview panel (the rest are counted, and on the Grants page)


def left(ends_at: datetime | None, now: datetime) -> str:
    """How long until ``ends_at``, in its two largest units ("3d 4h", "12m"); "0s" once past."""
    if ends_at is None:
        return ""
    seconds = max(int((ends_at - now).total_seconds()), 0)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _row(grant: Grant, now: datetime) -> dict[str, Any]:
    return {"g": grant, "left": left(grant.ends_at, now), "can_end": grant.state is not GrantState.ENDED}


async def role_names(svc: Services) -> dict[str, str]:
    """Role id -> name, as the links know them (a grant holds ids only; Discord is not asked for a page)."""
    return {role.id: role.name for link in await svc.links.list() for role in link.roles}


async def overview(svc: Services) -> dict[str, Any]:
    """The overview's grant panels: active grants ending within 7 days (soonest first) and end failures."""
    now = datetime.now(UTC)
    soon = await svc.grants.ending_soon(within=SOON)
    failed = await svc.grants.failures()
    return {
        "ending_soon": [_row(g, now) for g in soon[:SHOWN]],
        "ending_soon_more": max(len(soon) - SHOWN, 0),
        "end_failures": [_row(g, now) for g in failed[:SHOWN]],
        "end_failures_more": max(len(failed) - SHOWN, 0),
    }


def _chosen(request: Request) -> tuple[dict[str, str | None], str | None, str | None]:
    """The filters asked for (unknown values of the choices dropped), the cursor, and a problem: the name of a
    filter with a control character."""
    q = request.query_params
    for name in (*FILTERS, "cursor"):
        if has_control(q.get(name) or ""):  # a NUL would reach the database (PostgreSQL's text holds none)
            return {}, None, f"{name}: no control characters (line breaks, tabs, NUL)"
    chosen = {name: ((q.get(name) or "").strip()[:128] or None) for name in FILTERS}
    if chosen["state"] not in {s.value for s in GrantState}:
        chosen["state"] = None
    if chosen["absent"] not in ("yes", "no"):
        chosen["absent"] = None
    return chosen, q.get("cursor") or None, None


async def _grants_page(request: Request, sid: str, *, error: str | None = None, status: int = 200) -> Response:
    svc = services(request)
    chosen, cursor, problem = _chosen(request)
    if problem is not None:
        return _message(request, "a_error", 400, problem)
    filters = GrantFilters(
        guild_id=chosen["guild_id"],
        user_id=chosen["user_id"],
        state=GrantState(chosen["state"]) if chosen["state"] else None,
        external_ref=chosen["external_ref"],
        absent={"yes": True, "no": False}.get(chosen["absent"] or ""),
    )
    try:
        grants, next_cursor = await svc.grants.page(app_id=None, filters=filters, cursor=cursor, limit=PAGE_SIZE)
    except ValueError:  # a cursor this service did not give: the first page
        grants, next_cursor = await svc.grants.page(app_id=None, filters=filters, cursor=None, limit=PAGE_SIZE)
    now = datetime.now(UTC)
    shown = {k: v for k, v in chosen.items() if v}
    older = "?" + urlencode({**shown, "cursor": next_cursor}) if next_cursor else None
    context = {
        "rows": [_row(g, now) for g in grants],
        "filters": chosen,
        "states": [s.value for s in GrantState],
        "on_ends": [o.value for o in OnEnd],
        "older": older,
        "back": request.url.path + ("?" + urlencode(shown) if shown else ""),
        "role_names": await role_names(svc),
        "error": error,
    }
    return _page(request, "admin_grants.html", sid, context, status=status)


@router.get("/grants")
async def grants_page(request: Request) -> Response:
    sid = await session(request)
    return _to("/admin") if sid is None else await _grants_page(request, sid)


def _back(form: dict[str, str]) -> str:
    """Where an action returns: the Grants page with the filters it was posted from (never another site)."""
    back = form.get("back", "")
    return back if back.startswith("/admin/grants") and "//" not in back and "\\" not in back else "/admin/grants"


def _refused(exc: JoinError) -> tuple[int, str]:
    if isinstance(exc, UnknownGrantError):
        return 404, exc.detail or "no such grant"
    if isinstance(exc, GrantEndedError):
        return 409, exc.detail or "the grant has ended: it cannot be extended"
    if isinstance(exc, InvalidRequestError):
        return 400, exc.detail or exc.outcome.value
    return 502, f"{exc.outcome.value}: {exc.detail}" if exc.detail else exc.outcome.value


@router.post("/grants/{grant_id}/end")
async def grants_end(grant_id: str, request: Request) -> Response:
    """Ends the grant now (``revoked``) with its own ``on_end``, or the one chosen; an ``end_failed`` grant is
    tried again. Discord refusing the end leaves it ``end_failed`` with the reason, shown on the page."""
    sid, form = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    choice = form.get("on_end", "")
    if choice and choice not in {o.value for o in OnEnd}:
        return await _grants_page(request, sid, error=f"on_end: one of {', '.join(o.value for o in OnEnd)}", status=400)
    try:
        await services(request).grants.end(
            app=None, app_id=None, grant_id=grant_id, on_end=OnEnd(choice) if choice else None
        )
    except JoinError as exc:
        status, detail = _refused(exc)
        return await _grants_page(request, sid, error=detail, status=status)
    return _to(_back(form))


@router.post("/grants/{grant_id}/extend")
async def grants_extend(grant_id: str, request: Request) -> Response:
    """Moves the end later: ``by`` a DURATION (from the current end, or from now for a past or open one) or
    ``until`` a TIME (RFC 3339); exactly one of them."""
    sid, form = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    by_text, until_text = form.get("by", "").strip(), form.get("until", "").strip()
    if bool(by_text) == bool(until_text):
        return await _grants_page(
            request, sid, error="give exactly one of by (a duration like 7d) and until (a time)", status=400
        )
    try:
        by = parse_duration(by_text, max_days=3660) if by_text else None
        until = parse_time(until_text) if until_text else None
    except ValueError as exc:
        return await _grants_page(request, sid, error=f"{'by' if by_text else 'until'}: {exc}", status=400)
    try:
        await services(request).grants.extend(app_id=None, grant_id=grant_id, by=by, until=until)
    except JoinError as exc:
        status, detail = _refused(exc)
        return await _grants_page(request, sid, error=detail, status=status)
    except ValueError as exc:
        return await _grants_page(request, sid, error=str(exc), status=400)
    return _to(_back(form))
