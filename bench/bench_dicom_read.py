"""DICOM decoding throughput: a bare pydicom loop against plan_dicom_series + iter_hu_slices.

Two inputs: 200 generated uncompressed 512x512 int16 slices (written to a temporary folder)
and the 148-slice JPEG Lossless series ``covid-ct-md/P001`` of the shared data. The bare loop
reads each file with ``pydicom.dcmread``, decodes ``pixel_array`` and applies
``apply_modality_lut``; the readers' figure includes the header scan of the plan.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ictcf.imaging.dicom_series import iter_hu_slices, plan_dicom_series

#: Number of generated uncompressed slices.
GENERATED_SLICES = 200
#: Matrix size of the generated slices (pixels per side).
GENERATED_SIZE = 512
#: Timed repetitions per loop; the best one is reported (the first run warms the file cache).
REPEATS = 5
RNG_SEED = 7


def _generate(folder: Path) -> list[Path]:
    rng = np.random.default_rng(RNG_SEED)
    series_uid = generate_uid()
    paths = []
    for index in range(GENERATED_SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset = FileDataset("bench.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
        dataset.SOPClassUID = CTImageStorage
        dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        dataset.SeriesInstanceUID = series_uid
        dataset.Modality = "CT"
        dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        dataset.ImagePositionPatient = [0.0, 0.0, float(index)]
        dataset.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        dataset.PixelSpacing = [0.7, 0.7]
        dataset.Rows = dataset.Columns = GENERATED_SIZE
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = "MONOCHROME2"
        dataset.BitsAllocated = dataset.BitsStored = 16
        dataset.HighBit = 15
        dataset.PixelRepresentation = 1
        dataset.RescaleSlope = 1
        dataset.RescaleIntercept = -1024
        pixels = rng.integers(0, 2000, size=(GENERATED_SIZE, GENERATED_SIZE), dtype=np.int16)
        dataset.PixelData = pixels.tobytes()
        path = folder / f"{index:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _bare_loop(paths: list[Path]) -> float:
    total = 0.0
    for path in paths:
        dataset = pydicom.dcmread(path)
        hu = apply_modality_lut(dataset.pixel_array, dataset)
        total += float(hu[0, 0])
    return total


def _readers(paths: list[Path]) -> float:
    total = 0.0
    scan = plan_dicom_series(paths)
    for plan in scan.series:
        for item in iter_hu_slices(plan):
            total += float(item.hu[0, 0])
    return total


def _elapsed(function: Any, paths: list[Path]) -> float:
    start = time.perf_counter()
    function(paths)
    return time.perf_counter() - start


def _measure(name: str, paths: list[Path]) -> dict[str, Any]:
    """Time both loops alternately and keep the best run of each (the machine may be shared)."""
    bare = readers = plan = float("inf")
    for _ in range(REPEATS):
        bare = min(bare, _elapsed(_bare_loop, paths))
        readers = min(readers, _elapsed(_readers, paths))
        plan = min(plan, _elapsed(plan_dicom_series, paths))
    return {
        "input": name,
        "slices": len(paths),
        "bare_pydicom_slices_per_s": round(len(paths) / bare, 1),
        "iter_hu_slices_slices_per_s": round(len(paths) / readers, 1),
        "plan_share_of_readers_time": round(plan / readers, 3),
        "ratio": round(bare / readers, 3),
    }


def run(data_dir: Path) -> list[dict[str, Any]]:
    """Return one record per input with slices/s of both loops and their ratio."""
    records = []
    with tempfile.TemporaryDirectory() as folder:
        records.append(_measure("uncompressed 512x512 int16 (generated)", _generate(Path(folder))))
    covid = sorted((data_dir / "covid-ct-md" / "P001").glob("*.dcm"))
    if covid:
        records.append(_measure("JPEG Lossless 512x512 (covid-ct-md P001)", covid))
    return records
