"""Invite and snowflake parsing, with hypothesis properties."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guildgate.core.invites import DISCORD_EPOCH_MS, is_snowflake, looks_like_account_token, parse_invite

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
