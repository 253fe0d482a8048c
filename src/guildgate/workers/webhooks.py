"""The webhook sender: one per ``serve`` process, started and stopped with the app's lifespan
(``../shared/spec/access.md``, "Delivery").

Each turn claims the deliveries due now with a lease (store/deliveries.py: endpoint by endpoint, at most 10 in
flight per endpoint over every process; the lease lasts the attempt's timeout plus 5 s by the database's
clock), sends each in its own task (workers/webhook_http.py), and writes the result under the lease: a sender
killed mid-attempt loses nothing (another sends it once the lease is over), and one whose lease was taken over
writes nothing over the new owner's result. Every minute it also disables the endpoints that have failed for
5 days."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import aiohttp

from guildgate.core.ssrf import parse_networks
from guildgate.core.webhooks import DEFAULT_SCHEDULE, LEASE_MARGIN, parse_schedule
from guildgate.settings import Settings
from guildgate.store import deliveries
from guildgate.store.crypto import SecretBox
from guildgate.store.db import Database
from guildgate.store.webhooks import open_secrets, valid_secrets
from guildgate.web import metrics
from guildgate.workers.webhook_http import open_session, send

log = logging.getLogger("guildgate.webhooks")

POLL_SECONDS = 0.5  # between claims when there was nothing (more) to claim
CHECK_FAILING_EVERY = 60.0  # seconds between looks for endpoints failing for 5 days


class WebhookSender:
    def __init__(self, db: Database, box: SecretBox, settings: Settings, *, poll: float = POLL_SECONDS) -> None:
        self.db, self.box, self.settings, self.poll = db, box, settings, poll
        self.timeout = settings.webhook_timeout
        if settings.webhook_retry_schedule:
            self.schedule, self.jitter = parse_schedule(settings.webhook_retry_schedule), False
        else:
            self.schedule, self.jitter = DEFAULT_SCHEDULE, True
        self.allow_networks = parse_networks(settings.webhook_allow_networks)
        self.insecure = settings.webhook_insecure
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._turn = 0
        self._freed = asyncio.Event()  # a delivery finished: its endpoint may take another at once
        self._secrets: dict[str, list[dict[str, str | None]]] = {}  # sealed → opened (a few endpoints' worth)

    def start(self) -> None:
        if self._task is None:
            self._session = open_session(allow_networks=self.allow_networks, insecure=self.insecure)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        """Stop claiming and cancel the attempts under way: their leases run out and another sender (or this
        one, restarted) sends them."""
        tasks = [t for t in (self._task, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        checked = 0.0
        while True:
            claimed = 0
            self._freed.clear()  # (a delivery that finishes from here on wakes the wait below)
            try:
                if time.monotonic() - checked > CHECK_FAILING_EVERY:
                    checked = time.monotonic()
                    for endpoint_id, reason in await self.db.run(deliveries.disable_failing):
                        self._disabled(endpoint_id, reason)
                claims = await self.db.run(
                    lambda conn: deliveries.claim(conn, lease_seconds=self.timeout + LEASE_MARGIN, first=self._turn)
                )
                self._turn += 1
                claimed = len(claims)
                for claim in claims:
                    task = asyncio.get_running_loop().create_task(self._deliver(claim))
                    self._sending.add(task)
                    task.add_done_callback(self._sending.discard)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming webhook deliveries failed; trying again")
            if claimed >= deliveries.CLAIM_AT_MOST:
                await asyncio.sleep(0.05)
                continue
            # Nothing more to claim now, or every endpoint with work has its attempts in flight: claim again when
            # one of them finishes (its endpoint has room again) or after the poll, for events made meanwhile.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._freed.wait()
                await asyncio.sleep(0.005)  # the attempts finishing together are claimed for together

    def _secrets_of(self, sealed: str) -> list[str]:
        opened = self._secrets.get(sealed)
        if opened is None:
            if len(self._secrets) > 1000:
                self._secrets.clear()
            opened = self._secrets[sealed] = open_secrets(self.box, sealed)
        return valid_secrets(opened, datetime.now(UTC))

    async def _deliver(self, claim: deliveries.Claim) -> None:
        try:
            await self._attempt(claim)
        finally:
            self._freed.set()

    async def _attempt(self, claim: deliveries.Claim) -> None:
        assert self._session is not None
        try:
            result = await send(
                self._session,
                url=claim.url,
                event_id=claim.event_id,
                body=claim.body,
                secrets=self._secrets_of(claim.secrets_enc),
                seconds=self.timeout,
                allow_networks=self.allow_networks,
                insecure=self.insecure,
            )
            recorded = await self.db.run(
                lambda conn: deliveries.record(conn, claim, result, schedule=self.schedule, jitter=self.jitter)
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "webhook %s to endpoint %s: the attempt could not be recorded", claim.event_id, claim.endpoint_id
            )
            return
        outcome = (
            "delivered" if result.delivered else ("refused" if (result.error or "").startswith("refused") else "failed")
        )
        metrics.count_webhook_attempt(outcome if recorded.kept else "superseded")
        if recorded.disabled is not None:
            self._disabled(*recorded.disabled)

    def _disabled(self, endpoint_id: str, reason: str) -> None:
        log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
        metrics.count_webhook_endpoint_disabled()
