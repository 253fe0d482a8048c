"""``guildgate join``: the join API called through the Python client."""

from __future__ import annotations

import os

import typer

from guildgate.cli import render
from guildgate.cli.common import die, read_secret


def join(
    guild_id: str | None = typer.Option(None, "--guild-id", help="The server's id."),
    guild_name: str | None = typer.Option(None, "--invite", "--guild-name", help="Invite code or URL."),
    token_env: str | None = typer.Option(
        None, "--token-env", help="Env var with the user's OAuth2 token (else stdin or a prompt)."
    ),
    api_key_env: str = typer.Option("GUILDGATE_API_KEY", "--api-key-env", help="Env var with the API key."),
    url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="GUILDGATE_URL"),
    role: list[str] = typer.Option([], "--role", help="Role id to give (repeatable)."),
    nick: str | None = typer.Option(None, "--nick"),
    mute: bool | None = typer.Option(None, "--mute/--no-mute"),
    deaf: bool | None = typer.Option(None, "--deaf/--no-deaf"),
    developer_id: str | None = typer.Option(None, "--developer-id"),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    lang: str | None = typer.Option(None, "--lang", help="en or zh"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Call the join API. Example: ``GUILDGATE_API_KEY=gg_... guildgate join --invite demo --token-env TOK``.

    Exit status: 0 joined or already a member, 1 refused, 2 usage or connection problem."""
    from guildgate.client import Client, ConnectionFailedError, GuildgateError

    api_key = os.environ.get(api_key_env, "")
    if not api_key:
        die(f"environment variable {api_key_env} (the API key) is not set")
    token = read_secret(token_env, "user OAuth2 token")
    with Client(url, api_key, language=lang) as client:
        try:
            result = client.join(
                authorization=token,
                guild_id=guild_id,
                guild_name=guild_name,
                roles=role or None,
                nick=nick,
                mute=mute,
                deaf=deaf,
                developer_id=developer_id,
                idempotency_key=idempotency_key,
            )
        except ConnectionFailedError as exc:
            die(exc.msg)
            return
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
