"""GET /api/records' time filters: the schema's `since`/`until` (RFC 3339 date-time, a date, or the shorter forms
ISO 8601 writers send) against what the handler takes, judged by jsonschema-rs (schemathesis's validator). What
the schema allows is always taken; what it does not and is taken is only a day 29-31 in the shorter forms (the
schema states those without a calendar)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
from hypothesis import given, settings
from hypothesis import strategies as st

from guildgate.core.errors import JoinError
from guildgate.web.api.records import _time, describe_records

SCHEMA: dict[str, Any] = {
    "paths": {"/api/records": {"get": {"parameters": [{"in": "query", "name": "since", "schema": {}}]}}}
}
describe_records(SCHEMA, snowflake="[0-9]{17,20}")
SINCE = jsonschema_rs.validator_for(
    SCHEMA["paths"]["/api/records"]["get"]["parameters"][0]["schema"],
    validate_formats=True,  # as schemathesis does
)

two = st.integers(0, 99).map(lambda v: f"{v:02d}")
times = st.builds(
    lambda date, sep, h, m, s, frac, off: f"{date}{sep}{h}:{m}{s}{frac}{off}",
    st.one_of(st.dates().map(str), st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True)),
    st.sampled_from(["T", "t", " ", "_"]),
    two,
    two,
    st.one_of(st.just(""), two.map(":".__add__)),
    st.sampled_from(["", ".5", ".123456789", "."]),
    st.one_of(
        st.sampled_from(["", "Z", "z", "+", "+5:00"]), st.builds("{}{}:{}".format, st.sampled_from("+-"), two, two)
    ),
)
values = st.one_of(times, st.dates().map(str), st.text(max_size=30), st.just(""))


def takes(value: str) -> bool:
    try:
        _time("since", value)
    except JoinError:
        return False
    return True


@settings(max_examples=3000, deadline=None)
@given(values)
def test_the_schema_allows_a_time_only_when_the_handler_takes_it(value: str) -> None:
    allowed, taken = SINCE.is_valid(value), takes(value)
    if allowed:
        assert taken, value
    elif taken:  # the one gap the schema leaves: a shorter form on day 29, 30 or 31
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-(29|30|31)[Tt ].*", value), value
