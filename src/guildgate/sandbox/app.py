"""The sandbox ASGI app: Discord's routes under /api[/vN], OAuth2 pages, faults, and /_sandbox/* controls.

Every API answer passes through the same steps: ban check (per client IP) -> faults injected before the
handler -> the global per-identity limit -> the route bucket -> the handler -> faults injected after it ->
the invalid-request counter. Counts of all of it are at GET /_sandbox/stats.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from guildgate.sandbox import controls, oauth
from guildgate.sandbox.fixture import Faults, Fixture, FixtureError, load_fixture, parse_fixture
from guildgate.sandbox.limits import SandboxLimits
from guildgate.sandbox.responses import ban, djson, http_error
from guildgate.sandbox.routes import ROUTES, Call, Route, parse_auth
from guildgate.sandbox.state import World

_API_PREFIX = re.compile(r"^/api(?:/v(?P<version>\d+))?(?P<path>/.*)$")


class Sandbox:
    def __init__(self, fixture: Fixture) -> None:
        self.load(fixture)

    def load(self, fixture: Fixture) -> None:
        self.fixture = fixture
        self.world = World(fixture)
        self.limits = SandboxLimits(fixture.rate_limits)
        self.set_faults(fixture.faults)
        self.requests: Counter[str] = Counter()
        self.responses: dict[str, Counter[str]] = {}
        self.faults_injected: Counter[str] = Counter()
        self.started = time.monotonic()

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)

    def stats(self) -> dict[str, Any]:
        return {
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "requests": dict(self.requests),
            "responses": {route: dict(c) for route, c in self.responses.items()},
            "faults_injected": dict(self.faults_injected),
            **self.limits.stats(),
            "role_additions": dict(self.world.role_additions),
            "role_removals": dict(self.world.role_removals),
            "kicks": dict(self.world.kicks),
        }

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | Response:
        allowed = False
        for route in ROUTES:
            m = route.pattern.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, m.groupdict()
            allowed = True
        return http_error(405, "Method Not Allowed") if allowed else http_error(404, "Not Found")

    async def api(self, request: Request) -> Response:
        now = time.monotonic()
        ip = request.client.host if request.client else "unknown"
        if self.limits.banned(ip, now):
            self.requests["(banned)"] += 1
            return ban()
        m = _API_PREFIX.match(request.url.path)
        assert m is not None
        version = int(m.group("version") or 6)
        path = m.group("path")
        if version < 6:
            return http_error(400, "Bad Request")
        if path in ("/oauth2/token", "/oauth2/token/revoke"):
            key = f"POST {path}"
            self.requests[key] += 1
            if request.method != "POST":
                return self._finish(key, ip, http_error(405, "Method Not Allowed"), None)
            handler = oauth.token if path == "/oauth2/token" else oauth.revoke
            return self._finish(key, ip, await handler(self.world, request), None)
        if path == "/oauth2/authorize":
            return await oauth.authorize(self.world, request)
        matched = self._match(request.method, path)
        if isinstance(matched, Response):
            self.requests[f"{request.method} (unknown)"] += 1
            return matched
        route, params = matched
        self.requests[route.key] += 1
        fault = self.faults.routes.get(route.key)
        latency = self.faults.latency_ms + (fault.latency_ms if fault else 0.0)
        if latency:
            await asyncio.sleep(latency / 1000)
        after_fault: Response | None = None
        reset_after = False
        if fault is not None:
            roll = self.rng.random()
            if roll < fault.timeout_rate:
                self.faults_injected[f"{route.key} hang"] += 1
                await asyncio.sleep(fault.hang_seconds)
                return http_error(504, "Gateway Timeout")
            roll -= fault.timeout_rate
            if roll < fault.reset_rate:
                self.faults_injected[f"{route.key} reset {fault.when}"] += 1
                if fault.when == "before":
                    _reset_connection(request)
                    return http_error(502, "Bad Gateway")
                reset_after = True  # the change is made, then the connection drops before the answer
            roll -= fault.reset_rate
            if not reset_after and roll < fault.error_rate:
                self.faults_injected[f"{route.key} {fault.status} {fault.when}"] += 1
                failure = djson({"message": f"{fault.status}: Injected fault", "code": 0}, fault.status)
                if fault.when == "before":
                    return self._finish(route.key, ip, failure, None)
                after_fault = failure
        auth = parse_auth(self.world, request.headers.get("authorization"))
        identity = hashlib.sha256((auth.raw or f"ip:{ip}").encode()).hexdigest()
        verdict = self.limits.check_global(identity, time.monotonic())
        if verdict is not None:
            return self._finish(route.key, ip, djson(verdict.limited, 429, verdict.headers), verdict.scope)
        major = params.get(route.major, "") if route.major else ""
        verdict = self.limits.check_route(route.key, identity, major, time.monotonic())
        if verdict.limited is not None:
            return self._finish(route.key, ip, djson(verdict.limited, 429, verdict.headers), verdict.scope)
        response = await route.handler(Call(request=request, world=self.world, params=params, auth=auth))
        if fault is not None and fault.latency_after_ms:
            await asyncio.sleep(fault.latency_after_ms / 1000)
        if reset_after:
            _reset_connection(request)
            return http_error(502, "Bad Gateway")
        if after_fault is not None:
            response = after_fault
        response.headers.update(verdict.headers)
        return self._finish(route.key, ip, response, None)

    def _finish(self, route: str, ip: str, response: Response, scope: str | None) -> Response:
        self.responses.setdefault(route, Counter())[str(response.status_code)] += 1
        self.limits.count(ip, response.status_code, scope, time.monotonic())
        return response


def _reset_connection(request: Request) -> None:
    """Abort the TCP connection under this request (uvicorn keeps the transport on its protocol cycle)."""
    receive = request.scope.get("guildgate.receive")
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None:
        transport.abort()


class SandboxApp:
    """The ASGI entry point; keeps the raw ``receive`` in the scope so a fault can reset the connection."""

    def __init__(self, app: Starlette, sandbox: Sandbox) -> None:
        self.app, self.sandbox = app, sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "guildgate.receive": receive}
        await self.app(scope, receive, send)


def create_sandbox_app(fixture: Fixture | None = None, *, fixture_path: str | Path | None = None) -> SandboxApp:
    sandbox = Sandbox(fixture or load_fixture(fixture_path))

    async def api(request: Request) -> Response:
        return await sandbox.api(request)

    async def authorize(request: Request) -> Response:
        return await oauth.authorize(sandbox.world, request)

    async def stats(request: Request) -> Response:
        return djson(sandbox.stats())

    async def state(request: Request) -> Response:
        return djson(sandbox.world.snapshot())

    async def reset(request: Request) -> Response:
        sandbox.load(sandbox.fixture)
        return djson({"ok": True})

    async def put_fixture(request: Request) -> Response:
        try:
            sandbox.load(parse_fixture(json.loads(await request.body()), source="the request body"))
        except (FixtureError, ValueError) as exc:
            return djson({"error": str(exc)}, 400)
        return djson({"ok": True})

    async def put_faults(request: Request) -> Response:
        try:
            sandbox.set_faults(Faults.model_validate(json.loads(await request.body())))
        except ValueError as exc:
            return djson({"error": str(exc)[:2000]}, 400)
        return djson({"ok": True})

    async def mint(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            user_id, app_id = str(body["user_id"]), str(body["application_id"])
        except (ValueError, KeyError, TypeError):
            return djson({"error": 'send {"user_id": ..., "application_id": ...}'}, 400)
        if app_id not in sandbox.world.apps:
            return djson({"error": f"unknown application {app_id}"}, 400)
        grant = sandbox.world.grant(
            user_id=user_id,
            app_id=app_id,
            scopes=list(body.get("scopes", ["identify", "guilds.join"])),
            expires_in=body.get("expires_in"),
        )
        return djson({"access_token": grant.access_token, "refresh_token": grant.refresh_token})

    async def issued(request: Request) -> Response:
        """Every token and authorization code the sandbox ever issued (revoked ones too), for leak scans."""
        world = sandbox.world
        tokens = {g.access_token for g in world.grants.values()} | {t for t in world.refresh}
        return djson({"tokens": sorted(tokens), "codes": sorted(world.codes)})

    def control(handler: Callable[[World, Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(sandbox.world, request)

        return endpoint

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(
        routes=[
            StarletteRoute("/api/{rest:path}", api, methods=methods),
            StarletteRoute("/oauth2/authorize", authorize, methods=["GET", "POST"]),
            StarletteRoute("/_sandbox/stats", stats, methods=["GET"]),
            StarletteRoute("/_sandbox/state", state, methods=["GET"]),
            StarletteRoute("/_sandbox/reset", reset, methods=["POST"]),
            StarletteRoute("/_sandbox/fixture", put_fixture, methods=["PUT"]),
            StarletteRoute("/_sandbox/faults", put_faults, methods=["PUT"]),
            StarletteRoute("/_sandbox/tokens", mint, methods=["POST"]),
            StarletteRoute("/_sandbox/issued", issued, methods=["GET"]),
            StarletteRoute("/_sandbox/audit", control(controls.audit), methods=["GET"]),
            StarletteRoute("/_sandbox/guilds/{guild_id}", control(controls.patch_guild), methods=["PATCH"]),
            StarletteRoute(
                "/_sandbox/guilds/{guild_id}/members/{user_id}",
                control(controls.put_member),
                methods=["PUT"],
            ),
            StarletteRoute(
                "/_sandbox/guilds/{guild_id}/members/{user_id}",
                control(controls.delete_member),
                methods=["DELETE"],
            ),
            StarletteRoute(
                "/_sandbox/guilds/{guild_id}/members/{user_id}/roles/{role_id}",
                control(controls.member_role),
                methods=["PUT", "DELETE"],
            ),
        ]
    )
    return SandboxApp(app, sandbox)
