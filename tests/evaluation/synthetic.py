"""Synthetic predictions frames in the layout that cross-validation produces.

The probabilities come from a softmax of Gaussian noise with the true class's logit raised by
``signal``, so the AUCs are well above 0.5 but not perfect. Nothing here comes from patients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ictcf.evaluation.summary import TASK_CLASS_NAMES


def make_predictions(
    task: str = "morbidity",
    *,
    n_repeats: int = 3,
    n_folds: int = 5,
    n_patients: int = 100,
    evaluation: str = "cv",
    seed: int = 0,
    signal: float = 1.2,
    class_names: Sequence[str] | None = None,
    hospitals: Sequence[str] = ("Union", "Liyuan"),
) -> pd.DataFrame:
    """Build one row per (repeat, patient) with fold assignments and class probabilities."""
    names = list(class_names if class_names is not None else TASK_CLASS_NAMES[task])
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, len(names), size=n_patients)
    hospital = rng.choice(list(hospitals), size=n_patients)
    frames = []
    for repeat in range(n_repeats):
        folds = rng.permutation(np.arange(n_patients) % n_folds)
        logits = rng.normal(size=(n_patients, len(names)))
        logits[np.arange(n_patients), y_true] += signal
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        frame = pd.DataFrame(
            {
                "task": task,
                "evaluation": evaluation,
                "repeat": repeat,
                "fold": folds,
                "fold_label": [f"fold {fold}" for fold in folds],
                "patient_id": np.arange(n_patients) + 1,
                "source_id": [f"Patient {index + 1}" for index in range(n_patients)],
                "hospital": hospital,
                "y_true": y_true,
            }
        )
        for column, name in enumerate(names):
            frame[f"prob_{name}"] = probabilities[:, column]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def description(data: str = "synthetic predictions, 100 patients") -> dict[str, str]:
    """A description dict naming synthetic data and a 5-fold split."""
    return {"data": data, "split": "stratified 5-fold CV by patient, seed 0"}
