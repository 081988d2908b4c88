"""ORM models of imported CT series and their slices (migration 0002).

The pixel data are not in the database: each slice row contains keys of blobs in the slice store
(:mod:`ictcf.imaging.store`), which is a folder beside the SQLite file or given by ``--store``.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ictcf.db.models import Base, ImportRun, Patient, enum_column

#: Length of a store key: two hex digits, a slash, 62 hex digits and a suffix such as ``.npz``.
STORE_KEY_LENGTH = 72


class SourceKind(enum.StrEnum):
    """The kind of input a series was imported from."""

    DICOM = "dicom"
    JPEG = "jpeg"
    NIFTI = "nifti"
    #: Slices from HUST-19's labelled download layout (``NiCT/``, ``pCT/``, ``nCT/`` folders).
    LABELLED_SLICES = "labelled_slices"


class SliceLabel(enum.StrEnum):
    """Slice classes of the HUST-19 slice classifier (Ning et al., Nat. Biomed. Eng. 2020)."""

    #: Non-informative CT: no lung parenchyma visible.
    NICT = "NiCT"
    #: Positive CT: lung parenchyma with pneumonia lesions.
    PCT = "pCT"
    #: Negative CT: lung parenchyma without lesions.
    NCT = "nCT"


class ImageKind(enum.StrEnum):
    """Content of the stored slice array."""

    #: Hounsfield units (from DICOM or NIfTI).
    HU = "hu"
    #: 8-bit grey from a JPEG or PNG whose display window is unknown.
    GREY = "grey"


class CTSeries(Base):
    """One imported CT series (or one patient's set of labelled slices) of one patient."""

    __tablename__ = "ct_series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_run.id"))
    #: De-identified key: the replaced SeriesInstanceUID for DICOM (``.N`` for split part N),
    #: ``<kind>:<hash prefix>`` for other sources.
    series_key: Mapped[str] = mapped_column(String(80), unique=True)
    source_kind: Mapped[SourceKind] = enum_column(SourceKind, "source_kind")
    #: SHA-256 over the sorted SHA-256 hashes of the series' source files (frame numbers
    #: included for multi-frame files): the same series imported twice has the same value.
    source_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: (0008,0060) Modality; None for JPEG and NIfTI sources.
    modality: Mapped[str | None] = mapped_column(String(16))
    n_slices_kept: Mapped[int] = mapped_column(Integer)
    n_slices_dropped: Mapped[int] = mapped_column(Integer, default=0)
    #: Reason of each dropped slice or file, with counts, such as ``{"localizer": 2}``.
    dropped_reasons: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Spacing between slice centres along the slice normal, in mm; None where unknown.
    slice_spacing_mm: Mapped[float | None] = mapped_column(Float)
    #: Pixel spacing between rows (vertical), in mm.
    row_spacing_mm: Mapped[float | None] = mapped_column(Float)
    #: Pixel spacing between columns (horizontal), in mm.
    column_spacing_mm: Mapped[float | None] = mapped_column(Float)
    #: Direction cosines as a 3x3 list: row direction, column direction, slice normal.
    orientation: Mapped[list[Any] | None] = mapped_column(JSON)
    #: Patient-space position of the first slice's first pixel, in mm.
    origin_mm: Mapped[list[Any] | None] = mapped_column(JSON)
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: De-identification report of the series' headers (attributes removed, replaced, kept).
    deidentification: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Whether the pixels may carry burned-in text (header-only de-identification cannot
    #: clean pixels); ``burned_in_text_reason`` gives the evidence.
    burned_in_text: Mapped[bool] = mapped_column(Boolean, default=False)
    burned_in_text_reason: Mapped[str | None] = mapped_column(String(255))

    patient: Mapped[Patient] = relationship()
    import_run: Mapped[ImportRun | None] = relationship()
    slices: Mapped[list[CTSlice]] = relationship(
        back_populates="series", cascade="all, delete-orphan", order_by="CTSlice.index"
    )


class CTSlice(Base):
    """One stored slice of a series, with lung-extraction QC and store keys."""

    __tablename__ = "ct_slice"
    __table_args__ = (UniqueConstraint("series_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(
        ForeignKey("ct_series.id", ondelete="CASCADE"), index=True
    )
    #: 0-based position in the series, ordered along the slice normal where geometry is known.
    index: Mapped[int] = mapped_column(Integer)
    #: Position of the slice along the slice normal, in mm; None where unknown.
    position_mm: Mapped[float | None] = mapped_column(Float)
    row_spacing_mm: Mapped[float | None] = mapped_column(Float)
    column_spacing_mm: Mapped[float | None] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[int] = mapped_column(Integer)

    #: Lung-extraction QC; None where lung extraction was not run.
    lung_area_px: Mapped[int | None] = mapped_column(Integer)
    lung_area_mm2: Mapped[float | None] = mapped_column(Float)
    n_lung_components: Mapped[int | None] = mapped_column(Integer)
    lung_empty: Mapped[bool | None] = mapped_column(Boolean)
    implausible_reason: Mapped[str | None] = mapped_column(String(255))
    #: Lung extraction found too little lung for the slice to be informative (NiCT-like).
    nict_candidate: Mapped[bool | None] = mapped_column(Boolean)

    label: Mapped[SliceLabel | None] = enum_column(SliceLabel, "slice_label", nullable=True)
    #: Where the label comes from, such as ``hust19-download``; None without label.
    label_source: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 of the source file the slice was read from.
    source_sha256: Mapped[str] = mapped_column(String(64), index=True)

    image_kind: Mapped[ImageKind] = enum_column(ImageKind, "image_kind")
    #: Full slice: ``.npz`` with array ``hu`` (int16 or float32) or ``.png`` (8-bit grey).
    image_key: Mapped[str] = mapped_column(String(STORE_KEY_LENGTH))
    #: Lung mask of the full slice (1-bit PNG).
    mask_key: Mapped[str | None] = mapped_column(String(STORE_KEY_LENGTH))
    #: 200x200 lung crop: ``.npz`` with ``image`` (float32) and ``mask`` (bool) and ``crop_box``.
    crop_key: Mapped[str | None] = mapped_column(String(STORE_KEY_LENGTH))
    #: Lung-window rendering (width 1500, level -600 HU) as JPEG; the source image for JPEG input.
    lung_window_key: Mapped[str | None] = mapped_column(String(STORE_KEY_LENGTH))
    #: Mediastinal-window rendering (width 400, level 40 HU) as JPEG; None without HU.
    mediastinal_window_key: Mapped[str | None] = mapped_column(String(STORE_KEY_LENGTH))
    #: 1 to 5 for the patient's representative slices (1 = largest lung area), else None.
    representative_rank: Mapped[int | None] = mapped_column(Integer)

    series: Mapped[CTSeries] = relationship(back_populates="slices")
