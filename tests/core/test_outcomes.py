"""The outcome table and the secret type."""

from __future__ import annotations

import pickle

import pytest

from guildgate.core.outcomes import Outcome
from guildgate.core.secret import Secret


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_has_both_languages(outcome: Outcome) -> None:
    zh = outcome.message("zh", detail="字段", retry=2.5)
    en = outcome.message("en", detail="field", retry=2.5)
    assert zh and en and zh != en
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)
    assert outcome.status == (1 if outcome in (Outcome.JOINED, Outcome.ALREADY_MEMBER) else 0)


def test_http_statuses_follow_the_contract() -> None:
    assert {o.http_status for o in Outcome if o.value.startswith(("joined", "already", "banned", "max_"))} == {200}
    assert Outcome.INVALID_API_KEY.http_status == 401
    assert Outcome.QUOTA_EXCEEDED.http_status == 429
    assert Outcome.IDEMPOTENCY_CONFLICT.http_status == 409
    assert Outcome.DISCORD_UNAVAILABLE.http_status in (502, 503, 504)


def test_retry_is_rendered_in_seconds() -> None:
    assert Outcome.RATE_LIMITED.message("en", retry=12.0) == "Rate limited by Discord, retry after 12 s"


def test_secret_never_shows() -> None:
    s = Secret("hunter2-token")
    assert "hunter2" not in repr(s) + str(s) + f"{s}" + f"{s!r}" + repr([s]) + repr({"k": s})
    assert s.reveal() == "hunter2-token"
    assert s.fingerprint() != "hunter2-token" and len(s.fingerprint()) == 16
    with pytest.raises(TypeError):
        pickle.dumps(s)
