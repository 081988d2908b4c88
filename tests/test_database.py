"""The migrations create the schema the ORM models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ictcf.db import Base, open_database
from ictcf.db.session import parse_database_url, redact_url
from ictcf.errors import IctcfError


@pytest.fixture
def closed_port() -> int:
    """A loopback port on which nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", r"'notaurl' is not a database URL\. Check --database-url"),
        ("", r"'' is not a database URL"),
        (
            "mysql://user:hunter2@127.0.0.1/ictcf",
            r"'mysql://user:\*\*\*@127\.0\.0\.1/ictcf' uses the 'mysql' backend, which ictcf "
            r"does not support",
        ),
        ("oracle://127.0.0.1/x", r"uses the 'oracle' backend"),
        ("sqlite+nosuchdriver:///x.sqlite3", r"the driver 'sqlite\+nosuchdriver' is not available"),
        (
            "postgresql+nosuchdriver://user:hunter2@127.0.0.1/x",
            r"driver 'postgresql\+nosuchdriver' is not available",
        ),
        ("://user:hunter2@host/x", r"is not a database URL"),
    ],
)
def test_bad_url_is_one_clean_error(url: str, message: str) -> None:
    with pytest.raises(IctcfError, match=message) as caught:
        open_database(url)
    text = str(caught.value)
    assert "hunter2" not in text
    assert "sqlite:///PATH" in text
    assert "postgresql+psycopg://" in text


def test_unreachable_server_hides_password(closed_port: int) -> None:
    url = f"postgresql+psycopg://user:hunter2@127.0.0.1:{closed_port}/ictcf"
    with pytest.raises(IctcfError, match=r"could not open or migrate the database") as caught:
        open_database(url)
    assert "hunter2" not in str(caught.value)
    assert "user:***@127.0.0.1" in str(caught.value)


def test_plain_postgresql_url_uses_psycopg() -> None:
    url = parse_database_url("postgresql://user@127.0.0.1:5432/ictcf")
    assert url.drivername == "postgresql+psycopg"


def test_redact_url_without_parsing() -> None:
    assert redact_url("weird://me:pa:ss@host/db") == "weird://me:***@host/db"
    assert redact_url("sqlite:////tmp/x.sqlite3") == "sqlite:////tmp/x.sqlite3"


def test_read_only_open_does_not_create_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "ictcf.sqlite3"
    with pytest.raises(
        IctcfError,
        match=(
            rf"database file {re.escape(str(path))} does not exist\. Import data first with "
            r"`ictcf import ictcf-export FILE --database-url sqlite:///.*`, or check "
            r"--database-url"
        ),
    ):
        open_database(f"sqlite:///{path}", create=False)
    assert not path.parent.exists()
    open_database(f"sqlite:///{path}")
    assert path.is_file()
    open_database(f"sqlite:///{path}", create=False)


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    path.write_text("not a database\n", encoding="utf-8")
    with pytest.raises(
        IctcfError, match=r"could not open or migrate the database sqlite:///.*notes.sqlite3"
    ):
        open_database(f"sqlite:///{path}", create=False)
