"""The request rules of the contract: headers, body, idempotency. Refusals here never reach Discord."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.conftest import APP_A, EGRESS_PROXY, GUILD, TOKENS, Gateway, Sandbox, cli, new_key
from tests.helpers import UUID, envelope
from tests.store.revoked import refused_within

EXISTING_CLIENT_BODY = {
    "authorization": "",  # filled in per test
    "guild_id": "",
    "guild_name": "https://discord.gg/test1",
    "internal": False,
    "is_auth": True,
    "timeout": 30,
    "cookies": "a=b",
    "user_agent": "Mozilla/5.0",
}


def discord_calls(sandbox: Sandbox) -> int:
    return sum(sandbox.stats()["requests"].values())


def refused(
    gateway: Gateway, sandbox: Sandbox, body: Any, *, status: int, code: str, names: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    before = discord_calls(sandbox)
    r = gateway.join(body, headers={"Accept-Language": "en", **kwargs.pop("headers", {})}, **kwargs)
    assert r.status_code == status, r.text
    result = envelope(r)
    assert (result["status"], result["code"], result["data"]) == (0, code, None)
    if names is not None:
        assert names in result["msg"], result["msg"]
    assert discord_calls(sandbox) == before, "nothing may reach Discord for a caller error"
    return result


def test_existing_client_shape_with_extra_fields_and_empty_guild_id_succeeds(gateway: Gateway, fresh: Sandbox) -> None:
    body = {**EXISTING_CLIENT_BODY, "authorization": TOKENS["alice"]}
    result = envelope(gateway.join(body))
    assert (result["status"], result["code"]) == (1, "joined")


def test_bearer_prefix_is_accepted(gateway: Gateway, fresh: Sandbox) -> None:
    result = envelope(gateway.join({"authorization": "Bearer " + TOKENS["bob"], "guild_id": GUILD}))
    assert result["code"] == "already_member"


@pytest.mark.parametrize("key", ["", "gg_not-a-real-key", "x" * 300])
def test_missing_or_unknown_api_key_is_401(gateway: Gateway, fresh: Sandbox, key: str) -> None:
    result = refused(
        gateway,
        fresh,
        {"authorization": TOKENS["alice"], "guild_id": GUILD},
        key=key,
        status=401,
        code="invalid_api_key",
    )
    assert result["id"] is None


def test_revoked_key_is_refused(gateway: Gateway, fresh: Sandbox) -> None:
    out = cli(["keys", "create", "--app", APP_A, "--json"], env=gateway.env).stdout
    created = json.loads(out)
    assert (
        envelope(gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}, key=created["key"]))["status"] == 1
    )
    revoking = time.monotonic()
    cli(["keys", "revoke", created["id"]], env=gateway.env)
    refused_within(
        gateway.proc.url, created["key"], since=revoking
    )  # each worker may remember the key for a few seconds
    refused(
        gateway,
        fresh,
        {"authorization": TOKENS["bob"], "guild_id": GUILD},
        key=created["key"],
        status=401,
        code="invalid_api_key",
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_content_type_must_be_json(gateway: Gateway, fresh: Sandbox, content_type: str | None) -> None:
    refused(
        gateway,
        fresh,
        {"authorization": TOKENS["alice"], "guild_id": GUILD},
        content_type=content_type,
        status=415,
        code="invalid_request",
        names="Content-Type",
    )


def test_json_with_charset_is_fine(gateway: Gateway, fresh: Sandbox) -> None:
    r = gateway.join(
        {"authorization": TOKENS["bob"], "guild_id": GUILD}, content_type="application/json; charset=utf-8"
    )
    assert envelope(r)["status"] == 1


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"", "empty"),
        ({"guild_id": GUILD}, "authorization"),
        ({"authorization": "", "guild_id": GUILD}, "authorization"),
        ({"authorization": 12345, "guild_id": GUILD}, "authorization"),
        ({"authorization": "\u0661" * 30, "guild_id": GUILD}, "authorization"),  # OAuth2 tokens are ASCII
        ({"authorization": TOKENS["alice"]}, "exactly one of guild_id and guild_name"),
        (
            {"authorization": TOKENS["alice"], "guild_id": "", "guild_name": ""},
            "exactly one of guild_id and guild_name",
        ),
        ({"authorization": TOKENS["alice"], "guild_id": GUILD, "guild_name": "test1"}, "both"),
        ({"authorization": TOKENS["alice"], "guild_id": "12345"}, "guild_id"),
        ({"authorization": TOKENS["alice"], "guild_id": "abcdefghijklmnopqr"}, "guild_id"),
        ({"authorization": TOKENS["alice"], "guild_id": "99999999999999999999"}, "guild_id"),
        ({"authorization": TOKENS["alice"], "guild_id": 1200000000000000001}, "guild_id"),
        ({"authorization": TOKENS["alice"], "guild_name": "https://example.com/invite/x"}, "guild_name"),
        ({"authorization": TOKENS["alice"], "guild_name": "bad code!"}, "guild_name"),
        ({"authorization": TOKENS["alice"], "guild_id": GUILD, "roles": "1200000000000000011"}, "roles"),
        ({"authorization": TOKENS["alice"], "guild_id": GUILD, "roles": ["x"]}, "roles.0"),
        ({"authorization": TOKENS["alice"], "guild_id": GUILD, "nick": "n" * 33}, "nick"),
        ({"authorization": TOKENS["alice"], "guild_id": GUILD, "nick": "   "}, "nick"),
        ({"authorization": TOKENS["alice"], "guild_id": GUILD, "mute": "yes"}, "mute"),
        ({"authorization": TOKENS["alice"], "guild_id": GUILD, "deaf": 1}, "deaf"),
    ],
    ids=lambda v: v.decode() if isinstance(v, bytes) else None,
)
def test_bad_bodies_are_400_naming_the_problem(gateway: Gateway, fresh: Sandbox, body: Any, names: str) -> None:
    result = refused(gateway, fresh, body, status=400, code="invalid_request", names=names)
    assert UUID.match(result["id"])  # the key was accepted, so the refusal has a record


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"[" * 3000 + b"]" * 3000, "nested"),  # orjson refuses past 1024 levels; the standard library overflowed
        (b'{"authorization": "t", "guild_id": ' + b"1" * 5000 + b"}", "number"),  # past Python's 4300 digits
    ],
    ids=["nested-3000-deep", "5000-digit-number"],
)
def test_hostile_json_is_400_naming_the_problem(gateway: Gateway, fresh: Sandbox, body: bytes, names: str) -> None:
    refused(gateway, fresh, body, status=400, code="invalid_request", names=names)


def test_body_over_16_kib_is_413(gateway: Gateway, fresh: Sandbox) -> None:
    body = {"authorization": TOKENS["alice"], "guild_id": GUILD, "padding": "x" * 17000}
    refused(gateway, fresh, body, status=413, code="invalid_request", names="16384")


@pytest.mark.parametrize(
    "token",
    [
        "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",
        "mfa.VkO_2G4Qv3T--NO--lWetW_tjND--TOKEN--QFTm6YGtzq9PH--4U--tG0",
        "Bearer a.b.c",
    ],
)
def test_account_or_bot_shaped_tokens_are_refused_and_never_sent(gateway: Gateway, fresh: Sandbox, token: str) -> None:
    result = refused(gateway, fresh, {"authorization": token, "guild_id": GUILD}, status=400, code="not_an_oauth_token")
    assert "OAuth2" in result["msg"]
    assert token.removeprefix("Bearer ") not in gateway.proc.output()


def test_proxy_must_be_an_operator_proxy(gateway: Gateway, fresh: Sandbox) -> None:
    refused(
        gateway,
        fresh,
        {"authorization": TOKENS["alice"], "guild_id": GUILD, "proxy": "http://1.2.3.4:8080"},
        status=400,
        code="proxy_not_allowed",
    )


def test_an_allowed_proxy_is_used_for_the_call(gateway: Gateway, fresh: Sandbox) -> None:
    # The configured egress proxy points at a closed port: accepted, then Discord is unreachable through it.
    r = gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD, "proxy": EGRESS_PROXY})
    assert envelope(r)["code"] == "discord_unavailable"
    assert fresh.member(GUILD, "1300000000000000001") is None


def test_the_public_schema_does_not_name_the_operators_proxies(gateway: Gateway) -> None:
    """/openapi.json is served to anyone: a proxy's URL may hold a password or an internal host."""
    schema = gateway.get("/openapi.json")
    assert schema.status_code == 200 and "proxy" in schema.text
    assert EGRESS_PROXY not in schema.text and "127.0.0.1:9" not in schema.text


