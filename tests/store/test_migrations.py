"""The migrations and the models agree, and ``migrate.HEAD`` (which lets a command skip Alembic when the
database is up to date) names the newest migration: a stale HEAD would leave a new migration unapplied."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from guildgate.store.migrate import HEAD, alembic_config, current_revision, upgrade
from guildgate.store.models import Base


def test_head_is_the_newest_migration_and_a_migrated_database_is_at_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert ScriptDirectory.from_config(alembic_config(url)).get_current_head() == HEAD
    upgrade(url)
    assert current_revision(url) == HEAD


def test_the_migrated_schema_is_what_the_models_declare(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
