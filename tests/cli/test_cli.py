"""The operator CLI, run as a real process against the real database."""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import subprocess
from pathlib import Path

import httpx

from tests.conftest import (
    APP_A,
    BIN,
    FIXTURE,
    GUILD,
    TOKENS,
    WORLD,
    Gateway,
    Sandbox,
    base_env,
    cli,
    free_port,
    start,
)
from tests.servers import wait_http

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_apps_add_reads_secrets_from_stdin_and_never_shows_them(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    result = cli(
        ["apps", "add", "--client-id", "1100000000000000555", "--name", "Piped"],
        env=env,
        input="piped-secret-xyz\npiped-bot-token-xyz\n",
    )
    assert "1100000000000000555" in result.stdout
    listed = cli(["apps", "list", "--json"], env=env).stdout
    assert json.loads(listed)[0]["client_id"] == "1100000000000000555"
    assert "piped-secret-xyz" not in listed + result.stdout + result.stderr
    raw = (tmp_path / "guildgate.db").read_bytes()
    assert b"piped-secret-xyz" not in raw and b"piped-bot-token-xyz" not in raw


def test_apps_add_names_a_missing_env_var_and_a_bad_id(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    missing = cli(
        [
            "apps",
            "add",
            "--client-id",
            "1100000000000000555",
            "--client-secret-env",
            "NOPE_UNSET",
            "--bot-token-env",
            "NOPE_UNSET",
        ],
        env=env,
        check=False,
    )
    assert missing.returncode == 2 and "NOPE_UNSET" in missing.stderr
    bad = cli(["apps", "add", "--client-id", "12"], env=env, input="a\nb\n", check=False)
    assert bad.returncode == 2 and "--client-id" in bad.stderr
    for name in ("n" * 101, "tab\there"):  # what PostgreSQL would refuse is refused on SQLite too, by name
        long = cli(
            ["apps", "add", "--client-id", "1100000000000000555", "--name", name], env=env, input="a\nb\n", check=False
        )
        assert long.returncode == 2 and "--name" in long.stderr, long.stderr
    cli(["apps", "add", "--client-id", "1100000000000000555"], env=env, input="a\nb\n")
    key = cli(["keys", "create", "--app", "1100000000000000555", "--name", "x\ny"], env=env, check=False)
    assert key.returncode == 2 and "--name" in key.stderr, key.stderr


def test_commands_that_use_secrets_refuse_to_run_without_a_secret_key_and_readers_do_not_need_it(
    tmp_path: Path,
) -> None:
    env = base_env(tmp_path)
    cli(["apps", "add", "--client-id", APP_A], env=env, input="s\nt\n")
    key = json.loads(cli(["keys", "create", "--app", APP_A, "--json"], env=env).stdout)
    del env["GUILDGATE_SECRET_KEY"]
    for args in (
        ["keys", "create", "--app", APP_A],
        ["apps", "add", "--client-id", APP_A],
        ["serve", "--port", str(free_port())],
    ):
        result = cli(args, env=env, input="s\nt\n", check=False)
        assert result.returncode == 2, args
        assert "GUILDGATE_SECRET_KEY" in result.stderr
    assert [k["id"] for k in json.loads(cli(["keys", "list", "--json"], env=env).stdout)] == [key["id"]]
    assert json.loads(cli(["records", "list", "--json"], env=env).stdout) == []
    assert cli(["records", "export"], env=env).stdout == ""
    assert json.loads(cli(["links", "list", "--json"], env=env).stdout) == []
    missing = cli(["records", "show", "rec-nope"], env=env, check=False)
    assert missing.returncode == 1 and "GUILDGATE_SECRET_KEY" not in missing.stderr
    revoked = cli(["keys", "revoke", key["id"]], env=env)
    assert f"key {key['id']}" in revoked.stdout


def test_each_wrong_setting_is_named_by_its_variable_and_no_password_is_shown(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        GUILDGATE_REQUEST_READ_TIMEOUT="soon",
        GUILDGATE_REDIS_URL="http://:redis-pass-77c1@cache:6379",
        GUILDGATE_EGRESS_PROXIES="http://proxy:3128,socks5://u:proxy-pass-19fa@p2:1080",
        GUILDGATE_PUBLIC_URL="joins.example.com",
    )
    result = cli(["keys", "list"], env=env, check=False)
    assert result.returncode == 2
    said = result.stderr.replace("\n", "")
    for problem in (
        "GUILDGATE_REQUEST_READ_TIMEOUT: Input should be a valid number",
        "GUILDGATE_REDIS_URL: must start with redis://, rediss:// or unix://, got 'http://:***@cache:6379'",
        "GUILDGATE_EGRESS_PROXIES: each proxy must be an http(s) URL",
        "'socks5://u:***@p2:1080'",
        "GUILDGATE_PUBLIC_URL: must be an http(s) URL, got 'joins.example.com'",
    ):
        assert problem in said, said
    assert "redis-pass-77c1" not in said and "proxy-pass-19fa" not in said and "pydantic" not in said


def test_several_workers_without_redis_are_refused_with_the_reason(tmp_path: Path) -> None:
    result = cli(["serve", "--workers", "2", "--port", str(free_port())], env=base_env(tmp_path), check=False)
    assert result.returncode == 2
    assert "GUILDGATE_REDIS_URL" in result.stderr


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    cli(["apps", "add", "--client-id", APP_A], env=env, input="s\nt\n")
    created = json.loads(
        cli(["keys", "create", "--app", APP_A, "--name", "shop", "--quota-per-minute", "5", "--json"], env=env).stdout
    )
    assert created["key"].startswith("gg_") and created["quota_per_minute"] == 5
    plain = cli(["keys", "create", "--app", APP_A], env=env).stdout.strip()
    assert plain.startswith("gg_") and "\n" not in plain
    listed = json.loads(cli(["keys", "list", "--json"], env=env).stdout)
    assert {k["name"] for k in listed} == {"shop", None}
    assert created["key"] not in json.dumps(listed)
    cli(["keys", "revoke", created["id"]], env=env)
    revoked = {k["id"]: k["revoked_at"] for k in json.loads(cli(["keys", "list", "--json"], env=env).stdout)}
    assert re.fullmatch(RFC3339, revoked[created["id"]])
    unknown = cli(["keys", "revoke", "key_nope"], env=env, check=False)
    assert unknown.returncode == 2 and "key_nope" in unknown.stderr
    # the key itself names it too, and is never printed back
    by_key = cli(["keys", "revoke", plain], env=env)
    plain_id = next(k["id"] for k in json.loads(cli(["keys", "list", "--json"], env=env).stdout) if k["name"] is None)
    assert f"key {plain_id}" in by_key.stdout and plain not in by_key.stdout + by_key.stderr
    again = cli(["keys", "revoke", plain], env=env, check=False)
    assert again.returncode == 2 and "no API key in use matches" in again.stderr
    assert plain not in again.stdout + again.stderr and plain[:12] not in again.stderr
    for columns in ("200", "60"):  # a narrow terminal too: ids and times whole, never folded or cut
        table = cli(["keys", "list"], env={**env, "COLUMNS": columns}).stdout
        for row in json.loads(cli(["keys", "list", "--json"], env=env).stdout):
            assert row["id"] in table and row["app_id"] in table and row["created_at"] in table, table
            assert re.fullmatch(RFC3339, row["created_at"])
    no_app = cli(["keys", "create", "--app", "1100000000000000999"], env=env, check=False)
    assert no_app.returncode == 2 and "apps add" in no_app.stderr


def test_join_command_uses_the_client(gateway: Gateway, fresh: Sandbox) -> None:
    env = {
        **gateway.env,
        "GUILDGATE_API_KEY": gateway.keys["a"],
        "GUILDGATE_URL": gateway.proc.url,
        "USER_TOKEN": TOKENS["alice"],
    }
    ok = cli(
        ["join", "--invite", "https://discord.gg/test1", "--token-env", "USER_TOKEN", "--json", "--lang", "en"], env=env
    )
    result = json.loads(ok.stdout)
    assert (result["status"], result["code"], result["data"]["joined"]) == (1, "joined", True)
    refused = cli(["join", "--guild-id", GUILD, "--json"], env=env, input=TOKENS["mallory"] + "\n", check=False)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["code"] == "banned"
    assert TOKENS["mallory"] not in refused.stdout + refused.stderr
    human = cli(["join", "--guild-id", GUILD, "--token-env", "USER_TOKEN"], env=env)
    assert "already_member" in human.stdout
    # the service's messages in the language of LANG, or of --lang over it
    said = {}
    for lang, extra in (("en_GB.UTF-8", []), ("zh_CN.UTF-8", []), ("zh_CN.UTF-8", ["--lang", "en"])):
        answer = cli(
            ["join", "--guild-id", GUILD, "--token-env", "USER_TOKEN", "--json", *extra], env={**env, "LANG": lang}
        )
        said[(lang, *extra)] = json.loads(answer.stdout)["msg"]
    assert said[("en_GB.UTF-8",)].isascii() and said[("zh_CN.UTF-8", "--lang", "en")] == said[("en_GB.UTF-8",)]
    assert re.search(r"[\u4e00-\u9fff]", said[("zh_CN.UTF-8",)])
    listed = json.loads(cli(["records", "list", "--json", "--limit", "3"], env=gateway.env).stdout)
    assert all(re.fullmatch(RFC3339, r["created_at"]) for r in listed)
    table = cli(["records", "list", "--limit", "3"], env=gateway.env).stdout
    assert all(r["id"] in table and r["created_at"] in table for r in listed)  # ids whole, times as in JSON


def test_join_reports_usage_errors_itself_in_the_language_of_lang(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: a usage error must be said before any call
    env = base_env(tmp_path, GUILDGATE_API_KEY="gg_" + "k" * 43, GUILDGATE_URL=nowhere, USER_TOKEN="tok", EMPTY="")
    cases = [
        (
            ["--guild-id", "12", "--token-env", "USER_TOKEN"],
            "",
            "--guild-id must be a server id",
            "--guild-id 必须是服务器",
        ),
        (
            ["--invite", "not an invite!", "--token-env", "USER_TOKEN"],
            "",
            "--invite must be an invite",
            "--invite 必须是邀请码",
        ),
        (
            ["--token-env", "USER_TOKEN"],
            "",
            "name the server with --guild-id or --invite",
            "请用 --guild-id 或 --invite",
        ),
        (["--guild-id", GUILD, "--invite", "abc123"], "", "name the server with", "二选一"),
        (["--guild-id", GUILD, "--role", "x"], "", "--role must be a role id", "--role 必须是身份组"),
        (["--guild-id", GUILD, "--token-env", "EMPTY"], "", "environment variable EMPTY", "环境变量 EMPTY"),
        (["--guild-id", GUILD], "\n", "the user's OAuth2 token is empty", "用户的 OAuth2 令牌为空"),
    ]
    for args, given, english, chinese in cases:
        for lang, expected in (("en_US.UTF-8", english), ("zh_CN.UTF-8", chinese), ("C", english)):
            result = cli(["join", *args], env={**env, "LANG": lang}, input=given, check=False)
            assert result.returncode == 2, (args, lang, result.stderr)
            assert expected in result.stderr.replace("\n", ""), (args, lang, result.stderr)
        forced = cli(["join", *args, "--lang", "zh"], env={**env, "LANG": "en_US.UTF-8"}, input=given, check=False)
        assert chinese in forced.stderr.replace("\n", ""), (args, forced.stderr)
    unreachable = cli(["join", "--guild-id", GUILD, "--token-env", "USER_TOKEN"], env=env, check=False)
    assert unreachable.returncode == 2 and "127.0.0.1" in unreachable.stderr  # then the service is called


def test_records_list_show_export(gateway: Gateway, fresh: Sandbox, tmp_path: Path) -> None:
    made = gateway.join({"authorization": TOKENS["bob"], "guild_id": GUILD}, headers={"Developer-Id": "cli"}).json()
    listed = json.loads(cli(["records", "list", "--json", "--limit", "5"], env=gateway.env).stdout)
    assert listed[0]["id"] == made["id"]
    shown = json.loads(cli(["records", "show", made["id"], "--json"], env=gateway.env).stdout)
    assert (shown["code"], shown["developer_id"]) == ("already_member", "cli")
    missing = cli(["records", "show", "nope"], env=gateway.env, check=False)
    assert missing.returncode == 1 and "nope" in missing.stderr
    out = tmp_path / "records.csv"
    export = cli(["records", "export", "--format", "csv", "-o", str(out), "--state", "succeeded"], env=gateway.env)
    assert "exported" in export.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert made["id"] in {r["id"] for r in rows}
    assert {r["state"] for r in rows} == {"succeeded"}
    jsonl = cli(["records", "export"], env=gateway.env).stdout.splitlines()
    assert len(jsonl) >= len(rows)
    bad = cli(["records", "list", "--state", "weird"], env=gateway.env, check=False)
    assert bad.returncode == 2 and "--state" in bad.stderr
    not_a_server = cli(["records", "list", "--guild-id", "abc"], env=gateway.env, check=False)
    assert not_a_server.returncode == 2 and "--guild-id" in not_a_server.stderr


def test_sandbox_command_serves_the_fixture(tmp_path: Path) -> None:
    port = free_port()
    proc = start(
        ["sandbox", "--fixture", str(FIXTURE), "--port", str(port)],
        env=base_env(tmp_path),
        log=tmp_path / "sb.log",
        ready_path="/_sandbox/stats",
        port=port,
    )
    try:
        r = httpx.get(f"{proc.url}/api/v10/invites/test1")
        assert r.json()["guild"]["name"] == WORLD["guilds"][0]["name"]
        printed = proc.output()  # what to try it with: each app's credentials and a user's token
        for app in WORLD["applications"]:
            assert f"client id {app['client_id']}  client secret {app['client_secret']}" in printed
            assert f"bot token {app['bot_token']}" in printed
        assert (
            f"user token to try ({WORLD['users'][0]['username']}): {TOKENS[WORLD['users'][0]['username']]}" in printed
        )
    finally:
        proc.stop()
    bad = tmp_path / "bad.json"
    bad.write_text('{"guilds": [{"id": "12", "name": "x"}]}')
    result = cli(["sandbox", "--fixture", str(bad)], env=base_env(tmp_path), check=False)
    assert result.returncode == 2 and "guilds.0.id" in result.stderr


def test_serve_sandbox_prints_a_curl_that_joins(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path)
    del env["GUILDGATE_SECRET_KEY"]  # sandbox mode runs without one
    log = tmp_path / "serve.log"
    proc = start(["serve", "--sandbox", "--port", str(port)], env=env, log=log, ready_path="/healthz", port=port)
    try:
        curl = next(line for line in proc.output().splitlines() if line.startswith("curl "))
        out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True).stdout
        body = json.loads(out)
        assert (body["status"], body["code"]) == (1, "joined")
    finally:
        proc.stop()
    assert (BIN / "guildgate").exists()


COMMANDS = {
    "apps": ["add", "list"],
    "keys": ["create", "list", "revoke"],
    "records": ["list", "show", "export", "prune"],
    "links": ["create", "list", "disable"],
    "secrets": ["rotate"],
}


def test_help_lists_every_command_and_starting_loads_none_of_their_work(tmp_path: Path) -> None:
    """Every command is reachable from ``guildgate --help`` and its group's help; starting the CLI imports none
    of what a command loads only when it runs (the database, the web server, the HTTP clients), so ``--help``
    and a short command start quickly."""
    env = base_env(tmp_path)
    top = cli(["--help"], env=env).stdout
    for command in ["serve", "sandbox", "migrate", "join", "doctor", *COMMANDS]:
        assert re.search(rf"^  {command} ", top, re.M), (command, top)
    for group, commands in COMMANDS.items():
        listed = cli([group, "--help"], env=env).stdout
        for command in commands:
            assert re.search(rf"^  {command} ", listed, re.M), (group, command, listed)
    probe = """
import json, sys
import guildgate.cli
sys.argv = ["guildgate", "--help"]
try:
    guildgate.cli.start()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""
    result = subprocess.run([str(BIN / "python"), "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Usage: guildgate" in result.stdout, result.stderr
    loaded = set(json.loads(result.stderr.strip().splitlines()[-1]))
    assert "typer" in loaded
    assert not loaded & {"sqlalchemy", "alembic", "uvicorn", "fastapi", "starlette", "httpx", "aiohttp", "redis"}


def test_a_database_that_cannot_be_used_or_a_taken_port_is_named_without_a_traceback(tmp_path: Path) -> None:
    nowhere = base_env(tmp_path, GUILDGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'g.db'}")
    for args in (["keys", "list"], ["serve", "--port", str(free_port())]):
        result = cli(args, env=nowhere, check=False)
        assert result.returncode == 2, result.stderr
        assert "cannot use the database" in result.stderr and "unable to open database file" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr
    closed = base_env(tmp_path, GUILDGATE_DATABASE_URL=f"postgresql://gg:pg-pass-5e1b@127.0.0.1:{free_port()}/gg")
    refused = cli(["migrate"], env=closed, check=False)
    assert refused.returncode == 2 and "Connect call failed" in refused.stderr
    assert "gg:***@127.0.0.1" in refused.stderr and "pg-pass-5e1b" not in refused.stdout + refused.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        for args in (["serve", "--port", port], ["sandbox", "--port", port]):
            result = cli(args, env=base_env(tmp_path), check=False)
            assert result.returncode == 2, result.stderr
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr.replace("\n", "")
            assert "Traceback" not in result.stdout + result.stderr


def test_serve_raises_its_open_file_limit_so_a_thousand_idle_connections_do_not_shut_others_out(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    port = free_port()
    env = base_env(tmp_path, GUILDGATE_DISCORD_API_BASE=sandbox.api)
    # started as under systemd or a login shell: a soft limit of 1,024 under a higher hard one
    server = subprocess.Popen(
        ["prlimit", "--nofile=1024:8192", str(BIN / "guildgate"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    idle: list[socket.socket] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", server)
        limits = Path(f"/proc/{server.pid}/limits").read_text()
        assert re.search(r"Max open files\s+8192\s+8192", limits), limits
        for _ in range(1_200):  # browsers holding connections open, each a file of the server's
            idle.append(socket.create_connection(("127.0.0.1", port)))
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        for conn in idle:
            conn.close()
        server.terminate()
        _, err = server.communicate(timeout=15)
    assert b"open files" not in err  # no warning: the limit is high enough

    with socket.create_server(("127.0.0.1", 0)) as taken:  # serve says so, then stops at the port
        low = subprocess.run(
            ["prlimit", "--nofile=512:512", str(BIN / "guildgate"), "serve", "--port", str(taken.getsockname()[1])],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert "at most 512 open files" in low.stderr and "LimitNOFILE" in low.stderr


def test_migrate_says_in_one_line_what_it_did(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    del env["GUILDGATE_SECRET_KEY"]  # the schema needs no secret
    first = cli(["migrate"], env=env)
    assert first.stdout.strip() == "the database was migrated from schema none (empty) to 0004"
    again = cli(["migrate"], env=env)
    assert again.stdout.strip() == "the database is up to date (schema 0004)"
    assert "alembic" not in (first.stderr + again.stderr).lower()
