"""The join request body: parsing and the contract's rules, with errors that name the field.

Rules: a JSON object of at most 16 KiB; unknown fields ignored; an empty string counts as absent (existing
clients send the unused one of guild_id/guild_name as ""); no control character in any field (beyond the white
space trimmed around a value, and collapsed inside ``nick``); exactly one of guild_id and guild_name; an
account- or bot-shaped ``authorization`` is refused before anything is sent; ``proxy`` only when it is one
of the operator's egress proxies; ``grant`` as web/api/join_grant.py says.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from guildgate.core.errors import InvalidRequestError, NotAnOAuthTokenError, ProxyNotAllowedError
from guildgate.core.invites import (
    INVITE_PATTERN,
    is_snowflake,
    looks_like_account_token,
    parse_invite,
)
from guildgate.core.joins import JoinRequest
from guildgate.core.patterns import NOT_CONTROL_OR_SPACE, SPACE, SPACE_CHARS, anycase
from guildgate.core.ports import MemberOptions
from guildgate.core.secret import Secret
from guildgate.core.text import has_control
from guildgate.web.api.join_grant import grant_schema, parse_grant

MAX_BODY = 16 * 1024
DEVELOPER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,128}")
_WHITESPACE = re.compile(f"{SPACE}+")


# Longest a field may be as sent (white space included); the rules below then decide what it holds.
MAX_AUTHORIZATION, MAX_GUILD_ID, MAX_GUILD_NAME, MAX_NICK, MAX_PROXY = 1024, 64, 512, 128, 512


class JoinBody(BaseModel):
    """POST /api/wanda/discord/guild body: the types and lengths. ``parse_join`` applies the rest of the rules,
    and ``join_body_schema`` shows all of them in the OpenAPI schema."""

    model_config = ConfigDict(extra="ignore")

    authorization: StrictStr = Field(max_length=MAX_AUTHORIZATION)
    guild_id: StrictStr | None = Field(default=None, max_length=MAX_GUILD_ID)
    guild_name: StrictStr | None = Field(default=None, max_length=MAX_GUILD_NAME)
    roles: list[StrictStr] | None = None
    nick: StrictStr | None = Field(default=None, max_length=MAX_NICK)
    mute: StrictBool | None = None
    deaf: StrictBool | None = None
    proxy: StrictStr | None = Field(default=None, max_length=MAX_PROXY)
    grant: dict[str, Any] | None = None  # checked by parse_grant (web/api/join_grant.py)


# The rules as JSON Schema patterns, for the OpenAPI schema (what clients and fuzzers read). White space is
# SPACE's six characters, which parse_join trims and collapses, in every engine alike.
_BEARER = rf"(?:{anycase('bearer')} {SPACE}*)?"
_TOKEN = rf"^{SPACE}*{_BEARER}[!-~]{{1,512}}{SPACE}*$"  # printable ASCII, no space: RFC 6750's b64token and more
_ACCOUNT_TOKEN = rf"\..*\.|^{SPACE}*{_BEARER}{anycase('mfa.')}"  # what looks_like_account_token refuses
# 1-32 characters once white space is collapsed and trimmed, none of them a control character
_C = NOT_CONTROL_OR_SPACE
_NICK = rf"^(?:{SPACE}*{_C}(?:{_C}|{SPACE}+(?={_C})){{0,31}}{SPACE}*)?$"
_EMPTY = {"type": "string", "maxLength": 0}  # "" counts as absent


def join_body_schema(*, snowflake: str, now: datetime | None = None) -> dict[str, Any]:
    """The join body's JSON Schema with every rule parse_join applies: what it describes is taken (up to the
    16 KiB body limit), what it does not is refused. ``snowflake``: core.invites.snowflake_pattern, the ids that
    can exist by now; ``now``: the time the ``grant`` field's ``ends_at`` must be later than (default: now). The
    one exception: ``proxy`` is shown empty, as without egress proxies; the operator's own are
    not published (the schema is public, and a proxy's URL may hold a password or an internal host)."""

    def string(pattern: str, max_length: int, description: str) -> dict[str, Any]:
        return {"type": "string", "pattern": pattern, "maxLength": max_length, "description": description}

    def optional(*schemas: dict[str, Any]) -> dict[str, Any]:
        return {"anyOf": [*schemas, {"type": "null"}]}

    guild_id = rf"^{SPACE}*{snowflake}{SPACE}*$"
    guild_name = rf"^{INVITE_PATTERN}$"
    return {
        "title": "JoinBody",
        "description": "Exactly one of guild_id and guild_name; an empty string or null counts as absent; other "
        "fields are ignored.",
        "type": "object",
        "required": ["authorization"],
        "properties": {
            "authorization": {
                **string(_TOKEN, MAX_AUTHORIZATION, "The user's OAuth2 access token (guilds.join + identify)."),
                "not": {"pattern": _ACCOUNT_TOKEN},
            },
            "guild_id": optional(_EMPTY, string(guild_id, MAX_GUILD_ID, "Server id (snowflake).")),
            "guild_name": optional(_EMPTY, string(guild_name, MAX_GUILD_NAME, "Invite code or invite URL.")),
            "roles": optional(
                _EMPTY,
                {
                    "type": "array",
                    "maxItems": 250,
                    "items": {"type": "string", "pattern": f"^{snowflake}$"},
                    "description": "Role ids to give on join (snowflakes, at most 250).",
                },
            ),
            "nick": optional(_EMPTY, string(_NICK, MAX_NICK, "Nickname, 1-32 characters.")),
            "mute": optional(_EMPTY, {"type": "boolean"}),
            "deaf": optional(_EMPTY, {"type": "boolean"}),
            "proxy": optional(
                {
                    **_EMPTY,
                    "description": "One of the operator's egress proxies, as the operator gave it (not listed here); "
                    "any other value is refused with proxy_not_allowed.",
                }
            ),
            "grant": optional(_EMPTY, grant_schema(now=now or datetime.now(UTC))),
        },
        "oneOf": [
            {"required": ["guild_id"], "properties": {"guild_id": {"type": "string", "pattern": guild_id}}},
            {"required": ["guild_name"], "properties": {"guild_name": {"type": "string", "pattern": guild_name}}},
        ],
        # a grant holds the request's roles: with grant, roles has at least one
        "if": {"required": ["grant"], "properties": {"grant": {"type": "object"}}},
        "then": {"required": ["roles"], "properties": {"roles": {"type": "array", "minItems": 1}}},
    }


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidRequestError("the body is empty; send a JSON object")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = _strict_loads(raw)  # what orjson refuses (64-bit overflow, say), the standard library decides
    if not isinstance(value, dict):
        raise InvalidRequestError(f"the body must be a JSON object, not {type(value).__name__}")
    return value


def _strict_loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequestError("the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits, 4300)
        raise InvalidRequestError("the body has a number too long to read (over 4300 digits)") from None
    except RecursionError:  # orjson stops at 1024 levels; the standard library overflows the stack before that
        raise InvalidRequestError("the body is nested too deeply (arrays or objects over 1000 levels)") from None


_FIELDS = frozenset(JoinBody.model_fields)


def _absent_empty(data: dict[str, Any]) -> dict[str, Any]:
    """An empty string (or null) counts as absent, for every field this API reads."""
    return {k: v for k, v in data.items() if k in _FIELDS and v != "" and v is not None}


def parse_join(data: dict[str, Any], *, egress_proxies: tuple[str, ...]) -> JoinRequest:
    try:
        body = JoinBody.model_validate(_absent_empty(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        if first["type"] == "missing":
            raise InvalidRequestError(f"{field} is required") from None
        raise InvalidRequestError(f"{field}: {first['msg']}") from None

    token = body.authorization.strip(SPACE_CHARS)
    if token[:7].lower() == "bearer ":
        token = token[7:].strip(SPACE_CHARS)
    if not token:
        raise InvalidRequestError("authorization is required")
    if looks_like_account_token(token):
        raise NotAnOAuthTokenError()
    # An OAuth2 access token is ASCII (RFC 6750's b64token); the one whitespace character str.isprintable()
    # lets through is the space.
    if not token.isascii() or not token.isprintable() or " " in token or len(token) > 512:
        raise InvalidRequestError("authorization: not an OAuth2 access token (unexpected characters or length)")

    if body.proxy is not None and body.proxy not in egress_proxies:
        raise ProxyNotAllowedError()

    if (body.guild_id is None) == (body.guild_name is None):
        which = "neither was given" if body.guild_id is None else "both were given"
        raise InvalidRequestError(f"exactly one of guild_id and guild_name is required ({which})")
    guild_id = invite = None
    if body.guild_id is not None:
        guild_id = body.guild_id.strip(SPACE_CHARS)
        if not is_snowflake(guild_id):
            raise InvalidRequestError("guild_id must be a server id (a snowflake: 17-20 digits)")
    else:
        assert body.guild_name is not None
        invite = parse_invite(body.guild_name)
        if invite is None:
            raise InvalidRequestError(
                "guild_name must be an invite code or an invite URL such as https://discord.gg/CODE"
            )

    roles = None
    if body.roles is not None:
        if len(body.roles) > 250:
            raise InvalidRequestError("roles: at most 250 role ids")
        for index, role in enumerate(body.roles):
            if not is_snowflake(role):
                raise InvalidRequestError(f"roles.{index} must be a role id (a snowflake: 17-20 digits)")
        roles = tuple(dict.fromkeys(body.roles))
    nick = None
    if body.nick is not None:
        nick = _WHITESPACE.sub(" ", body.nick).strip(" ")
        if has_control(nick):
            raise InvalidRequestError("nick: no control characters (NUL, DEL, C1; white space becomes a space)")
        if not 1 <= len(nick) <= 32:
            raise InvalidRequestError("nick must be 1-32 characters")
    options = MemberOptions(roles=roles, nick=nick, mute=body.mute, deaf=body.deaf)
    grant = parse_grant(body.grant) if body.grant is not None else None
    if grant is not None and not roles:
        raise InvalidRequestError("grant needs roles: give the roles this grant holds in `roles`")
    request = JoinRequest(
        authorization=Secret(token),
        guild_id=guild_id,
        invite_code=invite,
        options=options,
        proxy=body.proxy,
        grant=grant,
    )
    return request


def check_developer_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not DEVELOPER_ID.fullmatch(value):
        raise InvalidRequestError("Developer-Id header must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def check_idempotency_key(value: str | None) -> str | None:
    if not value:  # an empty header counts as absent, as an empty field does
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidRequestError("Idempotency-Key header must be 1-128 printable ASCII characters")
    return value


def check_content_type(value: str | None) -> None:
    media = (value or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise InvalidRequestError(f"Content-Type must be application/json, got {media or 'nothing'}", http_status=415)
