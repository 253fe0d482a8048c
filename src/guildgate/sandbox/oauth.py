"""The sandbox's OAuth2: the authorize page (pick a fixture user, Authorize or Cancel), the token exchange
(form-encoded, Basic or form client auth, PKCE S256, single-use codes) and revocation."""

from __future__ import annotations

import base64
import binascii
import html
import time
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from guildgate.sandbox.fixture import Application
from guildgate.sandbox.responses import djson, oauth_error
from guildgate.sandbox.state import World, pkce_matches

KNOWN_SCOPES = {"identify", "guilds.join", "email", "guilds", "guilds.members.read", "bot"}


def _client(world: World, request: Request, form: dict[str, str]) -> Application | None:
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
    app = world.apps_by_client.get(client_id or "")
    if app is None:
        return None
    if secret is None or secret == "":
        return app if app.public_client else None
    return app if secret == app.client_secret else None


async def _form(request: Request) -> dict[str, str] | Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def token(world: World, request: Request) -> Response:
    form = await _form(request)
    if isinstance(form, Response):
        return form
    app = _client(world, request, form)
    if app is None:
        return oauth_error(401, "invalid_client")
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        code = world.codes.get(form.get("code", ""))
        bad = oauth_error(400, "invalid_grant", 'Invalid "code" in request.')
        if code is None or code.used or code.expires_at < time.time() or code.app_id != app.id:
            return bad
        code.used = True  # single use, also when the rest of the exchange fails
        if form.get("redirect_uri") is not None and form.get("redirect_uri") != code.redirect_uri:
            return bad
        if code.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier or not pkce_matches(verifier, code.challenge):
                return bad
        grant = world.grant(user_id=code.user_id, app_id=app.id, scopes=code.scopes)
    elif grant_type == "refresh_token":
        old = world.refresh.get(form.get("refresh_token", ""))
        if old is None or old.revoked or old.app_id != app.id:
            return oauth_error(400, "invalid_grant", 'Invalid "refresh_token" in request')
        world.revoke(old.access_token)
        grant = world.grant(user_id=old.user_id, app_id=app.id, scopes=old.scopes)
    else:
        return oauth_error(400, "unsupported_grant_type")
    return djson(
        {
            "access_token": grant.access_token,
            "token_type": "Bearer",
            "expires_in": int(grant.expires_at - time.time() + 0.5),
            "refresh_token": grant.refresh_token,
            "scope": " ".join(grant.scopes),
        }
    )


async def revoke(world: World, request: Request) -> Response:
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if _client(world, request, form) is None:
        return oauth_error(401, "invalid_client")
    if not form.get("token"):
        return oauth_error(400, "invalid_request", "token is required")
    world.revoke(form["token"])
    return djson({})


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
        f"content='width=device-width,initial-scale=1'><link rel='icon' href='data:,'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;background:#313338;color:#f2f3f5;display:flex;justify-content:center;"
        "padding:2rem}main{background:#2b2d31;border-radius:8px;padding:1.5rem;max-width:420px;width:100%}"
        "button{padding:.6rem 1.2rem;border:0;border-radius:4px;margin-right:.5rem;font-size:1rem}"
        ".ok{background:#5865f2;color:#fff}.no{background:#4e5058;color:#fff}select{width:100%;padding:.4rem}"
        f"</style></head><body><main><p><small>Discord sandbox</small></p>{body}</main></body></html>",
        status_code=status,
    )


def _authorize_problem(world: World, q: dict[str, str]) -> tuple[Application | None, str | None]:
    app = world.apps_by_client.get(q.get("client_id", ""))
    if app is None:
        return None, "Unknown application"
    if q.get("response_type") != "code":
        return app, "Invalid response_type: only 'code' is supported here"
    scopes = q.get("scope", "").split()
    if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
        return app, "Invalid scope"
    redirect = q.get("redirect_uri") or (app.redirect_uris[0] if app.redirect_uris else "")
    if not redirect or urlsplit(redirect).scheme not in ("http", "https"):
        return app, "Invalid OAuth2 redirect_uri"
    if app.redirect_uris and redirect not in app.redirect_uris:
        return app, "Invalid OAuth2 redirect_uri"
    if q.get("code_challenge") and q.get("code_challenge_method", "S256") != "S256":
        return app, "Invalid code_challenge_method: only S256 is supported"
    return app, None


async def authorize(world: World, request: Request) -> Response:
    if request.method == "GET":
        q = dict(request.query_params)
    else:
        form = await request.form()
        q = {k: v for k, v in form.items() if isinstance(v, str)}
    app, problem = _authorize_problem(world, q)
    if problem is not None or app is None:
        return _page("Error", f"<h1>Error</h1><p>{html.escape(problem or 'Unknown application')}</p>", 400)
    redirect = q.get("redirect_uri") or app.redirect_uris[0]
    scopes = q.get("scope", "").split()
    if request.method == "GET":
        hidden = "".join(
            f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
            for k, v in q.items()
            if k not in ("action", "user_id")
        )
        users = "".join(f"<option value='{u.id}'>{html.escape(u.username)}</option>" for u in world.users.values())
        items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        body = (
            f"<h1>{html.escape(app.name)} wants to access your account</h1><form method='post'>{hidden}"
            f"<label for='user_id'>Signed in as</label><select id='user_id' name='user_id'>{users}</select>"
            f"<p>This will allow the developer to:</p><ul>{items}</ul>"
            "<button class='no' name='action' value='cancel'>Cancel</button>"
            "<button class='ok' name='action' value='authorize'>Authorize</button></form>"
        )
        return _page(f"Authorize {app.name}", body)
    state = q.get("state")
    if q.get("action") != "authorize":
        params = {
            "error": "access_denied",
            "error_description": "The resource owner or authorization server denied the request",
        }
    else:
        user_id = q.get("user_id", "")
        if user_id not in world.users:
            return _page("Error", "<h1>Error</h1><p>Unknown user</p>", 400)
        code = world.new_code(
            app_id=app.id,
            user_id=user_id,
            scopes=scopes,
            redirect_uri=q.get("redirect_uri") or None,
            challenge=q.get("code_challenge") or None,
        )
        params = {"code": code}
    if state is not None:
        params["state"] = state
    separator = "&" if "?" in redirect else "?"
    return RedirectResponse(redirect + separator + urlencode(params), status_code=302)
