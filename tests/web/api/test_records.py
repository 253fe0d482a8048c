"""Records: created before Discord is called, finished after; paging, filters, isolation, usage."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from tests.conftest import GUILD, GUILD_NOPERMS, TOKENS, USER_IDS, Gateway, Sandbox
from tests.helpers import envelope

FIELDS = {
    "id",
    "state",
    "code",
    "msg",
    "guild_id",
    "guild_name",
    "user_id",
    "developer_id",
    "cost_ms",
    "discord_status",
    "discord_code",
    "created_at",
    "finished_at",
    "source",
    "link_id",
}


def test_a_record_answers_every_field(gateway: Gateway, fresh: Sandbox) -> None:
    result = envelope(
        gateway.join({"authorization": TOKENS["alice"], "guild_name": "test1"}, headers={"Developer-Id": "shop-7"})
    )
    r = gateway.get(f"/api/record/{result['id']}")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == 1
    record = body["data"]
    assert set(record) == FIELDS
    assert record["id"] == result["id"]
    assert (record["state"], record["code"], record["source"], record["link_id"]) == (
        "succeeded",
        "joined",
        "api",
        None,
    )
    assert (record["guild_id"], record["guild_name"], record["user_id"]) == (GUILD, "Test Server", USER_IDS["alice"])
    assert (record["discord_status"], record["discord_code"], record["developer_id"]) == (201, None, "shop-7")
    assert isinstance(record["cost_ms"], float) and record["cost_ms"] > 0
    created = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(record["finished_at"].replace("Z", "+00:00"))
    assert record["created_at"].endswith("Z") and created <= finished
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)
    assert record["msg"] == "加入成功"
    english = gateway.get(f"/api/record/{result['id']}", lang="en").json()  # the reader's language
    assert (english["msg"], english["data"]["msg"]) == ("OK", "Joined the server")


def test_a_failed_join_records_discords_answer(gateway: Gateway, fresh: Sandbox) -> None:
    result = envelope(gateway.join({"authorization": TOKENS["mallory"], "guild_id": GUILD}))
    record = gateway.get(f"/api/record/{result['id']}").json()["data"]
    assert (record["state"], record["code"], record["discord_status"], record["discord_code"]) == (
        "failed",
        "banned",
        403,
        40007,
    )
    assert record["user_id"] == USER_IDS["mallory"]


def test_another_apps_key_and_unknown_ids_get_the_same_404(gateway: Gateway, fresh: Sandbox) -> None:
    result = envelope(gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}))
    other = gateway.get(f"/api/record/{result['id']}", key="b")
    unknown = gateway.get("/api/record/00000000-0000-4000-8000-000000000000")
    assert other.status_code == unknown.status_code == 404
    assert {k: v for k, v in other.json().items() if k != "cost"} == {
        k: v for k, v in unknown.json().items() if k != "cost"
    }
    assert gateway.get(f"/api/record/{result['id']}", key="a2").status_code == 200  # same app, other key
    assert gateway.get(f"/api/record/{result['id']}", key="").status_code == 401
    listed = gateway.get("/api/records", key="b", limit=500).json()["data"]["records"]
    assert result["id"] not in {r["id"] for r in listed}


def test_records_are_newest_first_and_cursor_paged_without_gaps(gateway: Gateway, fresh: Sandbox) -> None:
    made = [
        envelope(gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}, headers={"Developer-Id": "pager"}))[
            "id"
        ]
        for _ in range(7)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"developer_id": "pager", "limit": 3, **({"cursor": cursor} if cursor else {})}
        data = gateway.get("/api/records", **params).json()["data"]
        seen += [r["id"] for r in data["records"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    assert pages == 3


def test_record_filters(gateway: Gateway, fresh: Sandbox) -> None:
    start = datetime.now(UTC).isoformat()
    envelope(
        gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD_NOPERMS}, headers={"Developer-Id": "filters"})
    )
    envelope(gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}, headers={"Developer-Id": "filters"}))
    failed = gateway.get("/api/records", developer_id="filters", state="failed").json()["data"]["records"]
    assert [r["code"] for r in failed] == ["bot_missing_permissions"]
    by_code = gateway.get("/api/records", developer_id="filters", code="already_member").json()["data"]["records"]
    assert [r["guild_id"] for r in by_code] == [GUILD]
    by_guild = gateway.get("/api/records", developer_id="filters", guild_id=GUILD_NOPERMS).json()["data"]["records"]
    assert len(by_guild) == 1
    assert len(gateway.get("/api/records", developer_id="filters", since=start).json()["data"]["records"]) == 2
    assert gateway.get("/api/records", developer_id="filters", until=start).json()["data"]["records"] == []


def test_bad_record_queries_are_400_naming_the_parameter(gateway: Gateway) -> None:
    for params, names in [
        ({"state": "done"}, "state"),
        ({"code": "nope"}, "code"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode()}, "cursor"),  # nested too deep
        ({"developer_id": "a\x00b"}, "developer_id"),  # as the Developer-Id header: 1-64 of A-Z a-z 0-9 _ -
        ({"guild_id": "12345"}, "guild_id"),  # a snowflake or nothing
        ({"since": "2026-02-30T00:00:00Z"}, "since"),  # a day February does not have
        ({"since": "2026-01-31T25:00:00Z"}, "since"),  # an hour the day does not have
        ({"until": "2026-01-31T12"}, "until"),  # minutes at least
        ({"until": "２０２６-01-31T00:00:00Z"}, "until"),  # ASCII digits
        ({"cursor": base64.urlsafe_b64encode(b'["9999-12-31T23:59:59-14:00", "r"]').decode()}, "cursor"),
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
    ]:
        r = gateway.get("/api/records", **params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["code"] == "invalid_request"
        assert names in r.json()["msg"], r.json()["msg"]


def test_record_queries_take_what_the_schema_allows_and_read_empty_as_absent(gateway: Gateway, fresh: Sandbox) -> None:
    """Every RFC 3339 time is taken, even one past what a datetime holds in UTC (the earliest or latest there is);
    an empty filter counts as absent, as an empty field of the join does."""
    envelope(gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD}))  # at least one record
    for params, expect_any in [
        ({"since": "9999-12-31T23:59:59-14:00"}, False),  # past year 9999 in UTC: nothing is that new
        ({"until": "0001-01-01T00:00:00+14:00"}, False),  # before year 1 in UTC: nothing is that old
        ({"until": "9999-12-31t23:59:60.123456789z"}, True),  # lower case, a leap second, nine digits
        ({"until": "9999-12-31"}, True),  # a date alone: midnight, UTC
        ({"until": "9999-12-31 23:59"}, True),  # no seconds, no offset (UTC), a space for the T
        ({"since": "9999-12-31T00:00:00"}, False),  # no offset: UTC
        ({"state": "", "code": "", "guild_id": "", "developer_id": "", "since": "", "until": "", "cursor": ""}, True),
        ({"cursor": "9999999999999999.00000000-0000-4000-8000-000000000000"}, True),  # a cursor in 2286
    ]:
        r = gateway.get("/api/records", **params)
        assert r.status_code == 200, (params, r.text)
        assert bool(r.json()["data"]["records"]) == expect_any, params


def test_usage_counts_per_day_and_outcome(gateway: Gateway, fresh: Sandbox) -> None:
    before = gateway.get("/api/usage", key="b").json()["data"]
    envelope(gateway.join({"authorization": TOKENS["alice"], "guild_id": GUILD}, key="b"))
    after = gateway.get("/api/usage", key="b").json()["data"]
    assert after["total"] == before["total"] + 1
    code = "invalid_oauth_token"  # alice's token was granted to app A, not B
    assert after["totals"].get(code, 0) == before["totals"].get(code, 0) + 1
    today = datetime.now(UTC).date().isoformat()
    assert after["days"][-1]["date"] == today
    assert after["quota"] == {
        "per_minute": None,
        "used_last_minute": after["quota"]["used_last_minute"],
        "remaining": None,
    }


def test_no_record_is_left_pending(gateway: Gateway, fresh: Sandbox) -> None:
    assert gateway.get("/api/records", limit=1).json()["data"]["records"]
    assert gateway.pending() == []
