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
from urllib.parse import urlsplit

DISCORD_EPOCH_MS: Final = 1420070400000
SNOWFLAKE_DIGITS: Final = "[0-9]{17,20}"  # the shape of an id; is_snowflake also checks its value
_SNOWFLAKE_RE: Final = re.compile(SNOWFLAKE_DIGITS)
_CODE_RE: Final = re.compile(r"[A-Za-z0-9_-]{2,255}")
# Host -> the path prefix before the code.
_INVITE_HOSTS: Final = {
    "discord.gg": ("",),
    "discord.com": ("invite",),
    "discordapp.com": ("invite",),
    "ptb.discord.com": ("invite",),
    "canary.discord.com": ("invite",),
}
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


def parse_invite(value: str) -> str | None:
    """Return the invite code of a bare code or an invite URL, or None when it is neither.

    Accepted: ``CODE``, ``discord.gg/CODE``, ``discord.gg/invite/CODE``, ``discord.com/invite/CODE``,
    ``discordapp.com/invite/CODE``, with or without a scheme, ``www.``, a trailing slash, a query or fragment.
    """
    text = value.strip()
    if not text:
        return None
    if _CODE_RE.fullmatch(text):
        return text
    candidate = text if "://" in text else "https://" + text
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    if host not in _INVITE_HOSTS or parts.port not in (None, 80, 443):
        return None
    segments = [s for s in parts.path.split("/") if s]
    if host == "discord.gg" and segments[:1] == ["invite"] and len(segments) > 1:
        segments = segments[1:]
    elif host != "discord.gg":
        if segments[:1] != ["invite"]:
            return None
        segments = segments[1:]
    if len(segments) != 1 or not _CODE_RE.fullmatch(segments[0]):
        return None
    return segments[0]


def looks_like_account_token(value: str) -> bool:
    """Account and bot tokens are three dot-separated parts (or the old ``mfa.`` form); OAuth2 tokens have no dots."""
    return value.count(".") >= 2 or value.lower().startswith("mfa.")
