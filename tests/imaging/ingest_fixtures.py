"""Small generated inputs for the import tests: CT phantoms as DICOM, JPEG/PNG and NIfTI files.

The phantom is an axial chest cartoon in Hounsfield units: air (-1000 HU) outside a body
ellipse (0 HU) holding two lung ellipses (-850 HU). Nothing here comes from a real patient.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db.enums import (
    MORBIDITY_TYPE_OF_FORM,
    CTEvidence,
    MorbidityForm,
    Outcome,
    PCRResult,
    Sex,
)
from ictcf.db.models import Base, Patient

#: HU of air, soft tissue and aerated lung in the phantom.
AIR_HU = -1000
BODY_HU = 0
LUNG_HU = -850
#: Stored value = HU + 1024, the usual CT rescale intercept of -1024.
RESCALE_INTERCEPT = -1024.0


def phantom_slice(
    rows: int = 96, columns: int = 96, *, lung_scale: float = 1.0
) -> npt.NDArray[np.int16]:
    """Return one axial phantom slice in HU, shape (rows, columns)."""
    row_grid, column_grid = np.mgrid[0:rows, 0:columns].astype(np.float64)
    centre_row, centre_column = rows / 2, columns / 2
    body = ((row_grid - centre_row) / (0.38 * rows)) ** 2 + (
        (column_grid - centre_column) / (0.45 * columns)
    ) ** 2 <= 1
    hu = np.full((rows, columns), AIR_HU, dtype=np.int16)
    hu[body] = BODY_HU
    if lung_scale > 0:
        for side in (-1, 1):
            lung = ((row_grid - centre_row) / (0.25 * rows * lung_scale)) ** 2 + (
                (column_grid - (centre_column + side * 0.2 * columns))
                / (0.14 * columns * lung_scale)
            ) ** 2 <= 1
            hu[lung] = LUNG_HU
    return hu


def phantom_volume(n_slices: int = 8, rows: int = 96, columns: int = 96) -> npt.NDArray[np.int16]:
    """Return a phantom volume (n_slices, rows, columns) whose lungs grow towards the middle."""
    scales = np.sin(np.linspace(0.15, np.pi - 0.15, n_slices))
    return np.stack([phantom_slice(rows, columns, lung_scale=float(scale)) for scale in scales])


def write_ct_slice(
    path: Path,
    hu: npt.NDArray[np.integer],
    *,
    series_uid: str,
    study_uid: str,
    z_mm: float,
    instance_number: int,
    patient_name: str = "DOE^JOHN",
    patient_id: str = "12345678",
    pixel_spacing_mm: float = 3.6,
    slice_thickness_mm: float = 5.0,
    sop_instance_uid: str | None = None,
) -> Path:
    """Write one uncompressed CT Image Storage file; returns ``path``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = study_uid
    dataset.SeriesInstanceUID = series_uid
    dataset.FrameOfReferenceUID = generate_uid()
    dataset.Modality = "CT"
    dataset.PatientName = patient_name
    dataset.PatientID = patient_id
    dataset.PatientBirthDate = "19500101"
    dataset.StudyDate = "20200215"
    dataset.SeriesDate = "20200215"
    dataset.StudyTime = "101500"
    dataset.InstitutionName = "Example Hospital"
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    dataset.InstanceNumber = instance_number
    dataset.ImagePositionPatient = [0.0, 0.0, float(z_mm)]
    dataset.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    dataset.PixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]
    dataset.SliceThickness = slice_thickness_mm
    dataset.Rows, dataset.Columns = int(hu.shape[0]), int(hu.shape[1])
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    dataset.RescaleIntercept = RESCALE_INTERCEPT
    dataset.RescaleSlope = 1.0
    dataset.RescaleType = "HU"
    stored = (np.asarray(hu, dtype=np.int32) - int(RESCALE_INTERCEPT)).astype(np.int16)
    dataset.PixelData = stored.tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


def write_ct_series(
    folder: Path,
    volume: npt.NDArray[np.integer],
    *,
    spacing_mm: float = 5.0,
    patient_names: Sequence[str] | None = None,
    patient_id: str = "12345678",
    series_uid: str | None = None,
    prefix: str = "slice",
) -> list[Path]:
    """Write a volume (slices, rows, columns) as one DICOM series; file names do not follow z."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    paths = []
    n_slices = volume.shape[0]
    for index in range(n_slices):
        # Reverse-and-rotate the file numbering so that name order differs from z order.
        file_number = (n_slices - index + 3) % n_slices
        name = patient_names[index] if patient_names else "DOE^JOHN"
        paths.append(
            write_ct_slice(
                folder / f"{prefix}{file_number:03d}.dcm",
                volume[index],
                series_uid=series_uid,
                study_uid=study_uid,
                z_mm=index * spacing_mm,
                instance_number=index + 1,
                patient_name=name,
                patient_id=patient_id,
            )
        )
    return paths


def write_grey_series(
    folder: Path, volume_hu: npt.NDArray[np.integer], *, suffix: str = ".png"
) -> list[Path]:
    """Write a phantom volume as 8-bit slices named like iCTCF downloads (``IMG-0001-00007.jpg``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, hu in enumerate(volume_hu):
        grey = np.clip((hu.astype(np.float64) + 1350) / 1500 * 255, 0, 255).astype(np.uint8)
        # Numbers 8, 9, 10, ... so that string order ("00010" < "0008") is not numeric order.
        path = folder / f"IMG-0001-{index + 8:d}{suffix}"
        Image.fromarray(grey, mode="L").save(path)
        paths.append(path)
    return paths


def add_patient(factory: sessionmaker[Session], number: int, *, cohort: str = "cohort1") -> int:
    """Insert an iCTCF-like patient ``Patient <number>`` and return its internal key."""
    form = MorbidityForm.REGULAR
    with factory() as session:
        patient = Patient(
            source_id=f"Patient {number}",
            source_number=number,
            cohort=cohort,
            sex=Sex.FEMALE,
            age=50.0,
            pcr_result=PCRResult.POSITIVE,
            pcr_result_raw="Positive",
            ct_evidence=CTEvidence.POSITIVE,
            ct_evidence_raw="Positive",
            morbidity_form=form,
            morbidity_form_raw="Regular",
            morbidity_type=MORBIDITY_TYPE_OF_FORM[form],
            outcome=Outcome.CURED,
            outcome_raw="Cured",
            ct_preview_refs=[],
            content_sha256=hashlib.sha256(str(number).encode()).hexdigest(),
        )
        session.add(patient)
        session.commit()
        return patient.id


def table_counts(factory: sessionmaker[Session]) -> dict[str, int]:
    """Return the number of rows of every table."""
    with factory() as session:
        return {
            name: len(session.execute(select(table)).all())
            for name, table in Base.metadata.tables.items()
        }


def database_text(factory: sessionmaker[Session]) -> str:
    """Return every value of every table as one string, to search for leaked text."""
    parts = []
    with factory() as session:
        for table in Base.metadata.tables.values():
            for row in session.execute(select(table)).all():
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def files_under(folder: Path) -> set[Path]:
    """Return every file below ``folder`` (empty set when it does not exist)."""
    if not folder.exists():
        return set()
    return {path for path in folder.rglob("*") if path.is_file()}
