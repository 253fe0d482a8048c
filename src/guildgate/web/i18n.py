"""Language of messages: Simplified Chinese by default, English when Accept-Language prefers it."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]


def pick_language(header: str | None) -> Lang:
    """Pick between zh and en by the header's quality values; the first supported best match wins.

    >>> pick_language("en-US,en;q=0.9")
    'en'
    >>> pick_language("zh-CN,en;q=0.5")
    'zh'
    >>> pick_language(None)
    'zh'
    """
    if not header:
        return "zh"
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        fields = part.strip().split(";")
        tag = fields[0].strip().lower()
        quality = 1.0
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.split("-")[0]
        if primary in ("en", "zh") and quality > 0:
            choices.append((-quality, index, primary))
    if not choices:
        return "zh"
    return "en" if min(choices)[2] == "en" else "zh"


OK_MSG = {"zh": "成功", "en": "OK"}
