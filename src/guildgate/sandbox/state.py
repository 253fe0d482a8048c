"""The sandbox's world: applications, guilds, users, OAuth2 grants. Built from a fixture, changed by calls."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from guildgate.sandbox.fixture import PERMISSIONS, Application, Fixture
from guildgate.sandbox.objects import bot_role_id, member_object


@dataclass
class Grant:
    """One authorization: the access and refresh tokens a user gave an application."""

    id: str
    user_id: str
    app_id: str
    scopes: list[str]
    access_token: str
    refresh_token: str | None
    expires_at: float
    revoked: bool = False

    @property
    def valid(self) -> bool:
        return not self.revoked and self.expires_at > time.time()


@dataclass
class Member:
    user_id: str
    roles: list[str]
    nick: str | None = None
    mute: bool = False
    deaf: bool = False
    joined_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))
    pending: bool = False
    flags: int = 0


@dataclass
class GuildState:
    id: str
    name: str
    icon: str | None
    invites: list[str]
    bots: dict[str, int]
    roles: dict[str, dict[str, Any]]
    bot_role_position: int
    members: dict[str, Member]
    bans: set[str]
    screening: bool
    owner_id: str = "1000000000000000001"
    left: set[str] = field(default_factory=set)


@dataclass
class UserState:
    id: str
    username: str
    global_name: str | None
    guild_count: int
    max_guilds: int
    email: str | None = None
    verified: bool = True
    locale: str = "en-US"
    mfa_enabled: bool = False
    premium_type: int = 0


@dataclass
class AuthCode:
    code: str
    app_id: str
    user_id: str
    scopes: list[str]
    redirect_uri: str | None
    challenge: str | None
    expires_at: float
    used: bool = False


class World:
    def __init__(self, fixture: Fixture) -> None:
        self.fixture = fixture
        self.apps: dict[str, Application] = {a.id: a for a in fixture.applications}
        self.apps_by_client: dict[str, Application] = {(a.client_id or a.id): a for a in fixture.applications}
        self.bots: dict[str, Application] = {a.bot_token: a for a in fixture.applications}
        self.guilds: dict[str, GuildState] = {}
        self.invites: dict[str, str] = {}
        for g in fixture.guilds:
            bots = {}
            for app_id, names in g.bots.items():
                bits = 0
                for name in names:
                    bits |= PERMISSIONS[name]
                bots[app_id] = bits
            members = {uid: Member(user_id=uid, roles=list(g.member_roles.get(uid, []))) for uid in g.members}
            for app_id in g.bots:
                app = self.apps.get(app_id)
                if app is not None:
                    # A bot joins with its managed role, which carries the permissions it was invited with.
                    members[app.bot_user_id] = Member(user_id=app.bot_user_id, roles=[bot_role_id(g.id, app_id)])
            self.guilds[g.id] = GuildState(
                id=g.id,
                name=g.name,
                icon=g.icon,
                invites=list(g.invites),
                bots=bots,
                roles={r.id: r.model_dump() for r in g.roles},
                bot_role_position=g.bot_role_position,
                members=members,
                bans=set(g.bans),
                screening=g.screening,
                owner_id=g.owner_id or "1000000000000000001",
            )
            for code in g.invites:
                self.invites[code] = g.id
        self.users: dict[str, UserState] = {}
        self.grants: dict[str, Grant] = {}  # by access token
        self.refresh: dict[str, Grant] = {}
        self.codes: dict[str, AuthCode] = {}
        # Successful member changes made through the API, by "GUILD/USER/ROLE" or "GUILD/USER", and their
        # audit entries (with the decoded X-Audit-Log-Reason): what /_sandbox/stats and /_sandbox/audit show.
        self.role_additions: Counter[str] = Counter()
        self.role_removals: Counter[str] = Counter()
        self.kicks: Counter[str] = Counter()
        self.audit: list[dict[str, Any]] = []
        now = time.time()
        for u in fixture.users:
            self.users[u.id] = UserState(
                id=u.id,
                username=u.username,
                global_name=u.global_name,
                guild_count=u.guild_count,
                max_guilds=u.max_guilds,
                email=u.email,
                verified=u.verified,
                locale=u.locale,
                mfa_enabled=u.mfa_enabled,
                premium_type=u.premium_type,
            )
            for t in u.tokens:
                grant = Grant(
                    id=secrets.token_hex(8),
                    user_id=u.id,
                    app_id=t.application_id,
                    scopes=list(t.scopes),
                    access_token=t.access_token,
                    refresh_token=t.refresh_token,
                    expires_at=now + t.expires_in,
                )
                self.grants[t.access_token] = grant
                if t.refresh_token:
                    self.refresh[t.refresh_token] = grant

    # ---- tokens -------------------------------------------------------------------------------------
    def grant(self, *, user_id: str, app_id: str, scopes: list[str], expires_in: int | None = None) -> Grant:
        ttl = self.fixture.options.token_expires_in if expires_in is None else expires_in
        grant = Grant(
            id=secrets.token_hex(8),
            user_id=user_id,
            app_id=app_id,
            scopes=scopes,
            access_token=secrets.token_urlsafe(22),
            refresh_token=secrets.token_urlsafe(22),
            expires_at=time.time() + ttl,
        )
        self.grants[grant.access_token] = grant
        assert grant.refresh_token is not None
        self.refresh[grant.refresh_token] = grant
        return grant

    def revoke(self, token: str) -> None:
        grant = self.grants.get(token) or self.refresh.get(token)
        if grant is None:
            return
        for g in list(self.grants.values()) + list(self.refresh.values()):
            if g.id == grant.id:
                g.revoked = True

    def new_code(
        self, *, app_id: str, user_id: str, scopes: list[str], redirect_uri: str | None, challenge: str | None
    ) -> str:
        code = secrets.token_urlsafe(22)
        self.codes[code] = AuthCode(
            code=code,
            app_id=app_id,
            user_id=user_id,
            scopes=scopes,
            redirect_uri=redirect_uri,
            challenge=challenge,
            expires_at=time.time() + self.fixture.options.code_ttl_seconds,
        )
        return code

    def snapshot(self) -> dict[str, Any]:
        return {
            "guilds": {
                g.id: {
                    "name": g.name,
                    "members": {uid: member_object(self, m) for uid, m in g.members.items()},
                    "bans": sorted(g.bans),
                }
                for g in self.guilds.values()
            },
            "users": {u.id: {"username": u.username, "guild_count": u.guild_count} for u in self.users.values()},
            "grants": [
                {
                    "id": g.id,
                    "user_id": g.user_id,
                    "app_id": g.app_id,
                    "scopes": g.scopes,
                    "revoked": g.revoked,
                    "valid": g.valid,
                    "token_fingerprint": hashlib.sha256(g.access_token.encode()).hexdigest()[:12],
                }
                for g in {g.id: g for g in self.grants.values()}.values()
            ],
        }


def pkce_matches(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode()).digest()
    return secrets.compare_digest(base64.urlsafe_b64encode(digest).decode().rstrip("="), challenge)
