"""Time the evaluation of a full 10 x 10-fold cross-validation and the writing of its report.

The predictions are synthetic: 871 patients (the labelled size of cohort 1) with random
probabilities that favour the true class. The benchmark therefore needs no data and measures
only the evaluation code: metrics per fold and repeat, intervals, ROC curves, figures, files.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ictcf.evaluation.metrics import UndefinedMetricWarning
from ictcf.evaluation.report import write_report
from ictcf.evaluation.summary import TASK_CLASS_NAMES, TASK_POSITIVE_CLASS, evaluate_predictions

#: Labelled patients of cohort 1 (control 222 + type I 438 + type II 211).
N_PATIENTS = 871
N_REPEATS = 10
N_FOLDS = 10


def _predictions(task: str, seed: int) -> pd.DataFrame:
    names = TASK_CLASS_NAMES[task]
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, len(names), size=N_PATIENTS)
    frames = []
    for repeat in range(N_REPEATS):
        folds = rng.permutation(np.arange(N_PATIENTS) % N_FOLDS)
        logits = rng.normal(size=(N_PATIENTS, len(names)))
        logits[np.arange(N_PATIENTS), y_true] += 1.2
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        frame = pd.DataFrame(
            {
                "task": task,
                "evaluation": "cv",
                "repeat": repeat,
                "fold": folds,
                "fold_label": [f"fold {fold}" for fold in folds],
                "patient_id": np.arange(N_PATIENTS) + 1,
                "source_id": [f"Patient {index + 1}" for index in range(N_PATIENTS)],
                "hospital": "Union",
                "y_true": y_true,
            }
        )
        for column, name in enumerate(names):
            frame[f"prob_{name}"] = probabilities[:, column]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def run(data_dir: Path) -> list[dict[str, Any]]:
    """Return one record per timed step (seconds, wall clock)."""
    records: list[dict[str, Any]] = []
    summaries = []
    for seed, task in enumerate(("morbidity", "mortality")):
        predictions = _predictions(task, seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            summary = evaluate_predictions(
                predictions,
                task=task,
                class_names=TASK_CLASS_NAMES[task],
                positive_class=TASK_POSITIVE_CLASS.get(task),
                description={"data": f"synthetic, {N_PATIENTS} patients", "split": "10 x 10-fold"},
            )
        records.append(
            {
                "step": f"evaluate_predictions {task}",
                "rows": len(predictions),
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
        summaries.append(summary)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        index = write_report(Path(folder) / "report", summaries, {"run_id": "bench"})
        seconds = time.perf_counter() - start
        size = sum(path.stat().st_size for path in index.parent.rglob("*") if path.is_file())
    records.append(
        {"step": "write_report (2 evaluations)", "seconds": round(seconds, 3), "bytes": size}
    )
    return records
