"""Engine and session handling; every database is brought to the newest migration on open."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
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


#: The URL forms ictcf supports, named in every message about a bad database URL.
SUPPORTED_URL_FORMS = (
    "sqlite:///PATH (relative path) or sqlite:////ABSOLUTE/PATH, and "
    "postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
)
#: Backends ictcf is tested with; their drivers are installed with the package.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
#: SQLAlchemy's default PostgreSQL driver (psycopg2) is not a dependency: plain
#: ``postgresql://`` URLs use psycopg 3, which is.
POSTGRESQL_DRIVER = "postgresql+psycopg"
#: The password part of ``scheme://user:password@host`` in a URL that may not parse.
_PASSWORD_IN_URL = re.compile(r"(?P<head>//[^/:@]*:)[^@/]*@")

_HINT = f"Check --database-url (or ICTCF_DATABASE_URL); supported forms: {SUPPORTED_URL_FORMS}."


def redact_url(url: str | URL) -> str:
    """Return ``url`` with any password replaced by ``***``, also when it does not parse."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return _PASSWORD_IN_URL.sub(r"\g<head>***@", url)


def parse_database_url(url: str | URL) -> URL:
    """Parse and check a database URL.

    Parameters
    ----------
    url : str or URL
        ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST:PORT/DATABASE``; a plain
        ``postgresql://`` URL is read as ``postgresql+psycopg://``.

    Returns
    -------
    URL

    Raises
    ------
    IctcfError
        If the text is not a URL or names a backend other than SQLite or PostgreSQL. The
        message never contains the password.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:
        raise IctcfError(f"{redact_url(str(url))!r} is not a database URL. {_HINT}") from err
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise IctcfError(
            f"database URL {redact_url(parsed)!r} uses the {backend!r} backend, which ictcf "
            f"does not support. {_HINT}"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=POSTGRESQL_DRIVER)
    return parsed


def sqlite_path(url: URL) -> Path | None:
    """Return the database file of a SQLite URL; None for in-memory or non-SQLite URLs."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):
        return None
    return Path(url.database).expanduser()


def create_database_engine(url: str | URL, *, create: bool = True) -> Engine:
    """Create an engine for ``url``; for SQLite, enforce foreign keys.

    Parameters
    ----------
    url : str or URL
        See :func:`parse_database_url`.
    create : bool, default True
        For a SQLite file: create its folder when missing. With False, a missing file is an
        error instead of a new, empty database.

    Raises
    ------
    IctcfError
        If the URL is malformed or unsupported, its driver cannot be loaded, or (with
        ``create=False``) the SQLite file does not exist.
    """
    parsed = parse_database_url(url)
    path = sqlite_path(parsed)
    if path is not None:
        if not create and not path.is_file():
            raise IctcfError(
                f"database file {path} does not exist. Import data first with "
                "`ictcf import ictcf-export FILE --database-url "
                f"{redact_url(parsed)}`, or check --database-url (or ICTCF_DATABASE_URL)."
            )
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise IctcfError(
                    f"cannot create the folder of the database file {path}: "
                    f"{err.strerror or err}. {_HINT}"
                ) from err
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed)
            event.listen(engine, "connect", _enable_sqlite_foreign_keys)
            return engine
        return create_engine(parsed, pool_pre_ping=True)
    except (ImportError, ArgumentError) as err:
        raise IctcfError(
            f"cannot use the database URL {redact_url(parsed)!r}: the driver "
            f"{parsed.drivername!r} is not available ({err.__class__.__name__}). {_HINT}"
        ) from err


def upgrade_database(engine: Engine) -> None:
    """Apply every pending Alembic migration to the database behind ``engine``."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_database(url: str | URL, *, create: bool = True) -> sessionmaker[Session]:
    """Open (creating or upgrading as needed) the database at ``url``.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, for example ``sqlite:////home/me/.local/share/ictcf/ictcf.sqlite3`` or
        ``postgresql+psycopg://user@127.0.0.1:5432/ictcf`` (see :func:`parse_database_url`).
    create : bool, default True
        Create a missing SQLite file (and its folder). Read-only commands pass False, so a
        mistyped path is an error instead of a new, empty database.

    Returns
    -------
    sessionmaker
        A factory of sessions bound to the upgraded database.

    Raises
    ------
    IctcfError
        If the URL is malformed or unsupported, the SQLite file is missing and ``create`` is
        False, or the database cannot be reached or migrated. No message contains the password.
    """
    engine = create_database_engine(url, create=create)
    safe_url = redact_url(engine.url)
    try:
        upgrade_database(engine)
    except Exception as err:
        engine.dispose()
        detail = str(err).splitlines()[0] if str(err) else ""
        password = engine.url.password
        if password:
            detail = detail.replace(str(password), "***")
        raise IctcfError(
            f"could not open or migrate the database {safe_url}: {err.__class__.__name__}: "
            f"{detail}. Check that the file is an ictcf database or the server is running. {_HINT}"
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
