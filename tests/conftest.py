"""Shared fixtures: the real public data folder and databases on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    configured = os.environ.get("ICTCF_DATA_DIR")
    if configured:
        return Path(configured)
    return REPOSITORY_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public test data ($ICTCF_DATA_DIR, default ../shared/data)."""
    folder = _shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared test data not found at {folder}; set ICTCF_DATA_DIR")
    return folder


@pytest.fixture(scope="session")
def cohort1_export(shared_data: Path) -> Path:
    """The real iCTCF cohort-1 export (1,170 patients)."""
    path = shared_data / "ictcf" / "patient_cohort1.txt"
    if not path.is_file():
        pytest.skip(f"iCTCF export not found at {path}")
    return path


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point ICTCF_HOME at a fresh folder so no test touches the user's data directory."""
    home = tmp_path_factory.mktemp("ictcf-home")
    monkeypatch.setenv("ICTCF_HOME", str(home))
    monkeypatch.delenv("ICTCF_DATABASE_URL", raising=False)
    monkeypatch.delenv("ICTCF_EXPORT", raising=False)
    return home


def _postgres_database(server_url: str) -> Iterator[str]:
    name = f"ictcf_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite always, PostgreSQL when ICTCF_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    server_url = os.environ.get("ICTCF_TEST_POSTGRES_URL")
    if not server_url:
        pytest.skip("ICTCF_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    yield from _postgres_database(server_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database URL, for tests that need no PostgreSQL variant."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"
