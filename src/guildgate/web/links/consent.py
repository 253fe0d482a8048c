"""The pages people see: a join link (``/j/{slug}``), the start of the consent flow, Discord's callback, and
the result in plain words (``/oauth/done``).

The callback never renders the result itself: it redirects to ``/oauth/done?r=...`` (a signed, one-hour summary
of what happened), so the result page can be reloaded or switched to the other language without replaying the
callback. The funnel (opened, sent to Discord) counts each browser once per link and step (``SEEN_COOKIE``).
Every failure, forged or replayed ``state`` included, ends on a page that says what to do next.
Discord's ``error`` is shown and recorded as a fixed text per RFC 6749 code (``OAUTH_ERRORS``), never the
``error_description`` (anyone can put any text there); a parameter with a control character gets a 400 page
naming it, and nothing of the callback is stored.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from guildgate.core.errors import JoinError
from guildgate.core.joins import RecordedJoinError, record_refusal
from guildgate.core.links import STATE_TTL, Link, consent_join
from guildgate.core.outcomes import Outcome, Source
from guildgate.core.ports import NewRecord
from guildgate.core.text import has_control
from guildgate.discord.oauth import authorize_url, new_pkce
from guildgate.discord.ratelimit.shares import LINKS
from guildgate.services.runtime import Services
from guildgate.store.repos import NotFoundError
from guildgate.web.deps import services
from guildgate.web.forms import read_form
from guildgate.web.links.access_text import access_lines, access_result_lines, access_summary, say
from guildgate.web.links.flow import FLOW_COOKIE, flow_signer
from guildgate.web.page_text import text
from guildgate.web.pages import origin_of, page_language, render, security_headers
from guildgate.web.signed import BadStateError, StateExpiredError

router = APIRouter(include_in_schema=False)
# The links funnel counts each visitor once per step: a browser's first open of a link, and its first Continue.
# This cookie (one per link, path /j/{slug}) says which it was counted in; reloads and second tries are not.
SEEN_COOKIE = "gg_seen"
SEEN_SECONDS = 365 * 24 * 3600
OPENED, SENT = "o", "s"
log = logging.getLogger("guildgate.links")

GOOD = {Outcome.JOINED.value, Outcome.ALREADY_MEMBER.value}
LINK_PROBLEMS = {Outcome.LINK_EXPIRED.value, Outcome.LINK_USED_UP.value, Outcome.LINK_DISABLED.value}
SIGN_IN = {Outcome.TOKEN_EXPIRED.value, Outcome.INVALID_OAUTH_TOKEN.value}
# the links' share of the invalid-request budget is spent: to the person, like Discord being unavailable
UNAVAILABLE = {
    Outcome.DISCORD_UNAVAILABLE.value,
    Outcome.RATE_LIMITED.value,
    Outcome.INVALID_REQUEST_SHARE_EXCEEDED.value,
}
# What the callback shows and records for each ``error`` of RFC 6749 section 4.1.2.1 (any other: "other").
OAUTH_ERRORS = {
    "invalid_request": "Discord found the sign-in request malformed (invalid_request)",
    "unauthorized_client": "the app may not ask for sign-ins this way (unauthorized_client)",
    "access_denied": "the sign-in was cancelled (access_denied)",
    "unsupported_response_type": "Discord does not take this kind of sign-in request (unsupported_response_type)",
    "invalid_scope": "Discord refused the permissions asked for (invalid_scope)",
    "server_error": "Discord met an unexpected error (server_error)",
    "temporarily_unavailable": "Discord is overloaded or down for maintenance (temporarily_unavailable)",
    "other": "Discord answered with an error this service does not know (other)",
}


def _initials(name: str) -> str:
    words = [w for w in name.split() if w[:1].isalnum()]
    return "".join(w[0] for w in words[:2]).upper() or name[:1].upper() or "?"


async def _link_or_none(svc: Services, value: str, *, by: str = "slug") -> Link | None:
    """The link whose ``by`` field (``slug`` or ``id``) is ``value``: pages open links by slug only."""
    if not value or len(value) > 32:
        return None
    try:
        link = await svc.links.get(value)
    except NotFoundError:
        return None
    return link if getattr(link, by) == value else None


def _not_found(request: Request) -> Response:
    lang, _ = page_language(request)
    return render(
        request,
        "result.html",
        {
            "title": text("not_found_title", lang),
            "next_step": text("not_found_next", lang),
            "tone": "bad",
            "outcome": "not_found",
            "lines": [],
            "lang_query": "",
        },
        status=404,
    )


async def _usable(svc: Services, slug: str, request: Request) -> Link | Response:
    """The link, or the page that says why it cannot be used (unknown, expired, used up, disabled)."""
    link = await _link_or_none(svc, slug)
    if link is None:
        return _not_found(request)
    problem = link.problem(datetime.now(UTC))
    if problem is not None:
        return _result_redirect(request, {"o": problem.value, **_about(link)}, carry_lang=True)
    return link


@router.get("/j/{slug}")
async def link_page(slug: str, request: Request) -> Response:
    svc = services(request)
    link = await _usable(svc, slug, request)
    if not isinstance(link, Link):
        return link
    seen = request.cookies.get(SEEN_COOKIE, "")
    first_open = "lang" not in request.query_params and OPENED not in seen
    if first_open:
        await svc.links.opened(link.id)
    expires = link.expires_at.strftime("%Y-%m-%d %H:%M") if link.expires_at else None
    lang, _ = page_language(request)
    response = render(
        request,
        "link.html",
        {
            "link": link,
            "access": access_lines(lang, link),
            "initials": _initials(link.guild_name or "?"),
            "uses_left": None if link.max_uses is None else max(link.max_uses - link.uses, 0),
            "expires": expires,
        },
        form_targets=(origin_of(svc.settings.authorize_url),),
    )
    if first_open:
        _seen(svc, response, link, seen + OPENED)
    return response


def _seen(svc: Services, response: Response, link: Link, steps: str) -> None:
    """Remember in this browser which of the funnel's steps it was counted in, for this link only."""
    response.set_cookie(
        SEEN_COOKIE,
        "".join(sorted(set(steps) & {OPENED, SENT})),
        max_age=SEEN_SECONDS,
        path=f"/j/{link.slug}",
        httponly=True,
        samesite="lax",  # sent when the link is opened from another site (a chat, a mail)
        secure=svc.settings.public_url.startswith("https://"),
    )


