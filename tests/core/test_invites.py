"""Invite and snowflake parsing, with hypothesis properties."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guildgate.core.invites import (
    DISCORD_EPOCH_MS,
    INVITE_PATTERN,
    is_snowflake,
    looks_like_account_token,
    parse_invite,
    snowflake_pattern,
)

CODES = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=2, max_size=40)


@pytest.mark.parametrize(
    "text",
    [
        "fuxxx",
        "discord.gg/fuxxx",
        "https://discord.gg/fuxxx",
        "https://discord.gg/fuxxx/",
        "http://discord.gg/fuxxx?x=1",
        "https://discord.com/invite/fuxxx",
        "https://discordapp.com/invite/fuxxx/",
        "https://www.discord.gg/fuxxx",
        "discord.gg/invite/fuxxx",
        "https://discord.com/invite/fuxxx?event=1200000000000000001",
        " fuxxx ",
        "HTTPS://WWW.Discord.GG:443/fuxxx//#x",
        "canary.discord.com/invite//fuxxx",
    ],
)
def test_every_url_form_gives_the_code(text: str) -> None:
    assert parse_invite(text) == "fuxxx"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "https://example.com/invite/fuxxx",
        "https://discord.com/fuxxx",
        "https://discord.gg/",
        "https://discord.gg/a/b",
        "ftp://discord.gg/fuxxx",
        "discord.gg/bad code",
        "https://discord.gg:8443/fuxxx",
        "javascript:alert(1)",
        "fu xx",
        "https://user@discord.gg/fuxxx",
        "discord.gg/fu\txxx",
    ],
)
def test_non_invites_are_refused(text: str) -> None:
    assert parse_invite(text) is None


@given(CODES)
def test_any_code_survives_every_url_form(code: str) -> None:
    for form in (
        code,
        f"discord.gg/{code}",
        f"https://discord.com/invite/{code}/",
        f"https://discordapp.com/invite/{code}?a=b",
    ):
        assert parse_invite(form) == code


@given(st.text(max_size=60))
def test_parse_invite_never_raises_and_returns_a_clean_code(text: str) -> None:
    code = parse_invite(text)
    assert code is None or (2 <= len(code) <= 255 and set(code) <= set(string.ascii_letters + string.digits + "-_"))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_snowflake_rule_matches_the_arithmetic(value: int) -> None:
    text = str(value)
    now_ms = 1_800_000_000_000
    expected = 17 <= len(text) <= 20 and (value >> 22) + DISCORD_EPOCH_MS <= now_ms + 600_000
    assert is_snowflake(text, now_ms=now_ms) == expected


NOW_MS = st.integers(min_value=DISCORD_EPOCH_MS, max_value=DISCORD_EPOCH_MS + 2**42)


@given(st.from_regex(r"[0-9]{15,21}", fullmatch=True), NOW_MS)
def test_the_schemas_snowflake_pattern_takes_exactly_what_is_snowflake_takes(text: str, now_ms: int) -> None:
    assert bool(re.fullmatch(snowflake_pattern(now_ms), text)) == is_snowflake(text, now_ms=now_ms)


@given(NOW_MS, st.integers(min_value=-3, max_value=3), st.sampled_from([17, 18, 19, 20]))
def test_the_snowflake_pattern_ends_where_the_ids_that_can_exist_end(now_ms: int, step: int, width: int) -> None:
    newest = min(((now_ms + 600_000 - DISCORD_EPOCH_MS) << 22) | (2**22 - 1), 2**64 - 1)
    text = str(max(newest + step, 0)).zfill(width)
    assert bool(re.fullmatch(snowflake_pattern(now_ms), text)) == is_snowflake(text, now_ms=now_ms)


@given(st.from_regex(INVITE_PATTERN, fullmatch=True))
def test_whatever_the_schemas_invite_pattern_allows_is_an_invite(text: str) -> None:
    code = parse_invite(text)
    assert code is not None and code in text


@pytest.mark.parametrize("text", ["80351110224678912", "1200000000000000001"])
def test_known_ids_are_snowflakes(text: str) -> None:
    assert is_snowflake(text)


@pytest.mark.parametrize(
    "text",
    [
        "1234",
        "18446744073709551616",
        "-80351110224678912",
        "8035111022467891２",
        "80351110224678912 ",
        "99999999999999999999",
    ],
)
def test_bad_snowflakes(text: str) -> None:
    assert not is_snowflake(text)


def test_account_token_shapes() -> None:
    assert looks_like_account_token("MTk4NjIy.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs")
    assert looks_like_account_token("mfa.abcdef")
    assert not looks_like_account_token("6qrZcUqja7812RVdnEKjpzOL4CvHBFG")
