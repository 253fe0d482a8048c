"""What the CLI's commands share: settings, errors on standard error with an exit status, secrets read without
argv, the database brought up to date, async work run.

Sandbox mode (``serve --sandbox``, or ``GUILDGATE_SANDBOX=1``) keeps its own database, ``guildgate-sandbox.db``,
unless ``GUILDGATE_DATABASE_URL`` names one: its demo app, key and link never land in the database a real
``serve`` uses. Commands that only read (records, links list, keys list) run without ``GUILDGATE_SECRET_KEY``."""

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


SANDBOX_DATABASE_URL = "sqlite:///guildgate-sandbox.db"


def settings(*, secret: bool = True, **overrides: Any) -> Settings:
    """The settings (``secret``: GUILDGATE_SECRET_KEY is required, outside sandbox mode)."""
    from guildgate.settings import ConfigError, load_settings

    try:
        s = load_settings(**overrides)
        if s.sandbox and "database_url" not in s.model_fields_set:
            s = s.model_copy(update={"database_url": SANDBOX_DATABASE_URL})
        if secret:
            s.secret_key_value()
        s.async_database_url  # noqa: B018 - validates the URL
        return s
    except ConfigError as exc:
        die(str(exc))


def db_settings(*, secret: bool = True) -> Settings:
    """Settings for a command that uses the database; the schema is brought up to date first."""
    s = settings(secret=secret)
    upgrade(s.database_url)
    return s


def upgrade(database_url: str) -> tuple[str | None, str]:
    """Bring the schema up to date; returns the revisions it was at and is at."""
    from guildgate.store.migrate import DatabaseUnreachableError
    from guildgate.store.migrate import upgrade as do_upgrade

    try:
        return do_upgrade(database_url)
    except DatabaseUnreachableError as exc:
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
    """The database and its app, key and record repositories (``db.dispose()`` when done). Without a secret
    key (a command that only reads), the app repository is None."""
    from guildgate.settings import ConfigError
    from guildgate.store.crypto import SecretBox
    from guildgate.store.db import Database
    from guildgate.store.repos import AppRepo, KeyRepo, RecordRepo

    db = Database(s.database_url)
    try:
        apps = AppRepo(db, SecretBox(s.secret_key_value()))
    except ConfigError:
        apps = None
    return db, apps, KeyRepo(db), RecordRepo(db)
