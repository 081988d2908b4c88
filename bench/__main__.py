"""Run the benchmarks and print one JSON line per measurement.

Usage: ``python -m bench [NAME ...]`` from the repository root, with ``ICTCF_DATA_DIR`` pointing
at the shared public data. ``make bench`` runs them all; results also go to
``bench/results/<date>.jsonl``. Record the numbers, machine and date in docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).parent


def main(argv: list[str]) -> int:
    data_dir = Path(os.environ.get("ICTCF_DATA_DIR", BENCH_DIR.parent.parent / "shared" / "data"))
    names = argv or sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))
    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(exist_ok=True)
    results_path = results_dir / f"{dt.date.today().isoformat()}.jsonl"
    machine = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    with results_path.open("a", encoding="utf-8") as results_file:
        for name in names:
            module_name = name if name.startswith("bench_") else f"bench_{name}"
            module = importlib.import_module(f"bench.{module_name}")
            for record in module.run(data_dir):
                record = {"benchmark": module_name, **record, **machine}
                line = json.dumps(record, sort_keys=True)
                print(line, flush=True)
                results_file.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
