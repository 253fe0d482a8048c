"""``guildgate grants list|show|end|extend|sync`` as an operator runs them, against the database a running service
uses and the sandbox: each ``--json`` prints exactly one JSON object on one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import APP_A, GUILD, Gateway, Sandbox, cli
from tests.grantworld import BOB, CAROL, Server, call, no_secret_in, removals, roles_at, servers
from tests.linkflow import admin_api


def _one_object(stdout: str) -> dict[str, Any]:
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    no_secret_in(stdout)
    return value


def _grants(gateway: Gateway, *args: str, check: bool = True) -> Any:
    return cli(["grants", *args], env=gateway.env, check=check)


def _made(gateway: Gateway, server: Server, user: str = BOB, **more: Any) -> dict[str, Any]:
    body = {"guild_id": server.id, "user_id": user, "roles": [server.roles[0]], **more}
    response = call(gateway.proc.url, "POST", "/api/grants", gateway.keys["a"], json=body)
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def test_list_and_show(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    first = _made(gateway, server, duration="7d", external_ref="cli_list")
    second = _made(gateway, server, user=CAROL)
    page = _one_object(_grants(gateway, "list", "--guild", server.id, "--json").stdout)
    assert [g["id"] for g in page["grants"]] == [second["id"], first["id"]] and page["next_cursor"] is None
    paged = _one_object(_grants(gateway, "list", "--guild", server.id, "--limit", "1", "--json").stdout)
    assert [g["id"] for g in paged["grants"]] == [second["id"]] and paged["next_cursor"]
    rest = _one_object(
        _grants(
            gateway, "list", "--guild", server.id, "--limit", "1", "--cursor", paged["next_cursor"], "--json"
        ).stdout
    )
    assert [g["id"] for g in rest["grants"]] == [first["id"]]
    only = _one_object(_grants(gateway, "list", "--external-ref", "cli_list", "--guild", server.id, "--json").stdout)
    assert [g["id"] for g in only["grants"]] == [first["id"]]
    table = _grants(gateway, "list", "--guild", server.id).stdout
    assert first["id"] in table and second["id"] in table and "never" in table  # the open-ended one
    shown = _one_object(_grants(gateway, "show", first["id"], "--json").stdout)
    same = ("id", "guild_id", "user_id", "roles", "state", "external_ref", "revision", "on_end")
    assert {k: shown[k] for k in same} == {k: first[k] for k in same}
    assert shown["ends_at"] == first["ends_at"][:19] + "Z"  # the CLI's times: to the second
    assert "cli_list" in _grants(gateway, "show", first["id"]).stdout
    missing = _grants(gateway, "show", "grt_0000000000000000", check=False)
    assert missing.returncode == 1 and "unknown_grant" in missing.stderr
    bad = _grants(gateway, "list", "--state", "paused", check=False)
    assert bad.returncode == 2 and "--state" in bad.stderr


def test_extend_and_end(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    made = _made(gateway, server, duration="1d")
    ends = datetime.fromisoformat(made["ends_at"].replace("Z", "+00:00"))
    longer = _one_object(_grants(gateway, "extend", made["id"], "--by", "30d", "--json").stdout)
    # from its current end; the CLI prints times to the second
    assert datetime.fromisoformat(longer["ends_at"].replace("Z", "+00:00")) == (ends + timedelta(days=30)).replace(
        microsecond=0
    )
    until = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    fixed = _one_object(_grants(gateway, "extend", made["id"], "--until", until.isoformat(), "--json").stdout)
    assert fixed["ends_at"] == until.strftime("%Y-%m-%dT%H:%M:%SZ") and fixed["revision"] == 3
    both = _grants(gateway, "extend", made["id"], "--by", "1d", "--until", until.isoformat(), check=False)
    assert both.returncode == 2 and "exactly one" in both.stderr
    worded = _grants(gateway, "extend", made["id"], "--by", "a month", check=False)
    assert worded.returncode == 2 and "--by" in worded.stderr
    ended = _one_object(_grants(gateway, "end", made["id"], "--json").stdout)
    assert (ended["state"], ended["end_reason"]) == ("ended", "revoked")
    assert server.roles[0] not in roles_at(fresh, server, BOB)
    assert removals(fresh, server, BOB, server.roles[0]) == 1
    late = _grants(gateway, "extend", made["id"], "--by", "1d", check=False)
    assert late.returncode == 1 and "grant_ended" in late.stderr


def test_sync_repairs_a_role_taken_by_hand_and_marks_who_left(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    kept = _made(gateway, server, duration="30d")
    gone = _made(gateway, server, user=CAROL, duration="30d")
    role = server.roles[0]
    httpx.delete(f"{fresh.proc.url}/_sandbox/guilds/{server.id}/members/{BOB}/roles/{role}").raise_for_status()
    httpx.delete(f"{fresh.proc.url}/_sandbox/guilds/{server.id}/members/{CAROL}").raise_for_status()
    assert role not in roles_at(fresh, server, BOB)

    dry = _one_object(_grants(gateway, "sync", "--guild", server.id, "--dry-run", "--json").stdout)
    assert (dry["checked"], dry["repaired"], dry["absent"], dry["failed"], dry["dry_run"]) == (2, 1, 1, 0, True)
    assert role not in roles_at(fresh, server, BOB)  # a dry run changes nothing

    run = _grants(gateway, "sync", "--guild", server.id, "--json")
    summary = _one_object(run.stdout)
    assert run.returncode == 0
    assert {k: summary[k] for k in ("checked", "repaired", "absent", "retried", "failed")} == {
        "checked": 2,
        "repaired": 1,
        "absent": 1,
        "retried": 0,
        "failed": 0,
    }
    assert role in roles_at(fresh, server, BOB)
    left = _one_object(_grants(gateway, "show", gone["id"], "--json").stdout)
    assert left["state"] == "active" and left["absent_since"] is not None
    assert _one_object(_grants(gateway, "show", kept["id"], "--json").stdout)["absent_since"] is None
    again = _one_object(_grants(gateway, "sync", "--guild", server.id, "--json").stdout)
    assert (again["absent"], again["repaired"]) == (1, 0)  # still gone: counted as found, not only when newly so
    text = _grants(gateway, "sync", "--guild", server.id).stdout
    assert "checked 2" in text and "absent 1" in text and "failed 0" in text


def test_sync_exits_1_when_a_grant_fails(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    _made(gateway, server, duration="30d")
    role = server.roles[0]
    httpx.delete(f"{fresh.proc.url}/_sandbox/guilds/{server.id}/members/{BOB}/roles/{role}").raise_for_status()
    patch = {"bots": {"1100000000000000001": ["CREATE_INSTANT_INVITE"]}}  # Manage Roles taken away
    httpx.patch(f"{fresh.proc.url}/_sandbox/guilds/{server.id}", json=patch).raise_for_status()
    run = _grants(gateway, "sync", "--guild", server.id, "--json", check=False)
    summary = _one_object(run.stdout)
    assert run.returncode == 1
    assert (summary["checked"], summary["failed"], summary["repaired"]) == (1, 1, 0)


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_extend_never_shortens_and_by_needs_an_end(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    ends = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    made = _made(gateway, server, ends_at=_z(ends))
    earlier = _z(ends - timedelta(days=60))
    shorter = _grants(gateway, "extend", made["id"], "--until", earlier, check=False)
    assert shorter.returncode == 2 and "--until" in shorter.stderr and _z(ends) in shorter.stderr, shorter.stderr
    assert "now ends" not in shorter.stdout
    as_json = _grants(gateway, "extend", made["id"], "--until", earlier, "--json", check=False)
    refusal = _one_object(as_json.stdout)
    assert as_json.returncode == 2 and refusal["error"] == "invalid_request" and _z(ends) in refusal["detail"]
    kept = _one_object(_grants(gateway, "show", made["id"], "--json").stdout)
    assert (kept["ends_at"], kept["revision"]) == (_z(ends), made["revision"])  # nothing changed

    never = _made(gateway, server, user=CAROL)  # open-ended
    by = _grants(gateway, "extend", never["id"], "--by", "1d", check=False)
    assert by.returncode == 2 and "no end" in by.stderr and "--until" in by.stderr, by.stderr
    assert _one_object(_grants(gateway, "show", never["id"], "--json").stdout)["ends_at"] is None
    until = _z(datetime.now(UTC) + timedelta(days=30))
    given = _one_object(_grants(gateway, "extend", never["id"], "--until", until, "--json").stdout)
    assert given["ends_at"] == until  # --until on an open-ended grant sets its end


def test_json_errors_are_one_object_on_stdout(gateway: Gateway, fresh: Sandbox) -> None:
    nope = "grt_0000000000000000"
    for args in (["show", nope], ["end", nope], ["extend", nope, "--by", "1d"]):
        run = _grants(gateway, *args, "--json", check=False)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert _one_object(run.stdout) == {"error": "unknown_grant", "detail": "No such grant"}, args
        text = _grants(gateway, *args, check=False)
        assert text.returncode == 1 and "No such grant" in text.stderr and "for this app" not in text.stderr
    for args, named in (
        (["list", "--state", "paused"], "--state"),
        (["list", "--guild", "nope"], "--guild"),
        (["list", "--limit", "0"], "--limit"),
        (["sync", "--app", "nope"], "--app"),
        (["end", nope, "--on-end", "explode"], "--on-end"),
        (["extend", nope, "--by", "a month"], "--by"),
        (["extend", nope], "exactly one"),
    ):
        run = _grants(gateway, *args, "--json", check=False)
        error = _one_object(run.stdout)
        assert run.returncode == 2 and error["error"] == "invalid_request" and named in error["detail"], args


def test_list_shows_why_an_end_failed(gateway: Gateway, fresh: Sandbox) -> None:
    (server,) = servers(fresh)
    made = _made(gateway, server, duration="30d")
    patch = {"bots": {"1100000000000000001": ["CREATE_INSTANT_INVITE"]}}  # Manage Roles taken away
    httpx.patch(f"{fresh.proc.url}/_sandbox/guilds/{server.id}", json=patch).raise_for_status()
    _grants(gateway, "end", made["id"], check=False)
    failed = _one_object(_grants(gateway, "show", made["id"], "--json").stdout)
    assert failed["state"] == "end_failed" and failed["last_error"], failed
    table = _grants(gateway, "list", "--guild", server.id, "--state", "end_failed").stdout
    assert "last_error" in table and failed["last_error"].split()[0] in table, table


def test_a_links_access_lasts_at_most_as_long_as_a_grants_duration(gateway: Gateway, fresh: Sandbox) -> None:
    base = ["links", "create", "--app", APP_A, "--guild", GUILD]
    run = cli([*base, "--access-for", "367d"], env=gateway.env, check=False)
    assert run.returncode == 2 and "--access-for" in run.stderr and "at most 366d" in run.stderr, run.stderr
    r = admin_api(gateway, "POST", "/api/admin/links", json={"app_id": APP_A, "guild_id": GUILD, "access_for": "367d"})
    assert r.status_code == 400 and "access_for" in r.json()["detail"] and "366d" in r.json()["detail"], r.text
    (server,) = servers(fresh)
    body = {"guild_id": server.id, "user_id": BOB, "roles": [server.roles[0]], "duration": "367d"}
    api = call(gateway.proc.url, "POST", "/api/grants", gateway.keys["a"], json=body)
    assert api.status_code == 400 and "366d" in api.json()["msg"], api.text  # the same limit
