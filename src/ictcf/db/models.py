"""SQLAlchemy 2 ORM models of the patient database.

The schema is created and upgraded only by the Alembic migrations in ``ictcf/db/migrations``;
these classes must match the newest revision (a test compares them).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ictcf.db.enums import (
    Censoring,
    CTEvidence,
    Flag,
    MorbidityForm,
    MorbidityType,
    Outcome,
    PCRResult,
    Sex,
)


def enum_column(enum_type: type[enum.Enum], constraint_name: str, **kwargs: Any) -> Any:
    """Build a portable enum column stored as VARCHAR of the members' values, with a CHECK.

    ``constraint_name`` must be unique in the database because PostgreSQL requires it.
    """
    return mapped_column(
        Enum(
            enum_type,
            native_enum=False,
            create_constraint=True,
            length=32,
            name=constraint_name,
            values_callable=lambda members: [member.value for member in members],
        ),
        **kwargs,
    )


#: Constraint names that are unique per database (PostgreSQL requires it) and stable for migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class ImportRun(Base):
    """Provenance of one import: which file, its SHA-256, when and by which importer version."""

    __tablename__ = "import_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    importer_version: Mapped[str] = mapped_column(String(32))
    cohort: Mapped[str | None] = mapped_column(String(64))
    #: Counts, skipped lines with reasons and warnings, as written to the import report.
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Hospital(Base):
    __tablename__ = "hospital"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)

    patients: Mapped[list[Patient]] = relationship(back_populates="hospital")


class Patient(Base):
    """One patient. ``id`` is the internal key: the only patient reference allowed in logs."""

    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Identifier in the source export, such as ``Patient 17`` (unique within a database).
    source_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: Numeric part of ``source_id`` where it has one (``17`` for ``Patient 17``).
    source_number: Mapped[int | None] = mapped_column(Integer, index=True)
    cohort: Mapped[str] = mapped_column(String(64), index=True)
    hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospital.id"))
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_run.id"))

    age: Mapped[float | None] = mapped_column(Float)
    age_band: Mapped[str | None] = mapped_column(String(16))
    sex: Mapped[Sex] = enum_column(Sex, "sex")
    #: Body temperature at admission in degrees Celsius.
    body_temperature: Mapped[float | None] = mapped_column(Float)

    pcr_result: Mapped[PCRResult] = enum_column(PCRResult, "pcr_result")
    pcr_result_raw: Mapped[str] = mapped_column(String(128))
    ct_evidence: Mapped[CTEvidence] = enum_column(CTEvidence, "ct_evidence")
    ct_evidence_raw: Mapped[str] = mapped_column(String(128))
    morbidity_form: Mapped[MorbidityForm] = enum_column(MorbidityForm, "morbidity_form")
    morbidity_form_raw: Mapped[str] = mapped_column(String(128))
    morbidity_type: Mapped[MorbidityType] = enum_column(MorbidityType, "morbidity_type", index=True)
    outcome: Mapped[Outcome] = enum_column(Outcome, "outcome", index=True)
    outcome_raw: Mapped[str] = mapped_column(String(128))

    #: CT series folder named by the export (``P2/2020_2_17_9_01_22``); None without CT.
    ct_series_ref: Mapped[str | None] = mapped_column(String(255))
    #: Paths of the export's five preview slices, in the export's order.
    ct_preview_refs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: SHA-256 of the patient's normalised content, used to detect conflicting re-imports.
    content_sha256: Mapped[str] = mapped_column(String(64))

    hospital: Mapped[Hospital | None] = relationship(back_populates="patients")
    diseases: Mapped[list[UnderlyingDisease]] = relationship(
        back_populates="patient",
        cascade="all, delete-orphan",
        order_by="UnderlyingDisease.position",
    )
    measurements: Mapped[list[Measurement]] = relationship(
        back_populates="patient", cascade="all, delete-orphan"
    )


class UnderlyingDisease(Base):
    """One underlying disease of a patient, in the order the export lists them."""

    __tablename__ = "underlying_disease"
    __table_args__ = (UniqueConstraint("patient_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))

    patient: Mapped[Patient] = relationship(back_populates="diseases")


class CFDefinition(Base):
    """Catalogue entry of one clinical feature (CF), such as ``LY`` (lymphocyte count).

    ``unit``, ``range_low`` and ``range_high`` hold the catalogue's reference unit and normal
    range. Hospitals report other ranges too; every measurement keeps its own.
    """

    __tablename__ = "cf_definition"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    abbreviation: Mapped[str] = mapped_column(String(32), unique=True)
    full_name: Mapped[str] = mapped_column(String(255))
    panel: Mapped[str] = mapped_column(String(128))
    unit: Mapped[str | None] = mapped_column(String(64))
    #: Normal range as written, for example ``1.1-3.2`` or ``<0.5``.
    range_text: Mapped[str | None] = mapped_column(String(64))
    #: Lower limit; None for an open range such as ``<0.5``.
    range_low: Mapped[float | None] = mapped_column(Float)
    #: Upper limit; None for an open range such as ``>60``.
    range_high: Mapped[float | None] = mapped_column(Float)


class Measurement(Base):
    """One CF value of one patient, with the raw text kept verbatim."""

    __tablename__ = "measurement"
    __table_args__ = (UniqueConstraint("patient_id", "cf_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    cf_id: Mapped[int] = mapped_column(ForeignKey("cf_definition.id"), index=True)

    #: The export's entry exactly as read (after mojibake repair), such as
    #: ``Lymphocyte count@LY@1.00&#8595;@1.1-3.2 G/L``.
    raw_entry: Mapped[str] = mapped_column(Text)
    #: The value field as written, such as ``1.00&#8595;`` or ``<0.13``.
    raw_value: Mapped[str] = mapped_column(String(64))
    #: Numeric value in ``unit``; for a censored value, the reported limit.
    value: Mapped[float] = mapped_column(Float)
    censoring: Mapped[Censoring | None] = enum_column(Censoring, "censoring", nullable=True)
    unit: Mapped[str | None] = mapped_column(String(64))
    range_text: Mapped[str | None] = mapped_column(String(64))
    range_low: Mapped[float | None] = mapped_column(Float)
    range_high: Mapped[float | None] = mapped_column(Float)
    #: High/low flag as given by the export's arrow; None where the export gives no arrow.
    flag_given: Mapped[Flag | None] = enum_column(Flag, "flag_given", nullable=True)
    #: Flag recomputed from ``value`` and the measurement's own range.
    flag_computed: Mapped[Flag | None] = enum_column(Flag, "flag_computed", nullable=True)

    patient: Mapped[Patient] = relationship(back_populates="measurements")
    cf: Mapped[CFDefinition] = relationship()
