"""Who may use the admin side: the admin token (a bearer header on ``/api/admin`` and ``/admin``, or the login
form), dashboard sessions held in the database, and the limit on wrong tokens.

Every wrong admin token — a login form, or ``Authorization: Bearer`` on the admin API or the dashboard — counts
in two sliding windows of the shared ``Windows`` store (this process's, or Redis's for every worker): one per
client address and one for all clients together. Past either limit, every token check is refused with 429 and
``Retry-After`` until the window frees a place, the right token included: guessing gets no answer at all. A
session already open is not a token check and goes on working. The client address is the connection's peer,
or what ``X-Forwarded-For`` names when the peer is one of ``GUILDGATE_TRUSTED_PROXIES`` (uvicorn rewrites it:
cli/serving.py)."""

from __future__ import annotations

import hmac
import math
from datetime import timedelta

from fastapi import Request

from guildgate.services.runtime import Services
from guildgate.store.sessions import SessionRepo
from guildgate.web.dashboard.session import SESSION_COOKIE, SESSION_SECONDS, sessions
from guildgate.web.deps import services
from guildgate.web.errors import AdminError

FAILURES_PER_CLIENT = 10  # wrong admin tokens a client address may send a minute
FAILURES_IN_TOTAL = 50  # wrong admin tokens all clients together may send a minute
WINDOW_SECONDS = 60.0
BEARER = "bearer"  # the "session id" of a request that carries the admin token itself


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _windows(request: Request) -> list[tuple[str, int]]:
    return [(f"admin-auth:{client_address(request)}", FAILURES_PER_CLIENT), ("admin-auth:*", FAILURES_IN_TOTAL)]


async def _locked(svc: Services, request: Request) -> float | None:
    """Seconds until a token may be checked again, or None when it may be now."""
    for key, limit in _windows(request):
        if await svc.windows.window_count(key, WINDOW_SECONDS) >= limit:
            # at the limit, a take adds nothing and says how long until the oldest failure leaves the window
            wait = await svc.windows.window_take(key, limit, WINDOW_SECONDS)
            if wait is not None:
                return wait
    return None


async def check_token(request: Request, presented: str) -> bool:
    """Whether ``presented`` is the admin token; a wrong one is counted. Raises AdminError 429 (with its
    ``retry_after``) while the client, or everybody, is past the limit, whatever the token."""
    svc = services(request)
    token = svc.settings.admin_token
    wait = await _locked(svc, request)
    if wait is not None:
        raise AdminError(
            429,
            "too_many_attempts",
            f"too many wrong admin tokens: try again in {max(math.ceil(wait), 1)} s",
            retry_after=wait,
        )
    if token is not None and hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
        return True
    for key, limit in _windows(request):
        await svc.windows.window_take(key, limit, WINDOW_SECONDS)
    return False


def bearer_value(request: Request) -> str | None:
    """The value of ``Authorization: Bearer <value>``; None without one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def session(request: Request) -> str | None:
    """The dashboard session of this request: ``BEARER`` for the admin token in ``Authorization: Bearer`` (for
    scripts; a wrong one counts as a failure and is no session), else the session id of a cookie that is signed
    by this service under the current admin token and still open in the database; None otherwise."""
    svc = services(request)
    token = svc.settings.admin_token
    if token is None:
        return None
    presented = bearer_value(request)
    if presented is not None:
        return BEARER if await check_token(request, presented) else None
    sid = sessions(request).session_id(request.cookies.get(SESSION_COOKIE), admin_token=token.get_secret_value())
    if sid is not None and await SessionRepo(svc.db).active(sid):
        return sid
    return None


async def open_session(request: Request) -> str:
    """A new session: its cookie's value (web/dashboard/session.py signs it)."""
    svc = services(request)
    assert svc.settings.admin_token is not None
    sid = await SessionRepo(svc.db).create(lifetime=timedelta(seconds=SESSION_SECONDS))
    return sessions(request).session(sid, admin_token=svc.settings.admin_token.get_secret_value())


async def end_session(svc: Services, sid: str) -> None:
    if sid != BEARER:
        await SessionRepo(svc.db).end(sid)
