"""What the CLI's commands share: settings, errors on standard error with an exit status, secrets read without
argv, the database brought up to date, async work run."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from guildgate.cli import render
from guildgate.core.secret import Secret

if TYPE_CHECKING:
    from guildgate.settings import Settings

T = TypeVar("T")


def die(message: str, code: int = 2) -> NoReturn:
    render.fail(message)
    raise typer.Exit(code)


def settings(**overrides: Any) -> Settings:
    from guildgate.settings import ConfigError, load_settings

    try:
        s = load_settings(**overrides)
        s.secret_key_value()
        s.async_database_url  # noqa: B018 - validates the URL
        return s
    except ConfigError as exc:
        die(str(exc))


def db_settings() -> Settings:
    """Settings for a command that uses the database; the schema is brought up to date first."""
    s = settings()
    upgrade(s.database_url)
    return s


def upgrade(database_url: str) -> None:
    from guildgate.store.migrate import DatabaseUnreachable
    from guildgate.store.migrate import upgrade as do_upgrade

    try:
        do_upgrade(database_url)
    except DatabaseUnreachable as exc:
        die(str(exc))


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(factory())


def read_secret(env_var: str | None, label: str) -> Secret:
    """From the named environment variable, else one line of standard input, else a hidden prompt."""
    if env_var:
        value = os.environ.get(env_var, "")
        if not value:
            die(f"{label}: environment variable {env_var} is not set or empty")
        return Secret(value.strip())
    if not sys.stdin.isatty():
        line = sys.stdin.readline().strip()
        if not line:
            die(f"{label}: expected it on standard input (one line), got nothing")
        return Secret(line)
    return Secret(typer.prompt(label, hide_input=True).strip())


def repos(s: Settings) -> Any:
    """The database and its app, key and record repositories (``db.dispose()`` when done)."""
    from guildgate.store.crypto import SecretBox
    from guildgate.store.db import Database
    from guildgate.store.repos import AppRepo, KeyRepo, RecordRepo

    db = Database(s.database_url)
    return db, AppRepo(db, SecretBox(s.secret_key_value())), KeyRepo(db), RecordRepo(db)
