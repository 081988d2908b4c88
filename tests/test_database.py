"""The migrations create the schema the ORM models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ictcf.db import Base, open_database


def test_migrations_match_models(database_url: str) -> None:
    factory = open_database(database_url)
    engine = factory.kw["bind"]
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_open_database_twice_is_idempotent(database_url: str) -> None:
    open_database(database_url)
    factory = open_database(database_url)
    with factory() as session:
        assert session.execute(Base.metadata.tables["patient"].select()).all() == []
