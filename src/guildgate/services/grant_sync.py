"""Sync and repair (``../shared/spec/access.md``, "Sync and repair"): for each active grant, Get Guild Member;
roles that are missing are given again (``grant.repaired`` with ``roles_restored``); a person no longer in the
server marks the grant ``absent_since`` (``grant.absent``), and nothing else. ``end_failed`` grants are tried
again. Each grant is looked at under its lease, so the sweep and a sync never act on one grant at once; a grant
whose lease another holds is left for the next sync (and counted as failed: it was not checked)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import or_

from guildgate.core.errors import JoinError
from guildgate.core.grants import Grant, GrantState
from guildgate.services.grant_ends import CALL_SECONDS, Ended, GrantEnds, utcnow
from guildgate.store.base import NotFoundError
from guildgate.store.grants import GrantRepo, new_lease_token
from guildgate.store.models import GrantRow

log = logging.getLogger("guildgate.grants")
AT_ONCE: Final = 8  # grants looked at together; the limiter keeps the calls within Discord's limits
BATCH: Final = 500


@dataclass
class SyncSummary:
    checked: int = 0  # active grants looked up at Discord
    repaired: int = 0  # grants whose missing roles were given again
    absent: int = 0  # grants whose person was found absent in this sync (newly or still; the grant stays active)
    retried: int = 0  # end_failed grants tried again and ended
    failed: int = 0  # grants that could not be checked, repaired or ended (end_failed ones keep their reason)


async def sync_grants(
    *,
    repo: GrantRepo,
    ends: GrantEnds,
    app_id: str | None,
    guild_id: str | None,
    dry_run: bool,
    progress: Callable[[int, int], None] | None,
) -> SyncSummary:
    summary = SyncSummary()
    where = [or_(GrantRow.state == GrantState.ACTIVE.value, GrantRow.state == GrantState.END_FAILED.value)]
    if app_id is not None:
        where.append(GrantRow.app_id == app_id)
    if guild_id is not None:
        where.append(GrantRow.guild_id == guild_id)
    total = await repo.count(*where)
    done = 0
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(grant: Grant) -> None:
        nonlocal done
        async with gate:
            try:
                if grant.state is GrantState.END_FAILED:
                    await _retry_end(grant, repo=repo, ends=ends, dry_run=dry_run, summary=summary)
                else:
                    await _check(grant, repo=repo, ends=ends, dry_run=dry_run, summary=summary)
            except (JoinError, NotFoundError) as exc:
                summary.failed += 1
                log.warning("grant %s: sync failed: %s", grant.id, exc)
            done += 1
            if progress is not None:
                progress(done, total)

    for state in (GrantState.ACTIVE, GrantState.END_FAILED):
        after = ""
        while True:
            batch = await repo.in_state(state=state, app_id=app_id, guild_id=guild_id, after=after, limit=BATCH)
            if not batch:
                break
            after = batch[-1].id
            await asyncio.gather(*(one(g) for g in batch))
    return summary


async def _check(grant: Grant, *, repo: GrantRepo, ends: GrantEnds, dry_run: bool, summary: SyncSummary) -> None:
    creds = await ends.credentials(grant.app_id)
    current = await ends.discord.member_roles(
        app=creds, guild_id=grant.guild_id, user_id=grant.user_id, deadline=time.monotonic() + CALL_SECONDS
    )
    summary.checked += 1
    if current is None:
        summary.absent += 1
        if grant.absent_since is None and not dry_run:
            await _write(repo, grant, values={"absent_since": utcnow()}, event="grant.absent")
        return
    missing = tuple(r for r in grant.roles if r not in current)
    if not missing or grant.absent_since is not None:  # back, but not through guildgate: nothing else
        return
    summary.repaired += 1
    if dry_run:
        return
    token = new_lease_token()
    if await repo.claim(grant.id, token=token) is None:
        summary.repaired -= 1
        summary.failed += 1
        return
    try:
        await ends.give_roles(grant, roles=missing, why="repaired", app=creds)
        await repo.change(
            grant.id,
            values={},
            event="grant.repaired",
            extra={"roles_restored": list(missing)},
            lease_token=token,
        )
    except JoinError:
        summary.repaired -= 1
        raise
    finally:
        await repo.release(grant.id, token=token)


async def _write(repo: GrantRepo, grant: Grant, *, values: dict[str, object], event: str) -> None:
    token = new_lease_token()
    if await repo.claim(grant.id, token=token) is None:
        return
    await repo.change(grant.id, values=values, event=event, lease_token=token, release=True)


async def _retry_end(grant: Grant, *, repo: GrantRepo, ends: GrantEnds, dry_run: bool, summary: SyncSummary) -> None:
    if dry_run:
        summary.retried += 1
        return
    token = new_lease_token()
    row = await repo.claim(grant.id, token=token)
    if row is None:
        summary.failed += 1
        return
    outcome, _ = await ends.end_held(row, token=token)
    if outcome is Ended.ENDED:
        summary.retried += 1
    else:
        summary.failed += 1
        await repo.release(grant.id, token=token)
