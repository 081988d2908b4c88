"""Throughput of DICOM header de-identification on the real COVID-CT-MD series.

Measures ``Deidentifier.deidentify`` alone on headers read without pixel data (the way the
CT import uses it) and, separately, a whole-file round trip: read, de-identify, write to
memory. Dates are kept by the per-patient shift, the more expensive setting.
"""

from __future__ import annotations

import time
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread, dcmwrite

from ictcf.imaging.deidentify import Deidentifier

# A fixed, non-secret key: the benchmark measures speed, not secrecy.
BENCH_SECRET = bytes(range(32))


def run(data_dir: Path) -> list[dict[str, Any]]:
    """Return one record per measurement, in files per second."""
    records: list[dict[str, Any]] = []
    for case in ("P001", "cap001", "normal001"):
        files = sorted((data_dir / "covid-ct-md" / case).iterdir())
        if not files:
            continue
        headers = [dcmread(path, stop_before_pixels=True) for path in files]
        deidentifier = Deidentifier(patient_pseudonym="BENCH", secret=BENCH_SECRET, keep_dates=True)
        started = time.perf_counter()
        for header in headers:
            deidentifier.deidentify(header)
        header_seconds = time.perf_counter() - started

        started = time.perf_counter()
        for path in files:
            dataset = dcmread(path)
            deidentifier.deidentify(dataset)
            dcmwrite(BytesIO(), dataset, enforce_file_format=True)
        file_seconds = time.perf_counter() - started

        records.append(
            {
                "case": case,
                "n_files": len(files),
                "headers_per_s": round(len(files) / header_seconds, 1),
                "files_read_deidentified_written_per_s": round(len(files) / file_seconds, 1),
            }
        )
    return records
