"""imaging: CT series and slices with store keys, QC and labels

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ct_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("import_run_id", sa.Integer(), nullable=True),
        sa.Column("series_key", sa.String(length=80), nullable=False),
        sa.Column(
            "source_kind",
            sa.Enum(
                "dicom",
                "jpeg",
                "nifti",
                "labelled_slices",
                name="source_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("n_slices_kept", sa.Integer(), nullable=False),
        sa.Column("n_slices_dropped", sa.Integer(), nullable=False),
        sa.Column("dropped_reasons", sa.JSON(), nullable=False),
        sa.Column("slice_spacing_mm", sa.Float(), nullable=True),
        sa.Column("row_spacing_mm", sa.Float(), nullable=True),
        sa.Column("column_spacing_mm", sa.Float(), nullable=True),
        sa.Column("orientation", sa.JSON(), nullable=True),
        sa.Column("origin_mm", sa.JSON(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("deidentification", sa.JSON(), nullable=False),
        sa.Column("burned_in_text", sa.Boolean(), nullable=False),
        sa.Column("burned_in_text_reason", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["import_run_id"], ["import_run.id"], name=op.f("fk_ct_series_import_run_id_import_run")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
            name=op.f("fk_ct_series_patient_id_patient"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ct_series")),
        sa.UniqueConstraint("series_key", name=op.f("uq_ct_series_series_key")),
        sa.UniqueConstraint("source_sha256", name=op.f("uq_ct_series_source_sha256")),
    )
    with op.batch_alter_table("ct_series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ct_series_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "ct_slice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("position_mm", sa.Float(), nullable=True),
        sa.Column("row_spacing_mm", sa.Float(), nullable=True),
        sa.Column("column_spacing_mm", sa.Float(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("columns", sa.Integer(), nullable=False),
        sa.Column("lung_area_px", sa.Integer(), nullable=True),
        sa.Column("lung_area_mm2", sa.Float(), nullable=True),
        sa.Column("n_lung_components", sa.Integer(), nullable=True),
        sa.Column("lung_empty", sa.Boolean(), nullable=True),
        sa.Column("implausible_reason", sa.String(length=255), nullable=True),
        sa.Column("nict_candidate", sa.Boolean(), nullable=True),
        sa.Column(
            "label",
            sa.Enum(
                "NiCT",
                "pCT",
                "nCT",
                name="slice_label",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("label_source", sa.String(length=64), nullable=True),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "image_kind",
            sa.Enum(
                "hu",
                "grey",
                name="image_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("image_key", sa.String(length=72), nullable=False),
        sa.Column("mask_key", sa.String(length=72), nullable=True),
        sa.Column("crop_key", sa.String(length=72), nullable=True),
        sa.Column("lung_window_key", sa.String(length=72), nullable=True),
        sa.Column("mediastinal_window_key", sa.String(length=72), nullable=True),
        sa.Column("representative_rank", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["ct_series.id"],
            name=op.f("fk_ct_slice_series_id_ct_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ct_slice")),
        sa.UniqueConstraint("series_id", "index", name=op.f("uq_ct_slice_series_id")),
    )
    with op.batch_alter_table("ct_slice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ct_slice_series_id"), ["series_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ct_slice_source_sha256"), ["source_sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ct_slice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ct_slice_source_sha256"))
        batch_op.drop_index(batch_op.f("ix_ct_slice_series_id"))

    op.drop_table("ct_slice")
    with op.batch_alter_table("ct_series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ct_series_patient_id"))

    op.drop_table("ct_series")
