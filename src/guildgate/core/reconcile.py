"""Settle records left ``pending`` by a process that died mid-join (SIGKILL, power loss, OOM).

A join writes who it is about to add, and where, before it sends Add Guild Member (``RecordStore.sending``).
So a pending record either has no user (nothing was sent to Discord: ``failed``), or names a user and a server,
and Get Guild Member says what happened: a member (``succeeded``, ``joined``), not a member (``failed``), or
Discord would not say (``unknown``). A request that is in fact still running and finishes later overwrites the
settlement with its own answer, so settling a live record early is harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from guildgate.core.errors import JoinError
from guildgate.core.outcomes import Outcome, RecordState
from guildgate.core.ports import AppCredentials, PendingRecord, RecordUpdate

NOTHING_SENT = "interrupted before anything was sent to Discord (settled at start-up)"


class PendingRecords(Protocol):
    async def pending(self, *, limit: int) -> list[PendingRecord]: ...

    async def settle(self, record_id: str, update: RecordUpdate) -> bool: ...


class MemberLookup(Protocol):
    async def get_member(self, *, app: AppCredentials, guild_id: str, user_id: str, deadline: float) -> bool | None: ...


class Apps(Protocol):
    async def credentials(self, client_id: str) -> AppCredentials: ...


@dataclass(frozen=True, slots=True)
class Settled:
    counts: Counter[str]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


AT_ONCE = 16  # lookups under way together: the limiter still keeps them within Discord's limits


async def reconcile(
    *,
    records: PendingRecords,
    discord: MemberLookup,
    apps: Apps,
    batch: int = 200,
    seconds_per_call: float = 10.0,
    at_once: int = AT_ONCE,
    progress: Callable[[int], None] | None = None,
) -> Settled:
    """Settle every pending record (in batches, ``at_once`` lookups together: one at a time, a crash under load
    against a Discord that does not answer held the start for ten seconds a record); returns how many ended in
    each state. ``progress`` is told how many are settled so far after each batch."""
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    gate = asyncio.Semaphore(at_once)

    async def settle(record: PendingRecord) -> None:
        async with gate:
            update = await _verdict(record, discord=discord, apps=apps, seconds=seconds_per_call)
        if await records.settle(record.id, update):
            counts[update.state.value] += 1

    while True:
        found = [r for r in await records.pending(limit=batch) if r.id not in seen]
        if not found:
            return Settled(counts)
        seen.update(r.id for r in found)
        await asyncio.gather(*(settle(r) for r in found))
        if progress is not None:
            progress(sum(counts.values()))


async def _verdict(record: PendingRecord, *, discord: MemberLookup, apps: Apps, seconds: float) -> RecordUpdate:
    if record.user_id is None or record.guild_id is None:
        return RecordUpdate(state=RecordState.FAILED, code=Outcome.DISCORD_UNAVAILABLE, detail=NOTHING_SENT)
    try:
        app = await apps.credentials(record.app_id)
        member = await discord.get_member(
            app=app, guild_id=record.guild_id, user_id=record.user_id, deadline=time.monotonic() + seconds
        )
    except (JoinError, LookupError, ValueError):
        member = None
    if member is True:
        return RecordUpdate(
            state=RecordState.SUCCEEDED,
            code=Outcome.JOINED,
            detail="the answer was lost; Get Guild Member shows the user in the server (settled at start-up)",
            discord_status=200,
        )
    if member is False:
        return RecordUpdate(
            state=RecordState.FAILED,
            code=Outcome.DISCORD_UNAVAILABLE,
            detail="interrupted; Get Guild Member shows the user is not in the server (settled at start-up)",
            discord_status=404,
        )
    return RecordUpdate(
        state=RecordState.UNKNOWN,
        code=Outcome.DISCORD_UNAVAILABLE,
        detail="interrupted after sending, and Discord would not say whether the user got in",
    )
