"""POST /api/wanda/discord/guild — the contract's join call."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from guildgate.core.access import Settled, settle_join
from guildgate.core.errors import CallerError, IdempotencyConflictError, InvalidRequestError
from guildgate.core.joins import JoinOutcome, JoinRequest, RecordedJoinError, join, record_refusal
from guildgate.core.links import give_roles
from guildgate.core.outcomes import Outcome, RecordState, Source
from guildgate.core.ports import AppCredentials, NewRecord
from guildgate.discord.ratelimit.shares import key_spender
from guildgate.services.runtime import Services
from guildgate.store.models import RecordRow
from guildgate.store.repos import ConflictError, StoredResponse
from guildgate.web import errors
from guildgate.web.api.body import (
    MAX_BODY,
    check_content_type,
    check_developer_id,
    check_idempotency_key,
    join_body_schema,
    parse_join,
    parse_json,
)
from guildgate.web.api.schemas import Envelope
from guildgate.web.deps import authenticate, services
from guildgate.web.i18n import Lang, pick_language
from guildgate.web.metrics import JOIN_SECONDS, count_join

router = APIRouter()
log = logging.getLogger("guildgate.join")

# Refusals that write no record: a flood past a key's quota or its share of the invalid-request budget must not
# fill the database.
NO_RECORD = frozenset({Outcome.QUOTA_EXCEEDED, Outcome.INVALID_REQUEST_SHARE_EXCEEDED})

JOIN_PATH = "/api/wanda/discord/guild"


def _header(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema = {"type": "string"} if pattern is None else {"type": "string", "pattern": pattern}
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


def describe_join(schema: dict[str, Any], *, snowflake: str) -> None:
    """Put the join body's schema, with every rule and the snowflakes that can exist now, into ``schema``."""
    body = join_body_schema(snowflake=snowflake)
    operation = schema["paths"][JOIN_PATH]["post"]
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdecimal() and int(declared) > MAX_BODY:
        raise InvalidRequestError(f"the body is larger than {MAX_BODY} bytes", http_status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise InvalidRequestError(f"the body is larger than {MAX_BODY} bytes", http_status=413)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    JOIN_PATH,
    summary="Add a consenting user to a server",
    response_model=Envelope,
    responses={
        400: {"model": Envelope},
        401: {"model": Envelope},
        409: {"model": Envelope},
        413: {"model": Envelope},
        415: {"model": Envelope},
        429: {"model": Envelope},
        502: {"model": Envelope},
        503: {"model": Envelope},
        504: {"model": Envelope},
    },
    openapi_extra={
        "parameters": [
            _header("User-Token", "API key"),
            _header(
                "Developer-Id", "attribution id (1-64 of A-Za-z0-9_-), kept on the record", r"^[A-Za-z0-9_-]{0,64}$"
            ),
            _header(
                "Idempotency-Key",
                "1-128 printable ASCII; the same key within 24 h returns the first response",
                r"^[ -~]{0,128}$",
            ),
            _header("Accept-Language", "language of msg: Simplified Chinese by default, English when it prefers en"),
        ],
    },
)
async def join_guild(request: Request) -> Response:
    """Add the user who granted ``authorization`` to the server named by ``guild_id`` or ``guild_name``.

    Example::

        curl -X POST http://127.0.0.1:8080/api/wanda/discord/guild -H 'User-Token: gg_...' \\
             -H 'Content-Type: application/json' -d '{"authorization":"...","guild_id":"1200000000000000001"}'
    """
    # Headers are read from the request rather than declared as parameters: FastAPI's per-parameter resolution
    # was a tenth of a join's CPU (docs/performance.md). The schema still lists them (openapi_extra above).
    started = time.perf_counter()
    response = await _handle(request, started)
    JOIN_SECONDS.observe(time.perf_counter() - started)
    return response