@pytest.mark.parametrize("developer_id", ["has space", "x" * 65, "bad/char"])
def test_malformed_developer_id_is_400(gateway: Gateway, fresh: Sandbox, developer_id: str) -> None:
    refused(
        gateway,
        fresh,
        {"authorization": TOKENS["alice"], "guild_id": GUILD},
        headers={"Developer-Id": developer_id},
        status=400,
        code="invalid_request",
        names="Developer-Id",
    )


def test_developer_id_is_stored_on_the_record(gateway: Gateway, fresh: Sandbox) -> None:
    result = envelope(
        gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}, headers={"Developer-Id": "dev_42-x"})
    )
    record = gateway.get(f"/api/record/{result['id']}").json()["data"]
    assert record["developer_id"] == "dev_42-x"


def test_idempotency_key_replays_the_first_answer_without_a_second_call(gateway: Gateway, fresh: Sandbox) -> None:
    body = {"authorization": TOKENS["alice"], "guild_id": GUILD}
    first = gateway.join(body, headers={"Idempotency-Key": "order-1001"})
    calls = discord_calls(fresh)
    again = gateway.join(body, headers={"Idempotency-Key": "order-1001"})
    assert again.json() == first.json()
    assert again.status_code == first.status_code
    assert discord_calls(fresh) == calls
    assert json.loads(again.json()["data"])["joined"] is True
    other_key = gateway.join(body, key="a2", headers={"Idempotency-Key": "order-1001"})
    assert envelope(other_key)["code"] == "already_member"  # keys are per API key


