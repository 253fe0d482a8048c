"""``guildgate join``: the join API called through the Python client. It speaks the language of ``--lang``, else
of the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``: zh… is Chinese, anything else English), in its own
messages and in the service's; what it can tell is wrong (no server named or two, a server id or invite that
cannot be one, a role id that is not a snowflake, no token) it says itself, without calling the service."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from guildgate.cli import render
from guildgate.cli.common import die
from guildgate.core.invites import is_snowflake, parse_invite
from guildgate.core.secret import Secret

MESSAGES = {
    "one_guild": {
        "en": "name the server with --guild-id or --invite (one of them)",
        "zh": "请用 --guild-id 或 --invite 指定服务器（二选一）",
    },
    "guild_id": {
        "en": "--guild-id must be a server id (a snowflake: 17-20 digits), got {value!r}",
        "zh": "--guild-id 必须是服务器 ID（17-20 位数字），收到的是 {value!r}",
    },
    "invite": {
        "en": "--invite must be an invite code or link (like abc123 or https://discord.gg/abc123), got {value!r}",
        "zh": "--invite 必须是邀请码或邀请链接（如 abc123 或 https://discord.gg/abc123），收到的是 {value!r}",
    },
    "role": {
        "en": "--role must be a role id (a snowflake: 17-20 digits), got {value!r}",
        "zh": "--role 必须是身份组 ID（17-20 位数字），收到的是 {value!r}",
    },
    "api_key": {
        "en": "environment variable {value} (the API key) is not set",
        "zh": "环境变量 {value}（API 密钥）未设置",
    },
    "token_env": {
        "en": "environment variable {value} (the user's OAuth2 token) is not set or empty",
        "zh": "环境变量 {value}（用户的 OAuth2 令牌）未设置或为空",
    },
    "token": {
        "en": "the user's OAuth2 token is empty: give it in --token-env's variable, on standard input or at the prompt",
        "zh": "用户的 OAuth2 令牌为空：请通过 --token-env 指定的环境变量、标准输入或提示输入提供",
    },
    "prompt": {"en": "user OAuth2 token", "zh": "用户 OAuth2 令牌"},
}


def language(lang: str | None) -> str:
    if lang:
        return "zh" if lang.lower().startswith("zh") else "en"
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def _read_token(env_var: str | None, lang: str) -> Secret:
    if env_var:
        value = os.environ.get(env_var, "").strip()
        if not value:
            die(MESSAGES["token_env"][lang].format(value=env_var))
    elif not sys.stdin.isatty():
        value = sys.stdin.readline().strip()
    else:
        value = typer.prompt(MESSAGES["prompt"][lang], hide_input=True, default="", show_default=False).strip()
    if not value:
        die(MESSAGES["token"][lang])
    return Secret(value)


def join(
    guild_id: str | None = typer.Option(None, "--guild-id", metavar="GUILD_ID", help="The server's id."),
    guild_name: str | None = typer.Option(
        None,
        "--invite",
        "--guild-name",
        metavar="INVITE",
        help="An invite code or link of the server (instead of --guild-id).",
    ),
    token_env: str | None = typer.Option(
        None,
        "--token-env",
        metavar="VAR",
        help="Environment variable holding the user's OAuth2 token (else standard input or a prompt).",
    ),
    api_key_env: str = typer.Option(
        "GUILDGATE_API_KEY", "--api-key-env", metavar="VAR", help="Environment variable holding the API key."
    ),
    url: str = typer.Option(
        "http://127.0.0.1:8080", "--url", envvar="GUILDGATE_URL", metavar="URL", help="Where guildgate is."
    ),
    role: list[str] = typer.Option([], "--role", metavar="ROLE_ID", help="A role id to give; repeat for several."),
    nick: str | None = typer.Option(None, "--nick", metavar="NICK", help="The nickname to give."),
    mute: bool | None = typer.Option(None, "--mute/--no-mute", help="Server-mute the user in voice (or not)."),
    deaf: bool | None = typer.Option(None, "--deaf/--no-deaf", help="Server-deafen the user in voice (or not)."),
    developer_id: str | None = typer.Option(
        None, "--developer-id", metavar="ID", help="Your own label for the record (Developer-Id header)."
    ),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", metavar="KEY", help="Sent again, the same answer comes back, nothing redone."
    ),
    lang: str | None = typer.Option(
        None, "--lang", metavar="en|zh", help="The language of the messages (default: from LANG)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the service's answer as one JSON object."),
) -> None:
    """Call the join API. Exit status: 0 joined or already a member, 1 refused, 2 usage or connection problem.

    Example: GUILDGATE_API_KEY=gg_... guildgate join --invite demo --token-env TOK"""
    said = language(lang)
    if (guild_id is None) == (guild_name is None):
        die(MESSAGES["one_guild"][said])
    if guild_id is not None and not is_snowflake(guild_id):
        die(MESSAGES["guild_id"][said].format(value=guild_id))
    if guild_name is not None and parse_invite(guild_name) is None:
        die(MESSAGES["invite"][said].format(value=guild_name))
    for role_id in role:
        if not is_snowflake(role_id):
            die(MESSAGES["role"][said].format(value=role_id))
    api_key = os.environ.get(api_key_env, "")
    if not api_key:
        die(MESSAGES["api_key"][said].format(value=api_key_env))
    token = _read_token(token_env, said)
    request = {
        "guild_id": guild_id,
        "guild_name": guild_name,
        "roles": role or None,
        "nick": nick,
        "mute": mute,
        "deaf": deaf,
        "developer_id": developer_id,
        "idempotency_key": idempotency_key,
    }
    _call(url, api_key, token, said, as_json, request)


def _call(url: str, api_key: str, token: Secret, lang: str, as_json: bool, request: dict[str, Any]) -> None:
    from guildgate.client import Client, ConnectionFailedError, GuildgateError

    with Client(url, api_key, language=lang) as client:
        try:
            result = client.join(authorization=token, **request)
        except ConnectionFailedError as exc:
            die(exc.msg)
        except GuildgateError as exc:
            if as_json:
                render.as_json(
                    {
                        "status": 0,
                        "code": exc.code,
                        "msg": exc.msg,
                        "id": exc.record_id,
                        "discord_code": exc.discord_code,
                        "retry_after": exc.retry_after,
                    }
                )
            else:
                render.join_result(False, exc.code, exc.msg, exc.record_id, None)
            raise typer.Exit(1) from None
    data = {
        "guild_id": result.guild_id,
        "guild_name": result.guild_name,
        "user_id": result.user_id,
        "joined": result.joined,
    }
    if as_json:
        render.as_json(
            {
                "status": 1,
                "code": result.code,
                "msg": result.msg,
                "id": result.record_id,
                "data": data,
                "cost": result.cost,
            }
        )
    else:
        render.join_result(True, result.code, result.msg, result.record_id, data)
