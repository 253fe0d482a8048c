"""Hypothesis properties of the envelope: whatever the outcome, detail, retry time and language, the answer has the
contract's shape, says the outcome's status, renders every placeholder, and round-trips through JSON."""

from __future__ import annotations

import json
import time

from hypothesis import given
from hypothesis import strategies as st

from guildgate.core.errors import DiscordRefusedError, JoinError
from guildgate.core.outcomes import Outcome
from guildgate.web.errors import error_body

KEYS = {"status", "msg", "id", "data", "cost", "code"}


@given(
    outcome=st.sampled_from(list(Outcome)),
    detail=st.text(max_size=300),
    retry=st.none() | st.floats(min_value=0, max_value=86_400, allow_nan=False),
    lang=st.sampled_from(["zh", "en"]),
    record_id=st.none() | st.uuids().map(str),
)
def test_every_error_envelope_has_the_contract_shape(
    outcome: Outcome, detail: str, retry: float | None, lang: str, record_id: str | None
) -> None:
    error = JoinError(detail, outcome=outcome, retry_after=retry)
    body = error_body(error, record_id=record_id, lang=lang, started=time.perf_counter())  # type: ignore[arg-type]
    assert set(body) == KEYS
    assert body["status"] == outcome.status and body["code"] == outcome.value and body["id"] == record_id
    assert body["data"] is None and body["cost"].endswith("ms")
    assert "{detail}" not in body["msg"] and "{retry}" not in body["msg"] and body["msg"]
    assert json.loads(json.dumps(body, ensure_ascii=False)) == body


@given(status=st.integers(min_value=400, max_value=499), code=st.integers(min_value=0, max_value=10**6))
def test_discord_codes_ride_along_on_refusals(status: int, code: int) -> None:
    error = DiscordRefusedError("refused", outcome=Outcome.DISCORD_ERROR, discord_status=status, discord_code=code)
    body = error_body(error, record_id=None, lang="en", started=time.perf_counter())
    assert body["discord_code"] == code and body["status"] == 0 and set(body) == KEYS | {"discord_code"}