@router.post("/j/{slug}/start")
async def start(slug: str, request: Request) -> Response:
    await read_form(request)  # nothing in it is needed, but it is held to the forms' limits (web/forms.py)
    svc = services(request)
    link = await _usable(svc, slug, request)
    if not isinstance(link, Link):
        return link
    if await svc.caps.take_start(link.id) is not None:  # a flood of starts: nothing written, nothing sent
        return _result_redirect(request, {"o": Outcome.VELOCITY_CAPPED.value, **_about(link)}, carry_lang=True)
    seen = request.cookies.get(SEEN_COOKIE, "")
    nonce = await svc.links.start_flow(link.id, count=SENT not in seen)
    pkce = new_pkce()
    url = authorize_url(
        base=svc.settings.authorize_url,
        client_id=link.app_id,
        redirect_uri=_redirect_uri(svc),
        state=flow_signer(request).state(nonce=nonce, link_id=link.id),
        challenge=pkce.challenge,
    )
    response = RedirectResponse(url, status_code=303)
    security_headers(response, no_store=True)
    response.set_cookie(
        FLOW_COOKIE,
        flow_signer(request).flow_cookie(nonce=nonce, verifier=pkce.verifier),
        max_age=600,
        path="/oauth",
        httponly=True,
        samesite="lax",  # sent on the top-level GET back from Discord, not on cross-site subrequests
        secure=svc.settings.public_url.startswith("https://"),
    )
    if SENT not in seen:
        _seen(svc, response, link, seen + SENT)
    return response


def _about(link: Link) -> dict[str, Any]:
    """What a result page says of the link: its server (name and id) and where to try again."""
    return {"s": link.guild_name, "g": link.guild_id, "slug": link.slug}


def _redirect_uri(svc: Services) -> str:
    return f"{svc.settings.public_url}/oauth/callback"


