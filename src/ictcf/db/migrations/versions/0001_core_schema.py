"""core schema: patients, clinical features, import provenance

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cf_definition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("abbreviation", sa.String(length=32), nullable=False),
        sa.Column("full_name", sa.String(length=255), nullable=False),
        sa.Column("panel", sa.String(length=128), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("range_text", sa.String(length=64), nullable=True),
        sa.Column("range_low", sa.Float(), nullable=True),
        sa.Column("range_high", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cf_definition")),
        sa.UniqueConstraint("abbreviation", name=op.f("uq_cf_definition_abbreviation")),
    )
    op.create_table(
        "hospital",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospital")),
        sa.UniqueConstraint("name", name=op.f("uq_hospital_name")),
    )
    op.create_table(
        "import_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("importer_version", sa.String(length=32), nullable=False),
        sa.Column("cohort", sa.String(length=64), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_run")),
    )
    with op.batch_alter_table("import_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_run_sha256"), ["sha256"], unique=False)

    op.create_table(
        "patient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("source_number", sa.Integer(), nullable=True),
        sa.Column("cohort", sa.String(length=64), nullable=False),
        sa.Column("hospital_id", sa.Integer(), nullable=True),
        sa.Column("import_run_id", sa.Integer(), nullable=True),
        sa.Column("age", sa.Float(), nullable=True),
        sa.Column("age_band", sa.String(length=16), nullable=True),
        sa.Column(
            "sex",
            sa.Enum(
                "male",
                "female",
                "unknown",
                name="sex",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("body_temperature", sa.Float(), nullable=True),
        sa.Column(
            "pcr_result",
            sa.Enum(
                "positive",
                "negative",
                "negative_positive_later",
                "unknown",
                name="pcr_result",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("pcr_result_raw", sa.String(length=128), nullable=False),
        sa.Column(
            "ct_evidence",
            sa.Enum(
                "positive",
                "negative",
                "not_available",
                name="ct_evidence",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("ct_evidence_raw", sa.String(length=128), nullable=False),
        sa.Column(
            "morbidity_form",
            sa.Enum(
                "mild",
                "regular",
                "severe",
                "critically_ill",
                "control",
                "control_cap",
                "suspected",
                "suspected_confirmed_later",
                "unknown",
                name="morbidity_form",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("morbidity_form_raw", sa.String(length=128), nullable=False),
        sa.Column(
            "morbidity_type",
            sa.Enum(
                "control",
                "type_i",
                "type_ii",
                "suspected",
                "unknown",
                name="morbidity_type",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum(
                "cured",
                "deceased",
                "unknown",
                name="outcome",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("outcome_raw", sa.String(length=128), nullable=False),
        sa.Column("ct_series_ref", sa.String(length=255), nullable=True),
        sa.Column("ct_preview_refs", sa.JSON(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["hospital_id"], ["hospital.id"], name=op.f("fk_patient_hospital_id_hospital")
        ),
        sa.ForeignKeyConstraint(
            ["import_run_id"], ["import_run.id"], name=op.f("fk_patient_import_run_id_import_run")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient")),
        sa.UniqueConstraint("source_id", name=op.f("uq_patient_source_id")),
    )
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_cohort"), ["cohort"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_patient_morbidity_type"), ["morbidity_type"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_patient_outcome"), ["outcome"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_patient_source_number"), ["source_number"], unique=False
        )

    op.create_table(
        "measurement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("cf_id", sa.Integer(), nullable=False),
        sa.Column("raw_entry", sa.Text(), nullable=False),
        sa.Column("raw_value", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column(
            "censoring",
            sa.Enum(
                "<", ">", name="censoring", native_enum=False, create_constraint=True, length=32
            ),
            nullable=True,
        ),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("range_text", sa.String(length=64), nullable=True),
        sa.Column("range_low", sa.Float(), nullable=True),
        sa.Column("range_high", sa.Float(), nullable=True),
        sa.Column(
            "flag_given",
            sa.Enum(
                "high",
                "low",
                "normal",
                name="flag_given",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "flag_computed",
            sa.Enum(
                "high",
                "low",
                "normal",
                name="flag_computed",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["cf_id"], ["cf_definition.id"], name=op.f("fk_measurement_cf_id_cf_definition")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
            name=op.f("fk_measurement_patient_id_patient"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurement")),
        sa.UniqueConstraint("patient_id", "cf_id", name=op.f("uq_measurement_patient_id")),
    )
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_measurement_cf_id"), ["cf_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_measurement_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "underlying_disease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
            name=op.f("fk_underlying_disease_patient_id_patient"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_underlying_disease")),
        sa.UniqueConstraint(
            "patient_id", "position", name=op.f("uq_underlying_disease_patient_id")
        ),
    )
    with op.batch_alter_table("underlying_disease", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_underlying_disease_patient_id"), ["patient_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("underlying_disease", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_underlying_disease_patient_id"))

    op.drop_table("underlying_disease")
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_measurement_patient_id"))
        batch_op.drop_index(batch_op.f("ix_measurement_cf_id"))

    op.drop_table("measurement")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_source_number"))
        batch_op.drop_index(batch_op.f("ix_patient_outcome"))
        batch_op.drop_index(batch_op.f("ix_patient_morbidity_type"))
        batch_op.drop_index(batch_op.f("ix_patient_cohort"))

    op.drop_table("patient")
    with op.batch_alter_table("import_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_run_sha256"))

    op.drop_table("import_run")
    op.drop_table("hospital")
    op.drop_table("cf_definition")
