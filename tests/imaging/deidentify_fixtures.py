"""Small DICOM datasets for the de-identification tests, built with pydicom.

Every identifying value is fictitious and distinctive, so a test can search the written
bytes for it.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

SECRET = bytes(range(32))
PSEUDONYM = "P000042"

# Values planted in every generated CT header; none may survive de-identification.
IDENTIFYING_TEXT = (
    "DOE^JOHN",
    "12345678",
    "19600412",
    "20200526",
    "ACC998877",
    "Wuhan Union Hospital",
    "HOUSE^GREGORY",
    "CHEST CT OF JOHN DOE",
    "WUHAN_CT1",
    "SCANNER-7781",
)


def make_ct(
    *,
    patient_name: str = "DOE^JOHN",
    patient_id: str = "12345678",
    character_set: str | None = "ISO_IR 100",
    rows: int = 4,
    columns: int = 4,
) -> Dataset:
    """Return a CT Image Storage dataset with File Meta Information and identifying values."""
    dataset = Dataset()
    if character_set is not None:
        dataset.SpecificCharacterSet = character_set
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.FrameOfReferenceUID = generate_uid()
    dataset.PatientName = patient_name
    dataset.PatientID = patient_id
    dataset.PatientBirthDate = "19600412"
    dataset.PatientSex = "M"
    dataset.PatientAge = "059Y"
    dataset.StudyDate = "20200526"
    dataset.StudyTime = "101530.123"
    dataset.SeriesDate = "20200526"
    dataset.SeriesTime = "102000"
    dataset.AcquisitionDateTime = "20200526102010.5"
    dataset.ContentDate = "20200526"
    dataset.ContentTime = "102011"
    dataset.AccessionNumber = "ACC998877"
    dataset.StudyID = "4711"
    dataset.InstitutionName = "Wuhan Union Hospital"
    dataset.ReferringPhysicianName = "HOUSE^GREGORY"
    dataset.StudyDescription = "CHEST CT OF JOHN DOE"
    dataset.StationName = "WUHAN_CT1"
    dataset.DeviceSerialNumber = "SCANNER-7781"
    dataset.Modality = "CT"
    dataset.Manufacturer = "SIEMENS"
    dataset.ConvolutionKernel = "B70f"
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    dataset.KVP = "120"
    dataset.SliceThickness = "2"
    dataset.PixelSpacing = ["0.7", "0.7"]
    dataset.ImagePositionPatient = ["0", "0", "0"]
    dataset.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    dataset.Rows = rows
    dataset.Columns = columns
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    dataset.RescaleIntercept = "-1024"
    dataset.RescaleSlope = "1"
    pixels = np.arange(rows * columns, dtype=np.int16).reshape(rows, columns)
    dataset.PixelData = pixels.tobytes()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "WUHAN_CT1"
    dataset.file_meta = meta
    return dataset


def item(**attributes: object) -> Dataset:
    """Return a sequence item with the given keyword attributes."""
    dataset = Dataset()
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset


def sequence(*items: Dataset) -> Sequence:
    return Sequence(list(items))


def to_bytes(dataset: Dataset) -> bytes:
    """Write a dataset as a DICOM file into memory."""
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def reread(dataset: Dataset) -> Dataset:
    """Write a dataset into memory and read it back."""
    return dcmread(BytesIO(to_bytes(dataset)))


def assert_absent(data: bytes, values: tuple[str, ...] | list[str]) -> None:
    """Assert that no value occurs in the written bytes, in ASCII/Latin-1 or UTF-8."""
    for value in values:
        for encoding in ("latin-1", "utf-8"):
            encoded = value.encode(encoding, errors="ignore")
            assert encoded not in data, f"{value!r} ({encoding}) survived de-identification"
