"""The fixture schema (part of the contract: docs/sandbox.md), validated with pydantic.

Beyond the contract's fields, every sandbox-only knob is optional: ``options`` (how Discord's undocumented
corners answer), per-route ``window`` / ``scope`` / ``bucket``, ``faults.seed``, guild ``screening``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from guildgate.core.invites import is_snowflake

PERMISSIONS: dict[str, int] = {
    "CREATE_INSTANT_INVITE": 1 << 0,
    "KICK_MEMBERS": 1 << 1,
    "BAN_MEMBERS": 1 << 2,
    "ADMINISTRATOR": 1 << 3,
    "MANAGE_GUILD": 1 << 5,
    "MUTE_MEMBERS": 1 << 22,
    "DEAFEN_MEMBERS": 1 << 23,
    "MANAGE_NICKNAMES": 1 << 27,
    "MANAGE_ROLES": 1 << 28,
}


class FixtureError(ValueError):
    pass


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _snowflake(value: str) -> str:
    if not is_snowflake(value):
        raise ValueError(f"{value!r} is not a snowflake (17-20 digits)")
    return value


class Application(_Model):
    id: str
    name: str = "App"
    client_id: str | None = None
    client_secret: str
    bot_token: str
    bot_user_id: str
    redirect_uris: list[str] = Field(default_factory=list)
    public_client: bool = False

    _ids = field_validator("id", "bot_user_id")(_snowflake)


class Role(_Model):
    id: str
    name: str
    position: int = 1
    color: int = Field(default=0, ge=0, le=0xFFFFFF)  # extra
    hoist: bool = False  # extra
    mentionable: bool = False  # extra
    managed: bool = False  # extra: an integration's role (a booster or another bot's); nobody can give or take it
    unicode_emoji: str | None = None  # extra

    _ids = field_validator("id")(_snowflake)


class Guild(_Model):
    id: str
    name: str
    icon: str | None = None
    invites: list[str] = Field(default_factory=list)
    bots: dict[str, list[str]] = Field(default_factory=dict)
    roles: list[Role] = Field(default_factory=list)
    bot_role_position: int = 1
    members: list[str] = Field(default_factory=list)
    bans: list[str] = Field(default_factory=list)
    screening: bool = False
    owner_id: str | None = None  # extra: the guild's owner (cannot be kicked); default a user not in the world
    member_roles: dict[str, list[str]] = Field(default_factory=dict)  # extra: roles members hold at the start

    _ids = field_validator("id")(_snowflake)

    @field_validator("owner_id")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return None if value is None else _snowflake(value)

    @model_validator(mode="after")
    def _member_roles(self) -> Guild:
        known = {r.id for r in self.roles}
        for user_id, role_ids in self.member_roles.items():
            if user_id not in self.members:
                raise ValueError(f"member_roles: {user_id} is not in this guild's members")
            unknown = [r for r in role_ids if r not in known]
            if unknown:
                raise ValueError(f"member_roles: {user_id} holds unknown role(s) {unknown}; known: {sorted(known)}")
        return self

    @field_validator("bots")
    @classmethod
    def _perms(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for app_id, perms in value.items():
            _snowflake(app_id)
            unknown = [p for p in perms if p not in PERMISSIONS]
            if unknown:
                raise ValueError(f"unknown permission(s) {unknown} for bot {app_id}; known: {sorted(PERMISSIONS)}")
        return value


class Token(_Model):
    access_token: str
    application_id: str
    scopes: list[str] = Field(default_factory=lambda: ["identify", "guilds.join"])
    expires_in: int = 604800
    refresh_token: str | None = None


class User(_Model):
    id: str
    username: str
    global_name: str | None = None
    guild_count: int = 0
    max_guilds: int = 100
    tokens: list[Token] = Field(default_factory=list)
    email: str | None = None  # extra: shown with the `email` scope
    verified: bool = True  # extra: shown with the `email` scope
    locale: str = "en-US"  # extra
    mfa_enabled: bool = False  # extra
    premium_type: int = Field(default=0, ge=0, le=3)  # extra: 0 none, 1 Nitro Classic, 2 Nitro, 3 Nitro Basic

    _ids = field_validator("id")(_snowflake)


class RouteLimit(_Model):
    limit: int = Field(ge=1)
    reset_after: float = Field(gt=0)
    window: Literal["sliding", "fixed"] | None = None
    scope: Literal["user", "shared"] = "user"
    bucket: str | None = None


class RateLimits(_Model):
    global_per_second: int | None = 50
    routes: dict[str, RouteLimit] = Field(default_factory=dict)
    invalid_requests_per_10_minutes: int | None = 10000
    window: Literal["sliding", "fixed"] = "sliding"
    ban_seconds: float = 3600.0


class RouteFault(_Model):
    error_rate: float = Field(default=0.0, ge=0, le=1)
    status: int = Field(default=502, ge=400, le=599)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    reset_rate: float = Field(default=0.0, ge=0, le=1)
    latency_ms: float = Field(default=0.0, ge=0)
    latency_after_ms: float = Field(default=0.0, ge=0)  # after the change is made: the answer is late, not the act
    hang_seconds: float = Field(default=120.0, ge=0)
    when: Literal["before", "after"] = "before"


class Faults(_Model):
    latency_ms: float = Field(default=0.0, ge=0)
    seed: int | None = None
    routes: dict[str, RouteFault] = Field(default_factory=dict)


class Options(_Model):
    bot_not_in_guild: Literal["10004", "50001"] = "10004"
    users_me_without_identify: Literal["401", "50026"] = "401"
    code_ttl_seconds: float = 100.0
    token_expires_in: int = 604800


class Fixture(_Model):
    applications: list[Application] = Field(default_factory=list)
    guilds: list[Guild] = Field(default_factory=list)
    users: list[User] = Field(default_factory=list)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    faults: Faults = Field(default_factory=Faults)
    options: Options = Field(default_factory=Options)


def parse_fixture(data: object, *, source: str = "fixture") -> Fixture:
    try:
        return Fixture.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
        raise FixtureError(f"{source} is not a valid sandbox fixture: {problems}") from None


def load_fixture(path: str | Path | None) -> Fixture:
    if path is None:
        text = resources.files("guildgate.sandbox").joinpath("demo.json").read_text()
        return parse_fixture(json.loads(text), source="the demo fixture")
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise FixtureError(f"fixture file {p} does not exist") from None
    except json.JSONDecodeError as exc:
        raise FixtureError(f"fixture file {p} is not JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_fixture(data, source=f"fixture file {p}")
