"""Import CT images into the slice store and the database: DICOM, JPEG/PNG, NIfTI, labelled slices.

One import runs: safe file collection (zip extraction into a temporary folder) → grouping into
series → decoding to Hounsfield units (or 8-bit grey for JPEG/PNG) → de-identification of
each DICOM header → lung extraction and QC → slice store blobs → database rows.

Transactions: every database row of an import is written in one transaction. Blobs are
written to the content-addressed store before the commit; when the import fails, the blobs it
created and that no committed row references are deleted again, and :func:`collect_garbage`
removes any left by a killed process. Nothing is written outside the store and the temporary
folder, which is removed at the end.

Idempotency: a series is identified by the SHA-256 over its source files' SHA-256 hashes.
Importing the same files again for the same patient stores nothing and adds no rows; for a
different patient it raises :class:`~ictcf.errors.ConflictError`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ictcf import __version__
from ictcf.db.imaging_models import CTSeries, CTSlice, ImageKind, SliceLabel, SourceKind
from ictcf.db.models import ImportRun, Patient
from ictcf.db.session import session_scope
from ictcf.errors import ConflictError, InputError
from ictcf.imaging.ingest_report import (
    STATUS_ALREADY_IMPORTED,
    STATUS_IMPORTED,
    CTImportReport,
    ExcludedFileReport,
    SeriesImportReport,
)
from ictcf.imaging.linking import (
    load_deidentification_secret,
    patient_pseudonym,
    resolve_patient,
    store_for,
)
from ictcf.imaging.representative import update_representative_slices
from ictcf.imaging.store import SliceStore, hu_storage_array
from ictcf.imaging.upload_files import UploadFileNames, names_kept_out
from ictcf.imaging.windows import LUNG_WINDOW, MEDIASTINAL_WINDOW, apply_window
from ictcf.progress import progress_bar

logger = logging.getLogger(__name__)

#: Bytes read at a time when hashing source files.
HASH_CHUNK_BYTES = 1 << 20
#: File suffixes read as 8-bit JPEG/PNG slices.
RASTER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
#: File suffixes read as NIfTI volumes.
NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Label folder names of HUST-19's labelled slice download, matched case-insensitively.
LABEL_FOLDERS = {label.value.lower(): label for label in SliceLabel}
#: ``label_source`` of labels read from the labelled slice download layout.
LABEL_SOURCE_DOWNLOAD = "hust19-download"
#: Burned-in text note for JPEG/PNG input, whose pixels no header check can vouch for.
RASTER_BURNED_IN_REASON = (
    "JPEG/PNG pixels are not checked for burned-in text (there is no header to de-identify)"
)
#: Worker threads that encode and store slices (at most 4: encoding is memory-bound beyond).
STORE_WORKERS = max(1, min(4, os.cpu_count() or 1))
#: Queued slices per worker before the reader waits; bounds the slices held in memory.
MAX_PENDING_PER_WORKER = 2
#: Range of int16, the type of the HU volume kept for lung segmentation when every slice has
#: integral HU in it (half the memory of float32 for a long series).
INT16_MIN = float(np.iinfo(np.int16).min)
INT16_MAX = float(np.iinfo(np.int16).max)
#: Header attributes read to count the patients of a DICOM upload: (0010,0020) PatientID,
#: (0010,0010) PatientName, and (0008,0005) SpecificCharacterSet to decode the name.
PATIENT_IDENTITY_TAGS = (0x00100020, 0x00100010, 0x00080005)
#: Blobs younger than this are never deleted by garbage collection, seconds, so an import
#: that is still running keeps the blobs it has written but not yet committed.
GARBAGE_MIN_AGE_S = 3600.0


# ---------------------------------------------------------------------------------------------
# Per-slice data shared by all input kinds


@dataclass
class _StoredSlice:
    index: int
    rows: int
    columns: int
    source_sha256: str
    image_kind: ImageKind
    image_key: str
    lung_window_key: str | None
    mediastinal_window_key: str | None = None
    position_mm: float | None = None
    row_spacing_mm: float | None = None
    column_spacing_mm: float | None = None
    label: SliceLabel | None = None
    label_source: str | None = None
    mask_key: str | None = None
    crop_key: str | None = None
    lung_area_px: int | None = None
    lung_area_mm2: float | None = None
    n_lung_components: int | None = None
    lung_empty: bool | None = None
    implausible_reason: str | None = None
    nict_candidate: bool | None = None


@dataclass
class _SeriesDraft:
    patient: Patient
    source_kind: SourceKind
    source_sha256: str
    series_key: str
    slices: list[_StoredSlice] = field(default_factory=list)
    modality: str | None = None
    slice_spacing_mm: float | None = None
    row_spacing_mm: float | None = None
    column_spacing_mm: float | None = None
    orientation: list[Any] | None = None
    origin_mm: list[Any] | None = None
    warnings: list[str] = field(default_factory=list)
    dropped_reasons: Counter[str] = field(default_factory=Counter)
    deidentification: dict[str, Any] = field(default_factory=dict)
    burned_in_text_reason: str | None = None
    started: float = field(default_factory=time.perf_counter)


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def combined_sha256(parts: Sequence[str]) -> str:
    """Return the SHA-256 of the sorted ``parts`` joined by newlines (order-independent)."""
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


def _new_slice(
    index: int, shape: tuple[int, ...], source_sha256: str, image_kind: ImageKind
) -> _StoredSlice:
    return _StoredSlice(
        index=index,
        rows=int(shape[0]),
        columns=int(shape[1]),
        source_sha256=source_sha256,
        image_kind=image_kind,
        image_key="",
        lung_window_key=None,
    )


def _write_hu_images(store: SliceStore, stored: _StoredSlice, hu: npt.NDArray[np.float32]) -> None:
    """Store the HU array and its lung- and mediastinal-window renderings (worker thread)."""
    stored.image_key = store.put_arrays({"hu": hu_storage_array(hu)})
    stored.lung_window_key = store.put_jpeg(apply_window(hu, LUNG_WINDOW))
    stored.mediastinal_window_key = store.put_jpeg(apply_window(hu, MEDIASTINAL_WINDOW))


def _write_grey_images(
    store: SliceStore, stored: _StoredSlice, grey: npt.NDArray[np.uint8]
) -> None:
    """Store an 8-bit slice and its JPEG rendering (worker thread)."""
    stored.image_key = store.put_png(grey)
    stored.lung_window_key = store.put_jpeg(grey)


def _record_extraction(store: SliceStore, stored: _StoredSlice, extraction: Any) -> None:
    """Store the mask and crop of a ``LungExtraction`` and copy its QC onto ``stored``."""
    stored.mask_key = store.put_png(np.asarray(extraction.mask, dtype=bool))
    stored.crop_key = store.put_arrays(
        {
            "image": np.asarray(extraction.image_crop, dtype=np.float32),
            "mask": np.asarray(extraction.mask_crop, dtype=bool),
            "crop_box": np.asarray(extraction.crop_box, dtype=np.int64),
        }
    )
    qc = extraction.qc
    stored.lung_area_px = int(qc.lung_area_px)
    stored.lung_area_mm2 = None if qc.lung_area_mm2 is None else float(qc.lung_area_mm2)
    stored.n_lung_components = int(qc.n_components)
    stored.lung_empty = bool(qc.empty)
    stored.implausible_reason = qc.implausible_reason
    stored.nict_candidate = bool(qc.nict_candidate)


class _SliceWorkers:
    """Run per-slice encoding, lung extraction and storage on worker threads.

    zlib, libjpeg and OpenCV release the GIL, so encoding overlaps with decoding the next
    slice. At most :data:`MAX_PENDING_PER_WORKER` tasks per worker wait at a time, which
    bounds the slices held in memory. A task's exception is raised again in the caller by
    :meth:`submit` or :meth:`drain`.
    """

    def __init__(self, n_workers: int = 0) -> None:
        self.n_workers = n_workers or STORE_WORKERS
        self.executor = ThreadPoolExecutor(self.n_workers, thread_name_prefix="ictcf-slices")
        self.pending: deque[Future[None]] = deque()

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        self.pending.append(self.executor.submit(function, *args))
        while len(self.pending) > self.n_workers * MAX_PENDING_PER_WORKER:
            self.pending.popleft().result()

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def __enter__(self) -> _SliceWorkers:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            for future in self.pending:
                future.cancel()
        self.executor.shutdown(wait=True, cancel_futures=exc_type is not None)
        if exc_type is None:
            self.drain()


# ---------------------------------------------------------------------------------------------
# Database writing shared by all input kinds


class _ImportRunRecorder:
    """Creates the import run row lazily, so an import that stores nothing adds no row."""

    def __init__(self, session: Session, kind: str, n_files: int, upload_sha256: str) -> None:
        self.session = session
        self.kind = kind
        self.n_files = n_files
        self.upload_sha256 = upload_sha256
        self.run: ImportRun | None = None

    def get(self) -> ImportRun:
        if self.run is None:
            self.run = ImportRun(
                kind=self.kind,
                # File names may identify the patient, so only the kind and count are kept.
                file_name=f"{self.kind} upload of {self.n_files} files",
                sha256=self.upload_sha256,
                imported_at=dt.datetime.now(dt.UTC),
                importer_version=__version__,
                cohort=None,
                report={},
            )
            self.session.add(self.run)
            self.session.flush()
        return self.run


def _existing_series(session: Session, source_sha256: str, patient: Patient) -> CTSeries | None:
    existing = session.scalar(select(CTSeries).where(CTSeries.source_sha256 == source_sha256))
    if existing is not None and existing.patient_id != patient.id:
        raise ConflictError(
            f"This {existing.source_kind.value} series is already stored as series "
            f"{existing.id} of patient id:{existing.patient_id}; it cannot also belong to "
            f"patient id:{patient.id}. Check the patient key: import these files for patient "
            f"id:{existing.patient_id}, or leave them out of this upload."
        )
    return existing


def _already_imported_report(existing: CTSeries) -> SeriesImportReport:
    logger.info(
        "patient %d: series %d skipped: the same files were imported before",
        existing.patient_id,
        existing.id,
    )
    return SeriesImportReport(
        status=STATUS_ALREADY_IMPORTED,
        patient_id=existing.patient_id,
        series_id=existing.id,
        series_key=existing.series_key,
        source_kind=existing.source_kind.value,
        n_slices_kept=existing.n_slices_kept,
        n_slices_dropped=existing.n_slices_dropped,
        dropped_reasons=dict(existing.dropped_reasons),
        warnings=list(existing.warnings),
        burned_in_text_reason=existing.burned_in_text_reason,
    )


def _write_series(
    session: Session, draft: _SeriesDraft, recorder: _ImportRunRecorder
) -> SeriesImportReport:
    if not draft.slices:
        raise InputError(
            f"No slice of the {draft.source_kind.value} series for patient id:{draft.patient.id} "
            "could be stored; nothing was imported."
        )
    same_key = session.scalar(select(CTSeries).where(CTSeries.series_key == draft.series_key))
    if same_key is not None:
        raise ConflictError(
            f"Another version of this series (different files, same de-identified series key) "
            f"is already stored as series {same_key.id} of patient id:{same_key.patient_id}. "
            "Delete that series first if this upload should replace it."
        )
    run = recorder.get()
    series = CTSeries(
        patient_id=draft.patient.id,
        import_run_id=run.id,
        series_key=draft.series_key,
        source_kind=draft.source_kind,
        source_sha256=draft.source_sha256,
        modality=draft.modality,
        n_slices_kept=len(draft.slices),
        n_slices_dropped=sum(draft.dropped_reasons.values()),
        dropped_reasons=dict(draft.dropped_reasons),
        slice_spacing_mm=draft.slice_spacing_mm,
        row_spacing_mm=draft.row_spacing_mm,
        column_spacing_mm=draft.column_spacing_mm,
        orientation=draft.orientation,
        origin_mm=draft.origin_mm,
        warnings=list(draft.warnings),
        deidentification=draft.deidentification,
        burned_in_text=draft.burned_in_text_reason is not None,
        burned_in_text_reason=(draft.burned_in_text_reason or None)
        and draft.burned_in_text_reason[:255],
    )
    session.add(series)
    session.flush()
    session.add_all(
        CTSlice(
            series_id=series.id,
            index=item.index,
            position_mm=item.position_mm,
            row_spacing_mm=item.row_spacing_mm,
            column_spacing_mm=item.column_spacing_mm,
            rows=item.rows,
            columns=item.columns,
            lung_area_px=item.lung_area_px,
            lung_area_mm2=item.lung_area_mm2,
            n_lung_components=item.n_lung_components,
            lung_empty=item.lung_empty,
            implausible_reason=None
            if item.implausible_reason is None
            else item.implausible_reason[:255],
            nict_candidate=item.nict_candidate,
            label=item.label,
            label_source=item.label_source,
            source_sha256=item.source_sha256,
            image_kind=item.image_kind,
            image_key=item.image_key,
            mask_key=item.mask_key,
            crop_key=item.crop_key,
            lung_window_key=item.lung_window_key,
            mediastinal_window_key=item.mediastinal_window_key,
        )
        for item in draft.slices
    )
    session.flush()
    report = _series_report(draft, series.id)
    logger.info(
        "patient %d: series %d stored: %d slices kept, %d dropped",
        draft.patient.id,
        series.id,
        report.n_slices_kept,
        report.n_slices_dropped,
    )
    for reason, count in draft.dropped_reasons.items():
        logger.info(
            "patient %d: series %d: %d dropped: %s", draft.patient.id, series.id, count, reason
        )
    return report


def _series_report(draft: _SeriesDraft, series_id: int) -> SeriesImportReport:
    with_lung = [item for item in draft.slices if item.lung_area_px]
    mm2 = [item.lung_area_mm2 for item in with_lung if item.lung_area_mm2 is not None]
    px = [int(item.lung_area_px or 0) for item in with_lung]
    labels = Counter(item.label.value for item in draft.slices if item.label is not None)
    return SeriesImportReport(
        status=STATUS_IMPORTED,
        patient_id=draft.patient.id,
        series_id=series_id,
        series_key=draft.series_key,
        source_kind=draft.source_kind.value,
        n_slices_kept=len(draft.slices),
        n_slices_dropped=sum(draft.dropped_reasons.values()),
        dropped_reasons=dict(draft.dropped_reasons),
        warnings=list(draft.warnings),
        burned_in_text_reason=draft.burned_in_text_reason,
        n_nict_candidates=sum(bool(item.nict_candidate) for item in draft.slices),
        lung_area_mm2_range=(min(mm2), max(mm2)) if mm2 else None,
        lung_area_px_range=(min(px), max(px)) if px else None,
        labels=dict(sorted(labels.items())),
        elapsed_s=time.perf_counter() - draft.started,
    )


def _finish(
    session: Session,
    report: CTImportReport,
    recorder: _ImportRunRecorder,
    patient_ids: set[int],
) -> None:
    for patient_id in sorted(patient_ids):
        update_representative_slices(session, patient_id)
    if recorder.run is not None:
        report.import_run_id = recorder.run.id
        recorder.run.report = report.to_dict()


# ---------------------------------------------------------------------------------------------
# Store cleanup


def referenced_keys(session: Session, keys: Sequence[str] | None = None) -> set[str]:
    """Return the store keys that slice rows reference (only among ``keys`` when given)."""
    columns = (
        CTSlice.image_key,
        CTSlice.mask_key,
        CTSlice.crop_key,
        CTSlice.lung_window_key,
        CTSlice.mediastinal_window_key,
    )
    found: set[str] = set()
    if keys is None:
        for column in columns:
            found.update(value for value in session.scalars(select(column).distinct()) if value)
        return found
    key_list = list(keys)
    chunk = 500
    for start in range(0, len(key_list), chunk):
        part = key_list[start : start + chunk]
        for column in columns:
            found.update(
                value
                for value in session.scalars(select(column).where(column.in_(part)).distinct())
                if value
            )
    return found


@contextmanager
def _conflicts_as_errors() -> Iterator[None]:
    """Turn a unique-constraint failure at commit into a ``ConflictError``.

    It happens when another import stored the same series between this import's check and
    its commit.
    """
    try:
        yield
    except IntegrityError as err:
        raise ConflictError(
            "Another import stored some of these series at the same time, so this import was "
            "rolled back. Run it again: series already stored are then reported as imported."
        ) from err


@contextmanager
def _remove_new_blobs_on_failure(
    factory: sessionmaker[Session], store: SliceStore
) -> Iterator[None]:
    before = set(store.created)
    try:
        yield
    except BaseException:
        new_keys = sorted(store.created - before)
        if new_keys:
            try:
                with factory() as session:
                    keep = referenced_keys(session, new_keys)
            except Exception:  # the database may be the reason for the failure
                logger.warning(
                    "import failed and the database could not be checked: %d new store blobs "
                    "were left for `ictcf import prune-store`",
                    len(new_keys),
                )
                raise
            removed = sum(store.delete(key) for key in new_keys if key not in keep)
            logger.info("import failed: removed %d store blobs it had written", removed)
        raise


@dataclass
class GarbageReport:
    """Outcome of :func:`collect_garbage`.

    Attributes
    ----------
    n_blobs : int
        Blobs in the store before collection.
    n_referenced : int
        Blobs that a slice row references.
    n_unreferenced : int
        Blobs no row references.
    n_deleted : int
        Unreferenced blobs deleted (old enough, and not a dry run).
    bytes_deleted : int
        Size of the deleted blobs.
    n_temp_files_deleted : int
        Stale temporary files deleted.
    """

    n_blobs: int = 0
    n_referenced: int = 0
    n_unreferenced: int = 0
    n_deleted: int = 0
    bytes_deleted: int = 0
    n_temp_files_deleted: int = 0


def collect_garbage(
    factory: sessionmaker[Session],
    store: SliceStore | Path | str | None = None,
    *,
    min_age_s: float = GARBAGE_MIN_AGE_S,
    dry_run: bool = False,
) -> GarbageReport:
    """Delete store blobs that no database row references.

    Parameters
    ----------
    factory : sessionmaker
        Session factory of the database that owns the store.
    store : SliceStore, path or None
        The store; default: the database's default store.
    min_age_s : float, default 3600
        Only blobs and temporary files older than this many seconds are deleted, so imports
        still running elsewhere keep their uncommitted blobs.
    dry_run : bool, default False
        Count only; delete nothing.

    Returns
    -------
    GarbageReport
    """
    slice_store = store_for(factory, store)
    with factory() as session:
        referenced = referenced_keys(session)
    report = GarbageReport()
    now = time.time()
    for key in list(slice_store.iter_keys()):
        report.n_blobs += 1
        if key in referenced:
            report.n_referenced += 1
            continue
        report.n_unreferenced += 1
        path = slice_store.path_of(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if dry_run or now - stat.st_mtime < min_age_s:
            continue
        if slice_store.delete(key):
            report.n_deleted += 1
            report.bytes_deleted += stat.st_size
    if not dry_run:
        report.n_temp_files_deleted = slice_store.remove_stale_temp_files(older_than_s=min_age_s)
    logger.info(
        "store garbage collection: %d blobs, %d unreferenced, %d deleted",
        report.n_blobs,
        report.n_unreferenced,
        report.n_deleted,
    )
    return report


# ---------------------------------------------------------------------------------------------
# Input collection


def _collect(path: Path, workdir: Path, archive_limits: Any | None) -> list[Path]:
    from ictcf.imaging.archive import ArchiveLimits, collect_input_files

    limits = archive_limits if archive_limits is not None else ArchiveLimits()
    files = sorted(collect_input_files(Path(path), workdir=workdir, limits=limits))
    if not files:
        raise InputError(
            "No files were found in the input. Give a folder, a zip archive or a file.", path=path
        )
    return files


def _file_hashes(files: Sequence[Path]) -> dict[Path, str]:
    return {file: sha256_file(file) for file in files}


def _excluded(
    files: Sequence[Path], hashes: dict[Path, str], path: Path, reason: str
) -> ExcludedFileReport:
    index = files.index(path) if path in files else -1
    # File names may contain patient names, and reader messages sometimes quote the path.
    reason = reason.replace(str(path), "<file>").replace(path.name, "<file>")
    return ExcludedFileReport(
        file_index=index, sha256=hashes.get(path) or sha256_file(path), reason=reason
    )


# ---------------------------------------------------------------------------------------------
# DICOM


def import_dicom(
    factory: sessionmaker[Session],
    path: Path | str,
    *,
    patient: str | int,
    store: SliceStore | Path | str | None = None,
    create_patient: bool = False,
    extract_lungs: bool = True,
    keep_dates: bool = False,
    secret: bytes | None = None,
    archive_limits: Any | None = None,
    workdir: Path | None = None,
    progress: bool = False,
    allow_mixed_patients: bool = False,
) -> CTImportReport:
    """Import every CT series of a DICOM upload for one patient.

    Parameters
    ----------
    factory : sessionmaker
        Session factory from :func:`ictcf.db.open_database`.
    path : Path or str
        A folder (searched recursively), a zip archive or one DICOM file.
    patient : str or int
        ``17`` / ``Patient 17`` (iCTCF export number), ``id:5`` (internal key) or, with
        ``create_patient``, the key of a new image-only patient.
    store : SliceStore, path or None
        The slice store; default: ``store/`` beside an SQLite database file, else
        ``$ICTCF_HOME/store``.
    create_patient : bool, default False
        Create an image-only patient when ``patient`` matches none.
    extract_lungs : bool, default True
        Compute lung masks, 200x200 lung crops and QC (3-D segmentation per series).
    keep_dates : bool, default False
        Keep dates in de-identified headers, shifted by one secret offset per patient
        (PS3.15 Retain Longitudinal Temporal Information Modified Dates Option). By default
        they are removed or emptied as the Basic Profile prescribes.
    secret : bytes, optional
        De-identification secret; default: the installation's key file in the home folder.
    archive_limits : ArchiveLimits, optional
        Caps on zip extraction (total size, entry count).
    workdir : Path, optional
        Parent of the temporary extraction folder (default: the system temp folder).
    progress : bool, default False
        Draw a progress bar per series.
    allow_mixed_patients : bool, default False
        Import an upload whose series carry more than one patient identity (different
        PatientID or PatientName), all for ``patient``, and add a warning to the report. By
        default such an upload is rejected.

    Returns
    -------
    CTImportReport

    Raises
    ------
    InputError
        If the upload is unsafe (zip entries outside the folder, size caps), holds no CT series,
        contains series of more than one patient without ``allow_mixed_patients``, or a slice
        cannot be decoded. Nothing is stored then.
    DataNotFoundError
        If ``patient`` names no patient and ``create_patient`` is false.
    ConflictError
        If a series is already stored for another patient.
    """
    from ictcf.imaging.deidentify import Deidentifier
    from ictcf.imaging.dicom_series import plan_dicom_series

    started = time.perf_counter()
    slice_store = store_for(factory, store)
    report = CTImportReport(kind=SourceKind.DICOM.value, lung_extraction=extract_lungs)
    report.store_root = str(slice_store.root)
    key_secret = secret if secret is not None else load_deidentification_secret()

    names = UploadFileNames(Path(path))
    with (
        names_kept_out(names),
        tempfile.TemporaryDirectory(prefix="ictcf-import-", dir=workdir) as temp,
    ):
        files = _collect(Path(path), Path(temp), archive_limits)
        report.n_files = len(files)
        hashes = _file_hashes(files)
        names.add_files(files, hashes)
        scan = plan_dicom_series(files)
        excluded_by_series = _excluded_by_series(scan.excluded)
        for item in scan.excluded:
            report.excluded_files.append(_excluded(files, hashes, Path(item.path), item.reason))
        if not scan.series:
            raise InputError(
                f"No CT series was found among {len(files)} files "
                f"({_reason_counts(report.excluded_files)}). Nothing was imported.",
                path=Path(path),
            )
        n_patients, n_without_identity = patient_identity_counts(scan.series, secret=key_secret)
        if n_patients and n_without_identity:
            # Such files cannot be matched to a patient by their headers.
            warning = (
                f"{n_without_identity} file(s) of the upload have neither PatientID nor "
                "PatientName; they were imported for the same patient as the others"
            )
            report.warnings.append(warning)
            logger.warning("%s", warning)
        if n_patients > 1:
            if not allow_mixed_patients:
                raise InputError(
                    f"The upload contains images of {n_patients} patients (different "
                    "PatientID or PatientName); import each patient's images separately, or "
                    "pass --allow-mixed-patients if they are one person. Nothing was imported."
                )
            warning = (
                f"the upload contains images of {n_patients} patients (different PatientID "
                "or PatientName); all were imported for one patient because mixed patients "
                "were allowed"
            )
            report.warnings.append(warning)
            logger.warning("%s", warning)

        with (
            _remove_new_blobs_on_failure(factory, slice_store),
            _conflicts_as_errors(),
            session_scope(factory) as session,
        ):
            patient_row = resolve_patient(session, patient, create=create_patient)
            recorder = _ImportRunRecorder(
                session, SourceKind.DICOM.value, len(files), combined_sha256(list(hashes.values()))
            )
            deidentifier = Deidentifier(
                patient_pseudonym=patient_pseudonym(patient_row.id),
                secret=key_secret,
                keep_dates=keep_dates,
            )
            for excluded in report.excluded_files:
                logger.info(
                    "patient %d: file %d excluded: %s",
                    patient_row.id,
                    excluded.file_index,
                    excluded.reason,
                )
            drafts: list[_SeriesDraft] = []
            for number, plan in enumerate(scan.series):
                frame_parts = [
                    f"{hashes[Path(frame.path)]}:{frame.frame_index}" for frame in plan.frames
                ]
                source_sha256 = combined_sha256(frame_parts)
                existing = _existing_series(session, source_sha256, patient_row)
                if existing is not None:
                    report.series.append(_already_imported_report(existing))
                    continue
                draft = _read_dicom_series(
                    slice_store,
                    plan,
                    number=number,
                    patient_row=patient_row,
                    source_sha256=source_sha256,
                    hashes=hashes,
                    deidentifier=deidentifier,
                    extract_lungs=extract_lungs,
                    progress=progress,
                )
                if plan.split_index == 0:
                    draft.dropped_reasons.update(
                        excluded_by_series.get(str(plan.series_instance_uid), Counter())
                    )
                drafts.append(draft)
            report.deidentification = _deidentification_dict(deidentifier)
            for draft in drafts:
                draft.deidentification = report.deidentification
                report.series.append(_write_series(session, draft, recorder))
            report.elapsed_s = time.perf_counter() - started
            report.reader_warnings = names.warning_counts()
            _finish(session, report, recorder, {patient_row.id})
    return report


def count_upload_patients(plans: Sequence[Any], *, secret: bytes) -> int:
    """Count the patient identities in the headers of planned DICOM series.

    See :func:`patient_identity_counts`, which also counts the files without an identity.
    """
    return patient_identity_counts(plans, secret=secret)[0]


def patient_identity_counts(plans: Sequence[Any], *, secret: bytes) -> tuple[int, int]:
    """Count the patient identities in the headers of planned DICOM series.

    Two headers belong to the same patient when their ``patient_lookup_key`` (a keyed hash
    of the PatientID and the normalised PatientName) is equal, the key that the
    de-identification report counts as ``n_patient_keys``. Headers with neither PatientID
    nor PatientName have no key and are not counted. The headers that planning keeps are used;
    only a file without one is read again, for these attributes only and without pixel data.
    No value leaves this function.

    Parameters
    ----------
    plans : sequence of SeriesPlan
        The series of :func:`ictcf.imaging.dicom_series.plan_dicom_series`.
    secret : bytes
        Key of the lookup-key hash.

    Returns
    -------
    (int, int)
        Number of distinct patient keys (0 when no header names a patient), and number of
        files whose header has neither PatientID nor PatientName.

    Raises
    ------
    InputError
        If a planned file can no longer be read.
    """
    import warnings

    import pydicom
    from pydicom.errors import InvalidDicomError

    from ictcf.imaging.pseudonyms import patient_lookup_key

    keys: set[str] = set()
    without_identity = 0
    # The plans still keep the single-frame headers of the planning read. The files of
    # multi-frame objects are read again, for these attributes only.
    planned_headers: dict[Path, Any] = {}
    for plan in plans:
        for path, (header, _) in plan._header_cache.items():
            planned_headers[Path(path)] = header
    paths = sorted({Path(frame.path) for plan in plans for frame in plan.frames})
    for path in paths:
        try:
            # The planning read already raised (and recorded) the reader warnings of these
            # headers, so the second read does not count them again.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = planned_headers.get(path)
                if header is None:
                    header = pydicom.dcmread(
                        path, stop_before_pixels=True, specific_tags=list(PATIENT_IDENTITY_TAGS)
                    )
                key = patient_lookup_key(header, secret=secret)
        except (InvalidDicomError, OSError, ValueError, TypeError, KeyError, RecursionError) as err:
            raise InputError(
                "The patient attributes (PatientID, PatientName) could not be read again "
                f"({type(err).__name__}); check that the upload is not changed during the "
                "import, and run it again.",
                path=path,
            ) from err
        if key is not None:
            keys.add(key)
        else:
            without_identity += 1
    return len(keys), without_identity


def _reason_counts(excluded: Sequence[ExcludedFileReport]) -> str:
    counts = Counter(item.reason for item in excluded)
    return "; ".join(f"{reason}: {count}" for reason, count in sorted(counts.items())) or "none"


def _excluded_by_series(excluded: Sequence[Any]) -> dict[str, Counter[str]]:
    """Map SeriesInstanceUID to reason counts of excluded files that carry it.

    The UID comes from the planning read (``ExcludedFile.series_instance_uid``): an excluded
    file is never read again, so a rejected deflate bomb is not inflated here.
    """
    result: dict[str, Counter[str]] = {}
    for item in excluded:
        uid = getattr(item, "series_instance_uid", "")
        if uid:
            result.setdefault(str(uid), Counter())[str(item.reason)] += 1
    return result


def _deidentification_dict(deidentifier: Any) -> dict[str, Any]:
    report = deidentifier.report()
    data = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    return dict(data)


def _read_dicom_series(
    store: SliceStore,
    plan: Any,
    *,
    number: int,
    patient_row: Patient,
    source_sha256: str,
    hashes: dict[Path, str],
    deidentifier: Any,
    extract_lungs: bool,
    progress: bool,
) -> _SeriesDraft:
    from ictcf.imaging.dicom_series import iter_hu_slices

    geometry = plan.geometry
    direction = np.asarray(geometry.direction, dtype=np.float64)
    normal = direction[2]
    n_slices = len(plan.frames)
    draft = _SeriesDraft(
        patient=patient_row,
        source_kind=SourceKind.DICOM,
        source_sha256=source_sha256,
        series_key="",
        modality=None if plan.modality is None else str(plan.modality),
        slice_spacing_mm=_finite_or_none(geometry.spacing_mm[0]),
        row_spacing_mm=_finite_or_none(geometry.spacing_mm[1]),
        column_spacing_mm=_finite_or_none(geometry.spacing_mm[2]),
        orientation=direction.tolist(),
        origin_mm=np.asarray(geometry.origin_mm, dtype=np.float64).tolist(),
        warnings=[str(warning) for warning in plan.warnings],
    )
    if n_slices == 1:
        draft.warnings.append(
            "single-slice series: lung extraction ran on the slice alone (no 3-D context)"
        )
    if plan.burned_in_annotation is not None and str(plan.burned_in_annotation).upper() == "YES":
        draft.burned_in_text_reason = "(0028,0301) BurnedInAnnotation is YES"
    volume: npt.NDArray[np.float32] | npt.NDArray[np.int16] | None = None
    slices = progress_bar(
        iter_hu_slices(plan),
        enabled=progress,
        description=f"series {number + 1}",
        total=n_slices,
        unit="slice",
    )
    with _SliceWorkers() as workers:
        for hu_slice in slices:
            header = hu_slice.header
            # The record names the burned-in text evidence found before cleaning.
            risk = deidentifier.deidentify(header).burned_in_text_risk
            if risk and draft.burned_in_text_reason is None:
                draft.burned_in_text_reason = str(risk)
            if not draft.series_key:
                draft.series_key = _dicom_series_key(header, plan.split_index, source_sha256)
            hu = np.asarray(hu_slice.hu, dtype=np.float32)
            stored = _new_slice(
                hu_slice.index, hu.shape, hashes[Path(hu_slice.frame.path)], ImageKind.HU
            )
            stored.position_mm = float(
                np.dot(np.asarray(hu_slice.position_mm, dtype=np.float64), normal)
            )
            row_spacing, column_spacing = hu_slice.pixel_spacing_mm
            stored.row_spacing_mm = _finite_or_none(row_spacing)
            stored.column_spacing_mm = _finite_or_none(column_spacing)
            draft.slices.append(stored)
            workers.submit(_write_hu_images, store, stored, hu)
            if extract_lungs:
                if volume is None:
                    dtype = np.int16 if _is_int16_hu(hu) else np.float32
                    volume = np.empty((n_slices, *hu.shape), dtype=dtype)
                if hu.shape != volume.shape[1:]:
                    raise InputError(
                        f"Slice {hu_slice.index} of series {number + 1} has shape {hu.shape}, "
                        f"the series' first slice {volume.shape[1:]}. Split the series or "
                        "re-export it."
                    )
                if volume.dtype == np.int16 and not _is_int16_hu(hu):
                    volume = volume.astype(np.float32)
                volume[hu_slice.index] = hu
        if extract_lungs and volume is not None:
            _extract_lungs_hu(store, workers, draft, volume, geometry.spacing_mm)
    return draft


def _is_int16_hu(hu: npt.NDArray[np.float32]) -> bool:
    """Check that a slice's HU are integers within int16, so int16 stores them exactly.

    The volume kept for 3-D lung segmentation is int16 then, half the memory of float32.
    """
    if hu.size == 0 or float(hu.min()) < INT16_MIN or float(hu.max()) > INT16_MAX:
        return False
    return bool(np.array_equal(hu, np.rint(hu)))


def _dicom_series_key(header: Any, split_index: int, source_sha256: str) -> str:
    uid = str(header.get("SeriesInstanceUID", "") or "")
    if not uid:
        return f"dicom:{source_sha256[:32]}"
    return uid if split_index == 0 else f"{uid}.split{split_index}"


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _extract_lungs_hu(
    store: SliceStore,
    workers: _SliceWorkers,
    draft: _SeriesDraft,
    volume: npt.NDArray[np.float32] | npt.NDArray[np.int16],
    spacing_mm: Any,
) -> None:
    from ictcf.imaging.lung import extract_lung_hu_slice, segment_lungs_hu

    spacing = None
    if spacing_mm is not None and all(
        value is not None and np.isfinite(float(value)) for value in spacing_mm
    ):
        spacing = tuple(float(value) for value in spacing_mm)
    mask = segment_lungs_hu(volume, spacing_mm=spacing)
    for stored in draft.slices:
        pixel_spacing = None
        if stored.row_spacing_mm is not None and stored.column_spacing_mm is not None:
            pixel_spacing = (stored.row_spacing_mm, stored.column_spacing_mm)
        workers.submit(
            _extract_hu_slice,
            extract_lung_hu_slice,
            store,
            stored,
            volume[stored.index],
            mask[stored.index],
            pixel_spacing,
        )
    workers.drain()


def _extract_hu_slice(
    extract: Callable[..., Any],
    store: SliceStore,
    stored: _StoredSlice,
    hu: npt.NDArray[np.float32] | npt.NDArray[np.int16],
    mask: npt.NDArray[np.bool_],
    pixel_spacing: tuple[float, float] | None,
) -> None:
    _record_extraction(store, stored, extract(hu, mask, pixel_spacing_mm=pixel_spacing))


# ---------------------------------------------------------------------------------------------
# JPEG / PNG series


def import_jpeg_series(
    factory: sessionmaker[Session],
    path: Path | str,
    *,
    patient: str | int,
    store: SliceStore | Path | str | None = None,
    create_patient: bool = False,
    extract_lungs: bool = True,
    archive_limits: Any | None = None,
    workdir: Path | None = None,
    progress: bool = False,
) -> CTImportReport:
    """Import a series of 8-bit JPEG or PNG slices (one patient, one series).

    The files are ordered by the numbers in their names (``IMG-0001-00088.jpg``), read with
    the package's single grey conversion, and lung extraction uses the 8-bit path. Parameters
    and errors are those of :func:`import_dicom`; files that are not JPEG or PNG are excluded
    and reported.
    """
    from ictcf.imaging.raster import order_slice_files

    started = time.perf_counter()
    slice_store = store_for(factory, store)
    report = CTImportReport(kind=SourceKind.JPEG.value, lung_extraction=extract_lungs)
    report.store_root = str(slice_store.root)
    names = UploadFileNames(Path(path))
    with (
        names_kept_out(names),
        tempfile.TemporaryDirectory(prefix="ictcf-import-", dir=workdir) as temp,
    ):
        files = _collect(Path(path), Path(temp), archive_limits)
        report.n_files = len(files)
        hashes = _file_hashes(files)
        names.add_files(files, hashes)
        rasters = [file for file in files if _is_raster(file)]
        for file in files:
            if not _is_raster(file):
                report.excluded_files.append(
                    _excluded(files, hashes, file, "not a JPEG or PNG file")
                )
        if not rasters:
            raise InputError(
                f"No JPEG or PNG slice was found among {len(files)} files. Nothing was imported.",
                path=Path(path),
            )
        ordered = order_slice_files(rasters)
        with (
            _remove_new_blobs_on_failure(factory, slice_store),
            _conflicts_as_errors(),
            session_scope(factory) as session,
        ):
            patient_row = resolve_patient(session, patient, create=create_patient)
            recorder = _ImportRunRecorder(
                session, SourceKind.JPEG.value, len(files), combined_sha256(list(hashes.values()))
            )
            source_sha256 = combined_sha256([hashes[file] for file in ordered])
            existing = _existing_series(session, source_sha256, patient_row)
            if existing is not None:
                report.series.append(_already_imported_report(existing))
            else:
                draft = _SeriesDraft(
                    patient=patient_row,
                    source_kind=SourceKind.JPEG,
                    source_sha256=source_sha256,
                    series_key=f"jpeg:{source_sha256[:32]}",
                    burned_in_text_reason=RASTER_BURNED_IN_REASON,
                )
                _read_raster_slices(
                    slice_store,
                    draft,
                    [(file, None) for file in ordered],
                    hashes,
                    extract_lungs=extract_lungs,
                    progress=progress,
                )
                report.series.append(_write_series(session, draft, recorder))
            report.elapsed_s = time.perf_counter() - started
            report.reader_warnings = names.warning_counts()
            _finish(session, report, recorder, {patient_row.id})
    return report


def _is_raster(path: Path) -> bool:
    return path.suffix.lower() in RASTER_SUFFIXES


def _read_raster_slices(
    store: SliceStore,
    draft: _SeriesDraft,
    files: Sequence[tuple[Path, SliceLabel | None]],
    hashes: dict[Path, str],
    *,
    extract_lungs: bool,
    progress: bool,
    label_source: str | None = None,
) -> None:
    from ictcf.imaging.raster import load_grey_slice

    lung_module: Any = None
    if extract_lungs:
        from ictcf.imaging import lung as lung_module
    entries = progress_bar(
        files,
        enabled=progress,
        description=f"patient {draft.patient.id}",
        total=len(files),
        unit="slice",
    )
    with _SliceWorkers() as workers:
        for index, (file, label) in enumerate(entries):
            grey = np.asarray(load_grey_slice(file), dtype=np.uint8)
            stored = _new_slice(index, grey.shape, hashes[file], ImageKind.GREY)
            if label is not None:
                stored.label = label
                stored.label_source = label_source
            draft.slices.append(stored)
            workers.submit(_write_grey_images, store, stored, grey)
            if lung_module is not None:
                workers.submit(_extract_grey_slice, lung_module, store, stored, grey)


def _extract_grey_slice(
    lung_module: Any, store: SliceStore, stored: _StoredSlice, grey: npt.NDArray[np.uint8]
) -> None:
    _record_extraction(store, stored, lung_module.extract_lung_uint8_slice(grey))


# ---------------------------------------------------------------------------------------------
# NIfTI


def import_nifti(
    factory: sessionmaker[Session],
    path: Path | str,
    *,
    patient: str | int,
    store: SliceStore | Path | str | None = None,
    create_patient: bool = False,
    extract_lungs: bool = True,
    archive_limits: Any | None = None,
    workdir: Path | None = None,
    progress: bool = False,
) -> CTImportReport:
    """Import NIfTI CT volumes in Hounsfield units for one patient (one series per file).

    A single file that is not a CT volume in HU raises ``InputError``. In a folder or zip,
    such files are excluded with the reason and the others imported. Only the voxel arrays and
    geometry are kept: NIfTI header text fields (``descrip``, ``aux_file``) are never stored.
    Other parameters and errors are those of :func:`import_dicom`.
    """
    from ictcf.imaging.nifti import read_nifti_volume

    started = time.perf_counter()
    slice_store = store_for(factory, store)
    report = CTImportReport(kind=SourceKind.NIFTI.value, lung_extraction=extract_lungs)
    report.store_root = str(slice_store.root)
    single_file = Path(path).is_file() and _is_nifti(Path(path))
    names = UploadFileNames(Path(path))
    with (
        names_kept_out(names),
        tempfile.TemporaryDirectory(prefix="ictcf-import-", dir=workdir) as temp,
    ):
        files = _collect(Path(path), Path(temp), archive_limits)
        report.n_files = len(files)
        hashes = _file_hashes(files)
        names.add_files(files, hashes)
        volumes = [file for file in files if _is_nifti(file)]
        for file in files:
            if not _is_nifti(file):
                report.excluded_files.append(_excluded(files, hashes, file, "not a NIfTI file"))
        with (
            _remove_new_blobs_on_failure(factory, slice_store),
            _conflicts_as_errors(),
            session_scope(factory) as session,
        ):
            patient_row = resolve_patient(session, patient, create=create_patient)
            recorder = _ImportRunRecorder(
                session, SourceKind.NIFTI.value, len(files), combined_sha256(list(hashes.values()))
            )
            for number, file in enumerate(volumes):
                source_sha256 = combined_sha256([hashes[file]])
                existing = _existing_series(session, source_sha256, patient_row)
                if existing is not None:
                    report.series.append(_already_imported_report(existing))
                    continue
                try:
                    volume = read_nifti_volume(file)
                except InputError as err:
                    if single_file:
                        raise
                    report.excluded_files.append(_excluded(files, hashes, file, err.reason))
                    logger.info(
                        "patient %d: file %d excluded: %s",
                        patient_row.id,
                        files.index(file),
                        err.reason,
                    )
                    continue
                draft = _nifti_draft(
                    slice_store, volume, patient_row, source_sha256, number, progress
                )
                if extract_lungs:
                    with _SliceWorkers() as workers:
                        _extract_lungs_hu(
                            slice_store,
                            workers,
                            draft,
                            np.asarray(volume.hu, dtype=np.float32),
                            volume.geometry.spacing_mm,
                        )
                report.series.append(_write_series(session, draft, recorder))
            if not report.series:
                raise InputError(
                    f"No NIfTI CT volume was imported from {len(files)} files "
                    f"({_reason_counts(report.excluded_files)}).",
                    path=Path(path),
                )
            report.elapsed_s = time.perf_counter() - started
            report.reader_warnings = names.warning_counts()
            _finish(session, report, recorder, {patient_row.id})
    return report


def _is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in NIFTI_SUFFIXES)


def _nifti_draft(
    store: SliceStore,
    volume: Any,
    patient_row: Patient,
    source_sha256: str,
    number: int,
    progress: bool,
) -> _SeriesDraft:
    geometry = volume.geometry
    direction = np.asarray(geometry.direction, dtype=np.float64)
    origin = np.asarray(geometry.origin_mm, dtype=np.float64)
    draft = _SeriesDraft(
        patient=patient_row,
        source_kind=SourceKind.NIFTI,
        source_sha256=source_sha256,
        series_key=f"nifti:{source_sha256[:32]}",
        slice_spacing_mm=_finite_or_none(geometry.spacing_mm[0]),
        row_spacing_mm=_finite_or_none(geometry.spacing_mm[1]),
        column_spacing_mm=_finite_or_none(geometry.spacing_mm[2]),
        orientation=direction.tolist(),
        origin_mm=origin.tolist(),
        warnings=[str(warning) for warning in volume.warnings],
    )
    hu_volume = np.asarray(volume.hu, dtype=np.float32)
    base_position = float(np.dot(origin, direction[2]))
    indices = progress_bar(
        range(hu_volume.shape[0]),
        enabled=progress,
        description=f"volume {number + 1}",
        total=hu_volume.shape[0],
        unit="slice",
    )
    with _SliceWorkers() as workers:
        for index in indices:
            stored = _new_slice(index, hu_volume.shape[1:], source_sha256, ImageKind.HU)
            stored.position_mm = base_position + float(geometry.slice_positions_mm[index])
            stored.row_spacing_mm = draft.row_spacing_mm
            stored.column_spacing_mm = draft.column_spacing_mm
            draft.slices.append(stored)
            workers.submit(_write_hu_images, store, stored, hu_volume[index])
    return draft


# ---------------------------------------------------------------------------------------------
# Labelled slices (HUST-19 download layout)


def import_labelled_slices(
    factory: sessionmaker[Session],
    path: Path | str,
    *,
    patient: str | int | None = None,
    store: SliceStore | Path | str | None = None,
    create_patients: bool = False,
    extract_lungs: bool = True,
    label_source: str = LABEL_SOURCE_DOWNLOAD,
    archive_limits: Any | None = None,
    workdir: Path | None = None,
    progress: bool = False,
) -> CTImportReport:
    """Import labelled JPEG/PNG slices in the ``NiCT/``, ``pCT/``, ``nCT/`` folder layout.

    Each label folder contains slice files directly, or per-patient subfolders named by the
    patient key (``Patient 17``, ``17``, ``id:5`` or an image-only key). Files directly in a
    label folder belong to ``patient``. All slices of one patient become one series of kind
    ``labelled_slices`` with the labels stored (``label_source`` records where they came
    from), ordered by label folder and then by the numbers in the file names.

    Parameters
    ----------
    patient : str or int, optional
        Patient of files that are not in a per-patient subfolder.
    create_patients : bool, default False
        Create image-only patients for subfolder keys (and ``patient``) that match none.

    Other parameters and errors are those of :func:`import_dicom`.

    Raises
    ------
    InputError
        If no label folder is found, or files lie directly in a label folder and no
        ``patient`` is given.
    """
    from ictcf.imaging.raster import order_slice_files

    started = time.perf_counter()
    slice_store = store_for(factory, store)
    report = CTImportReport(kind=SourceKind.LABELLED_SLICES.value, lung_extraction=extract_lungs)
    report.store_root = str(slice_store.root)
    names = UploadFileNames(Path(path))
    with (
        names_kept_out(names),
        tempfile.TemporaryDirectory(prefix="ictcf-import-", dir=workdir) as temp,
    ):
        root = Path(path)
        files = _collect(root, Path(temp), archive_limits)
        report.n_files = len(files)
        hashes = _file_hashes(files)
        names.add_files(files, hashes)
        groups: dict[str | None, dict[SliceLabel, list[Path]]] = {}
        for file in files:
            placement = _label_placement(_relative_to_input(file, root, Path(temp)))
            if placement is None:
                report.excluded_files.append(
                    _excluded(files, hashes, file, "not inside a NiCT, pCT or nCT folder")
                )
                continue
            if not _is_raster(file):
                report.excluded_files.append(
                    _excluded(files, hashes, file, "not a JPEG or PNG file")
                )
                continue
            label, patient_folder = placement
            groups.setdefault(patient_folder, {}).setdefault(label, []).append(file)
        if not groups:
            raise InputError(
                "No slices were found in NiCT/, pCT/ or nCT/ folders. Give the folder (or zip) "
                "that contains the label folders.",
                path=root,
            )
        if None in groups and patient is None:
            n_loose = sum(len(items) for items in groups[None].values())
            raise InputError(
                f"{n_loose} slices lie directly in the label folders, so their patient is "
                "unknown. Pass --patient KEY, or put them in per-patient subfolders "
                "(pCT/Patient 17/...).",
                path=root,
            )

        with (
            _remove_new_blobs_on_failure(factory, slice_store),
            _conflicts_as_errors(),
            session_scope(factory) as session,
        ):
            recorder = _ImportRunRecorder(
                session,
                SourceKind.LABELLED_SLICES.value,
                len(files),
                combined_sha256(list(hashes.values())),
            )
            patient_ids: set[int] = set()
            for folder_key in sorted(groups, key=lambda key: (key is not None, key or "")):
                key: str | int | None = patient if folder_key is None else folder_key
                if key is None:  # unreachable: loose files without ``patient`` raised above
                    continue
                patient_row = resolve_patient(
                    session, key, create=create_patients, create_option="--create-patients"
                )
                patient_ids.add(patient_row.id)
                entries: list[tuple[Path, SliceLabel | None]] = []
                for label in SliceLabel:
                    entries.extend(
                        (file, label)
                        for file in order_slice_files(groups[folder_key].get(label, []))
                    )
                source_sha256 = combined_sha256(
                    [f"{hashes[file]}:{label.value if label else ''}" for file, label in entries]
                )
                existing = _existing_series(session, source_sha256, patient_row)
                if existing is not None:
                    report.series.append(_already_imported_report(existing))
                    continue
                draft = _SeriesDraft(
                    patient=patient_row,
                    source_kind=SourceKind.LABELLED_SLICES,
                    source_sha256=source_sha256,
                    series_key=f"labelled:{source_sha256[:32]}",
                    burned_in_text_reason=RASTER_BURNED_IN_REASON,
                )
                draft.warnings.extend(_conflicting_labels(entries, hashes))
                _read_raster_slices(
                    slice_store,
                    draft,
                    entries,
                    hashes,
                    extract_lungs=extract_lungs,
                    progress=progress,
                    label_source=label_source,
                )
                report.series.append(_write_series(session, draft, recorder))
            report.elapsed_s = time.perf_counter() - started
            report.reader_warnings = names.warning_counts()
            _finish(session, report, recorder, patient_ids)
    return report


def _relative_to_input(file: Path, root: Path, workdir: Path) -> Path:
    """Return ``file`` relative to the input folder or the extraction folder.

    Only folders below the input count, so a folder named ``pct`` above it is never a label.
    """
    for base in (root, workdir):
        try:
            return file.resolve().relative_to(base.resolve())
        except ValueError:
            continue
    return Path(file.name)


def _label_placement(file: Path) -> tuple[SliceLabel, str | None] | None:
    """Return the label and per-patient folder name of a file, from its path's folders."""
    parts = file.parts[:-1]
    for position, part in enumerate(parts):
        label = LABEL_FOLDERS.get(part.lower())
        if label is None:
            continue
        below = parts[position + 1 :]
        if not below:
            return (label, None)
        return (label, below[0])
    return None


def _conflicting_labels(
    entries: Sequence[tuple[Path, SliceLabel | None]], hashes: dict[Path, str]
) -> list[str]:
    labels_of: dict[str, set[str]] = {}
    for file, label in entries:
        labels_of.setdefault(hashes[file], set()).add(label.value if label else "")
    conflicts = [labels for labels in labels_of.values() if len(labels) > 1]
    if not conflicts:
        return []
    return [
        f"{len(conflicts)} identical images appear under different labels "
        f"({', '.join(sorted(conflicts[0]))}); each copy is stored with its own label"
    ]
