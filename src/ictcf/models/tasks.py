"""The two HUST-19 prediction tasks: labels, class names and which patients are excluded.

Morbidity: control (control and community-acquired-pneumonia control), type I (mild and
regular) and type II (severe and critically ill) COVID-19; suspected patients and patients of
unknown morbidity type are excluded from training and scored afterwards. Mortality: cured vs
deceased among patients with a known outcome; the positive class is "deceased".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ictcf.errors import InputError


@dataclass(frozen=True)
class TaskSpec:
    """One prediction task.

    Attributes
    ----------
    name : str
        ``"morbidity"`` or ``"mortality"``.
    label_column : str
        Column of the patients frame that contains the label.
    class_names : tuple of str
        Label values in class-index order; ``prob_<class>`` columns use these names.
    positive_class : str or None
        The positive class of a binary task (None for morbidity).
    """

    name: str
    label_column: str
    class_names: tuple[str, ...]
    positive_class: str | None

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def probability_columns(self) -> list[str]:
        """Names of the probability columns of a predictions frame."""
        return [f"prob_{name}" for name in self.class_names]


MORBIDITY = TaskSpec(
    name="morbidity",
    label_column="morbidity_type",
    class_names=("control", "type_i", "type_ii"),
    positive_class=None,
)
MORTALITY = TaskSpec(
    name="mortality",
    label_column="outcome",
    class_names=("cured", "deceased"),
    positive_class="deceased",
)

TASKS: dict[str, TaskSpec] = {MORBIDITY.name: MORBIDITY, MORTALITY.name: MORTALITY}


def get_task(name: str) -> TaskSpec:
    """Return the task called ``name``.

    Raises
    ------
    InputError
        If ``name`` is not a known task.
    """
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"Unknown task {name!r}: use one of {', '.join(sorted(TASKS))}.") from None


def task_labels(patients: pd.DataFrame, task: TaskSpec) -> np.ndarray:
    """Return each patient's class index for ``task``, or -1 where the patient is excluded.

    Parameters
    ----------
    patients : DataFrame
        One row per patient with ``task.label_column``.
    task : TaskSpec
        The task.

    Returns
    -------
    ndarray of shape (n_patients,), int64
        Index into ``task.class_names``; -1 for suspected patients, unknown morbidity type
        (morbidity) or unknown outcome (mortality).

    Raises
    ------
    InputError
        If the label column is missing.
    """
    if task.label_column not in patients.columns:
        raise InputError(
            f"The patients frame lacks the column {task.label_column!r} needed for the "
            f"{task.name} task; build it with ictcf.db.queries.load_patients()."
        )
    index_of = {name: index for index, name in enumerate(task.class_names)}
    values = patients[task.label_column].astype(object).to_numpy()
    return np.array([index_of.get(str(value), -1) for value in values], dtype=np.int64)


def labelled_patients(patients: pd.DataFrame, task: TaskSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the patients eligible for ``task`` and their class indices.

    Returns
    -------
    patients : DataFrame
        The rows with a label, index reset, order kept.
    labels : ndarray of shape (n_labelled,), int64
    """
    labels = task_labels(patients, task)
    keep = labels >= 0
    return patients.loc[keep].reset_index(drop=True), labels[keep]
