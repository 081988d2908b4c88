"""Import time of the 1,170-patient iCTCF cohort-1 export into a fresh SQLite database.

Target: under 5 s. Reports the median wall-clock and CPU time of three imports, each into a new
database file, and the time of a re-import (nothing changes) into the last one. The CPU time
(of this process) shows the import's own cost when other jobs share the cores.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ictcf.db import open_database
from ictcf.ingest.importer import import_ictcf_export

#: Imports timed; the median is reported.
REPEATS = 3
#: Import time the project aims for on a 2-core machine, in seconds.
TARGET_S = 5.0


def run(data_dir: Path) -> list[dict[str, Any]]:
    """Time the import of ``data_dir/ictcf/patient_cohort1.txt``; return one result record."""
    export = data_dir / "ictcf" / "patient_cohort1.txt"
    times: list[float] = []
    cpu_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        for repeat in range(REPEATS):
            factory = open_database(f"sqlite:///{Path(folder) / f'import-{repeat}.sqlite3'}")
            started = time.perf_counter()
            cpu_started = time.process_time()
            report = import_ictcf_export(factory, export)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
        started = time.perf_counter()
        again = import_ictcf_export(factory, export)
        reimport_s = time.perf_counter() - started
    return [
        {
            "name": "import_cohort1_sqlite",
            "patients": report.patients_added,
            "measurements": report.measurements_added,
            "median_s": round(statistics.median(times), 3),
            "times_s": [round(value, 3) for value in times],
            "median_cpu_s": round(statistics.median(cpu_times), 3),
            "reimport_s": round(reimport_s, 3),
            "reimport_unchanged": again.patients_unchanged,
            "target_s": TARGET_S,
            "meets_target": statistics.median(times) < TARGET_S,
        }
    ]
