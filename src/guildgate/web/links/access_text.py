"""How long access through a link lasts, in plain words, exact to the unit the operator gave: "for 30 days",
"for 90 seconds", "for 2 weeks", "until 5 January 2027", "with no end date" (and in Chinese). The link page and
the result page show it; ``guildgate links list`` too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from guildgate.core.grants import Grant
from guildgate.core.links import Link, parse_duration

_UNITS = {  # unit letter: (English singular, plural; Chinese)
    "s": ("second", "seconds", "秒"),
    "m": ("minute", "minutes", "分钟"),
    "h": ("hour", "hours", "小时"),
    "d": ("day", "days", "天"),
    "w": ("week", "weeks", "周"),
}
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
TEXT = {
    "line": {"en": "Access {what}", "zh": "访问权限{what}"},
    "open": {"en": "with no end date", "zh": "无截止日期"},
    "end_remove_roles": {"en": "When it ends, the roles are taken back.", "zh": "到期后，身份组将被收回。"},
    "end_kick": {"en": "When it ends, you leave the server.", "zh": "到期后，你将被移出该服务器。"},
    "ends_at": {"en": "Ends {when} UTC", "zh": "将于 {when}（UTC）结束"},
    "r_access_ended": {
        "en": "Your access to {server} through this link has ended",
        "zh": "你通过此链接获得的 {server} 访问权限已结束",
    },
    "n_access_ended": {
        "en": "The link can't be used again. Ask whoever gave it to you about renewing.",
        "zh": "此链接不能再次使用。如需续期，请联系提供链接的人。",
    },
}


def _zh(lang: str) -> bool:
    return lang == "zh"


def duration_words(duration: str, lang: str) -> str:
    """``30d`` -> "for 30 days" / "为期 30 天": the number and unit as given (90s stays 90 seconds)."""
    parse_duration(duration, max_days=10**6)  # ValueError when it is not a duration
    text = "".join(duration.split())
    number, unit = int(text[:-1]), text[-1]
    singular, plural, chinese = _UNITS[unit]
    if _zh(lang):
        return f"为期 {number} {chinese}"
    return f"for {number} {singular if number == 1 else plural}"


def moment_words(moment: datetime, lang: str) -> str:
    """A UTC time as a person reads it: "5 January 2027" at midnight, "5 January 2027, 10:30" (and the seconds
    when there are any) otherwise; "2027 年 1 月 5 日 10:30" in Chinese."""
    moment = moment.astimezone(UTC)
    clock = ""
    if (moment.hour, moment.minute, moment.second) != (0, 0, 0):
        clock = moment.strftime("%H:%M:%S" if moment.second else "%H:%M")
    if _zh(lang):
        day = f"{moment.year} 年 {moment.month} 月 {moment.day} 日"
        return f"{day} {clock}" if clock else day
    day = f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"
    return f"{day}, {clock}" if clock else day


def until_words(moment: datetime, lang: str) -> str:
    """ "until 5 January 2027" / "至 2027 年 1 月 5 日" (UTC)."""
    when = moment_words(moment, lang)
    return f"至 {when}" if _zh(lang) else f"until {when}"


def access_words(
    lang: str, *, access_for: str | None = None, access_until: datetime | None = None, access_open: bool = False
) -> str | None:
    """How long the access lasts: "for 30 days", "until 5 January 2027 (UTC)", "with no end date"; None for
    a link without an access option."""
    if access_for:
        return duration_words(access_for, lang)
    if access_until is not None:
        return until_words(access_until, lang) + ("（UTC）" if _zh(lang) else " (UTC)")
    if access_open:
        return TEXT["open"]["zh" if _zh(lang) else "en"]
    return None


def access_lines(lang: str, link: Link) -> list[str]:
    """The link page's lines on access: how long, and what its end does."""
    what = access_words(lang, access_for=link.access_for, access_until=link.access_until, access_open=link.access_open)
    if what is None:
        return []
    lines = [say("line", lang, what=what)]
    if link.on_end.value in ("remove_roles", "kick") and not link.access_open:
        if link.on_end.value == "kick" or link.roles:
            lines.append(say(f"end_{link.on_end.value}", lang))
    return lines


def say(key: str, lang: str, **fields: object) -> str:
    return TEXT[key]["zh" if _zh(lang) else "en"].format(**fields)


def access_summary(link: Link, grant: Grant | None) -> dict[str, Any]:
    """What the result page says of the access: the link's terms, and the grant's end."""
    if not link.makes_grant:
        return {}
    summary: dict[str, Any] = {"af": link.access_for, "ao": link.access_open, "oe": link.on_end.value}
    if link.access_until is not None:
        summary["au"] = link.access_until.isoformat()
    if grant is not None and grant.ends_at is not None:
        summary["ge"] = grant.ends_at.isoformat()
    return summary


def access_result_lines(data: dict[str, Any], lang: str) -> list[str]:
    if not any(k in data for k in ("af", "au", "ao")):
        return []
    until = _time_or_none(data.get("au"))
    what = access_words(lang, access_for=data.get("af") or None, access_until=until, access_open=bool(data.get("ao")))
    if what is None:
        return []
    lines = [say("line", lang, what=what)]
    ends = _time_or_none(data.get("ge"))
    if ends is not None and until is None:
        lines.append(say("ends_at", lang, when=moment_words(ends, lang)))
    return lines


def _time_or_none(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
