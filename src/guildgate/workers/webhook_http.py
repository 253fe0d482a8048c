"""One webhook attempt over HTTP (``../shared/spec/access.md``, "Delivery"): signed with ``standardwebhooks``,
sent through its own aiohttp session (never Discord's, never through GUILDGATE_EGRESS_PROXIES), no redirects
followed, at most 64 KiB of the answer read.

No request forgery: ``GuardedResolver`` resolves the host at connection time and hands aiohttp only the
addresses ``core.ssrf`` allows, so the connection goes to an address that was checked and nothing is sent to a
refused one; an address literal in the URL (which aiohttp connects to without resolving) is checked first."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks import Webhook
from yarl import URL

from guildgate import __version__
from guildgate.core.ssrf import Network, literal, refusal
from guildgate.core.webhooks import ANSWER_KEPT, ANSWER_READ
from guildgate.store.deliveries import Result


class RefusedAddressError(OSError):
    """Every address the host resolved to is one webhooks may not reach."""


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and keeps only the allowed addresses (all of them when ``insecure``)."""

    def __init__(self, inner: AbstractResolver, *, allow_networks: tuple[Network, ...], insecure: bool) -> None:
        self.inner, self.allow_networks, self.insecure = inner, allow_networks, insecure

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        if self.insecure:
            return found
        kept = [info for info in found if refusal(info["host"], allow_networks=self.allow_networks) is None]
        if not kept:
            reasons = "; ".join(
                sorted({str(refusal(info["host"], allow_networks=self.allow_networks)) for info in found})
            )
            raise RefusedAddressError(f"{host} resolves only to addresses webhooks may not reach ({reasons or 'none'})")
        return kept

    async def close(self) -> None:
        await self.inner.close()


def open_session(
    *, allow_networks: tuple[Network, ...], insecure: bool, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """The webhooks' own session: the guarded resolver, no proxy from the environment, answers read as sent."""
    guarded = GuardedResolver(resolver or aiohttp.ThreadedResolver(), allow_networks=allow_networks, insecure=insecure)
    connector = aiohttp.TCPConnector(resolver=guarded, limit=200, limit_per_host=20, ttl_dns_cache=10)
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": f"guildgate-webhooks/{__version__}"},
    )


def sign(*, event_id: str, body: bytes, secrets: list[str], moment: datetime) -> str:
    """The ``webhook-signature`` header: one ``v1,…`` per secret, newest first, separated by single spaces."""
    return " ".join(Webhook(secret).sign(event_id, moment, body) for secret in secrets)


def headers_for(*, event_id: str, body: bytes, secrets: list[str], now: float) -> dict[str, str]:
    moment = datetime.fromtimestamp(int(now), UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": sign(event_id=event_id, body=body, secrets=secrets, moment=moment),
        "content-type": "application/json",
    }


def literal_refusal(url: str, *, allow_networks: tuple[Network, ...], insecure: bool) -> str | None:
    """Why the URL's host, an address literal, may not be reached (None for a name or an allowed address)."""
    if insecure:
        return None
    host = URL(url).raw_host or ""
    address = literal(host)
    return None if address is None else refusal(address, allow_networks=allow_networks)


async def _read_answer(response: aiohttp.ClientResponse) -> bytes:
    answer = b""
    while len(answer) < ANSWER_READ:
        chunk = await response.content.read(ANSWER_READ - len(answer))
        if not chunk:
            break
        answer += chunk
    return answer


def _kept(answer: bytes) -> str | None:
    return answer[:ANSWER_KEPT].decode("utf-8", "replace") if answer else None


async def send(
    session: aiohttp.ClientSession,
    *,
    url: str,
    event_id: str,
    body: bytes,
    secrets: list[str],
    seconds: float,
    allow_networks: tuple[Network, ...],
    insecure: bool,
) -> Result:
    """One attempt: the outcome as the attempt log keeps it (never a secret, never a header we sent)."""
    at = datetime.now(UTC)
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    refused = literal_refusal(url, allow_networks=allow_networks, insecure=insecure)
    if refused is not None:
        return Result(at=at, status=None, duration_ms=0, error=f"refused: {refused}", answer=None)
    headers = headers_for(event_id=event_id, body=body, secrets=secrets, now=time.time())
    status: int | None = None
    retry_after: str | None = None
    answer = b""
    try:
        async with asyncio.timeout(seconds):
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                status, retry_after = response.status, response.headers.get("Retry-After")
                answer = await _read_answer(response)
                response.close()  # what is past 64 KiB is not read
    except TimeoutError:
        error = f"no complete answer within {seconds:g} s" + ("" if status is None else " (the status came)")
        return Result(
            at=at, status=status, duration_ms=took(), error=error, answer=_kept(answer), retry_after=retry_after
        )
    except RefusedAddressError as exc:
        return Result(at=at, status=None, duration_ms=took(), error=f"refused: {exc}", answer=None)
    except aiohttp.ClientConnectorError as exc:
        cause: Any = exc.os_error
        if isinstance(cause, RefusedAddressError):
            return Result(at=at, status=None, duration_ms=took(), error=f"refused: {cause}", answer=None)
        return Result(
            at=at, status=status, duration_ms=took(), error=f"cannot connect: {exc.os_error}"[:400], answer=None
        )
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:400]
        return Result(
            at=at, status=status, duration_ms=took(), error=error, answer=_kept(answer), retry_after=retry_after
        )
    outcome = None if 200 <= status < 300 else f"HTTP {status}"
    return Result(
        at=at, status=status, duration_ms=took(), error=outcome, answer=_kept(answer), retry_after=retry_after
    )