def test_idempotency_key_with_another_body_is_409(gateway: Gateway, fresh: Sandbox) -> None:
    gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}, headers={"Idempotency-Key": "k-409"})
    refused(
        gateway,
        fresh,
        {"authorization": TOKENS["alice"], "guild_id": GUILD},
        headers={"Idempotency-Key": "k-409"},
        status=409,
        code="idempotency_conflict",
    )


def test_concurrent_requests_with_one_idempotency_key_make_one_join(gateway: Gateway, fresh: Sandbox) -> None:
    fresh.faults({"latency_ms": 200})
    body = {"authorization": TOKENS["carol"], "guild_id": GUILD}
    answers: list[dict[str, Any]] = []

    def send() -> None:
        answers.append(gateway.join(body, headers={"Idempotency-Key": "same-moment"}).json())

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a["id"] for a in answers}) == 1
    assert {a["code"] for a in answers} == {"joined"}
    assert fresh.stats()["requests"]["PUT /guilds/{guild_id}/members/{user_id}"] == 1


def test_bad_idempotency_key_is_400(gateway: Gateway, fresh: Sandbox) -> None:
    refused(
        gateway,
        fresh,
        {"authorization": TOKENS["bob"], "guild_id": GUILD},
        headers={"Idempotency-Key": "x" * 129},
        status=400,
        code="invalid_request",
        names="Idempotency-Key",
    )


def test_quota_exceeded_is_429_with_retry_after(gateway: Gateway, fresh: Sandbox) -> None:
    body = {"authorization": TOKENS["bob"], "guild_id": GUILD}
    key = new_key(gateway.env, APP_A, "--quota-per-minute", "3")
    statuses = [gateway.join(body, key=key).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    r = gateway.join(body, key=key, headers={"Accept-Language": "en"})
    assert r.status_code == 429
    assert envelope(r)["code"] == "quota_exceeded"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    usage = gateway.get("/api/usage", key=key).json()["data"]["quota"]
    assert usage == {"per_minute": 3, "used_last_minute": 3, "remaining": 0}


def test_language_follows_accept_language_quality(gateway: Gateway, fresh: Sandbox) -> None:
    body = {"authorization": TOKENS["bob"], "guild_id": GUILD}
    assert envelope(gateway.join(body, headers={"Accept-Language": "zh-CN,en;q=0.8"}))["msg"] == "已经是该服务器的成员"
    assert envelope(gateway.join(body, headers={"Accept-Language": "fr, en;q=0.5"}))["msg"] == (
        "Already a member of the server"
    )
    assert envelope(gateway.join(body, headers={"Accept-Language": "de"}))["msg"] == "已经是该服务器的成员"
