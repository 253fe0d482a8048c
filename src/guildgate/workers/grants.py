"""The grant sweep, in every ``serve`` process (``../shared/spec/access.md``, "Ending on time").

Every ``GUILDGATE_GRANT_SWEEP_INTERVAL`` seconds, and once at start (so grants that came due while nothing ran
end as soon as something runs again), each process claims due grants with a lease (``store/grants.py``) and ends
them, ``AT_ONCE`` at a time, until none is left. The leases are renewed while their ends wait on the rate limiter,
so a long wait never hands a grant to a second worker; a worker that dies loses its leases within a minute and
another takes its grants over. Ends go through the same limiter as joins: the few in flight per process queue in
the removal route's bucket for the server (a bucket of its own, apart from Add Guild Member's), and take global
slots only as the bucket lets them through, so a sweep of thousands draws no 429 and leaves the joins' global
slots free.

Then reminders (``GUILDGATE_GRANT_REMIND_BEFORE``: ``grant.ending_soon`` once per grant and offset, compared and
set in one statement so two processes never both emit it; an offset longer than the grant's whole life is
skipped: it was made already that close to its end), and every ``GUILDGATE_GRANT_SYNC_INTERVAL`` hours the sync
(once across the processes that share a Redis; each process on its own otherwise — the sync is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Final

from guildgate.discord.ratelimit import Windows
from guildgate.services.grant_ends import Ended, GrantEnds, Lease
from guildgate.services.grants import GrantService
from guildgate.store.grants import new_lease_token
from guildgate.store.models import GrantRow

log = logging.getLogger("guildgate.grants")

AT_ONCE: Final = 8  # ends in flight per process (each waits on the limiter for its bucket)


class GrantSweeper:
    def __init__(
        self,
        *,
        grants: GrantService,
        interval: float,
        remind_before: tuple[int, ...] = (),
        sync_hours: float = 0.0,
        windows: Windows | None = None,
    ) -> None:
        self.grants = grants
        self.ends: GrantEnds = grants.ends
        self.interval = interval
        self.remind_before = tuple(sorted(set(remind_before), reverse=True))
        self.sync_seconds = sync_hours * 3600
        self.windows = windows
        self._task: asyncio.Task[None] | None = None
        self._next_sync = time.monotonic() + self.sync_seconds

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="grant-sweep")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or Redis away for a moment: the next tick tries again
                log.warning(
                    "grant sweep failed (%s: %.300s); trying again in %s s", type(exc).__name__, exc, self.interval
                )
                log.debug("grant sweep failure", exc_info=True)
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        await self.sweep()
        if self.remind_before:
            await self.remind()
        if self.sync_seconds and time.monotonic() >= self._next_sync:
            self._next_sync = time.monotonic() + self.sync_seconds
            if await self._sync_turn():
                summary = await self.grants.sync()
                log.info("grant sync: %s", summary)

    async def sweep(self) -> dict[Ended, int]:
        """End every due grant this process can claim; how many ended each way."""
        counts = dict.fromkeys(Ended, 0)
        lease = Lease(self.grants.repo, new_lease_token())
        gate = asyncio.Semaphore(AT_ONCE)

        async def end(row: GrantRow) -> None:
            async with gate:
                try:
                    outcome, _ = await self.ends.end_held(row, token=lease.token)
                except Exception:
                    log.exception("grant %s: end failed unexpectedly; retried after its lease", row.id)
                    lease.ids.discard(row.id)
                    return
                lease.ids.discard(row.id)  # (cancelled: still held, given up by the sweep below)
                counts[outcome] += 1

        async with lease.renewing():
            try:
                while True:
                    rows = await self.grants.repo.claim_due(token=lease.token, limit=AT_ONCE * 2)
                    if not rows:
                        break
                    lease.ids.update(r.id for r in rows)
                    await asyncio.gather(*(end(r) for r in rows))
            except asyncio.CancelledError:  # stopping: hand what is still held to the other workers now
                if lease.ids:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self.grants.repo.release_all(sorted(lease.ids), token=lease.token))
                raise
        if any(counts.values()):
            log.info("grant sweep: %s", {k.value: v for k, v in counts.items() if v})
        return counts

    async def remind(self) -> int:
        """Emit the reminders that are due; how many."""
        now = datetime.now(UTC)
        horizon = timedelta(seconds=max(self.remind_before))
        sent = 0
        for grant, stored in await self.grants.repo.remind_candidates(now=now, horizon=horizon):
            assert grant.ends_at is not None
            done = {int(o) for o in json.loads(stored or "[]")}
            left = (grant.ends_at - now).total_seconds()
            due = [
                o
                for o in self.remind_before
                if o not in done and o >= left and grant.ends_at - timedelta(seconds=o) >= grant.created_at
            ]
            if not due:
                continue
            if await self.grants.repo.remind(grant, stored=stored, offsets=sorted(done | set(due)), ends_in=int(left)):
                sent += 1
        return sent

    async def _sync_turn(self) -> bool:
        """Whether this process runs this period's sync: the first to ask across a shared Redis."""
        if self.windows is None:
            return True
        try:
            return await self.windows.window_take("grant-sync", 1, max(self.sync_seconds - 60, 60)) is None
        except Exception:
            return True
