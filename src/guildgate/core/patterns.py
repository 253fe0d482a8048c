"""Pieces of regular expressions for rules that the OpenAPI schema shows as patterns (snowflakes that can exist,
link lifetimes, invites, tokens): no anchors, no named groups, no flags, so that Python and a JSON Schema validator
read them alike."""

from __future__ import annotations

import re

# White space as every regular-expression engine agrees on it (Python's \s takes more, a JSON Schema validator's
# other characters): the rules that the schema shows trim and collapse these, and only these.
SPACE_CHARS = " \t\n\r\f\v"
SPACE = r"[ \t\n\r\f\v]"
# Any character but a control character (C0 with NUL, DEL, C1: Unicode's Cc, core.text.is_control), and the
# same without the space: what text inputs may hold, beyond the white space trimmed around them.
NOT_CONTROL = r"[^\x00-\x1f\x7f-\x9f]"
NOT_CONTROL_OR_SPACE = r"[^ \x00-\x1f\x7f-\x9f]"


def anycase(word: str) -> str:
    """``word`` in any case, without a flag (a JSON Schema pattern has none): "gg." -> "[Gg][Gg]\\."."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


def digits_at_most(limit: str) -> str:
    """Strings of exactly ``len(limit)`` ASCII digits (leading zeros too) whose value is at most ``limit``."""
    width = len(limit)
    lower = [limit[:i] + _below(digit) + _any(width - i - 1) for i, digit in enumerate(limit) if digit != "0"]
    return "(?:" + "|".join([*lower, limit]) + ")"


def positive_at_most(limit: int) -> str:
    """ASCII decimal numbers from 1 to ``limit``, leading zeros allowed."""
    text = str(limit)
    shorter = [f"[1-9]{_any(width - 1)}" for width in range(1, len(text))]
    same = [
        text[:i] + (f"[1-{int(digit) - 1}]" if i == 0 else _below(digit)) + _any(len(text) - i - 1)
        for i, digit in enumerate(text)
        if digit > ("1" if i == 0 else "0")
    ]
    return "0*(?:" + "|".join([*shorter, *same, text]) + ")"


def _below(digit: str) -> str:
    return "0" if digit == "1" else f"[0-{int(digit) - 1}]"


def _any(count: int) -> str:
    return "" if count == 0 else "[0-9]" if count == 1 else f"[0-9]{{{count}}}"
