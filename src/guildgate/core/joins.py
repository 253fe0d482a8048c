"""The join pipeline: resolve guild -> identify user -> add member, against the ports.

The record is created before anything is sent to Discord and always finished, also when the request is
cancelled or times out: a RecordStore queues each write before it first suspends, so a cancelled caller's
write is still made (see core.ports.RecordStore) — no shielding task per write is needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from guildgate.core.access import GrantAsk
from guildgate.core.errors import DiscordRefusedError, DiscordUnavailableError, JoinError
from guildgate.core.outcomes import Outcome, RecordState
from guildgate.core.ports import (
    AppCredentials,
    DiscordPort,
    GuildRef,
    JoinCaps,
    MemberOptions,
    NewRecord,
    RecordStore,
    RecordUpdate,
    Ticket,
)
from guildgate.core.secret import Secret

ANSWER_MARGIN = 0.5  # seconds kept for finishing the record and answering (a loaded host needs them)


@dataclass(frozen=True, slots=True)
class JoinRequest:
    authorization: Secret
    guild_id: str | None = None
    invite_code: str | None = None
    options: MemberOptions = field(default_factory=MemberOptions)
    proxy: str | None = None
    grant: GrantAsk | None = None  # the join API's ``grant`` field: a grant to make when the join succeeds


# Called once the user is known, before anything is added at Discord: (guild id, user id) -> the id of the grant
# this join makes or renews (noted on the record), or None; raise a JoinError to refuse the join (its record is
# finished with that error, nothing is added).
Admit = Callable[[str, str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """A join the pipeline carried through: its record, its outcome (joined or already a member), the server and
    the user. The API writes it into its envelope (web/errors.py); the client reads that back as its JoinResult."""

    record_id: str
    outcome: Outcome
    guild: GuildRef
    user_id: str
    discord_status: int  # Add Guild Member's last HTTP status (a join whose answer was lost: the retry's 204)

    @property
    def joined(self) -> bool:
        return self.outcome is Outcome.JOINED


class RecordedJoinError(Exception):
    """A JoinError together with the id of the record that holds it."""

    def __init__(self, error: JoinError, record_id: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.record_id = record_id


def update_for_error(error: JoinError, **known: str | None) -> RecordUpdate:
    state = RecordState.FAILED
    discord_status: int | None = None
    discord_code: int | None = None
    if isinstance(error, DiscordRefusedError):
        discord_status, discord_code = error.discord_status, error.discord_code
    elif isinstance(error, DiscordUnavailableError):
        discord_status = error.discord_status
        if error.maybe_sent:
            state = RecordState.UNKNOWN
    return RecordUpdate(
        state=state,
        code=error.outcome,
        detail=error.detail or None,
        discord_status=discord_status,
        discord_code=discord_code,
        guild_id=known.get("guild_id"),
        guild_name=known.get("guild_name"),
        user_id=known.get("user_id"),
    )


async def record_refusal(records: RecordStore, new: NewRecord, error: JoinError, started: float) -> str:
    """A request refused before any Discord call still gets a (finished) record."""
    update = update_for_error(error, guild_id=new.guild_id, guild_name=new.guild_name)
    update.cost_ms = (time.perf_counter() - started) * 1000
    return await records.create(new, finished=update)


async def join(
    request: JoinRequest,
    *,
    app: AppCredentials,
    new_record: NewRecord,
    discord: DiscordPort,
    records: RecordStore,
    deadline: float,
    started: float,
    caps: JoinCaps | None = None,
    admit: Admit | None = None,
) -> JoinOutcome:
    """Run one join. Returns a JoinOutcome, or raises RecordedJoinError carrying the record id.

    ``deadline`` is a ``time.monotonic()`` instant; ``started`` a ``time.perf_counter()`` instant. ``admit``: see
    ``Admit``; awaited right after the user is identified.
    """
    ticket: Ticket | None = None
    if request.guild_id is not None:
        # A join sure to wait past its deadline for this server is refused before anything else: its record is
        # written once, already finished (a flood past the limits costs one write a request, not two).
        try:
            ticket = discord.precheck(app=app, guild_id=request.guild_id, deadline=deadline)
        except JoinError as exc:
            record_id = await record_refusal(records, new_record, exc, started)
            raise RecordedJoinError(exc, record_id) from None
    # The record exists before anything is sent to Discord (the contract), and an idempotent request's row
    # claims its key before any call.
    try:
        record_id = await records.create(new_record)
    except BaseException:
        if ticket is not None:
            ticket.close()
        raise
    known: dict[str, str | None] = {"guild_id": request.guild_id, "guild_name": new_record.guild_name}
    update: RecordUpdate | None = None
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DiscordUnavailableError("request deadline passed before any Discord call", http_status=504)
        # Stop a little before the deadline so the record and the answer still make it in time.
        async with asyncio.timeout(remaining - min(ANSWER_MARGIN, remaining / 8)):
            result = await _run(
                request,
                app=app,
                discord=discord,
                records=records,
                record_id=record_id,
                known=known,
                deadline=deadline,
                caps=caps,
                link_id=new_record.link_id,
                ticket=ticket,
                admit=admit,
            )
        update = RecordUpdate(
            state=RecordState.SUCCEEDED,
            code=result.outcome,
            guild_id=result.guild.id,
            guild_name=result.guild.name,
            user_id=result.user_id,
            discord_status=result.discord_status,
        )
        return result
    except TimeoutError:
        error: JoinError = DiscordUnavailableError(
            "the request deadline passed while waiting for Discord",
            http_status=504,
            maybe_sent=known.get("sending") == "yes",
        )
        update = update_for_error(error, **known)
        raise RecordedJoinError(error, record_id) from None
    except JoinError as exc:
        if isinstance(exc, DiscordUnavailableError) and known.get("sending") == "yes":
            exc.maybe_sent = True
        update = update_for_error(exc, **known)
        raise RecordedJoinError(exc, record_id) from None
    except BaseException:
        update = RecordUpdate(
            state=RecordState.UNKNOWN if known.get("sending") == "yes" else RecordState.FAILED,
            code=Outcome.DISCORD_UNAVAILABLE,
            detail="the request was interrupted",
            guild_id=known.get("guild_id"),
            guild_name=known.get("guild_name"),
            user_id=known.get("user_id"),
        )
        raise
    finally:
        if update is not None:
            update.cost_ms = (time.perf_counter() - started) * 1000
            await records.finish(record_id, update)


async def _run(
    request: JoinRequest,
    *,
    app: AppCredentials,
    discord: DiscordPort,
    records: RecordStore,
    record_id: str,
    known: dict[str, str | None],
    deadline: float,
    caps: JoinCaps | None,
    link_id: str | None,
    ticket: Ticket | None,
    admit: Admit | None = None,
) -> JoinOutcome:
    try:
        if request.guild_id is not None:  # (checked against the limiter before its record was written: join())
            guild = GuildRef(id=request.guild_id, name=known.get("guild_name"))
        else:
            assert request.invite_code is not None
            guild = await discord.resolve_invite(request.invite_code, app=app, deadline=deadline)
            # A join that is sure to wait past its deadline for this server spends nothing, not even the identify.
            ticket = discord.precheck(app=app, guild_id=guild.id, deadline=deadline)
        known["guild_id"], known["guild_name"] = guild.id, guild.name
        if caps is not None:
            await caps.take(guild_id=guild.id, link_id=link_id)
        user = await discord.current_user(request.authorization, app=app, deadline=deadline, proxy=request.proxy)
        known["user_id"] = user.id
        grant_id = await admit(guild.id, user.id) if admit is not None else None
        # Written before the PUT: after a crash, the record says whom to look up (core/reconcile.py). Written
        # before the slot is taken, too: a global slot counts from when it is taken until a second after Discord
        # answers, so every millisecond it is held before the PUT (a database write waiting for a lock, say) is
        # limit lost.
        await records.sending(record_id, guild_id=guild.id, guild_name=guild.name, user_id=user.id, grant_id=grant_id)
        async with discord.admission(app=app, guild_id=guild.id, deadline=deadline, ticket=ticket) as slot:
            known["sending"] = "yes"
            added = await discord.add_member(
                app=app,
                guild_id=guild.id,
                user_id=user.id,
                token=request.authorization,
                options=request.options,
                deadline=deadline,
                proxy=request.proxy,
                slot=slot,
            )
    finally:
        if ticket is not None:  # the join gave up before its slot (admission closes it otherwise)
            ticket.close()
    return JoinOutcome(
        record_id=record_id,
        outcome=Outcome.JOINED if added.joined else Outcome.ALREADY_MEMBER,
        guild=guild,
        user_id=user.id,
        discord_status=added.status,
    )
