"""Time one full 10-fold cross-validation of each CF model kind per task on cohort 1.

Every kind (the network, gradient boosting, logistic regression) runs on the same folds.
Target: under 60 s per task and kind on 2 CPU cores. The export is imported into a temporary SQLite
database first (not timed). Each record also carries the pooled out-of-fold AUC, as a check
that the timed run learned something.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ictcf.evaluation.cross_validation import cross_validate
from ictcf.models.cf_network import CFNetworkConfig
from ictcf.models.estimators import MODEL_KINDS, default_model_config
from ictcf.models.tasks import MORBIDITY, MORTALITY
from ictcf.pipeline import import_export_frames

#: Folds of the timed run (one repeat), as in the HUST-19 paper's 10-fold CV.
FOLDS = 10
#: Target wall-clock time of one 10-fold run per task, in seconds.
TARGET_S = 60.0


def run(data_dir: Path) -> list[dict[str, object]]:
    export = data_dir / "ictcf" / "patient_cohort1.txt"
    with tempfile.TemporaryDirectory(prefix="ictcf-bench-") as folder:
        imported = import_export_frames(f"sqlite:///{Path(folder) / 'bench.sqlite3'}", export)
    records: list[dict[str, object]] = []
    for task, kind in [(task, kind) for task in (MORBIDITY, MORTALITY) for kind in MODEL_KINDS]:
        started = time.perf_counter()
        predictions = cross_validate(
            imported.patients,
            imported.measurements,
            task,
            folds=FOLDS,
            repeats=1,
            seed=0,
            config=default_model_config(kind),
        )
        elapsed = time.perf_counter() - started
        truth = predictions["y_true"].to_numpy()
        aucs = {
            name: float(roc_auc_score(truth == index, predictions[f"prob_{name}"]))
            for index, name in enumerate(task.class_names)
            if task.positive_class in (None, name)
        }
        records.append(
            {
                "task": task.name,
                "model": kind,
                "folds": FOLDS,
                "repeats": 1,
                "n_patients": int(predictions["patient_id"].nunique()),
                "seconds": round(elapsed, 2),
                "target_seconds": TARGET_S,
                "within_target": bool(elapsed < TARGET_S),
                "pooled_auc": {name: round(value, 3) for name, value in aucs.items()},
                "training_threads": CFNetworkConfig().n_threads,
                "numpy": np.__version__,
            }
        )
    return records
