"""The join body's OpenAPI schema says exactly what the join takes: for bodies mixing valid and invalid values of
every field, the schema (judged by jsonschema-rs, the validator schemathesis uses) allows a body if and only if
``parse_join`` takes it. A body the schema allows that the join refused would be a client following the schema
and being turned away; one it forbids that the join took, a rule the schema does not tell."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guildgate.core.errors import JoinError
from guildgate.core.invites import DISCORD_EPOCH_MS, snowflake_pattern
from guildgate.web.api.body import join_body_schema, parse_join

NOW_MS = int(time.time() * 1000)
NEWEST = ((NOW_MS - DISCORD_EPOCH_MS) << 22) | (2**22 - 1)  # the largest id that exists now
SPACE = st.sampled_from(["", " ", "\t", "\n ", "\u3000", "\x1c", "\xa0"])  # ASCII and other white space

ids = st.one_of(
    st.integers(10**16, NEWEST).map(str),  # ids that exist
    st.integers(NEWEST + 2**32, 2**64 + 5).map(str),  # far in the future or past 64 bits
    st.integers(0, 10**16).map(lambda v: str(v).zfill(17)),  # leading zeros
    st.sampled_from(["123", "abcdefghijklmnopqr", "1200000000000000001x", "१२००००००००००००००००१"]),
)
spaced = st.builds(lambda before, value, after: before + value + after, SPACE, ids, SPACE)
tokens = st.one_of(
    st.from_regex(r"[A-Za-z0-9_~+/=-]{1,40}", fullmatch=True),
    st.builds(
        lambda s, t: s + t, st.sampled_from(["Bearer ", "bearer  ", "BEARER\t", "Bearer", "mfa."]), st.text(max_size=8)
    ),
    st.sampled_from(["a.b.c", "x" * 513, "tok en", "tök", "", " ", "Bearer ", "Bearer a.b"]),
    st.text(max_size=12),
)
invites = st.one_of(
    st.sampled_from(
        [
            "test1",
            "https://discord.gg/test1",
            "HTTP://WWW.DISCORD.GG:443//invite/x_y-z/?a=1#f",
            "discord.com/invite/abc",
            "ptb.discord.com/invite/abc/",
            "discordapp.com/invite/abc?x",
            "https://discord.gg:8443/abc",
            "https://example.com/invite/abc",
            "x",
            "bad code",
            "https://discord.gg/a/b",
            "discord.gg/invite",
        ]
    ),
    st.text(max_size=12),
)
nicks = st.one_of(st.text(max_size=40), st.builds(lambda a, b: a + b, st.text(max_size=20), SPACE), st.just("n" * 33))
empty = st.sampled_from(["", None])


def field(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(empty, values)


# Times at least a day from now either way, in every form RFC 3339 allows (a positive offset less than a day ahead
# is taken but not shown: core.access.future_time_pattern), and the ones that are not times.
NOW = datetime.now(UTC)


def _rfc3339(moment: datetime, zone: str, fraction: str, t: str) -> str:
    if zone in ("Z", "z"):
        text = moment.strftime(f"%Y-%m-%d{t}%H:%M:%S") + fraction + zone
    else:
        sign, hours, minutes = zone[0], int(zone[1:3]), int(zone[4:6])
        shift = timedelta(hours=hours, minutes=minutes) * (1 if sign == "+" else -1)
        text = (moment + shift).strftime(f"%Y-%m-%d{t}%H:%M:%S") + fraction + zone
    return text


times = st.one_of(
    st.builds(
        _rfc3339,
        st.one_of(
            st.datetimes(min_value=datetime(2000, 1, 1), max_value=(NOW - timedelta(days=2)).replace(tzinfo=None)),
            st.datetimes(min_value=(NOW + timedelta(days=2)).replace(tzinfo=None), max_value=datetime(9990, 1, 1)),
        ).map(lambda d: d.replace(tzinfo=UTC)),
        st.sampled_from(["Z", "z", "+00:00", "-00:00", "+08:00", "-05:30", "+23:59"]),
        st.sampled_from(["", ".5", ".123456", ".123456789"]),
        st.sampled_from(["T", "t"]),
    ),
    st.sampled_from(
        [
            "2027-02-29T00:00:00Z",  # not a leap year
            "2028-02-29T00:00:00Z",
            "2030-04-31T00:00:00Z",
            "2030-01-01 00:00:00Z",
            "2030-01-01T00:00:00",
            "2030-01-01T24:00:00Z",
            "2030-01-01T00:00:60Z",
            "2030-01-01T00:00:00+24:00",
            "2030-01-01",
            "0000-01-01T00:00:00Z",
            "2030-01-01T00:00:00.Z",
        ]
    ),
    st.text(max_size=8),
)
durations = st.one_of(
    st.sampled_from(["5s", "90s", "30d", " 2w ", "0s", "367d", "10y", "1.5h", "0005m", "5 s", "x" * 40]),
    st.integers(1, 10),
)
grants = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "ends_at": field(st.one_of(times, st.integers())),
            "duration": field(durations),
            "on_end": field(st.sampled_from(["remove_roles", "kick", "keep", "KICK", "ban", 1])),
            "external_ref": field(st.one_of(st.sampled_from(["sub_1", " sub", "a" * 129, "sub 1", "é"]), st.text())),
            "as_of": field(times),
            "other": st.booleans(),  # an unknown field, ignored
        },
    ),
    st.sampled_from([[], "open", 1, True]),
)


optional = {
    "roles": field(st.one_of(st.lists(ids, max_size=3), st.just(["1"] * 251), ids)),
    "nick": field(nicks),
    "mute": field(st.one_of(st.booleans(), st.integers(0, 1), st.just("yes"))),
    "deaf": field(st.booleans()),
    "proxy": field(st.sampled_from(["http://1.2.3.4:3128", " "])),  # no egress proxy is configured here
    "grant": field(grants),
    "internal": st.booleans(),  # an unknown field, ignored
}
guild_ids = field(st.one_of(ids, spaced, st.integers(10**16, 10**19)))
valid_tokens = st.from_regex(r"[A-Za-z0-9_~+/=-]{1,40}", fullmatch=True)
bodies = st.one_of(
    # anything, fields present or not
    st.fixed_dictionaries(
        {},
        optional={
            "authorization": st.one_of(tokens, st.integers()),
            "guild_id": guild_ids,
            "guild_name": field(invites),
            **optional,
        },
    ),
    # a token and one of the two guild fields, as clients send them: most are taken
    st.fixed_dictionaries({"authorization": st.one_of(valid_tokens, tokens), "guild_id": ids}, optional=optional),
    st.fixed_dictionaries(
        {"authorization": st.one_of(valid_tokens, tokens), "guild_name": invites, "guild_id": empty}, optional=optional
    ),
    # a join that is taken but for its grant: the grant's rules decide
    st.fixed_dictionaries({"authorization": valid_tokens, "guild_id": st.just("1200000000000000001"), "grant": grants}),
)


def takes(body: dict[str, Any]) -> bool:
    try:
        parse_join(body, egress_proxies=())
    except JoinError:
        return False
    return True


@pytest.fixture(scope="module")
def schema() -> Any:
    return jsonschema_rs.validator_for(
        join_body_schema(snowflake=snowflake_pattern(NOW_MS), now=NOW), validate_formats=True
    )  # as schemathesis


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies)
def test_the_schema_allows_a_body_exactly_when_the_join_takes_it(schema: Any, body: dict[str, Any]) -> None:
    assert schema.is_valid(body) == takes(body), body
