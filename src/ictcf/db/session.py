"""Engine and session handling; every database is brought to the newest migration on open."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ictcf.errors import IctcfError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(url: str) -> Config:
    """Return an Alembic configuration pointing at the package's migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def create_database_engine(url: str) -> Engine:
    """Create an engine for ``url``; for SQLite, create the parent folder and enforce foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade_database(engine: Engine) -> None:
    """Apply every pending Alembic migration to the database behind ``engine``."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_database(url: str) -> sessionmaker[Session]:
    """Open (creating or upgrading as needed) the database at ``url``.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, for example ``sqlite:////home/me/.local/share/ictcf/ictcf.sqlite3`` or
        ``postgresql+psycopg://user@127.0.0.1:5432/ictcf``.

    Returns
    -------
    sessionmaker
        A factory of sessions bound to the upgraded database.

    Raises
    ------
    IctcfError
        If the database cannot be reached or migrated.
    """
    engine = create_database_engine(url)
    try:
        upgrade_database(engine)
    except Exception as err:
        safe_url = engine.url.render_as_string(hide_password=True)
        raise IctcfError(
            f"Could not open or migrate the database {safe_url}: {err.__class__.__name__}: {err}. "
            "Check --database-url (or ICTCF_DATABASE_URL) and that the server is running."
        ) from err
    logger.debug("database ready: %s", engine.url.render_as_string(hide_password=True))
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Yield a session that commits on success and rolls back everything on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
