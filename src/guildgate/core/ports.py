"""What the core needs from the outside world, as Protocols."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from guildgate.core.outcomes import Outcome, RecordState, Source
from guildgate.core.secret import Secret


@dataclass(frozen=True, slots=True)
class GuildRef:
    id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class UserRef:
    id: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class Added:
    """Add Guild Member's result: whether this call added the user, and Discord's last HTTP status. The two can
    disagree: after a lost answer, the retry's 204 says "a member", yet the lost attempt added them."""

    joined: bool
    status: int


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """One operator app, with its secrets decrypted for the length of a request."""

    client_id: str
    bot_token: Secret
    client_secret: Secret


@dataclass(frozen=True, slots=True)
class MemberOptions:
    roles: tuple[str, ...] | None = None
    nick: str | None = None
    mute: bool | None = None
    deaf: bool | None = None


@dataclass(frozen=True, slots=True)
class NewRecord:
    app_id: str
    key_id: str | None
    source: Source
    developer_id: str | None = None
    guild_id: str | None = None
    guild_name: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    link_id: str | None = None
    grant_id: str | None = None  # the grant this join makes or renews (picked before the join; join.succeeded names it)


@dataclass(slots=True)
class RecordUpdate:
    state: RecordState
    code: Outcome
    detail: str | None = None
    guild_id: str | None = None
    guild_name: str | None = None
    user_id: str | None = None
    discord_status: int | None = None
    discord_code: int | None = None
    cost_ms: float | None = None


class Ticket(Protocol):
    def close(self) -> None: ...


class DiscordPort(Protocol):
    def precheck(self, *, app: AppCredentials, guild_id: str, deadline: float) -> Ticket:
        """Raise RateLimitedError at once when the requests already queued to add members to ``guild_id`` cannot be
        sent before the deadline: such a join spends nothing (not even the identify call). Otherwise the join
        counts as queued until its ticket is closed (``admission`` closes it; close it when giving up)."""
        ...

    def admission(
        self, *, app: AppCredentials, guild_id: str, deadline: float, ticket: Ticket | None = None
    ) -> AbstractAsyncContextManager[object]:
        """Take the slot to add a member to ``guild_id`` (its bucket and the bot's global limit), waiting for
        one; raises RateLimitedError at once when none comes before the deadline. Pass the slot to add_member."""
        ...

    async def resolve_invite(self, code: str, *, app: AppCredentials, deadline: float) -> GuildRef: ...

    async def current_user(
        self, token: Secret, *, app: AppCredentials, deadline: float, proxy: str | None = None
    ) -> UserRef:
        """The token's user. A token Discord refused for ``app`` moments ago is refused again without a call."""
        ...

    async def add_member(
        self,
        *,
        app: AppCredentials,
        guild_id: str,
        user_id: str,
        token: Secret,
        options: MemberOptions,
        deadline: float,
        proxy: str | None = None,
        slot: object | None = None,
    ) -> Added:
        """``joined``: the user was added (201, or a 204 after a lost answer whose attempt added them); False when
        already a member (204). ``status``: Discord's last HTTP status."""
        ...


class JoinCaps(Protocol):
    async def take(self, *, guild_id: str, link_id: str | None) -> None:
        """Count one join to ``guild_id`` (through ``link_id``); raise VelocityCappedError when over a cap."""
        ...


class RecordStore(Protocol):
    """Every write is queued before the method first suspends: a caller cancelled while awaiting one (a
    deadline, a shutdown) still has it made. The join pipeline relies on this instead of a shielding task."""

    async def create(self, new: NewRecord, *, finished: RecordUpdate | None = None) -> str: ...

    async def finish(self, record_id: str, update: RecordUpdate) -> None: ...

    async def sending(
        self, record_id: str, *, guild_id: str, guild_name: str | None, user_id: str, grant_id: str | None = None
    ) -> None:
        """Note, durably, who is about to be added where: what a restart needs to find out what happened; and,
        when known only now (a link's grant, a grant by external_ref in a server named by an invite), the grant the
        join makes or renews."""
        ...


@dataclass(frozen=True, slots=True)
class PendingRecord:
    id: str
    app_id: str
    guild_id: str | None
    user_id: str | None
