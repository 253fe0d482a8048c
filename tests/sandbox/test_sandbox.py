"""The sandbox behaves like Discord (discord-api-facts.md): check order, errors, limits, OAuth2, faults."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import (
    APP_A,
    APP_B,
    GUILD,
    GUILD_BOTLESS,
    GUILD_NOPERMS,
    PUT,
    ROLE_HIGH,
    ROLE_LOW,
    TOKENS,
    USER_IDS,
    WORLD,
    Sandbox,
)

BOT = {"Authorization": "Bot " + WORLD["applications"][0]["bot_token"]}
SECRET = WORLD["applications"][0]["client_secret"]


def put_member(
    sb: Sandbox, guild: str, user: str, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    token = TOKENS.get(user, "")
    payload = {"access_token": token, **(body or {})} if body is None or "access_token" not in body else body
    return httpx.put(
        f"{sb.api}/guilds/{guild}/members/{USER_IDS.get(user, user)}",
        json=payload,
        headers=headers if headers is not None else BOT,
    )


def assert_error(r: httpx.Response, status: int, code: int, message: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert (body["code"], body["message"]) == (code, message)
    assert ", " in r.text and ": " in r.text  # Python-style spacing, as Discord serialises
    return dict(body)


def test_add_member_201_then_204(fresh: Sandbox) -> None:
    r = put_member(fresh, GUILD, "alice", {"access_token": TOKENS["alice"], "roles": [ROLE_LOW]})
    assert r.status_code == 201
    member = r.json()
    assert member["user"]["id"] == USER_IDS["alice"] and member["roles"] == [ROLE_LOW]
    assert member["joined_at"].endswith("+00:00") and member["flags"] == 0
    again = put_member(fresh, GUILD, "alice")
    assert (again.status_code, again.content) == (204, b"")


CHECKS = [
    ("bot auth", {"headers": {"Authorization": "Bot wrong"}}, 401, 0, "401: Unauthorized"),
    ("no auth", {"headers": {}}, 401, 0, "401: Unauthorized"),
    ("bearer instead of bot", {"headers": {"Authorization": "Bearer " + TOKENS["alice"]}}, 401, 0, "401: Unauthorized"),
    ("unknown guild", {"guild": "1200000000000000999"}, 404, 10004, "Unknown Guild"),
    ("bot not in guild", {"guild": GUILD_BOTLESS}, 404, 10004, "Unknown Guild"),
    ("token of another app", {"user": "otherapp"}, 403, 50025, "Invalid OAuth2 access token"),
    ("token without guilds.join", {"user": "nojoin"}, 403, 50025, "Invalid OAuth2 access token"),
    ("expired token", {"user": "erin"}, 403, 50025, "Invalid OAuth2 access token"),
    ("token of another user", {"body": {"access_token": TOKENS["carol"]}}, 403, 50025, "Invalid OAuth2 access token"),
    ("no CREATE_INSTANT_INVITE", {"guild": GUILD_NOPERMS}, 403, 50013, "Missing Permissions"),
    ("role above the bot", {"body": {"roles": [ROLE_HIGH]}}, 403, 50013, "Missing Permissions"),
    ("banned", {"user": "mallory"}, 403, 40007, "The user is banned from this guild"),
    ("server limit", {"user": "full"}, 400, 30001, "Maximum number of guilds reached (100)"),
]


@pytest.mark.parametrize(("case", "how", "status", "code", "message"), CHECKS, ids=[c[0] for c in CHECKS])
def test_add_member_refusals(
    fresh: Sandbox, case: str, how: dict[str, Any], status: int, code: int, message: str
) -> None:
    user = how.get("user", "alice")
    body = {"access_token": TOKENS[user], **how.get("body", {})}
    r = put_member(fresh, how.get("guild", GUILD), user, body, headers=how.get("headers", BOT))
    assert_error(r, status, code, message)


def test_check_order_ban_before_membership_and_membership_before_limit(fresh: Sandbox) -> None:
    world = json.loads(json.dumps(WORLD))
    world["guilds"][0]["members"].append(USER_IDS["full"])
    world["guilds"][0]["bans"].append(USER_IDS["bob"])
    fresh.reset(world)
    assert_error(put_member(fresh, GUILD, "bob"), 403, 40007, "The user is banned from this guild")
    assert put_member(fresh, GUILD, "full").status_code == 204  # a member at the limit still gets 204 (#6888)


def test_form_body_errors(fresh: Sandbox) -> None:
    r = httpx.put(f"{fresh.api}/guilds/abc/members/{USER_IDS['alice']}", json={}, headers=BOT)
    body = assert_error(r, 400, 50035, "Invalid Form Body")
    assert body["errors"]["guild_id"]["_errors"][0] == {
        "code": "NUMBER_TYPE_COERCE",
        "message": 'Value "abc" is not snowflake.',
    }
    r = httpx.put(f"{fresh.api}/guilds/{GUILD}/members/{USER_IDS['alice']}", json={}, headers=BOT)
    body = assert_error(r, 400, 50035, "Invalid Form Body")
    assert body["errors"]["access_token"]["_errors"][0] == {
        "code": "BASE_TYPE_REQUIRED",
        "message": "This field is required",
    }
    r = httpx.put(
        f"{fresh.api}/guilds/{GUILD}/members/{USER_IDS['alice']}",
        content="access_token=x",
        headers={**BOT, "Content-Type": "text/plain"},
    )
    assert_error(r, 400, 50035, "Invalid Form Body")


def test_unknown_route_and_method(fresh: Sandbox) -> None:
    assert_error(httpx.get(f"{fresh.api}/nothing/here", headers=BOT), 404, 0, "404: Not Found")
    assert_error(httpx.delete(f"{fresh.api}/users/@me", headers=BOT), 405, 0, "405: Method Not Allowed")


def test_users_me_needs_identify_configurably(fresh: Sandbox) -> None:
    bearer = {"Authorization": "Bearer " + TOKENS["alice"]}
    me = httpx.get(f"{fresh.api}/users/@me", headers=bearer).json()
    assert (me["id"], me["username"], me["discriminator"]) == (USER_IDS["alice"], "alice", "0")
    no_identify = {"Authorization": "Bearer " + TOKENS["noident"]}
    assert_error(httpx.get(f"{fresh.api}/users/@me", headers=no_identify), 401, 0, "401: Unauthorized")
    fresh.reset({**WORLD, "options": {"users_me_without_identify": "50026"}})
    assert_error(httpx.get(f"{fresh.api}/users/@me", headers=no_identify), 403, 50026, "Missing required OAuth2 scope")
    oauth_me = httpx.get(f"{fresh.api}/oauth2/@me", headers=no_identify).json()
    assert oauth_me["scopes"] == ["guilds.join"] and "user" not in oauth_me
    assert httpx.get(f"{fresh.api}/oauth2/@me", headers=BOT).status_code == 401
    assert httpx.get(f"{fresh.api}/users/@me", headers=BOT).json()["bot"] is True


def test_get_invite(fresh: Sandbox) -> None:
    r = httpx.get(f"{fresh.api}/invites/test1", params={"with_counts": "true", "with_expiration": "true"})
    body = r.json()
    assert (body["code"], body["guild"]["id"], body["expires_at"]) == ("test1", GUILD, None)
    assert body["approximate_member_count"] >= 1
    assert_error(httpx.get(f"{fresh.api}/invites/nope"), 404, 10006, "Unknown Invite")
    assert httpx.get(f"{fresh.proc.url}/api/invites/test1").status_code == 200  # unversioned path


def test_get_member_and_add_role(fresh: Sandbox) -> None:
    url = f"{fresh.api}/guilds/{GUILD}/members/{USER_IDS['bob']}"
    assert httpx.get(url, headers=BOT).json()["roles"] == []
    assert httpx.put(f"{url}/roles/{ROLE_LOW}", headers=BOT).status_code == 204
    assert httpx.get(url, headers=BOT).json()["roles"] == [ROLE_LOW]
    assert_error(httpx.put(f"{url}/roles/{ROLE_HIGH}", headers=BOT), 403, 50013, "Missing Permissions")
    stranger = f"{fresh.api}/guilds/{GUILD}/members/{USER_IDS['alice']}"
    assert_error(httpx.get(stranger, headers=BOT), 404, 10007, "Unknown Member")


def test_rate_limit_headers_and_user_429(fresh: Sandbox) -> None:
    fresh.reset({**WORLD, "rate_limits": {"routes": {PUT: {"limit": 2, "reset_after": 5.0, "window": "fixed"}}}})
    answers = [put_member(fresh, GUILD, "bob") for _ in range(3)]
    assert [a.status_code for a in answers] == [204, 204, 429]
    first = answers[0].headers
    assert (first["x-ratelimit-limit"], first["x-ratelimit-remaining"]) == ("2", "1")
    assert len(first["x-ratelimit-bucket"]) == 32
    assert 4.0 < float(first["x-ratelimit-reset-after"]) <= 5.0
    assert abs(float(first["x-ratelimit-reset"]) - (time.time() + 5)) < 1.5
    limited = answers[2]
    body = limited.json()
    assert body["message"] == "You are being rate limited." and body["global"] is False
    assert 0 < body["retry_after"] <= 5.0
    assert limited.headers["x-ratelimit-scope"] == "user"
    assert limited.headers["retry-after"] == str(int(-(-body["retry_after"] // 1)))
    assert limited.headers["via"] == "1.1 google"
    # buckets split by major parameter: another guild is not limited
    assert put_member(fresh, GUILD_NOPERMS, "bob").status_code == 403
    stats = fresh.stats()
    assert stats["rate_limited"]["user"] == 1


def test_sliding_window_returns_slots_gradually(fresh: Sandbox) -> None:
    # Slots come back one every 2 s (4 over 8 s): wide enough that a loaded machine's pauses between the
    # requests below cannot bring back a second one.
    fresh.reset({**WORLD, "rate_limits": {"routes": {PUT: {"limit": 4, "reset_after": 8.0, "window": "sliding"}}}})
    codes = [put_member(fresh, GUILD, "bob").status_code for _ in range(5)]
    assert codes == [204, 204, 204, 204, 429]
    time.sleep(2.2)  # one slot comes back every 2 s
    after = put_member(fresh, GUILD, "bob")
    assert after.status_code == 204 and after.headers["x-ratelimit-remaining"] == "0"
    assert put_member(fresh, GUILD, "bob").status_code == 429


def test_global_limit_429(fresh: Sandbox) -> None:
    fresh.reset({**WORLD, "rate_limits": {"global_per_second": 3}})
    with httpx.Client() as c:
        codes = [c.get(f"{fresh.api}/invites/test1", headers=BOT) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    limited = codes[3]
    assert limited.headers["x-ratelimit-global"] == "true" and limited.headers["x-ratelimit-scope"] == "global"
    assert "x-ratelimit-bucket" not in limited.headers
    assert limited.json()["global"] is True
    assert fresh.stats()["global"]["max_in_any_second"]


def test_shared_scope_429_is_not_an_invalid_request(fresh: Sandbox) -> None:
    fresh.reset(
        {
            **WORLD,
            "rate_limits": {
                "routes": {
                    "GET /invites/{invite_code}": {
                        "limit": 1,
                        "reset_after": 30.0,
                        "scope": "shared",
                        "window": "fixed",
                    }
                },
                "invalid_requests_per_10_minutes": 2,
            },
        }
    )
    assert httpx.get(f"{fresh.api}/invites/test1").status_code == 200
    for _ in range(3):
        r = httpx.get(f"{fresh.api}/invites/test1", headers=BOT)
        assert r.status_code == 429
        assert r.headers["x-ratelimit-scope"] == "shared"
        assert r.json()["message"] == "The resource is being rate limited."
    assert fresh.stats()["banned"] == []


def test_invalid_requests_lead_to_a_cloudflare_style_ban(fresh: Sandbox) -> None:
    fresh.reset({**WORLD, "rate_limits": {"invalid_requests_per_10_minutes": 3, "ban_seconds": 60}})
    for _ in range(3):
        assert httpx.get(f"{fresh.api}/users/@me", headers={"Authorization": "Bearer nope"}).status_code == 401
    banned = httpx.get(f"{fresh.api}/invites/test1")
    assert banned.status_code == 429
    assert "application/json" not in banned.headers["content-type"] and "via" not in banned.headers
    assert "1015" in banned.text
    assert fresh.stats()["banned"] == ["127.0.0.1"]


def authorize(
    sb: Sandbox,
    *,
    user: str = "alice",
    action: str = "authorize",
    challenge: str | None = None,
    redirect: str = "https://gate.example/oauth/callback",
) -> dict[str, list[str]]:
    params = {
        "response_type": "code",
        "client_id": APP_A,
        "scope": "identify guilds.join",
        "state": "st4te",
        "redirect_uri": redirect,
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    page = httpx.get(f"{sb.proc.url}/oauth2/authorize", params=params)
    assert page.status_code == 200 and "Test App" in page.text
    r = httpx.post(f"{sb.proc.url}/oauth2/authorize", data={**params, "user_id": USER_IDS[user], "action": action})
    assert r.status_code == 302
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    return parse_qs(location.query)


def exchange(sb: Sandbox, code: str, *, basic: bool = True, **extra: str) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://gate.example/oauth/callback",
        **extra,
    }
    if basic:
        return httpx.post(f"{sb.api}/oauth2/token", data=data, auth=(APP_A, SECRET))
    return httpx.post(f"{sb.api}/oauth2/token", data={**data, "client_id": APP_A, "client_secret": SECRET})


def test_oauth_code_exchange_is_single_use_and_revocation_kills_the_grant(fresh: Sandbox) -> None:
    q = authorize(fresh)
    assert q["state"] == ["st4te"]
    r = exchange(fresh, q["code"][0])
    token = r.json()
    assert (token["token_type"], token["expires_in"], token["scope"]) == ("Bearer", 604800, "identify guilds.join")
    reused = exchange(fresh, q["code"][0])
    assert (reused.status_code, reused.json()) == (
        400,
        {"error": "invalid_grant", "error_description": 'Invalid "code" in request.'},
    )
    bearer = {"Authorization": "Bearer " + token["access_token"]}
    assert httpx.get(f"{fresh.api}/users/@me", headers=bearer).json()["id"] == USER_IDS["alice"]
    revoke = httpx.post(
        f"{fresh.api}/oauth2/token/revoke", data={"token": token["refresh_token"]}, auth=(APP_A, SECRET)
    )
    assert revoke.status_code == 200
    assert httpx.get(f"{fresh.api}/users/@me", headers=bearer).status_code == 401  # the access token died too


def test_oauth_form_client_auth_pkce_and_refusals(fresh: Sandbox) -> None:
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    q = authorize(fresh, challenge=challenge)
    assert exchange(fresh, q["code"][0], basic=False).status_code == 400  # verifier missing: code spent
    q = authorize(fresh, challenge=challenge)
    assert exchange(fresh, q["code"][0], code_verifier="w" * 64).status_code == 400
    q = authorize(fresh, challenge=challenge)
    assert exchange(fresh, q["code"][0], basic=False, code_verifier=verifier).status_code == 200
    q = authorize(fresh)
    wrong = httpx.post(
        f"{fresh.api}/oauth2/token",
        data={"grant_type": "authorization_code", "code": q["code"][0]},
        auth=(APP_A, "bad-secret"),
    )
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})
    as_json = httpx.post(f"{fresh.api}/oauth2/token", json={"grant_type": "authorization_code"}, auth=(APP_A, SECRET))
    assert as_json.status_code == 400
    other_app = httpx.post(
        f"{fresh.api}/oauth2/token",
        data={"grant_type": "authorization_code", "code": q["code"][0]},
        auth=(APP_B, WORLD["applications"][1]["client_secret"]),
    )
    assert other_app.json()["error"] == "invalid_grant"


def test_oauth_cancel_redirects_with_access_denied(fresh: Sandbox) -> None:
    q = authorize(fresh, action="cancel")
    assert q["error"] == ["access_denied"] and q["state"] == ["st4te"] and "code" not in q


def test_faults_before_and_after_and_stats(fresh: Sandbox) -> None:
    fresh.faults({"routes": {PUT: {"error_rate": 1.0, "status": 502, "when": "after"}}})
    r = put_member(fresh, GUILD, "alice")
    assert r.status_code == 502
    assert fresh.member(GUILD, USER_IDS["alice"]) is not None  # the join happened behind the 502
    fresh.faults({"latency_ms": 150})
    started = time.monotonic()
    httpx.get(f"{fresh.api}/invites/test1")
    assert time.monotonic() - started >= 0.15
    fresh.faults({"routes": {"GET /invites/{invite_code}": {"reset_rate": 1.0}}})
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{fresh.api}/invites/test1")
    # a reset "after": the member is added, then the connection drops before the answer
    fresh.faults({"routes": {PUT: {"reset_rate": 1.0, "when": "after"}}})
    with pytest.raises(httpx.TransportError):
        put_member(fresh, GUILD, "bob")
    assert fresh.member(GUILD, USER_IDS["bob"]) is not None
    stats = fresh.stats()
    assert stats["faults_injected"][f"{PUT} 502 after"] == 1
    assert stats["faults_injected"]["GET /invites/{invite_code} reset before"] == 1
    assert stats["faults_injected"][f"{PUT} reset after"] == 1
    assert stats["requests"][PUT] == 2
    assert stats["responses"][PUT] == {"502": 1}
    bad = httpx.put(f"{fresh.proc.url}/_sandbox/faults", json={"routes": {PUT: {"error_rate": 2}}})
    assert bad.status_code == 400 and "error_rate" in bad.json()["error"]


def test_get_guild_with_roles_and_the_bots_managed_role(fresh: Sandbox) -> None:
    guild = httpx.get(f"{fresh.api}/guilds/{GUILD}", headers=BOT)
    assert guild.status_code == 200
    body = guild.json()
    assert body["id"] == GUILD and body["name"] == "Test Server" and "icon" in body and "owner_id" in body
    roles = {r["id"]: r for r in body["roles"]}
    assert roles[GUILD]["name"] == "@everyone" and roles[GUILD]["position"] == 0
    assert roles[ROLE_LOW]["position"] == 1 and roles[ROLE_HIGH]["position"] == 10
    assert all(isinstance(r["permissions"], str) for r in roles.values())  # a string, as Discord sends it
    bot_member = httpx.get(f"{fresh.api}/guilds/{GUILD}/members/{WORLD['applications'][0]['bot_user_id']}", headers=BOT)
    (bot_role,) = bot_member.json()["roles"]
    assert roles[bot_role]["managed"] is True and roles[bot_role]["position"] == 5
    permissions = int(roles[bot_role]["permissions"])
    assert permissions & 1 and permissions & (1 << 28)  # CREATE_INSTANT_INVITE, MANAGE_ROLES
    no_perms = httpx.get(f"{fresh.api}/guilds/{GUILD_NOPERMS}", headers=BOT).json()
    assert all(int(r["permissions"]) == 0 for r in no_perms["roles"])
    assert_error(httpx.get(f"{fresh.api}/guilds/{GUILD_BOTLESS}", headers=BOT), 404, 10004, "Unknown Guild")
    assert httpx.get(f"{fresh.api}/guilds/{GUILD}").status_code == 401
    bearer = {"Authorization": "Bearer " + TOKENS["alice"]}
    assert httpx.get(f"{fresh.api}/guilds/{GUILD}", headers=bearer).status_code == 401


def test_current_application_for_a_bot(fresh: Sandbox) -> None:
    for path in ("/applications/@me", "/oauth2/applications/@me"):
        r = httpx.get(fresh.api + path, headers=BOT)
        assert r.status_code == 200, path
        assert r.json()["id"] == APP_A and r.json()["bot"]["id"] == WORLD["applications"][0]["bot_user_id"]
        assert httpx.get(fresh.api + path, headers={"Authorization": "Bearer " + TOKENS["alice"]}).status_code == 401