def _result_redirect(request: Request, data: dict[str, Any], *, carry_lang: bool = False) -> Response:
    query = {"r": flow_signer(request).result(data)}
    asked = request.query_params.get("lang") if carry_lang else None
    if asked in ("en", "zh"):
        query["lang"] = asked  # a language picked on the link page carries over
    response = RedirectResponse("/oauth/done?" + urlencode(query), status_code=303)
    security_headers(response, no_store=True)
    return response


@router.get("/oauth/callback")
async def callback(request: Request) -> Response:
    svc = services(request)
    response = await _callback(svc, request)
    response.delete_cookie(FLOW_COOKIE, path="/oauth")
    return response


async def _callback(svc: Services, request: Request) -> Response:
    started = time.perf_counter()
    q = request.query_params
    for name, value in q.multi_items():
        if has_control(name) or has_control(value):  # never looked at further, nor stored
            return _bad_parameter(request, name)
    try:
        state = flow_signer(request).read_state(q.get("state") or "")
    except BadStateError as exc:
        return _result_redirect(
            request, {"o": "state", "w": "expired" if isinstance(exc, StateExpiredError) else "bad"}
        )
    flow = flow_signer(request).read_flow_cookie(request.cookies.get(FLOW_COOKIE))
    link = await _link_or_none(svc, state.link_id, by="id")
    slug = link.slug if link else None
    if flow is None or flow[0] != state.nonce:
        why = "used" if await svc.links.state_used(state.nonce) else "browser"  # a reload, or another browser
        return _result_redirect(request, {"o": "state", "w": why, "slug": slug})
    if await svc.links.use_state(state.nonce, max_age=STATE_TTL) is None or link is None:
        return _result_redirect(request, {"o": "state", "w": "used", "slug": slug})
    summary: dict[str, Any] = _about(link)
    new = NewRecord(
        app_id=link.app_id,
        key_id=None,
        source=Source.LINK,
        guild_id=link.guild_id,
        guild_name=link.guild_name,
        link_id=link.id,
    )
    error = q.get("error")
    code = q.get("code")
    if error or not code:
        # A fixed text per RFC 6749 error code: anyone can send a person to this address with any
        # error_description, so it is never shown or stored.
        kind = (error if error in OAUTH_ERRORS else "other") if error else None
        outcome = Outcome.CANCELLED if kind in (None, "access_denied") else Outcome.DISCORD_ERROR
        detail = OAUTH_ERRORS[kind] if kind else "Discord sent no code"
        await record_refusal(svc.records, new, JoinError(detail, outcome=outcome), started)
        return _result_redirect(request, {**summary, "o": outcome.value, "d": detail})
    if not await svc.links.claim_use(link.id):
        fresh = await svc.links.get(link.id)
        outcome = fresh.problem(datetime.now(UTC)) or Outcome.LINK_USED_UP
        await record_refusal(svc.records, new, JoinError(outcome.value, outcome=outcome), started)
        return _result_redirect(request, {**summary, "o": outcome.value})
    try:
        # every link's joins together spend one share of the invalid-request budget (past it: a refusal, recorded)
        async with await svc.shares.spend(LINKS):
            app = await svc.apps.credentials(link.app_id)
            result = await consent_join(
                link=link,
                app=app,
                code=code,
                redirect_uri=_redirect_uri(svc),
                verifier=flow[1],
                discord=svc.discord,
                consent=svc.consent,
                records=svc.records,
                deadline=time.monotonic() + svc.settings.request_timeout,
                started=started,
                caps=svc.caps,
                grants=svc.grants,
            )
    except RecordedJoinError as exc:
        await svc.links.release_use(link.id)
        return _result_redirect(request, {**summary, "o": exc.error.outcome.value, "d": exc.error.detail[:200]})
    except JoinError as exc:  # the code exchange failed: no token, no join record yet
        await svc.links.release_use(link.id)
        await record_refusal(svc.records, new, exc, started)
        return _result_redirect(request, {**summary, "o": exc.outcome.value, "d": exc.detail[:200]})
    names = {r.id: r.name for r in link.roles}
    return _result_redirect(
        request,
        {
            **summary,
            "o": result.join.outcome.value,
            "rg": [names.get(r, r) for r in result.roles_given],
            "rf": [names.get(r, r) for r in result.roles_failed],
            **access_summary(link, result.grant),
        },
    )


