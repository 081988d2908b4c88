"""DICOM ingestion speed against a bare pydicom loop, and peak memory of a 600-slice import.

Speed: the COVID-CT-MD series ``P001`` (148 slices, 512x512, JPEG Lossless) is read as shipped
and as an uncompressed copy written to a temporary folder. For each transfer syntax, in the
same run:

- ``bare``: ``pydicom.dcmread`` + ``pixel_array`` + ``apply_modality_lut`` per file (the
  reference);
- ``read_deidentify``: the ingestion read path (header scan and grouping, decoding to HU,
  de-identification of every header), without storage and lung extraction; the target
  ratio (at least 0.7 of ``bare``) refers to this one;
- ``import_no_lungs``: ``import_dicom(extract_lungs=False)``: the read path plus the slice
  store (compressed HU arrays, two window JPEGs per slice) and database rows;
- ``import_full``: ``import_dicom()``: the above plus 3-D lung segmentation, per-slice lung
  crops, masks and QC.

``bare`` and ``read_deidentify`` alternate :data:`RATIO_REPEATS` times; the imports run
:data:`SPEED_REPEATS` times. Each figure is the fastest run.

Memory: a 600-slice 512x512 phantom series (uncompressed) is generated in a temporary folder
and imported in full by a child process. The child's RSS high-water mark (``ru_maxrss``) is
reported (target below 1.5 GB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian

#: Slices of the generated series for the memory measurement.
MEMORY_SERIES_SLICES = 600
#: Rows and columns of the generated slices.
MEMORY_SERIES_SIZE = 512
#: Repeats of the two import measurements; the fastest is reported (least disturbed by other
#: load).
SPEED_REPEATS = 2
#: Alternating repeats of ``bare`` and ``read_deidentify``, a few seconds each. The fastest of
#: each is reported, so a burst of load on a shared machine does not set the ratio.
RATIO_REPEATS = 5
#: Ratio target of the read path against the bare loop.
TARGET_RATIO = 0.7
#: Peak memory target of the 600-slice import, bytes.
TARGET_PEAK_BYTES = 1.5e9

SECRET = b"benchmark-secret-of-32-bytes-min"


def _bare_loop(files: list[Path]) -> float:
    started = time.perf_counter()
    for path in files:
        dataset = pydicom.dcmread(path)
        hu = apply_modality_lut(dataset.pixel_array, dataset)
        float(np.asarray(hu)[0, 0])
    return time.perf_counter() - started


def _read_deidentify(files: list[Path]) -> float:
    from ictcf.imaging.deidentify import Deidentifier
    from ictcf.imaging.dicom_series import iter_hu_slices, plan_dicom_series

    started = time.perf_counter()
    scan = plan_dicom_series(files)
    deidentifier = Deidentifier(patient_pseudonym="ICTCF-1", secret=SECRET)
    for plan in scan.series:
        for hu_slice in iter_hu_slices(plan):
            deidentifier.deidentify(hu_slice.header)
    return time.perf_counter() - started


def _import(folder: Path, work: Path, *, extract_lungs: bool, tag: str) -> float:
    from ictcf.db import open_database
    from ictcf.imaging.ingest_ct import import_dicom
    from ictcf.imaging.store import SliceStore

    database = work / f"{tag}.sqlite3"
    factory = open_database(f"sqlite:///{database}")
    from ictcf.imaging.linking import create_image_only_patient

    with factory() as session:
        create_image_only_patient(session, "bench")
        session.commit()
    started = time.perf_counter()
    import_dicom(
        factory,
        folder,
        patient="bench",
        store=SliceStore(work / f"{tag}-store"),
        secret=SECRET,
        extract_lungs=extract_lungs,
    )
    return time.perf_counter() - started


def _decompressed_copy(files: list[Path], target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, path in enumerate(files):
        dataset = pydicom.dcmread(path)
        dataset.decompress()
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        copy = target / f"{index:04d}.dcm"
        dataset.save_as(copy, enforce_file_format=True)
        copies.append(copy)
    return copies


def _speed_records(data_dir: Path) -> list[dict[str, Any]]:
    series = sorted((data_dir / "covid-ct-md" / "P001").glob("*.dcm"))
    if not series:
        return [
            {"measure": "ingest_speed", "skipped": f"no DICOM files in {data_dir}/covid-ct-md/P001"}
        ]
    records = []
    with tempfile.TemporaryDirectory(prefix="ictcf-bench-") as temp:
        work = Path(temp)
        syntaxes = {
            "jpeg_lossless": series,
            "uncompressed": _decompressed_copy(series, work / "uncompressed"),
        }
        for syntax, files in syntaxes.items():
            folder = files[0].parent
            timings: dict[str, float] = {}
            for _ in range(RATIO_REPEATS):
                for name, loop in (("bare", _bare_loop), ("read_deidentify", _read_deidentify)):
                    timings[name] = min(timings.get(name, float("inf")), loop(files))
            for repeat in range(SPEED_REPEATS):
                measured = {
                    "import_no_lungs": _import(
                        folder, work, extract_lungs=False, tag=f"{syntax}-nolung-{repeat}"
                    ),
                    "import_full": _import(
                        folder, work, extract_lungs=True, tag=f"{syntax}-full-{repeat}"
                    ),
                }
                for name, seconds in measured.items():
                    timings[name] = min(timings.get(name, float("inf")), seconds)
            bare_rate = len(files) / timings["bare"]
            for name, seconds in timings.items():
                rate = len(files) / seconds
                records.append(
                    {
                        "measure": "ingest_speed",
                        "transfer_syntax": syntax,
                        "path": name,
                        "n_slices": len(files),
                        "seconds": round(seconds, 3),
                        "slices_per_s": round(rate, 1),
                        "ratio_to_bare": round(rate / bare_rate, 3),
                        "target_ratio": TARGET_RATIO if name == "read_deidentify" else None,
                    }
                )
    return records


_CHILD_SCRIPT = """
import json, resource, sys
from pathlib import Path
from ictcf.db import open_database
from ictcf.imaging.ingest_ct import import_dicom
from ictcf.imaging.linking import create_image_only_patient
from ictcf.imaging.store import SliceStore
work = Path(sys.argv[1])
factory = open_database(f"sqlite:///{work / 'memory.sqlite3'}")
with factory() as session:
    create_image_only_patient(session, "bench")
    session.commit()
