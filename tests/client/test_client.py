"""guildgate.Client and guildgate.AsyncClient against the running service, and against stand-ins for what else
may answer (a proxy's error page, a server that never answers)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest

import guildgate
import guildgate.client
from guildgate import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConnectionFailedError,
    DiscordUnavailableError,
    ExternalRefTakenError,
    GrantEndedError,
    GuildgateError,
    InvalidRequestError,
    JoinRefusedError,
    JoinResult,
    NotAMemberError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
)
from guildgate.core.outcomes import Outcome
from tests.conftest import APP_A, GUILD, TOKENS, USER_IDS, WORLD, Gateway, Sandbox, free_port, new_key


@pytest.mark.parametrize("module", [guildgate, guildgate.client], ids=["guildgate", "guildgate.client"])
def test_public_names_equal_all(module: ModuleType) -> None:
    public = [n for n in dir(module) if not n.startswith("_") and not isinstance(getattr(module, n), ModuleType)]
    assert public == [n for n in module.__all__ if not n.startswith("_")]
    assert module.__all__ == sorted(module.__all__)


def test_the_package_exports_the_client_and_every_error() -> None:
    assert guildgate.__all__ == sorted([*guildgate.client.__all__, "__version__"])
    assert all(getattr(guildgate, n) is getattr(guildgate.client, n) for n in guildgate.client.__all__)
    errors, todo = set(), [GuildgateError]
    while todo:
        cls = todo.pop()
        errors.add(cls.__name__)
        todo += cls.__subclasses__()
    assert errors <= set(guildgate.__all__)
    assert all(name.endswith("Error") for name in errors)


def test_sync_client_join_and_reads(gateway: Gateway, fresh: Sandbox) -> None:
    with Client(gateway.proc.url, gateway.keys["a"], language="en") as gg:
        result = gg.join(authorization=TOKENS["alice"], guild_name="test1", developer_id="client")
        assert isinstance(result, JoinResult)
        assert (result.joined, result.code, result.user_id, result.guild_name) == (
            True,
            "joined",
            USER_IDS["alice"],
            "Test Server",
        )
        assert result.msg == "Joined the server"
        again = gg.join(authorization=TOKENS["alice"], guild_id=GUILD)
        assert (again.joined, again.code) == (False, "already_member")
        assert gg.record(result.record_id)["state"] == "succeeded"
        page = gg.records(developer_id="client")
        assert [r["id"] for r in page["records"]] == [result.record_id]
        assert gg.usage()["total"] >= 2


def test_sync_client_raises_typed_errors(gateway: Gateway, fresh: Sandbox) -> None:
    with Client(gateway.proc.url, gateway.keys["a"]) as gg:
        with pytest.raises(JoinRefusedError) as refused:
            gg.join(authorization=TOKENS["mallory"], guild_id=GUILD)
        assert (refused.value.code, refused.value.discord_code) == ("banned", 40007)
        assert refused.value.record_id
        with pytest.raises(InvalidRequestError) as bad:
            gg.join(authorization="a.b.c", guild_id=GUILD)
        assert bad.value.code == "not_an_oauth_token" and bad.value.http_status == 400
        with pytest.raises(InvalidRequestError):
            gg.join(authorization=TOKENS["alice"])
    with Client(gateway.proc.url, "gg_wrong") as gg, pytest.raises(AuthenticationError):
        gg.join(authorization=TOKENS["alice"], guild_id=GUILD)
    with Client(gateway.proc.url, new_key(gateway.env, APP_A, "--quota-per-minute", "2")) as gg:
        with pytest.raises(QuotaExceededError) as spent:
            for _ in range(5):
                gg.join(authorization=TOKENS["bob"], guild_id=GUILD)
        assert spent.value.retry_after is not None and spent.value.retry_after >= 1
    with Client(f"http://127.0.0.1:{free_port()}", "gg_x") as gg, pytest.raises(ConnectionFailedError) as unreachable:
        gg.join(authorization=TOKENS["alice"], guild_id=GUILD)
    assert (unreachable.value.code, unreachable.value.http_status) == ("connection_error", 0)
    assert "gg_x" not in str(unreachable.value) and TOKENS["alice"] not in str(unreachable.value)


async def test_async_client(gateway: Gateway, fresh: Sandbox) -> None:
    async with AsyncClient(gateway.proc.url, gateway.keys["a"]) as gg:
        results = await asyncio.gather(
            gg.join(authorization=TOKENS["alice"], guild_id=GUILD),
            gg.join(authorization=TOKENS["carol"], guild_id=GUILD),
        )
        assert {r.code for r in results} == {"joined"}
        assert (await gg.record(results[0].record_id))["code"] == "joined"
        fresh.faults({"routes": {"GET /users/@me": {"error_rate": 1.0, "status": 500}}})
        with pytest.raises(DiscordUnavailableError):
            await gg.join(authorization=TOKENS["bob"], guild_id=GUILD)


def test_rate_limited_error_carries_retry_after(gateway: Gateway, fresh: Sandbox) -> None:
    world = {
        "applications": WORLD["applications"],
        "guilds": [
            {"id": "1200000000000000005", "name": "Busy", "bots": {"1100000000000000001": ["CREATE_INSTANT_INVITE"]}}
        ],
        "users": WORLD["users"],
        "rate_limits": {
            "routes": {
                "PUT /guilds/{guild_id}/members/{user_id}": {"limit": 1, "reset_after": 120.0, "window": "fixed"}
            }
        },
    }
    fresh.reset(world)
    with Client(gateway.proc.url, gateway.keys["a"]) as gg:
        gg.join(authorization=TOKENS["alice"], guild_id="1200000000000000005")
        with pytest.raises(RateLimitedError) as limited:
            gg.join(authorization=TOKENS["carol"], guild_id="1200000000000000005")
    assert limited.value.retry_after is not None and limited.value.retry_after > 60


def test_record_reads_refuse_what_is_not_this_keys_record(gateway: Gateway, fresh: Sandbox) -> None:
    made = gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}).json()["id"]
    with Client(gateway.proc.url, gateway.keys["b"], language="en") as other_app:
        with pytest.raises(NotFoundError) as elsewhere:
            other_app.record(made)
    with Client(gateway.proc.url, gateway.keys["a"], language="en") as gg:
        assert gg.record(made)["id"] == made
        with pytest.raises(NotFoundError) as unknown:
            gg.record("00000000-0000-0000-0000-000000000000")
        # an id is one path segment: "../records" does not turn into the listing
        with pytest.raises(NotFoundError):
            gg.record("../records")
    with Client(gateway.proc.url, "gg_wrong") as stranger, pytest.raises(AuthenticationError):
        stranger.record(made)
    assert (elsewhere.value.http_status, elsewhere.value.msg) == (unknown.value.http_status, unknown.value.msg)
    assert unknown.value.http_status == 404 and "no record" in unknown.value.msg
    assert isinstance(unknown.value, InvalidRequestError)


def test_records_filters_and_pages(gateway: Gateway, fresh: Sandbox) -> None:
    with Client(gateway.proc.url, gateway.keys["a"], language="en") as gg:
        developer = f"filters-{free_port()}"
        joined = gg.join(authorization=TOKENS["alice"], guild_id=GUILD, developer_id=developer)
        with pytest.raises(JoinRefusedError) as banned:
            gg.join(authorization=TOKENS["mallory"], guild_id=GUILD, developer_id=developer)
        failed = gg.records(developer_id=developer, state="failed")["records"]
        assert [r["id"] for r in failed] == [banned.value.record_id]
        hour_ago, in_an_hour = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
        assert len(gg.records(developer_id=developer, since=hour_ago)["records"]) == 2
        assert gg.records(developer_id=developer, since=in_an_hour)["records"] == []
        assert len(gg.records(developer_id=developer, until=in_an_hour.isoformat())["records"]) == 2
        first = gg.records(developer_id=developer, limit=1)
        second = gg.records(developer_id=developer, limit=1, cursor=first["next_cursor"])
        assert [first["records"][0]["id"], second["records"][0]["id"]] == [banned.value.record_id, joined.record_id]
        assert second["next_cursor"] is None
        with pytest.raises(InvalidRequestError) as too_many:
            gg.records(limit=501)
        assert too_many.value.http_status in (400, 422) and "limit" in too_many.value.msg
        with pytest.raises(TypeError):  # a misspelt filter is refused here, not dropped by the server
            gg.records(stat="failed")  # type: ignore[call-arg]
        with pytest.raises(InvalidRequestError):
            gg.usage(days=0)


class _StandIn(BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer``: (HTTP status, headers, body)."""

    def _answer(self) -> None:
        status, headers, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_an_answer_that_is_not_guildgates_is_a_connection_failure(stand_in: ThreadingHTTPServer) -> None:
    answers = [
        (502, {"Content-Type": "text/html"}, b"<html><h1>502 Bad Gateway</h1></html>"),
        (200, {"Content-Type": "application/json"}, b'{"hello": "world"}'),
        (200, {"Content-Type": "application/json"}, b'{"status": 1, "msg": "ok", "id": "x", "data": null}'),
    ]
    with Client(_url(stand_in), "gg_key") as gg:
        for answer in answers:
            stand_in.answer = answer  # type: ignore[attr-defined]
            with pytest.raises(ConnectionFailedError) as bad:
                gg.join(authorization=TOKENS["alice"], guild_id=GUILD)
            assert (bad.value.code, bad.value.http_status) == ("bad_answer", answer[0])
            with pytest.raises(ConnectionFailedError):
                gg.usage()


