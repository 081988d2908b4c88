"""Build small synthetic DICOM CT files for tests (no real patient data).

Every dataset here is made from scratch with pydicom: UIDs come from ``pydicom.uid.generate_uid``
and names are fictitious. Other test modules may import these helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def ct_dataset(
    stored: np.ndarray,
    *,
    position: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: Sequence[float] = (0.7, 0.7),
    slope: float | None = 1.0,
    intercept: float | None = -1024.0,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    instance_number: int | None = 1,
    photometric: str = "MONOCHROME2",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    modality: str = "CT",
    **extra: Any,
) -> FileDataset:
    """Return a single-frame CT Image Storage dataset with native pixel data.

    ``stored`` is int16 (signed, PixelRepresentation 1) or uint16 (unsigned).
    """
    stored = np.asarray(stored)
    signed = stored.dtype.kind == "i"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset("synthetic.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = series_uid or generate_uid()
    dataset.FrameOfReferenceUID = generate_uid()
    dataset.PatientName = "TEST^SYNTHETIC"
    dataset.PatientID = "SYN-0001"
    dataset.Modality = modality
    dataset.ImageType = list(image_type)
    if instance_number is not None:
        dataset.InstanceNumber = instance_number
    dataset.ImagePositionPatient = [float(v) for v in position]
    dataset.ImageOrientationPatient = [float(v) for v in orientation]
    dataset.PixelSpacing = [float(v) for v in pixel_spacing]
    dataset.SliceThickness = 1.0
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.Rows, dataset.Columns = (int(n) for n in stored.shape)
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        dataset.RescaleSlope = slope
    if intercept is not None:
        dataset.RescaleIntercept = intercept
    for keyword, value in extra.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = stored.astype("<i2" if signed else "<u2").tobytes()
    return dataset


def write(dataset: Dataset, path: Path) -> Path:
    """Save ``dataset`` to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


def write_axial_series(
    folder: Path,
    volume: np.ndarray,
    z_positions: Sequence[float],
    *,
    names: Sequence[str] | None = None,
    series_uid: str | None = None,
    **kwargs: Any,
) -> list[Path]:
    """Write one file per slice of ``volume`` (shape (slices, rows, columns)) at the given z."""
    series_uid = series_uid or generate_uid()
    position = kwargs.pop("position_xy", (0.0, 0.0))
    paths = []
    for index, (image, z) in enumerate(zip(volume, z_positions, strict=True)):
        name = names[index] if names is not None else f"slice{index:03d}.dcm"
        dataset = ct_dataset(
            image,
            position=(position[0], position[1], z),
            series_uid=series_uid,
            instance_number=index + 1,
            **kwargs,
        )
        paths.append(write(dataset, folder / name))
    return paths


def enhanced_ct(
    frames: np.ndarray,
    *,
    positions: Sequence[Sequence[float]] | None,
    orientation: Sequence[float] | None = AXIAL,
    pixel_spacing: Sequence[float] = (0.7, 0.7),
    slice_thickness: float = 2.0,
    per_frame_rescale: Sequence[tuple[float, float]] | None = None,
    shared_rescale: tuple[float, float] | None = None,
) -> FileDataset:
    """Return an Enhanced CT Image Storage dataset whose geometry lives in functional groups."""
    frames = np.asarray(frames)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset("enhanced.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    dataset.SOPClassUID = EnhancedCTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "CT"
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    dataset.NumberOfFrames = int(frames.shape[0])
    dataset.Rows, dataset.Columns = int(frames.shape[1]), int(frames.shape[2])
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [float(v) for v in pixel_spacing]
    measures.SliceThickness = slice_thickness
    shared.PixelMeasuresSequence = DicomSequence([measures])
    if orientation is not None:
        plane = Dataset()
        plane.ImageOrientationPatient = [float(v) for v in orientation]
        shared.PlaneOrientationSequence = DicomSequence([plane])
    if shared_rescale is not None:
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = shared_rescale
        transform.RescaleType = "HU"
        shared.PixelValueTransformationSequence = DicomSequence([transform])
    dataset.SharedFunctionalGroupsSequence = DicomSequence([shared])

    items = []
    for index in range(frames.shape[0]):
        item = Dataset()
        if positions is not None:
            position = Dataset()
            position.ImagePositionPatient = [float(v) for v in positions[index]]
            item.PlanePositionSequence = DicomSequence([position])
        if per_frame_rescale is not None:
            transform = Dataset()
            transform.RescaleSlope, transform.RescaleIntercept = per_frame_rescale[index]
            transform.RescaleType = "HU"
            item.PixelValueTransformationSequence = DicomSequence([transform])
        items.append(item)
    dataset.PerFrameFunctionalGroupsSequence = DicomSequence(items)
    dataset.PixelData = frames.astype("<u2").tobytes()
    return dataset


def encode_jpeg_lossless(image: np.ndarray) -> bytes:
    """Encode a 16-bit greyscale image as a JPEG Lossless SV1 codestream (process 14, predictor 1).

    A plain reference encoder (one Huffman table giving every difference category a 5-bit
    code) so that tests can build 1.2.840.10008.1.2.4.70 pixel data without python-gdcm.
    Signed images are encoded as their 16-bit two's-complement pattern.
    """
    samples = np.asarray(image).astype(np.int64) & 0xFFFF
    rows, columns = samples.shape
    precision = 16
    bits: list[tuple[int, int]] = []  # (value, length)

    def put(value: int, length: int) -> None:
        bits.append((value & ((1 << length) - 1), length))

    for r in range(rows):
        for c in range(columns):
            if r == 0 and c == 0:
                predicted = 1 << (precision - 1)
            elif r == 0:
                predicted = int(samples[r, c - 1])
            elif c == 0:
                predicted = int(samples[r - 1, c])
            else:
                predicted = int(samples[r, c - 1])
            difference = (int(samples[r, c]) - predicted) & 0xFFFF
            if difference > 32768:
                difference -= 65536
            category = 0 if difference == 0 else abs(difference).bit_length()
            put(category, 5)
            if 0 < category < 16:
                put(difference if difference > 0 else difference + (1 << category) - 1, category)

    stream = bytearray()
    accumulator = 0
    count = 0
    for value, length in bits:
        accumulator = (accumulator << length) | value
        count += length
        while count >= 8:
            count -= 8
            byte = (accumulator >> count) & 0xFF
            stream.append(byte)
            if byte == 0xFF:
                stream.append(0x00)
    if count:
        byte = ((accumulator << (8 - count)) | ((1 << (8 - count)) - 1)) & 0xFF
        stream.append(byte)
        if byte == 0xFF:
            stream.append(0x00)

    code_lengths = [0] * 16
    code_lengths[4] = 17  # 17 categories (0-16), all with 5-bit codes
    huffman = bytes([0x00, *code_lengths, *range(17)])
    frame_header = bytes([precision]) + rows.to_bytes(2, "big") + columns.to_bytes(2, "big")
    frame_header += bytes([1, 1, 0x11, 0])
    scan_header = bytes([1, 1, 0x00, 1, 0, 0])
    out = bytearray(b"\xff\xd8")
    for marker, payload in ((0xC4, huffman), (0xC3, frame_header), (0xDA, scan_header)):
        out += bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload
    out += stream + b"\xff\xd9"
    return bytes(out)