report = import_dicom(factory, work / "series", patient="bench", store=SliceStore(work / "store"),
                      secret=b"benchmark-secret-of-32-bytes-min")
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_bytes": peak_kib * 1024, "n_slices": report.n_slices_stored,
                  "seconds": report.elapsed_s}))
"""


def _memory_record() -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.imaging.ingest_fixtures import phantom_slice, write_ct_slice

    with tempfile.TemporaryDirectory(prefix="ictcf-bench-memory-") as temp:
        work = Path(temp)
        (work / "series").mkdir()
        series_uid = pydicom.uid.generate_uid()
        study_uid = pydicom.uid.generate_uid()
        scales = np.sin(np.linspace(0.15, np.pi - 0.15, MEMORY_SERIES_SLICES))
        for index, scale in enumerate(scales):
            hu = phantom_slice(MEMORY_SERIES_SIZE, MEMORY_SERIES_SIZE, lung_scale=float(scale))
            write_ct_slice(
                work / "series" / f"{index:04d}.dcm",
                hu,
                series_uid=series_uid,
                study_uid=study_uid,
                z_mm=index * 1.0,
                instance_number=index + 1,
                pixel_spacing_mm=0.7,
                slice_thickness_mm=1.0,
            )
        completed = subprocess.run(
            [sys.executable, "-c", _CHILD_SCRIPT, str(work)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
    return {
        "measure": "ingest_peak_memory",
        "n_slices": result["n_slices"],
        "size": MEMORY_SERIES_SIZE,
        "peak_rss_mb": round(result["peak_bytes"] / 1e6, 1),
        "seconds": round(result["seconds"], 1),
        "target_mb": TARGET_PEAK_BYTES / 1e6,
    }


def run(data_dir: Path) -> list[dict[str, Any]]:
    """Return the speed records for both transfer syntaxes and the peak-memory record."""
    return [*_speed_records(data_dir), _memory_record()]