def test_a_server_that_never_answers_is_a_connection_failure_after_the_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, accepts nothing, answers nothing
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Client(url, "gg_key", timeout=0.5) as gg, pytest.raises(ConnectionFailedError) as late:
            gg.join(authorization=TOKENS["alice"], guild_id=GUILD)
    assert late.value.code == "connection_error" and "in time" in late.value.msg


# Every failure the join and grants APIs answer, and the error it becomes: a new outcome needs a place here.
FAILURES: dict[Outcome, type[GuildgateError]] = {
    Outcome.INVALID_API_KEY: AuthenticationError,
    Outcome.INVALID_REQUEST: InvalidRequestError,
    Outcome.NOT_AN_OAUTH_TOKEN: InvalidRequestError,
    Outcome.PROXY_NOT_ALLOWED: InvalidRequestError,
    Outcome.IDEMPOTENCY_CONFLICT: InvalidRequestError,
    Outcome.QUOTA_EXCEEDED: QuotaExceededError,
    Outcome.INVALID_REQUEST_SHARE_EXCEEDED: QuotaExceededError,
    Outcome.READ_QUOTA_EXCEEDED: QuotaExceededError,
    Outcome.VELOCITY_CAPPED: RateLimitedError,
    Outcome.RATE_LIMITED: RateLimitedError,
    Outcome.DISCORD_UNAVAILABLE: DiscordUnavailableError,
    Outcome.UNKNOWN_GRANT: NotFoundError,  # the grants API's
    Outcome.GRANT_ENDED: GrantEndedError,
    Outcome.NOT_A_MEMBER: NotAMemberError,
    Outcome.EXTERNAL_REF_TAKEN: ExternalRefTakenError,  # the grants API's and the join's grant field
    Outcome.UNKNOWN_ENDPOINT: NotFoundError,  # the webhooks API's (a 404)
    Outcome.UNKNOWN_EVENT: NotFoundError,
    **{o: JoinRefusedError for o in Outcome if o.status == 0 and o.http_status == 200 and o is not Outcome.CANCELLED},
}
LINK_ONLY = {
    Outcome.CANCELLED,
    Outcome.LINK_EXPIRED,
    Outcome.LINK_USED_UP,
    Outcome.LINK_DISABLED,
    Outcome.ACCESS_ENDED,
}


def test_every_failure_the_join_api_answers_has_its_error(stand_in: ThreadingHTTPServer) -> None:
    assert set(FAILURES) == {o for o in Outcome if not o.succeeded} - LINK_ONLY
    with Client(_url(stand_in), "gg_key") as gg:
        for outcome, error in FAILURES.items():
            body = {"status": 0, "msg": "m", "id": "rec-1", "data": None, "cost": "1.00ms", "code": outcome.value}
            body["discord_code"] = 10004
            stand_in.answer = (outcome.http_status, {"Retry-After": "7"}, json.dumps(body).encode())  # type: ignore[attr-defined]
            with pytest.raises(GuildgateError) as raised:
                gg.join(authorization=TOKENS["alice"], guild_id=GUILD)
            assert type(raised.value) is error, outcome
            got = raised.value
            assert (got.code, got.http_status, got.record_id, got.retry_after, got.discord_code) == (
                outcome.value,
                outcome.http_status,
                "rec-1",
                7.0,
                10004,
            )
            assert str(got) == f"{outcome.value}: m"
