"""core.links.consent_join in this process: the code exchanged at the sandbox's token endpoint, the join with the
link's roles, roles given one by one to someone already in, and the token revoked at the end."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from guildgate.core.errors import JoinError
from guildgate.core.joins import RecordedJoinError
from guildgate.core.links import ConsentResult, Link, LinkRole, consent_join
from guildgate.core.outcomes import Outcome
from tests.conftest import APP_A, GUILD, ROLE_LOW, USER_IDS
from tests.core.conftest import Core

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # where Discord would send the browser; nothing is sent there


async def authorize(core: Core, user: str) -> tuple[str, str]:
    """Sign in at the sandbox's authorize page as ``user`` and press Authorize: the code and its PKCE verifier."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    form = {
        "client_id": APP_A,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "identify guilds.join",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s",
        "user_id": USER_IDS[user],
        "action": "authorize",
    }
    async with httpx.AsyncClient() as client:
        r = await client.post(core.sandbox.proc.url + "/oauth2/authorize", data=form)
    assert r.status_code == 302, r.text
    return parse_qs(urlsplit(r.headers["location"]).query)["code"][0], verifier


async def new_link(core: Core, *roles: str) -> Link:
    return await core.links.create(
        app_id=APP_A,
        guild_id=GUILD,
        guild_name="Test Server",
        guild_icon=None,
        roles=[LinkRole(id=r, name="member") for r in roles],
        title=None,
        max_uses=None,
        expires_at=None,
    )


async def consent(core: Core, link: Link, code: str, verifier: str) -> ConsentResult:
    return await consent_join(
        link=link,
        app=await core.app(),
        code=code,
        redirect_uri=REDIRECT,
        verifier=verifier,
        discord=core.discord,
        consent=core.consent,
        records=core.records,
        deadline=time.monotonic() + 10,
        started=time.perf_counter(),
    )


def grants(core: Core) -> dict[str, bool]:
    """Every grant the sandbox holds: whether it is revoked, by grant id."""
    return {g["id"]: g["revoked"] for g in core.sandbox.state()["grants"]}


def new_grants(core: Core, before: dict[str, bool]) -> list[bool]:
    """Whether each grant issued since ``before`` is revoked."""
    return [revoked for grant, revoked in grants(core).items() if grant not in before]


async def test_consent_joins_with_the_links_roles_then_revokes_the_token(core: Core) -> None:
    link = await new_link(core, ROLE_LOW)
    before = grants(core)
    code, verifier = await authorize(core, "alice")
    result = await consent(core, link, code, verifier)
    assert (result.join.outcome, result.roles_given, result.revoked) == (Outcome.JOINED, (ROLE_LOW,), True)
    member = core.sandbox.member(GUILD, USER_IDS["alice"])
    assert member is not None and ROLE_LOW in member["roles"]
    row = await core.record(result.join.record_id)
    assert (row.state, row.code, row.source, row.link_id) == ("succeeded", "joined", "link", link.id)
    assert new_grants(core, before) == [True]


async def test_someone_already_in_gets_the_roles_one_by_one(core: Core) -> None:
    link = await new_link(core, ROLE_LOW)
    assert ROLE_LOW not in (core.sandbox.member(GUILD, USER_IDS["bob"]) or {"roles": []})["roles"]
    before = grants(core)
    code, verifier = await authorize(core, "bob")
    result = await consent(core, link, code, verifier)
    assert (result.join.outcome, result.roles_given, result.roles_failed) == (Outcome.ALREADY_MEMBER, (ROLE_LOW,), ())
    member = core.sandbox.member(GUILD, USER_IDS["bob"])
    assert member is not None and ROLE_LOW in member["roles"]
    assert new_grants(core, before) == [True]


async def test_a_banned_user_is_refused_and_the_token_still_revoked(core: Core) -> None:
    link = await new_link(core)
    before = grants(core)
    code, verifier = await authorize(core, "mallory")
    with pytest.raises(RecordedJoinError) as raised:
        await consent(core, link, code, verifier)
    assert raised.value.error.outcome is Outcome.BANNED
    assert raised.value.record_id is not None
    assert (await core.record(raised.value.record_id)).state == "failed"
    assert new_grants(core, before) == [True]


async def test_a_code_used_twice_is_refused_before_any_record(core: Core) -> None:
    link = await new_link(core)
    code, verifier = await authorize(core, "alice")
    await consent(core, link, code, verifier)
    with pytest.raises(JoinError) as raised:
        await consent(core, link, code, verifier)
    assert not isinstance(raised.value, RecordedJoinError)
    assert await core.records.pending(limit=10) == []
