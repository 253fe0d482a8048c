"""Acting on one grant at Discord while holding its lease: ending it (the overlap rule, kick or role removal, what
each of Discord's answers means), giving its roles back. Shared by the service (API, CLI, dashboard, sync) and
the sweep (``workers/grants.py``).

What an answer means (``../shared/spec/access.md``, "Ending on time"): 10007 Unknown Member ends the grant with
action ``none`` (the person is gone); 10011 Unknown Role on a removal counts as removed; 50013, 10004, 50001 (and
any other refusal: a retry would get the same answer) make it ``end_failed`` with ``last_error`` naming the
outcome code and Discord's code; 5xx, timeouts and rate-limit waits leave it due, retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from guildgate.core.errors import DiscordRefusedError, JoinError
from guildgate.core.grants import EndAction, EndReason, Grant, GrantState, OnEnd, end_plan
from guildgate.core.outcomes import Outcome
from guildgate.core.ports import AppCredentials
from guildgate.discord.members import UNKNOWN_MEMBER
from guildgate.discord.rest import DiscordRest
from guildgate.store.apps import AppRepo
from guildgate.store.base import NotFoundError
from guildgate.store.grants import LEASE_SECONDS, GrantRepo, pending_reason, to_grant
from guildgate.store.models import GrantRow
from guildgate.web import metrics

log = logging.getLogger("guildgate.grants")

CALL_SECONDS: Final = 45.0  # how long one call may wait on the limiter (the lease is renewed meanwhile)
ANSWER_SECONDS: Final = 15.0  # and then how long Discord has to answer it
RENEW_EVERY: Final = LEASE_SECONDS / 3
BACKOFF_FIRST: Final = 5.0
BACKOFF_MOST: Final = 300.0


class Ended(StrEnum):
    ENDED = "ended"
    FAILED = "failed"  # end_failed: a refusal that will not heal by itself
    RETRY = "retry"  # a transient failure: still due, tried again after a backoff
    LOST = "lost"  # the lease was taken over: another worker has it, nothing recorded here


def utcnow() -> datetime:
    return datetime.now(UTC)


def backoff(tries: int) -> timedelta:
    base = min(BACKOFF_FIRST * 2 ** max(tries - 1, 0), BACKOFF_MOST)
    return timedelta(seconds=base * (0.8 + 0.4 * random.random()))


def describe(error: Exception) -> str:
    """``last_error``: the outcome code and Discord's code, then what Discord said."""
    if isinstance(error, DiscordRefusedError):
        code = f"Discord {error.discord_code}" if error.discord_code is not None else f"HTTP {error.discord_status}"
        return f"{error.outcome.value} ({code}): {error.detail}"[:400]
    if isinstance(error, JoinError):
        return f"{error.outcome.value}: {error.detail}"[:400]
    return f"{type(error).__name__}: {error}"[:400]


def reason_text(grant_id: str, why: str) -> str:
    return f"guildgate grant {grant_id}: {why}"


class Lease:
    """Leases held by one worker (one token), renewed in the background every RENEW_EVERY seconds while held."""

    def __init__(self, repo: GrantRepo, token: str) -> None:
        self.repo, self.token = repo, token
        self.ids: set[str] = set()

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[Lease]:
        task = asyncio.create_task(self._renew())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            if self.ids:
                try:
                    await self.repo.renew(sorted(self.ids), token=self.token)
                except Exception:  # the next renewal tries again; a lost lease only means another worker takes over
                    log.warning("could not renew grant leases", exc_info=True)


