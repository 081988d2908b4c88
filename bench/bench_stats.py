"""Time the cohort statistics on the iCTCF cohort-1 export: load, comparisons, Table 1, report."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ictcf.db.session import open_database, session_scope
from ictcf.ingest.importer import import_ictcf_export
from ictcf.stats.analysis import load_cohort, run_comparisons
from ictcf.stats.groups import PAPER_COMPARISONS
from ictcf.stats.report import write_stats_report
from ictcf.stats.table_one import build_table_one


def run(data_dir: Path) -> list[dict[str, Any]]:
    """Import cohort 1 into a temporary SQLite file and time each statistics step."""
    export = data_dir / "ictcf" / "patient_cohort1.txt"
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        factory = open_database(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
        import_ictcf_export(factory, export)
        with session_scope(factory) as session:
            start = time.perf_counter()
            data = load_cohort(session)
            records.append({"step": "load_cohort", "seconds": time.perf_counter() - start})

            start = time.perf_counter()
            results = run_comparisons(data, PAPER_COMPARISONS)
            records.append(
                {
                    "step": "paper_comparisons",
                    "seconds": time.perf_counter() - start,
                    "tests": sum(result.n_tests for result in results.values()),
                }
            )

            start = time.perf_counter()
            for by in ("morbidity_type", "outcome"):
                build_table_one(data, by=by)
            records.append({"step": "table_one_both", "seconds": time.perf_counter() - start})

            for figures in (False, True):
                start = time.perf_counter()
                write_stats_report(session, Path(folder) / f"report-{figures}", figures=figures)
                records.append(
                    {
                        "step": "write_stats_report",
                        "figures": figures,
                        "seconds": time.perf_counter() - start,
                    }
                )
        factory.kw["bind"].dispose()
    for record in records:
        record["patients"] = 1170
    return records
