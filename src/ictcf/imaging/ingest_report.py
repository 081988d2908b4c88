"""Reports of CT imports: what was stored, skipped and dropped, and why.

A report contains no file names or header values: files are named by their position in the
upload and their SHA-256, patients by the internal key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Series status: stored by this import.
STATUS_IMPORTED = "imported"
#: Series status: the same files were imported before for the same patient; nothing stored.
STATUS_ALREADY_IMPORTED = "already_imported"


@dataclass
class ExcludedFileReport:
    """A file of the upload that is not part of any stored series.

    Attributes
    ----------
    file_index : int
        0-based position of the file in the upload, sorted by path.
    sha256 : str
        SHA-256 of the file, to find it again (``sha256sum``).
    reason : str
        Why it was excluded, such as ``not a DICOM file`` or ``localizer``.
    """

    file_index: int
    sha256: str
    reason: str


@dataclass
class SeriesImportReport:
    """Outcome of one series of an import.

    Attributes
    ----------
    status : str
        ``imported`` or ``already_imported``.
    patient_id : int
        Internal patient key.
    series_id : int or None
        Database id of the stored series (also for ``already_imported``).
    series_key : str
        De-identified series key.
    source_kind : str
        ``dicom``, ``jpeg``, ``nifti`` or ``labelled_slices``.
    n_slices_kept, n_slices_dropped : int
        Slices stored and slices left out, with ``dropped_reasons`` giving reason → count.
    warnings : list of str
        Geometry and reading warnings (gaps, non-uniform spacing, tilt, duplicates).
    burned_in_text_reason : str or None
        Why the pixels may carry burned-in text.
    n_nict_candidates : int
        Slices whose lung extraction found too little lung to be informative.
    lung_area_mm2_range, lung_area_px_range : (float, float) or None
        Smallest and largest lung area over the slices with lung.
    labels : dict of str to int
        Stored labels with counts (labelled slices only).
    elapsed_s : float
        Wall time spent on the series, seconds.
    """

    status: str
    patient_id: int
    series_id: int | None
    series_key: str
    source_kind: str
    n_slices_kept: int = 0
    n_slices_dropped: int = 0
    dropped_reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    burned_in_text_reason: str | None = None
    n_nict_candidates: int = 0
    lung_area_mm2_range: tuple[float, float] | None = None
    lung_area_px_range: tuple[int, int] | None = None
    labels: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0


@dataclass
class CTImportReport:
    """Outcome of one import command or API call.

    Attributes
    ----------
    kind : str
        The import kind (``dicom``, ``jpeg``, ``nifti``, ``labelled_slices``).
    import_run_id : int or None
        Database id of the import run; None when nothing new was stored.
    n_files : int
        Files in the upload after unpacking.
    series : list of SeriesImportReport
        One entry per series found.
    excluded_files : list of ExcludedFileReport
        Files not used, with reasons.
    deidentification : dict
        The de-identification report of the upload's DICOM headers (empty for other inputs).
    lung_extraction : bool
        Whether lung masks, crops and QC were computed.
    store_root : str
        The slice store folder.
    elapsed_s : float
        Wall time of the whole import, seconds.
    reader_warnings : dict of str to int
        Warnings the file readers (pydicom, nibabel, Pillow) raised, with file names
        replaced by upload references and quoted values by ``'<value>'``, and how often
        each was raised.
    warnings : list of str
        Findings about the whole upload, such as images of more than one patient imported
        with ``allow_mixed_patients``.
    """

    kind: str
    import_run_id: int | None = None
    n_files: int = 0
    series: list[SeriesImportReport] = field(default_factory=list)
    excluded_files: list[ExcludedFileReport] = field(default_factory=list)
    deidentification: dict[str, Any] = field(default_factory=dict)
    lung_extraction: bool = True
    store_root: str = ""
    elapsed_s: float = 0.0
    reader_warnings: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_series_imported(self) -> int:
        """Number of series stored by this import."""
        return sum(item.status == STATUS_IMPORTED for item in self.series)

    @property
    def n_slices_stored(self) -> int:
        """Number of slices stored by this import."""
        return sum(item.n_slices_kept for item in self.series if item.status == STATUS_IMPORTED)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-compatible data."""
        data = asdict(self)
        data["n_series_imported"] = self.n_series_imported
        data["n_slices_stored"] = self.n_slices_stored
        return data

    def write_json(self, path: Path) -> None:
        """Write the report as indented JSON to ``path`` (parent folders are created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )

    def summary_lines(self) -> list[str]:
        """Return a short human-readable summary, one line per series."""
        lines = [f"warning: {warning}" for warning in self.warnings]
        for item in self.series:
            if item.status == STATUS_ALREADY_IMPORTED:
                lines.append(
                    f"series {item.series_id} ({item.source_kind}) of patient id:{item.patient_id}: "
                    "already imported, nothing stored"
                )
                continue
            dropped = ""
            if item.n_slices_dropped:
                reasons = ", ".join(
                    f"{reason}: {count}" for reason, count in item.dropped_reasons.items()
                )
                dropped = f", {item.n_slices_dropped} dropped ({reasons})"
            lungs = ""
            if item.lung_area_mm2_range is not None:
                low, high = item.lung_area_mm2_range
                lungs = f", lung area {low:.0f}-{high:.0f} mm²"
            elif item.lung_area_px_range is not None:
                low_px, high_px = item.lung_area_px_range
                lungs = f", lung area {low_px}-{high_px} px"
            labels = ""
            if item.labels:
                labels = ", labels " + ", ".join(
                    f"{name} {count}" for name, count in item.labels.items()
                )
            lines.append(
                f"series {item.series_id} ({item.source_kind}) of patient id:{item.patient_id}: "
                f"{item.n_slices_kept} slices stored{dropped}, {item.n_nict_candidates} NiCT "
                f"candidates{lungs}{labels}"
            )
            lines.extend(f"  warning: {warning}" for warning in item.warnings)
            if item.burned_in_text_reason:
                lines.append(f"  review pixels for burned-in text: {item.burned_in_text_reason}")
        if self.excluded_files:
            counts: dict[str, int] = {}
            for excluded in self.excluded_files:
                counts[excluded.reason] = counts.get(excluded.reason, 0) + 1
            reasons = "; ".join(f"{reason}: {count}" for reason, count in sorted(counts.items()))
            lines.append(f"{len(self.excluded_files)} files excluded ({reasons})")
        for message, count in self.reader_warnings.items():
            lines.append(f"reader warning (raised {count} times): {message}")
        return lines