def _bad_parameter(request: Request, name: str) -> Response:
    lang, _ = page_language(request)
    shown = "".join(c if c.isprintable() else "?" for c in name[:40])
    context = {
        "title": text("r_state", lang),
        "next_step": text("n_state_again", lang),
        "tone": "bad",
        "outcome": "bad_parameter",
        "lines": [text("n_bad_parameter", lang, name=shown)],
        "lang_query": "",
    }
    return render(request, "result.html", context, status=400, no_store=True)


@router.get("/oauth/done")
async def done(request: Request) -> Response:
    data = flow_signer(request).read_result(request.query_params.get("r") or "")
    lang, _ = page_language(request)
    if data is None:
        data = {"o": "state", "w": "bad"}
    context = describe(data, lang)
    context["lang_query"] = (
        urlencode({"r": request.query_params.get("r", "")}) + "&" if "r" in request.query_params else ""
    )
    status = 200 if data.get("o") in GOOD or data.get("o") == Outcome.CANCELLED.value else 400
    if data.get("o") in LINK_PROBLEMS:
        status = 410
    elif data.get("o") == Outcome.ACCESS_ENDED.value:
        status = 403
    return render(request, "result.html", context, status=status, no_store=True)


def describe(data: dict[str, Any], lang: str) -> dict[str, Any]:
    """The result page's words for a callback summary."""
    outcome = str(data.get("o", "state"))
    server = str(data.get("s") or data.get("g") or "")
    slug = data.get("slug")
    again = f"/j/{slug}" if slug else None
    lines: list[str] = []
    if data.get("rg"):
        lines.append(text("roles_given", lang, roles=", ".join("@" + r for r in data["rg"])))
    if data.get("rf"):
        lines.append(text("roles_failed", lang, roles=", ".join("@" + r for r in data["rf"])))
    if outcome in GOOD:
        lines.extend(access_result_lines(data, lang))
    tone, discord_url = "bad", None
    if outcome in GOOD:
        title, next_step, tone, again = (
            text(f"r_{outcome}", lang, server=server),
            text(f"n_{outcome}", lang),
            "good",
            None,
        )
        discord_url = f"https://discord.com/channels/{data.get('g')}"
    elif outcome == Outcome.CANCELLED.value:
        title, next_step, tone = text("r_cancelled", lang), text("n_cancelled", lang), "neutral"
    elif outcome in (Outcome.BANNED.value, Outcome.MAX_GUILDS.value):
        title, next_step = text(f"r_{outcome}", lang, server=server), text(f"n_{outcome}", lang)
        again = again if outcome == Outcome.MAX_GUILDS.value else None
    elif outcome in LINK_PROBLEMS:
        title, next_step, again = text(f"r_{outcome}", lang), text("n_link", lang), None
    elif outcome == Outcome.ACCESS_ENDED.value:
        title, next_step, again = say("r_access_ended", lang, server=server), say("n_access_ended", lang), None
    elif outcome == Outcome.VELOCITY_CAPPED.value:
        title, next_step = text("r_velocity_capped", lang), text("n_velocity_capped", lang)
    elif outcome in UNAVAILABLE:
        title, next_step = text("r_unavailable", lang), text("n_unavailable", lang)
    elif outcome in SIGN_IN:
        title, next_step = text("r_signin", lang), text("n_signin", lang)
    elif outcome == "state":
        why = str(data.get("w") or "bad")
        title = text("r_state", lang)
        lines.append(text(f"n_state_{why}" if why in ("bad", "expired", "browser", "used") else "n_state_bad", lang))
        next_step = text("n_state_again", lang)
    else:  # the bot or the server is not set up right: the person can only tell the admins
        title = text("r_setup", lang)
        reason = (
            Outcome(outcome).message(lang, detail=str(data.get("d") or ""))
            if outcome in Outcome.__members__.values()
            else outcome
        )
        next_step = text("n_setup", lang, detail=reason)
    return {
        "title": title,
        "next_step": next_step,
        "lines": lines,
        "tone": tone,
        "outcome": outcome,
        "discord_url": discord_url,
        "again_url": again,
    }
