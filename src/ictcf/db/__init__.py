"""Database layer: SQLAlchemy 2 models, sessions and Alembic migrations."""

from ictcf.db.imaging_models import CTSeries, CTSlice, ImageKind, SliceLabel, SourceKind
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
    "CTSeries",
    "CTSlice",
    "Hospital",
    "ImageKind",
    "ImportRun",
    "Measurement",
    "Patient",
    "SliceLabel",
    "SourceKind",
    "UnderlyingDisease",
    "open_database",
    "session_scope",
]
