"""The dashboard's Webhooks page (``/admin/webhooks``): each endpoint with its recent delivery attempts (status
codes, errors), whether it is disabled and why; forms to add one (its signing secret shown once, on the answer
to that post), disable, enable, test and rotate its secret (the new one shown once). The same sessions, CSRF
tokens and form reading as the rest of the dashboard (web/dashboard/admin.py, web/forms.py); web/app.py serves
it only with GUILDGATE_ADMIN_TOKEN set."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from guildgate.core.errors import CallerError
from guildgate.core.webhooks import EVENT_TYPES
from guildgate.web.adminauth import session
from guildgate.web.dashboard.admin import _checked, _message, _page, _to
from guildgate.web.deps import services

router = APIRouter(prefix="/admin", include_in_schema=False)
RECENT = 10  # attempts shown under each endpoint
SUBSCRIBABLE = tuple(t for t in EVENT_TYPES if t != "webhook.test")  # a test goes to the endpoint tested only


def _refusal(exc: CallerError) -> str:
    return exc.outcome.message("en", detail=exc.detail)


async def _webhooks_page(
    request: Request,
    sid: str,
    *,
    secret: dict[str, str] | None = None,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    rows: list[dict[str, Any]] = []
    for endpoint in await svc.webhooks.list(app_id=None):
        attempts = await svc.webhooks.deliveries(app_id=None, endpoint_id=endpoint.id, limit=RECENT)
        rows.append({"endpoint": endpoint.as_json(), "attempts": [a.as_json() for a in attempts]})
    context = {
        "rows": rows,
        "apps": await svc.apps.list(),
        "types": SUBSCRIBABLE,
        "secret": secret,
        "notice": notice,
        "error": error,
    }
    return _page(request, "admin_webhooks.html", sid, context, status=status)


@router.get("/webhooks")
async def webhooks_page(request: Request) -> Response:
    sid = await session(request)
    return _to("/admin") if sid is None else await _webhooks_page(request, sid)


@router.post("/webhooks")
async def webhooks_add(request: Request) -> Response:
    sid, form = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    svc = services(request)
    chosen = [t for t in SUBSCRIBABLE if form.get(f"event.{t}") == "1"]
    try:
        endpoint, secret = await svc.webhooks.add(
            app_id=form.get("app_id", ""), url=form.get("url", "").strip(), events=chosen or None
        )
    except CallerError as exc:
        return await _webhooks_page(request, sid, error=_refusal(exc), status=exc.http_status)
    return await _webhooks_page(request, sid, secret={"id": endpoint.id, "secret": secret}, status=201)


@router.post("/webhooks/{endpoint_id}/{action}")
async def webhooks_action(endpoint_id: str, action: str, request: Request) -> Response:
    """disable, enable, test (then back to the page) and rotate (the page with the new secret, shown once)."""
    if action not in ("disable", "enable", "test", "rotate"):
        return _message(request, "a_error", 404, f"no such action: {action[:20]}")
    sid, _ = await _checked(request)
    if sid is None:
        return _message(request, "a_expired", 403)
    hooks = services(request).webhooks
    try:
        if action == "disable":
            await hooks.disable(app_id=None, endpoint_id=endpoint_id)
        elif action == "enable":
            await hooks.enable(app_id=None, endpoint_id=endpoint_id)
        elif action == "test":
            event_id = await hooks.test(app_id=None, endpoint_id=endpoint_id)
            return await _webhooks_page(request, sid, notice=f"webhook.test {event_id} → {endpoint_id}")
        else:
            secret = await hooks.rotate_secret(app_id=None, endpoint_id=endpoint_id)
            return await _webhooks_page(request, sid, secret={"id": endpoint_id, "secret": secret})
    except CallerError as exc:
        return _message(request, "a_error", exc.http_status, _refusal(exc))
    return _to("/admin/webhooks")
