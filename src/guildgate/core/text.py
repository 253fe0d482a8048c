"""Text that may be stored and shown: without control characters (a NUL, which PostgreSQL's text cannot hold;
line breaks, tabs), whether an operator typed it or one of Discord's answers carried it. A text input holding one
is refused with 400 naming the field (core.patterns.NOT_CONTROL says the same in the OpenAPI schema); a name from
Discord's answers has each replaced by a space."""

from __future__ import annotations

import unicodedata


def is_control(char: str) -> bool:
    """A control character or a lone surrogate (Unicode categories Cc and Cs)."""
    return unicodedata.category(char) in ("Cc", "Cs")


def has_control(text: str) -> bool:
    return any(is_control(char) for char in text)
