"""How long access lasts, in words: exact to the unit the operator gave, in English and Chinese."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from guildgate.web.links.access_text import access_words, duration_words, moment_words


@pytest.mark.parametrize(
    ("given", "en", "zh"),
    [
        ("30d", "for 30 days", "为期 30 天"),
        ("90s", "for 90 seconds", "为期 90 秒"),
        ("2w", "for 2 weeks", "为期 2 周"),
        ("1d", "for 1 day", "为期 1 天"),
        ("12h", "for 12 hours", "为期 12 小时"),
        ("1m", "for 1 minute", "为期 1 分钟"),
        ("20s", "for 20 seconds", "为期 20 秒"),
    ],
)
def test_a_duration_is_said_in_the_unit_it_was_given_in(given: str, en: str, zh: str) -> None:
    assert duration_words(given, "en") == en
    assert duration_words(given, "zh") == zh
    assert access_words("en", access_for=given) == en


def test_a_fixed_end_is_a_date_and_the_time_only_when_it_has_one() -> None:
    assert access_words("en", access_until=datetime(2027, 1, 5, tzinfo=UTC)) == "until 5 January 2027 (UTC)"
    assert access_words("zh", access_until=datetime(2027, 1, 5, tzinfo=UTC)) == "至 2027 年 1 月 5 日（UTC）"
    assert moment_words(datetime(2027, 1, 5, 10, 30, tzinfo=UTC), "en") == "5 January 2027, 10:30"
    assert moment_words(datetime(2027, 1, 5, 10, 30, 5, tzinfo=UTC), "zh") == "2027 年 1 月 5 日 10:30:05"


def test_open_ended_and_no_access_option() -> None:
    assert access_words("en", access_open=True) == "with no end date"
    assert access_words("zh", access_open=True) == "无截止日期"
    assert access_words("en") is None


def test_something_that_is_not_a_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_words("soon", "en")
