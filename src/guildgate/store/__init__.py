"""Storage: SQLAlchemy 2 (async) models and repositories; Alembic migrations."""
