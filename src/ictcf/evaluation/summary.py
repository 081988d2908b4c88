"""Summaries of out-of-fold predictions over folds and repeats.

A predictions frame contains one row per (evaluation, repeat, patient) with the class
probabilities of a model that never saw that patient during training. This module turns it
into per-fold and per-repeat metric tables, a mean with a 95 % interval over repeats, a
confusion matrix and ROC curves, and reports undefined values as counts instead of numbers.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats
from sklearn.metrics import roc_auc_score

from ictcf.evaluation.metrics import (
    RATE_METRICS,
    InvalidPredictionsError,
    UndefinedMetricWarning,
    _one_vs_rest,
    _roc_frame,
    apply_decision_rule,
    class_index_vector,
    positive_class_index,
    probability_matrix,
    validate_class_names,
)

logger = logging.getLogger(__name__)

#: Class names of each task, in the column order of the models' probabilities.
TASK_CLASS_NAMES: Mapping[str, tuple[str, ...]] = {
    "morbidity": ("control", "type_i", "type_ii"),
    "mortality": ("cured", "deceased"),
}
#: Positive class of the binary tasks; its probability is compared with 0.5.
TASK_POSITIVE_CLASS: Mapping[str, str] = {"mortality": "deceased"}
#: Evaluation kinds with a reader-facing label.
EVALUATION_LABELS: Mapping[str, str] = {
    "cv": "cross-validation",
    "loho": "leave-one-hospital-out",
    "independent": "independent cohort",
}
#: Model kind of the seven-layer HUST-19 CF network of Ning et al. 2020; only its rows are
#: compared with the values that paper published.
PAPER_MODEL = "network"
#: Model kinds with a reader-facing label; other kinds are shown by their kind name.
MODEL_LABELS: Mapping[str, str] = {
    "network": "HUST-19 CF network (the paper's model)",
    "gradient-boosting": "gradient boosting (comparison model)",
    "logistic": "logistic regression (comparison model)",
}
#: Coverage of the reported interval.
CONFIDENCE_LEVEL = 0.95
#: Fewest defined values for which the 2.5th/97.5th percentiles are used. With fewer values the
#: percentiles are little more than the minimum and maximum, so a t interval is used instead.
MIN_VALUES_FOR_PERCENTILE_INTERVAL = 5
#: Fewest defined values for any interval. From two values a t interval spans almost the whole
#: metric range (t(0.975, 1) = 12.7), which says nothing, so two values get no interval.
MIN_VALUES_FOR_INTERVAL = 3
#: Word for the units of a single-repeat evaluation's interval, by evaluation kind: the folds of
#: leave-one-hospital-out are hospitals.
FOLD_UNIT_OF_EVALUATION: Mapping[str, str] = {"loho": "hospitals"}
#: Columns every predictions frame must have besides the ``prob_<class>`` columns.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "task",
    "evaluation",
    "repeat",
    "fold",
    "fold_label",
    "patient_id",
    "source_id",
    "hospital",
    "y_true",
)
#: Value range of each rate metric; t intervals are clipped to it.
METRIC_RANGE: Mapping[str, tuple[float, float]] = {
    **{metric: (0.0, 1.0) for metric in RATE_METRICS},
    "mcc": (-1.0, 1.0),
}
SUMMARY_COLUMNS: tuple[str, ...] = (
    "class",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
    "n_defined",
    "n_undefined",
    "over",
    "interval_method",
)

INTERVAL_DEFINITION = (
    "95% interval over repeats: with 5 or more defined per-repeat values, the 2.5th and 97.5th "
    "percentiles of those values (linear interpolation); with 3 or 4 values, "
    "mean ± t(0.975, n−1)·sd/√n, clipped to the metric's range; with one or two values, no "
    "interval (shown as 'n/a'). With a single repeat, the same rule is applied to the per-fold "
    "values and labelled 'over folds' ('over hospitals' for leave-one-hospital-out). Undefined "
    "values are counted in n_undefined and left out of the mean and interval."
)


@dataclass
class EvaluationSummary:
    """Metrics of one task under one evaluation kind, with the data and split that produced them.

    Attributes
    ----------
    task : str
        ``"morbidity"`` or ``"mortality"``.
    evaluation : str
        ``"cv"``, ``"loho"`` or ``"independent"``.
    class_names : tuple of str
        Class names in probability-column order.
    description : dict of str to str
        At least ``data`` and ``split``: which data and which split produced the numbers.
    n_patients : int
        Distinct patients in the predictions.
    n_repeats : int
        Distinct repeats.
    per_repeat : pandas.DataFrame
        Columns ``repeat``, ``class`` and the metric keys: each repeat's pooled out-of-fold
        predictions.
    per_fold : pandas.DataFrame
        Columns ``repeat``, ``fold``, ``fold_label``, ``n_patients``, ``class`` and the metric keys.
    summary : pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`, one row per reported class and rate metric.
    confusion : pandas.DataFrame
        Counts summed over repeats; index = true class, columns = predicted class.
    roc : dict of str to pandas.DataFrame
        Per reported class, the ROC curve (``fpr``, ``tpr``, ``threshold``) of the pooled
        predictions of all repeats. A curve is empty when its class is absent or the only class.
    positive_class : str or None
        The positive class of a binary task, reported alone with the 0.5 threshold rule.
    n_folds : int
        Distinct fold indices.
    decision_rule : str
        The rule that turned probabilities into predicted classes, in words.
    interval_over : str
        ``"repeats"``, or ``"folds"`` when there is a single repeat.
    class_counts : dict of str to int
        Patients per true class in the first repeat.
    pooled_auc : dict of str to float
        Per reported class, the AUC of the pooled predictions of all repeats (``nan`` when
        undefined).
    roc_per_repeat : dict of str to pandas.DataFrame
        Per reported class, the ROC curve of each repeat (``repeat``, ``fpr``, ``tpr``,
        ``threshold``).
    model : str
        Model kind that made the predictions (default ``"network"``, the paper's model).
    """

    task: str
    evaluation: str
    class_names: tuple[str, ...]
    description: dict[str, str]
    n_patients: int
    n_repeats: int
    per_repeat: pd.DataFrame
    per_fold: pd.DataFrame
    summary: pd.DataFrame
    confusion: pd.DataFrame
    roc: dict[str, pd.DataFrame]
    positive_class: str | None = None
    n_folds: int = 0
    decision_rule: str = ""
    interval_over: str = "repeats"
    class_counts: dict[str, int] = field(default_factory=dict)
    pooled_auc: dict[str, float] = field(default_factory=dict)
    roc_per_repeat: dict[str, pd.DataFrame] = field(default_factory=dict)
    model: str = PAPER_MODEL

    @property
    def model_label(self) -> str:
        """Reader-facing name of the model kind."""
        return MODEL_LABELS.get(self.model, self.model)

    @property
    def reported_classes(self) -> tuple[str, ...]:
        """Classes with a metrics row: every class, or only the positive class of a binary task."""
        if self.positive_class is not None:
            return (self.positive_class,)
        return self.class_names

    @property
    def evaluation_label(self) -> str:
        """Reader-facing name of the evaluation kind."""
        return EVALUATION_LABELS.get(self.evaluation, self.evaluation)

    def summary_row(self, class_name: str, metric: str) -> Mapping[str, Any] | None:
        """Return the summary row of one class and metric, or ``None`` when there is none."""
        rows = self.summary[
            (self.summary["class"] == class_name) & (self.summary["metric"] == metric)
        ]
        if rows.empty:
            return None
        return {str(key): value for key, value in rows.iloc[0].items()}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (``nan`` and infinite values become ``None``)."""
        return {
            "task": self.task,
            "evaluation": self.evaluation,
            "evaluation_label": self.evaluation_label,
            "model": self.model,
            "model_label": self.model_label,
            "class_names": list(self.class_names),
            "positive_class": self.positive_class,
            "reported_classes": list(self.reported_classes),
            "decision_rule": self.decision_rule,
            "description": dict(self.description),
            "n_patients": int(self.n_patients),
            "n_repeats": int(self.n_repeats),
            "n_folds": int(self.n_folds),
            "class_counts": {name: int(count) for name, count in self.class_counts.items()},
            "interval": {
                "level": CONFIDENCE_LEVEL,
                "over": self.interval_over,
                "definition": INTERVAL_DEFINITION,
            },
            "summary": frame_records(self.summary),
            "per_repeat": frame_records(self.per_repeat),
            "per_fold": frame_records(self.per_fold),
            "confusion": {
                "labels": list(self.class_names),
                "counts": [[int(count) for count in row] for row in self.confusion.to_numpy()],
            },
            "pooled_auc": {name: json_number(value) for name, value in self.pooled_auc.items()},
            "roc": {
                name: {
                    column: [json_number(value) for value in curve[column]]
                    for column in ("fpr", "tpr", "threshold")
                }
                for name, curve in self.roc.items()
            },
        }


def evaluate_predictions(
    predictions: pd.DataFrame,
    *,
    task: str,
    class_names: Sequence[str],
    positive_class: str | None = None,
    description: Mapping[str, str],
    model: str | None = None,
) -> EvaluationSummary:
    """Summarise the out-of-fold predictions of one task under one evaluation kind.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per (repeat, patient): columns :data:`REQUIRED_COLUMNS` and ``prob_<class>`` for
        every class. All rows must share one ``task`` (equal to ``task``) and one ``evaluation``.
        Nothing is filtered.
    task : str
        Task name; for ``"morbidity"`` and ``"mortality"`` the class names must be those of
        :data:`TASK_CLASS_NAMES`.
    class_names : sequence of str
        Class names; ``y_true`` indexes into them.
    positive_class : str, optional
        For a two-class task, the class reported alone with the 0.5 threshold rule (mortality:
        ``"deceased"``). Without it every class is reported with the argmax rule.
    description : mapping of str to str
        Must name the data (``"data"``) and the split (``"split"``); further keys are kept.
    model : str, optional
        Model kind that made the predictions. Default: the single value of the frame's optional
        ``model`` column, or ``"network"`` when the frame has none.

    Returns
    -------
    EvaluationSummary

    Raises
    ------
    InvalidPredictionsError
        When a column is missing, the frame mixes tasks, evaluation kinds or model kinds (or
        its model kind differs from ``model``), a patient appears twice in one repeat, or
        labels and probabilities are invalid.

    Warns
    -----
    UndefinedMetricWarning
        Once, counting the per-fold and per-repeat values that are undefined.
    """
    names = validate_class_names(class_names)
    _check_task(task, names, positive_class)
    described = _check_description(description)
    frame = _check_frame(predictions, task, names)
    model_kind = _check_model(frame, model)
    evaluation = str(frame["evaluation"].iloc[0])
    positive_index = positive_class_index(names, positive_class)

    labels = class_index_vector(frame["y_true"].to_numpy(), names, "column y_true")
    probabilities = probability_matrix(
        frame[[f"prob_{name}" for name in names]].to_numpy(), len(frame), names
    )
    repeats = frame["repeat"].to_numpy()
    folds = frame["fold"].to_numpy()

    per_repeat_tables: list[pd.DataFrame] = []
    per_fold_tables: list[pd.DataFrame] = []
    repeat_reasons: list[str] = []
    fold_reasons: list[str] = []
    for repeat in np.unique(repeats):
        in_repeat = repeats == repeat
        table, reasons = _one_vs_rest(
            labels[in_repeat], probabilities[in_repeat], names, positive_index
        )
        table.insert(0, "repeat", int(repeat))
        per_repeat_tables.append(table)
        repeat_reasons.extend(reasons)
        for fold in np.unique(folds[in_repeat]):
            in_fold = in_repeat & (folds == fold)
            table, reasons = _one_vs_rest(
                labels[in_fold], probabilities[in_fold], names, positive_index
            )
            fold_label = str(frame.loc[in_fold, "fold_label"].iloc[0])
            table.insert(0, "n_patients", int(in_fold.sum()))
            table.insert(0, "fold_label", fold_label)
            table.insert(0, "fold", int(fold))
            table.insert(0, "repeat", int(repeat))
            per_fold_tables.append(table)
            fold_reasons.extend(reasons)

    per_repeat = pd.concat(per_repeat_tables, ignore_index=True)
    per_fold = pd.concat(per_fold_tables, ignore_index=True)
    n_repeats = len(per_repeat_tables)
    interval_over = "repeats" if n_repeats > 1 else FOLD_UNIT_OF_EVALUATION.get(evaluation, "folds")
    summary = _summarise(per_repeat if n_repeats > 1 else per_fold, interval_over)
    _warn_undefined_counts(task, evaluation, per_repeat, per_fold, repeat_reasons, fold_reasons)

    predicted = apply_decision_rule(probabilities, positive_index)
    reported = [positive_index] if positive_index is not None else list(range(len(names)))
    roc = {names[index]: _roc_frame(labels == index, probabilities[:, index]) for index in reported}
    first_repeat = repeats == repeats.min()
    return EvaluationSummary(
        task=task,
        evaluation=evaluation,
        class_names=names,
        description=described,
        n_patients=int(frame["patient_id"].nunique()),
        n_repeats=n_repeats,
        per_repeat=per_repeat,
        per_fold=per_fold,
        summary=summary,
        confusion=_confusion(labels, predicted, names),
        roc=roc,
        positive_class=positive_class,
        n_folds=int(frame["fold"].nunique()),
        decision_rule=describe_decision_rule(names, positive_class),
        interval_over=interval_over,
        class_counts={
            name: int(np.sum(labels[first_repeat] == index)) for index, name in enumerate(names)
        },
        pooled_auc={
            names[index]: _pooled_auc(labels == index, probabilities[:, index])
            for index in reported
        },
        roc_per_repeat={
            names[index]: _roc_per_repeat(labels == index, probabilities[:, index], repeats)
            for index in reported
        },
        model=model_kind,
    )


def summarise_values(values: Sequence[float] | NDArray[np.float64], metric: str) -> dict[str, Any]:
    """Compute the mean and 95 % interval of per-repeat (or per-fold) values of one metric.

    Parameters
    ----------
    values : sequence of float
        One value per repeat; ``nan`` marks an undefined value.
    metric : str
        Metric name, used to clip a t interval to the metric's range (MCC [-1, 1], others [0, 1]).

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high``, ``n_defined``, ``n_undefined`` and
        ``interval_method`` (``"percentile"``, ``"t"``, ``"none"`` with one or two defined
        values, or ``"undefined"`` with none). See :data:`INTERVAL_DEFINITION`.
    """
    array = np.asarray(values, dtype=float)
    defined = array[np.isfinite(array)]
    n_defined = len(defined)
    result: dict[str, Any] = {
        "mean": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "n_defined": n_defined,
        "n_undefined": len(array) - n_defined,
        "interval_method": "undefined",
    }
    if n_defined == 0:
        return result
    result["mean"] = float(defined.mean())
    if n_defined < MIN_VALUES_FOR_INTERVAL:
        result["interval_method"] = "none"
        return result
    tail = (1.0 - CONFIDENCE_LEVEL) / 2.0
    if n_defined >= MIN_VALUES_FOR_PERCENTILE_INTERVAL:
        low, high = np.percentile(defined, [100.0 * tail, 100.0 * (1.0 - tail)])
        result.update(ci_low=float(low), ci_high=float(high), interval_method="percentile")
        return result
    half_width = float(
        stats.t.ppf(1.0 - tail, n_defined - 1) * defined.std(ddof=1) / math.sqrt(n_defined)
    )
    lower_bound, upper_bound = METRIC_RANGE.get(metric, (-math.inf, math.inf))
    result.update(
        ci_low=max(lower_bound, result["mean"] - half_width),
        ci_high=min(upper_bound, result["mean"] + half_width),
        interval_method="t",
    )
    return result


def describe_decision_rule(class_names: Sequence[str], positive_class: str | None) -> str:
    """Return the decision rule in words, for reports."""
    if positive_class is not None:
        return f"predicted {positive_class!r} when its probability is >= 0.5"
    return "predicted class = the class with the highest probability (argmax; ties go to the first class)"


def json_number(value: Any) -> float | int | None:
    """Return ``value`` as a JSON number, or ``None`` when it is missing, ``nan`` or infinite."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"expected a number, got the boolean {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return the rows of ``frame`` as JSON-ready dictionaries (``nan`` becomes ``None``)."""
    records: list[dict[str, Any]] = []
    for row in frame.to_dict(orient="records"):
        record: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, str) or value is None:
                record[str(key)] = value
            elif isinstance(value, (bool, np.bool_)):
                record[str(key)] = bool(value)
            else:
                record[str(key)] = json_number(value)
        records.append(record)
    return records


def _check_task(task: str, names: tuple[str, ...], positive_class: str | None) -> None:
    if not isinstance(task, str) or not task:
        raise InvalidPredictionsError(f"task must be a non-empty string, got {task!r}")
    expected = TASK_CLASS_NAMES.get(task)
    if expected is not None and names != expected:
        raise InvalidPredictionsError(
            f"class_names {list(names)} do not match the {task} task's classes {list(expected)}; "
            "pass the task's class names in probability-column order"
        )
    expected_positive = TASK_POSITIVE_CLASS.get(task)
    if expected_positive is not None and positive_class not in (None, expected_positive):
        raise InvalidPredictionsError(
            f"positive_class {positive_class!r} is not the {task} task's positive class "
            f"{expected_positive!r}"
        )


def _check_model(frame: pd.DataFrame, model: str | None) -> str:
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidPredictionsError(f"model must be a non-empty string, got {model!r}")
    if "model" not in frame.columns:
        return model or PAPER_MODEL
    kinds = sorted(frame["model"].astype(str).unique())
    if len(kinds) != 1:
        raise InvalidPredictionsError(
            f"predictions frame mixes the model kinds {kinds}; pass one model kind at a time"
        )
    if model is not None and kinds[0] != model:
        raise InvalidPredictionsError(
            f"predictions frame contains predictions of the {kinds[0]!r} model but model={model!r} "
            "was requested; pass the rows of that model"
        )
    return kinds[0]


def _check_description(description: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(description, Mapping):
        raise InvalidPredictionsError(
            "description must be a mapping with 'data' and 'split' entries, got "
            f"{type(description).__name__}"
        )
    for key in ("data", "split"):
        value = description.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InvalidPredictionsError(
                f"description[{key!r}] is missing or empty; every summary must name the data and "
                "the split that produced it (for example 'cohort 1, 871 labelled patients' and "
                "'stratified 10-fold CV by patient, 10 repeats, seed 0')"
            )
    return {str(key): str(value) for key, value in description.items()}


def _check_frame(predictions: pd.DataFrame, task: str, names: tuple[str, ...]) -> pd.DataFrame:
    if not isinstance(predictions, pd.DataFrame):
        raise InvalidPredictionsError(
            f"predictions must be a pandas DataFrame, got {type(predictions).__name__}"
        )
    if predictions.empty:
        raise InvalidPredictionsError("predictions frame has no rows; nothing to evaluate")
    required = [*REQUIRED_COLUMNS, *(f"prob_{name}" for name in names)]
    missing = [column for column in required if column not in predictions.columns]
    if missing:
        raise InvalidPredictionsError(
            f"predictions frame is missing the columns {missing}; it needs {required}"
        )

    tasks = sorted(predictions["task"].astype(str).unique())
    if tasks != [task]:
        raise InvalidPredictionsError(
            f"predictions frame contains the tasks {tasks} but task={task!r} was requested; pass "
            "the rows of one task at a time"
        )
    evaluations = sorted(predictions["evaluation"].astype(str).unique())
    if len(evaluations) != 1:
        raise InvalidPredictionsError(
            f"predictions frame mixes the evaluation kinds {evaluations}; pass one kind at a time"
        )
    if evaluations[0] not in EVALUATION_LABELS:
        raise InvalidPredictionsError(
            f"evaluation {evaluations[0]!r} is not one of {list(EVALUATION_LABELS)}"
        )

    for column in ("repeat", "fold", "patient_id"):
        values = pd.to_numeric(predictions[column], errors="coerce")
        invalid = values.isna() | (values < 0) | (values != values.round())
        if invalid.any():
            position = int(np.flatnonzero(invalid.to_numpy())[0])
            raise InvalidPredictionsError(
                f"column {column} has {predictions[column].tolist()[position]!r} in row {position}; "
                "it must hold non-negative integers"
            )

    frame = predictions.reset_index(drop=True).copy()
    for column in ("repeat", "fold", "patient_id"):
        frame[column] = pd.to_numeric(frame[column]).astype(np.int64)

    duplicated = frame.duplicated(subset=["repeat", "patient_id"])
    if duplicated.any():
        row = frame.loc[duplicated].iloc[0]
        raise InvalidPredictionsError(
            f"patient {int(row['patient_id'])} appears more than once in repeat {int(row['repeat'])}; "
            "each repeat must predict every patient exactly once (out of fold)"
        )

    patient_sets = frame.groupby("repeat")["patient_id"].apply(frozenset)
    if patient_sets.nunique() > 1:
        logger.warning(
            "repeats of the %s %s predictions cover different patients (%s patients per repeat)",
            task,
            evaluations[0],
            sorted({len(patients) for patients in patient_sets}),
        )
    return frame


def _summarise(per_unit: pd.DataFrame, over: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for class_name in per_unit["class"].unique():
        values = per_unit[per_unit["class"] == class_name]
        for metric in RATE_METRICS:
            rows.append(
                {
                    "class": class_name,
                    "metric": metric,
                    **summarise_values(values[metric].to_numpy(dtype=float), metric),
                    "over": over,
                }
            )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _warn_undefined_counts(
    task: str,
    evaluation: str,
    per_repeat: pd.DataFrame,
    per_fold: pd.DataFrame,
    repeat_reasons: Sequence[str],
    fold_reasons: Sequence[str],
) -> None:
    if not repeat_reasons and not fold_reasons:
        return
    parts: list[str] = []
    for label, table in (("per-repeat", per_repeat), ("per-fold", per_fold)):
        undefined = table[list(RATE_METRICS)].isna().sum()
        counts = ", ".join(f"{metric} {int(count)}" for metric, count in undefined.items() if count)
        if counts:
            parts.append(f"{label} values undefined of {len(table)} rows: {counts}")
    example = (list(repeat_reasons) or list(fold_reasons))[0]
    message = f"{task} {evaluation}: " + "; ".join(parts) + f" (first reason: {example})"
    logger.warning("%s", message)
    warnings.warn(message, UndefinedMetricWarning, stacklevel=3)


def _confusion(
    labels: NDArray[np.intp], predicted: NDArray[np.intp], names: tuple[str, ...]
) -> pd.DataFrame:
    counts = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return pd.DataFrame(
        counts,
        index=pd.Index(names, name="true"),
        columns=pd.Index(names, name="predicted"),
    )


def _pooled_auc(truth: NDArray[np.bool_], scores: NDArray[np.float64]) -> float:
    if truth.all() or not truth.any():
        return math.nan
    return float(roc_auc_score(truth, scores))


def _roc_per_repeat(
    truth: NDArray[np.bool_], scores: NDArray[np.float64], repeats: NDArray[Any]
) -> pd.DataFrame:
    curves = []
    for repeat in np.unique(repeats):
        in_repeat = repeats == repeat
        curve = _roc_frame(truth[in_repeat], scores[in_repeat])
        curve.insert(0, "repeat", int(repeat))
        curves.append(curve)
    return pd.concat(curves, ignore_index=True)
