"""Export stored slices as PNG or NPZ files with a manifest CSV of labels.

PNG export renders HU slices with one display window (lung window by default) through
:func:`ictcf.imaging.windows.apply_window`, as single-channel 8-bit images; the window is
recorded in the manifest and in a PNG text chunk, so a classifier fed from these PNGs sees the
same grey values as one fed from the DICOM route. Slices imported from JPEG/PNG are written
with their grey values unchanged (window ``source``: unknown, as shipped). The image keeps its
size: ``columns`` pixels wide and ``rows`` pixels high.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ictcf import __version__
from ictcf.db.imaging_models import CTSeries, CTSlice, ImageKind, SliceLabel, SourceKind
from ictcf.db.models import Patient
from ictcf.errors import ConflictError, DataNotFoundError, InputError
from ictcf.imaging.linking import find_patient, parse_patient_key, store_for
from ictcf.imaging.store import SliceStore, encode_npz, encode_png
from ictcf.imaging.windows import LUNG_WINDOW, Window, apply_window
from ictcf.progress import progress_bar

logger = logging.getLogger(__name__)

#: Export formats.
FORMATS = ("png", "npz")
#: File name of the manifest written beside the slices.
MANIFEST_NAME = "manifest.csv"
#: Window value in the manifest for slices imported as 8-bit grey (the source's own window).
SOURCE_WINDOW = "source"
#: PNG text-chunk key holding the display window.
PNG_WINDOW_KEY = "ictcf:window"
#: ``slice_order`` of series with slice positions (DICOM, NIfTI): index 0 is the most inferior
#: slice and the index grows towards the head.
ORDER_INFERIOR_TO_SUPERIOR = "inferior_to_superior"
#: ``slice_order`` of JPEG/PNG series and labelled slices: the index follows the numbers in the
#: file names, whose direction depends on the exporter (often head first).
ORDER_FILE_NAMES = "file_name_order"
#: Manifest columns, in order.
MANIFEST_COLUMNS = (
    "file",
    "patient_id",
    "patient_source_id",
    "series_id",
    "series_key",
    "source_kind",
    "slice_index",
    "slice_order",
    "label",
    "label_source",
    "image_kind",
    "window",
    "window_width",
    "window_level",
    "rows",
    "columns",
    "row_spacing_mm",
    "column_spacing_mm",
    "position_mm",
    "lung_area_mm2",
    "nict_candidate",
    "representative_rank",
)


@dataclass
class SliceExportReport:
    """Outcome of :func:`export_slices`.

    Attributes
    ----------
    output : Path
        Folder written.
    n_slices : int
        Slices written.
    manifest : Path
        The manifest CSV.
    labels : dict of str to int
        Label (``none`` for unlabelled) to count.
    """

    output: Path
    n_slices: int = 0
    manifest: Path = field(default_factory=Path)
    labels: dict[str, int] = field(default_factory=dict)


def _parse_label(label: str | SliceLabel | None) -> SliceLabel | str | None:
    if label is None or isinstance(label, SliceLabel):
        return label
    text = label.strip()
    if text.lower() in {"none", "unlabelled", "unlabeled"}:
        return "none"
    for member in SliceLabel:
        if member.value.lower() == text.lower():
            return member
    choices = ", ".join(member.value for member in SliceLabel)
    raise InputError(f"Unknown slice label {label!r}. Use one of {choices}, or none.")


def _select_slices(
    session: Session, patient: str | int | None, label: SliceLabel | str | None
) -> Sequence[tuple[CTSlice, CTSeries, Patient]]:
    query = (
        select(CTSlice, CTSeries, Patient)
        .join(CTSeries, CTSlice.series_id == CTSeries.id)
        .join(Patient, CTSeries.patient_id == Patient.id)
        .order_by(Patient.id, CTSeries.id, CTSlice.index)
    )
    if patient is not None:
        patient_row = find_patient(session, patient)
        if patient_row is None:
            kind, value = parse_patient_key(patient)
            raise DataNotFoundError(
                f"No patient matches {value!r} ({kind.replace('_', ' ')}); nothing to export."
            )
        query = query.where(Patient.id == patient_row.id)
    if label == "none":
        query = query.where(CTSlice.label.is_(None))
    elif isinstance(label, SliceLabel):
        query = query.where(CTSlice.label == label)
    return [(row[0], row[1], row[2]) for row in session.execute(query).all()]


def export_slices(
    factory: sessionmaker[Session],
    output: Path | str,
    *,
    format: str = "png",
    store: SliceStore | Path | str | None = None,
    patient: str | int | None = None,
    label: str | SliceLabel | None = None,
    window: Window = LUNG_WINDOW,
    progress: bool = False,
) -> SliceExportReport:
    """Write stored slices and a manifest CSV to a new folder.

    Parameters
    ----------
    factory : sessionmaker
        Session factory of the database.
    output : Path or str
        Folder to create; it must not exist or be empty. Files are written to a temporary
        folder beside it and moved into place at the end, so a failed export leaves nothing.
    format : {"png", "npz"}, default "png"
        ``png``: single-channel 8-bit, HU rendered with ``window``. ``npz``: arrays ``image``
        (HU as int16/float32, or uint8 grey), ``mask`` (lung mask, when computed).
    store : SliceStore, path or None
        The slice store; default: the database's default store.
    patient : str or int, optional
        Only this patient (``17``, ``Patient 17``, ``id:5`` or an image-only key).
    label : {"NiCT", "pCT", "nCT", "none"}, optional
        Only slices with this label (``none``: unlabelled slices).
    window : Window, default LUNG_WINDOW
        Display window of PNG export.
    progress : bool, default False
        Draw a progress bar.

    Returns
    -------
    SliceExportReport

    Raises
    ------
    InputError
        For an unknown format or label, or an output folder that is not empty.
    DataNotFoundError
        If the patient is unknown, no slice matches, or a store blob is missing.
    """
    if format not in FORMATS:
        raise InputError(f"Unknown export format {format!r}; use png or npz.")
    requested_label = _parse_label(label)
    output_dir = Path(output)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise ConflictError(
            f"The output folder {output_dir} exists and is not empty. Choose a new folder."
        )
    slice_store = store_for(factory, store)
    with factory() as session:
        rows = _select_slices(session, patient, requested_label)
    if not rows:
        raise DataNotFoundError(
            "No stored slice matches the selection. Import images first (ictcf import dicom) or "
            "change --patient / --label."
        )

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    report = SliceExportReport(output=output_dir, manifest=output_dir / MANIFEST_NAME)
    try:
        records = []
        for slice_row, series, patient_row in progress_bar(
            rows, enabled=progress, description="export", total=len(rows), unit="slice"
        ):
            relative = Path(
                f"patient-{patient_row.id}",
                f"series-{series.id}",
                f"slice-{slice_row.index:04d}.{format}",
            )
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            window_name, width, level = _write_slice(
                slice_store, slice_row, target, format=format, window=window
            )
            records.append(
                {
                    "file": relative.as_posix(),
                    "patient_id": patient_row.id,
                    "patient_source_id": patient_row.source_id,
                    "series_id": series.id,
                    "series_key": series.series_key,
                    "source_kind": series.source_kind.value,
                    "slice_index": slice_row.index,
                    "slice_order": slice_order(series.source_kind),
                    "label": slice_row.label.value if slice_row.label else "",
                    "label_source": slice_row.label_source or "",
                    "image_kind": slice_row.image_kind.value,
                    "window": window_name,
                    "window_width": width,
                    "window_level": level,
                    "rows": slice_row.rows,
                    "columns": slice_row.columns,
                    "row_spacing_mm": _blank(slice_row.row_spacing_mm),
                    "column_spacing_mm": _blank(slice_row.column_spacing_mm),
                    "position_mm": _blank(slice_row.position_mm),
                    "lung_area_mm2": _blank(slice_row.lung_area_mm2),
                    "nict_candidate": _blank(slice_row.nict_candidate),
                    "representative_rank": _blank(slice_row.representative_rank),
                }
            )
            label_name = slice_row.label.value if slice_row.label else "none"
            report.labels[label_name] = report.labels.get(label_name, 0) + 1
        _write_manifest(staging / MANIFEST_NAME, records)
        report.n_slices = len(records)
        if output_dir.exists():
            output_dir.rmdir()  # empty, checked above
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("exported %d slices as %s", report.n_slices, format)
    return report


def slice_order(source_kind: SourceKind) -> str:
    """Return what the slice index of a series from ``source_kind`` counts along.

    Returns
    -------
    str
        ``ORDER_INFERIOR_TO_SUPERIOR`` for DICOM and NIfTI series, which are sorted by slice
        position, and ``ORDER_FILE_NAMES`` for JPEG/PNG series and labelled slices.
    """
    if source_kind in (SourceKind.DICOM, SourceKind.NIFTI):
        return ORDER_INFERIOR_TO_SUPERIOR
    return ORDER_FILE_NAMES


def _blank(value: object) -> object:
    return "" if value is None else value


def _write_slice(
    store: SliceStore, slice_row: CTSlice, target: Path, *, format: str, window: Window
) -> tuple[str, object, object]:
    if slice_row.image_kind is ImageKind.HU:
        hu = store.read_arrays(slice_row.image_key)["hu"].astype(np.float32)
        if format == "png":
            grey = apply_window(hu, window)
            text = {PNG_WINDOW_KEY: window.describe(), "Software": f"ictcf {__version__}"}
            target.write_bytes(encode_png(grey, text=text))
            return (window.name, window.width, window.level)
        arrays: dict[str, np.ndarray] = {"image": hu}
        window_info: tuple[str, object, object] = ("hu", "", "")
    else:
        grey = store.read_image(slice_row.image_key).astype(np.uint8)
        if format == "png":
            text = {PNG_WINDOW_KEY: SOURCE_WINDOW, "Software": f"ictcf {__version__}"}
            target.write_bytes(encode_png(grey, text=text))
            return (SOURCE_WINDOW, "", "")
        arrays = {"image": grey}
        window_info = (SOURCE_WINDOW, "", "")
    if slice_row.mask_key:
        arrays["mask"] = np.asarray(store.read_image(slice_row.mask_key), dtype=bool)
    target.write_bytes(encode_npz(arrays))
    return window_info


def _write_manifest(path: Path, records: list[dict[str, object]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    path.write_text(buffer.getvalue(), encoding="utf-8")
