"""Database layer: SQLAlchemy 2 models, sessions and Alembic migrations."""

from ictcf.db.models import (
    Base,
    CFDefinition,
    Hospital,
    ImportRun,
    Measurement,
    Patient,
    UnderlyingDisease,
)
from ictcf.db.session import open_database, session_scope

__all__ = [
    "Base",
    "CFDefinition",
    "Hospital",
    "ImportRun",
    "Measurement",
    "Patient",
    "UnderlyingDisease",
    "open_database",
    "session_scope",
]