async def _handle(request: Request, started: float) -> Response:
    svc = services(request)
    deadline = time.monotonic() + svc.settings.request_timeout
    headers = request.headers
    lang = pick_language(headers.get("accept-language"))
    key = await authenticate(request)
    # What the record will hold, as it becomes known: a refused request's record keeps what was read before.
    developer_id = guild_id = idem = None
    request_hash = ""
    try:
        developer_id = check_developer_id(headers.get("developer-id"))
        idem = check_idempotency_key(headers.get("idempotency-key"))
        check_content_type(headers.get("content-type"))
        raw = parse_json(await read_body(request))
        join_request = parse_join(raw, egress_proxies=svc.settings.egress_proxies)
        guild_id = join_request.guild_id
        if idem is not None:  # only an idempotent request needs the fingerprint of its body
            request_hash = svc.request_hash(json.dumps(raw, sort_keys=True, ensure_ascii=False).encode())
            existing = await svc.records.idempotent(key_id=key.id, idempotency_key=idem)
            if existing is not None:
                return await _replay(svc, existing, request_hash, lang=lang, started=started, deadline=deadline)
        await svc.quotas.take(key)
        spending = await svc.shares.spend(key_spender(key.id))
    except CallerError as exc:
        count_join(exc.outcome.value)
        if exc.outcome in NO_RECORD:  # no record: a flood past the quota (or share) must not fill the database
            return errors.error_response(exc, record_id=None, lang=lang, started=started)
        plain = NewRecord(
            app_id=key.app_id, key_id=key.id, source=Source.API, developer_id=developer_id, guild_id=guild_id
        )
        record_id = await record_refusal(svc.records, plain, exc, started)
        return errors.error_response(exc, record_id=record_id, lang=lang, started=started)
    ask = join_request.grant
    grant_ids: list[str] = []
    if ask is not None and ask.external_ref is None and guild_id is not None:
        # the grant this join makes, named before the join (with an external_ref: once the user is known, below)
        grant_ids.append(
            await svc.grants.prepare(
                app_id=key.app_id, guild_id=guild_id, external_ref=None, link_id=None, user_id=None
            )
        )

    async def admit(guild: str, user_id: str) -> str | None:
        # A server named by an invite, and the user, are known only now: the grant is named before anything is
        # added, and an external_ref naming another person's active grant refuses the join (external_ref_taken).
        if ask is None or grant_ids:
            return None
        grant_ids.append(
            await svc.grants.prepare(
                app_id=key.app_id, guild_id=guild, external_ref=ask.external_ref, link_id=None, user_id=user_id
            )
        )
        return grant_ids[0]

    new = NewRecord(
        app_id=key.app_id,
        key_id=key.id,
        source=Source.API,
        developer_id=developer_id,
        guild_id=guild_id,
        idempotency_key=idem,
        request_hash=request_hash if idem is not None else None,
        grant_id=grant_ids[0] if grant_ids else None,
    )
    try:
        async with spending:  # the join's invalid answers count against this key's share
            app = await svc.apps.credentials(key.app_id)
            result = await join(
                join_request,
                app=app,
                new_record=new,
                discord=svc.discord,
                records=svc.records,
                deadline=deadline,
                started=started,
                caps=svc.caps,
                admit=admit,
            )
            settled = await _settle(svc, app, key.app_id, join_request, result, grant_ids, deadline)
    except ConflictError:
        assert idem is not None
        existing = await svc.records.idempotent(key_id=key.id, idempotency_key=idem)
        if existing is None:
            raise IdempotencyConflictError("the first request with this key could not be found") from None
        return await _replay(svc, existing, request_hash, lang=lang, started=started, deadline=deadline)
    except RecordedJoinError as failure:
        response = errors.error_response(failure.error, record_id=failure.record_id, lang=lang, started=started)
        count_join(failure.error.outcome.value)
        if idem is not None and failure.record_id is not None:
            await _remember(svc, failure.record_id, response)
        return response
    grant_id = settled.grant.id if settled.grant is not None else None
    response = errors.EnvelopeResponse(errors.success_body(result, lang=lang, started=started, grant_id=grant_id))
    count_join(result.outcome.value)
    if idem is not None:
        await _remember(svc, result.record_id, response)
    return response


async def _settle(
    svc: Services,
    app: AppCredentials,
    app_id: str,
    request: JoinRequest,
    result: JoinOutcome,
    grant_ids: list[str],
    deadline: float,
) -> Settled:
    """After a successful join: the requested roles for someone already in the server, and the grants (an absent
    person's roles come back; with ``grant``, the grant is made or renewed)."""
    roles = request.options.roles or ()

    async def give(wanted: tuple[str, ...]) -> tuple[list[str], list[str]]:
        return await give_roles(
            svc.consent, app=app, guild_id=result.guild.id, user_id=result.user_id, roles=wanted, deadline=deadline
        )

    settled = await settle_join(
        grants=svc.grants,
        give=give,
        app=app,
        app_id=app_id,
        guild_id=result.guild.id,
        user_id=result.user_id,
        joined=result.joined,
        roles=roles,
        terms=request.grant.terms(joined_at=datetime.now(UTC)) if request.grant is not None else None,
        source="api",
        link_id=None,
        record_id=result.record_id,
        grant_id=grant_ids[0] if grant_ids else None,
    )
    if settled.error is not None:
        log.warning("a join succeeded but its grant could not be made or renewed: %s", settled.error.detail)
    return settled


async def _remember(svc: Services, record_id: str, response: JSONResponse) -> None:
    headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
    stored = StoredResponse(status=response.status_code, body=bytes(response.body).decode(), headers=headers)
    await asyncio.shield(svc.records.save_response(record_id, stored))


async def _replay(
    svc: Services, row: RecordRow, request_hash: str, *, lang: Lang, started: float, deadline: float
) -> Response:
    if row.request_hash != request_hash:
        raise IdempotencyConflictError()
    while row.response_body is None and row.state == RecordState.PENDING.value:
        if time.monotonic() >= deadline:
            raise IdempotencyConflictError("the first request with this Idempotency-Key is still being processed")
        await asyncio.sleep(0.05)
        row = await svc.records.get(row.id, app_id=None)
    if row.response_body is not None:
        headers: dict[str, Any] = json.loads(row.response_headers or "{}")
        return Response(
            row.response_body,
            status_code=row.response_status or 200,
            headers=headers,
            media_type="application/json",
        )
    # Finished but the response was not saved (the first process stopped in between): rebuild it.
    outcome = Outcome(row.code) if row.code else Outcome.DISCORD_UNAVAILABLE
    data = None
    if outcome.succeeded:
        data = errors.success_data(
            guild_id=row.guild_id,
            name=row.guild_name,
            user_id=row.user_id,
            joined=outcome is Outcome.JOINED,
            grant_id=row.grant_id,
        )
    msg = outcome.message(lang, detail=row.detail or "")
    body = errors.envelope(
        outcome=outcome,
        msg=msg,
        record_id=row.id,
        data=data,
        cost=errors.cost_text(started),
        discord_code=row.discord_code if row.discord_status and not outcome.succeeded else None,
    )
    return JSONResponse(body, status_code=outcome.http_status)
