"""Parsing of invite codes and URLs, and snowflake validation.

>>> parse_invite("https://discord.gg/fuxxx/?a=1")
'fuxxx'
>>> is_snowflake("80351110224678912")
True
"""

from __future__ import annotations

import re
import time
from typing import Final

from guildgate.core.patterns import NOT_CONTROL, SPACE, anycase, digits_at_most

DISCORD_EPOCH_MS: Final = 1420070400000
SNOWFLAKE_DIGITS: Final = "[0-9]{17,20}"  # the shape of an id; is_snowflake also checks its value
_SNOWFLAKE_RE: Final = re.compile(SNOWFLAKE_DIGITS)
_CLOCK_SKEW_MS: Final = 10 * 60 * 1000


def is_snowflake(value: str, *, now_ms: int | None = None) -> bool:
    """17–20 decimal digits, below 2**64, with a timestamp not in the future (10 minutes of skew allowed)."""
    if not _SNOWFLAKE_RE.fullmatch(value):
        return False
    number = int(value)
    if number >= 2**64:
        return False
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return (number >> 22) + DISCORD_EPOCH_MS <= now + _CLOCK_SKEW_MS


def snowflake_pattern(now_ms: int | None = None) -> str:
    """A regular expression (no anchors, no named groups: for an OpenAPI schema too) that matches exactly the
    strings ``is_snowflake`` takes at ``now_ms``: 17-20 digits whose value is at most the largest id that can
    exist by then. A later ``is_snowflake`` takes more (time goes on), never less."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    top = min((max(now + _CLOCK_SKEW_MS - DISCORD_EPOCH_MS, 0) << 22) | ((1 << 22) - 1), 2**64 - 1)
    every, bounded = [], []
    for width in range(17, 21):
        if len(str(top)) > width:
            every.append(width)
        else:
            bounded.append(digits_at_most(str(top).zfill(width)))
    parts = [f"[0-9]{{{every[0]},{every[-1]}}}"] if every else []
    return "(?:" + "|".join(parts + bounded) + ")"


def _invite_pattern(named: bool) -> str:
    def group(name: str, body: str) -> str:
        return f"(?P<{name}>{body})" if named else f"(?:{body})"

    code = "[A-Za-z0-9_-]{2,255}"
    port = "(?::(?:80|443))?"
    com = f"(?:(?:{anycase('ptb.')}|{anycase('canary.')})?{anycase('discord.com')}|{anycase('discordapp.com')})"
    gg = f"{anycase('discord.gg')}{port}/+(?:invite/+)?{group('gg', code)}"
    url = (
        f"(?:{anycase('http')}[Ss]?://)?(?:{anycase('www.')})?"
        f"(?:{gg}|{com}{port}/+invite/+{group('com', code)})"
        rf"/*(?:[?#]{NOT_CONTROL}*)?"
    )
    return rf"{SPACE}*(?:{group('code', code)}|{url}){SPACE}*"


# What parse_invite takes, as the join API's OpenAPI schema describes guild_name (no anchors, no named groups).
INVITE_PATTERN: Final = _invite_pattern(named=False)
_INVITE_RE: Final = re.compile(_invite_pattern(named=True))


def parse_invite(value: str) -> str | None:
    """Return the invite code of a bare code or an invite URL, or None when it is neither.

    Accepted, with white space around: ``CODE`` (2-255 of ``A-Za-z0-9_-``), ``discord.gg/CODE``,
    ``discord.gg/invite/CODE``, ``discord.com/invite/CODE``, ``discordapp.com/invite/CODE`` (and ``ptb.`` or
    ``canary.discord.com``), with or without ``http(s)://``, ``www.``, port 80 or 443, trailing slashes, a query
    or fragment (without control characters); host and scheme in any case. One regular expression, which the
    OpenAPI schema shows too.
    """
    found = _INVITE_RE.fullmatch(value)
    if found is None:
        return None
    return found["code"] or found["gg"] or found["com"]


def looks_like_account_token(value: str) -> bool:
    """Account and bot tokens are three dot-separated parts (or the old ``mfa.`` form); OAuth2 tokens have no dots."""
    return value.count(".") >= 2 or value.lower().startswith("mfa.")
