"""Operations endpoints: /healthz, /readyz, /metrics (behind GUILDGATE_METRICS_TOKEN when it is set)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from guildgate.core.errors import JoinError
from guildgate.web.deps import services
from guildgate.web.metrics import exposition_registry, refresh

router = APIRouter()


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database and, when configured, Redis answer",
    responses={503: {"description": "something does not answer", "content": {"application/json": {}}}},
)
async def readyz(request: Request) -> JSONResponse:
    svc = services(request)
    checks: dict[str, str] = {}
    ok = True
    probes = [("database", svc.db.ping)]
    if svc.settings.redis_url:
        probes.append(("redis", svc.limiter.backend.ping))
    for name, probe in probes:
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:
            ok = False
            # guildgate's own message (Redis not answering) names the cause; a driver's may name hosts or
            # statements, so only its kind is shown
            checks[name] = f"error: {exc}" if isinstance(exc, JoinError) else f"error: {type(exc).__name__}"
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}},
        401: {
            "description": "GUILDGATE_METRICS_TOKEN is set and this is not Authorization: Bearer <it>",
            "content": {"text/plain": {}},
        },
    },
)
async def metrics(request: Request) -> Response:
    """Open when GUILDGATE_METRICS_TOKEN is not set; otherwise only with ``Authorization: Bearer <the token>``."""
    svc = services(request)
    token = svc.settings.metrics_token
    if token is not None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value.strip().encode() if scheme.lower() == "bearer" else b""
        if not hmac.compare_digest(given, token.get_secret_value().encode()):
            return Response(
                "send Authorization: Bearer <GUILDGATE_METRICS_TOKEN>\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="guildgate metrics"'},
            )
    await refresh(svc)
    return Response(generate_latest(exposition_registry()), media_type=CONTENT_TYPE_LATEST)