class GrantEnds:
    def __init__(self, *, repo: GrantRepo, apps: AppRepo, discord: DiscordRest) -> None:
        self.repo, self.apps, self.discord = repo, apps, discord

    async def credentials(self, app_id: str, app: AppCredentials | None = None) -> AppCredentials:
        if app is not None and app.client_id == app_id:
            return app
        return await self.apps.credentials(app_id)

    async def end_held(
        self,
        row: GrantRow,
        *,
        token: str,
        reason: EndReason | None = None,
        on_end: OnEnd | None = None,
        app: AppCredentials | None = None,
    ) -> tuple[Ended, Grant | None]:
        """End a grant whose lease ``token`` holds. Returns what happened and the grant as written (None when
        the lease was lost)."""
        grant = to_grant(row)
        why = reason or pending_reason(row)
        action, error = await self._act(grant, on_end=on_end or grant.on_end, why=why, app=app)
        now = utcnow()
        if error is not None and isinstance(error, DiscordRefusedError):
            failed = await self.repo.change(
                grant.id,
                values={
                    "state": GrantState.END_FAILED.value,
                    "last_error": describe(error),
                    "end_reason": why.value,
                    "next_try_at": None,
                },
                event="grant.end_failed",
                lease_token=token,
                release=True,
            )
            log.warning("grant %s could not be ended: %s", grant.id, describe(error))
            return (Ended.FAILED, failed) if failed is not None else (Ended.LOST, None)
        if error is not None:
            tries = row.tries + 1
            held = await self.repo.release(
                grant.id, token=token, values={"tries": tries, "next_try_at": now + backoff(tries)}
            )
            log.info("grant %s: end retried later (%s)", grant.id, describe(error))
            return (Ended.RETRY, grant) if held else (Ended.LOST, None)
        assert action is not None
        ended = await self.repo.change(
            grant.id,
            values={
                "state": GrantState.ENDED.value,
                "ended_at": now,
                "end_reason": why.value,
                "end_action": action.value,
                "last_error": None,
                "next_try_at": None,
                "tries": 0,
            },
            event="grant.ended",
            extra={"action": action.value},
            lease_token=token,
            release=True,
        )
        if ended is None:
            return Ended.LOST, None
        if why is EndReason.EXPIRED and grant.ends_at is not None:
            metrics.GRANT_END_LAG.observe(max((now - grant.ends_at).total_seconds(), 0.0))
        return Ended.ENDED, ended

    async def _act(
        self, grant: Grant, *, on_end: OnEnd, why: EndReason, app: AppCredentials | None
    ) -> tuple[EndAction | None, Exception | None]:
        """Do the end at Discord: (action, None) when done, (None, error) when not."""
        if grant.absent_since is not None or on_end is OnEnd.KEEP:
            return EndAction.NONE, None
        now = utcnow()
        # Other grants that are due now end too (here or on another worker): they keep nothing.
        others = [g for g in await self.repo.member_grants(guild_id=grant.guild_id, user_id=grant.user_id)]
        others = [g for g in others if g.id != grant.id and not g.due(now)]
        plan = end_plan(grant, on_end=on_end, others=others)
        if plan.nothing:
            return EndAction.NONE, None
        try:
            creds = await self.credentials(grant.app_id, app)
        except NotFoundError:
            return None, DiscordRefusedError(
                "the grant's app is no longer added", outcome=Outcome.DISCORD_ERROR, discord_status=0, discord_code=None
            )
        text = reason_text(grant.id, why.value)
        try:
            if plan.kick:
                await self.discord.kick_member(
                    app=creds,
                    guild_id=grant.guild_id,
                    user_id=grant.user_id,
                    deadline=_deadline(),
                    reason=text,
                    answer_within=ANSWER_SECONDS,
                )
                return EndAction.KICKED, None
            for role in plan.remove:
                await self.discord.remove_member_role(
                    app=creds,
                    guild_id=grant.guild_id,
                    user_id=grant.user_id,
                    role_id=role,
                    deadline=_deadline(),
                    reason=text,
                    answer_within=ANSWER_SECONDS,
                )
            return EndAction.ROLES_REMOVED, None
        except DiscordRefusedError as exc:
            if exc.discord_code == UNKNOWN_MEMBER:
                return EndAction.NONE, None
            return None, exc
        except JoinError as exc:  # DiscordUnavailableError, RateLimitedError: transient
            return None, exc

    async def give_roles(
        self, grant: Grant, *, roles: tuple[str, ...], why: str, app: AppCredentials | None = None
    ) -> None:
        """Add Guild Member Role for each of ``roles`` (raises the first refusal)."""
        creds = await self.credentials(grant.app_id, app)
        for role in roles:
            await self.discord.add_member_role(
                app=creds,
                guild_id=grant.guild_id,
                user_id=grant.user_id,
                role_id=role,
                deadline=_deadline(),
                reason=reason_text(grant.id, why),
                answer_within=ANSWER_SECONDS,
            )


def _deadline() -> float:
    return time.monotonic() + CALL_SECONDS
