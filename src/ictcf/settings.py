"""One settings object: the source of truth for paths, defaults and their environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

#: Environment variable naming the folder where ictcf keeps its database, cache and stores.
ENV_HOME = "ICTCF_HOME"
#: Environment variable with an SQLAlchemy database URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
ENV_DATABASE_URL = "ICTCF_DATABASE_URL"
#: Environment variable with the path of a local copy of the iCTCF patient export.
ENV_EXPORT = "ICTCF_EXPORT"
#: Environment variable naming the folder of shared public test data (used by the tests only).
ENV_DATA_DIR = "ICTCF_DATA_DIR"

DATABASE_FILE_NAME = "ictcf.sqlite3"


def default_home() -> Path:
    """Return the user's ictcf folder: ``$ICTCF_HOME`` or the platform's user data directory."""
    configured = os.environ.get(ENV_HOME)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("ictcf", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Paths and defaults shared by the CLI and the Python API.

    Attributes
    ----------
    home : Path
        Folder holding the default SQLite database, the export cache and the slice store.
    database_url : str
        SQLAlchemy URL of the patient database.
    export_path : Path or None
        A local copy of the iCTCF export given by the user (``--from`` or ``$ICTCF_EXPORT``).
    """

    home: Path = field(default_factory=default_home)
    database_url: str = ""
    export_path: Path | None = None

    def __post_init__(self) -> None:
        if not self.database_url:
            url = os.environ.get(ENV_DATABASE_URL) or f"sqlite:///{self.home / DATABASE_FILE_NAME}"
            object.__setattr__(self, "database_url", url)
        if self.export_path is None and os.environ.get(ENV_EXPORT):
            object.__setattr__(self, "export_path", Path(os.environ[ENV_EXPORT]).expanduser())

    @property
    def cache_dir(self) -> Path:
        """Folder for downloaded files such as the iCTCF export."""
        return self.home / "cache"

    @property
    def reports_dir(self) -> Path:
        """Default parent folder of ``reports/<run id>/``."""
        return Path("reports")

    @property
    def models_dir(self) -> Path:
        """Default folder for saved model artefacts."""
        return self.home / "models"
