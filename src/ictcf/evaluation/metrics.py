"""Classification metrics with the formulas of Ning et al. 2020 (Nature Biomedical Engineering 4).

Sensitivity Sn = TP/(TP+FN), specificity Sp = TN/(TN+FP), accuracy Ac = (TP+TN)/(TP+TN+FP+FN),
PPV = TP/(TP+FP), NPV = TN/(TN+FN), MCC = (TP·TN − FP·FN)/sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)),
and AUC = area under the ROC curve (scikit-learn's ``roc_auc_score``, which gives tied scores
half credit like the Mann–Whitney U statistic).

A metric whose denominator is zero, or an AUC computed with only one class present, is
undefined: it is returned as ``nan`` and an :class:`UndefinedMetricWarning` names it. It is
never replaced by 0, 0.5 or 1, because a summary over folds would then silently average in a
number that was never measured.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import roc_auc_score, roc_curve

from ictcf.errors import InputError

#: Default decision threshold on the positive-class probability (the paper's 0.5 rule).
DEFAULT_THRESHOLD = 0.5
#: Allowed deviation of a probability row sum from 1; float32 softmax rows stay within 1e-6.
PROBABILITY_SUM_TOLERANCE = 1e-4
#: Allowed excursion of a probability below 0 or above 1 from floating-point rounding.
PROBABILITY_RANGE_TOLERANCE = 1e-6

#: Metrics that are ratios and can be undefined, in the order of the paper's tables.
RATE_METRICS: tuple[str, ...] = (
    "auc",
    "sensitivity",
    "specificity",
    "accuracy",
    "ppv",
    "npv",
    "mcc",
)
#: Confusion-matrix counts returned beside the rates (integers, always defined).
COUNT_METRICS: tuple[str, ...] = ("tp", "fp", "tn", "fn", "n_positive", "n_negative")
#: Every key of :func:`binary_metrics`, in output order.
METRIC_KEYS: tuple[str, ...] = RATE_METRICS + COUNT_METRICS


class UndefinedMetricWarning(UserWarning):
    """A metric could not be computed (zero denominator or one class only) and is ``nan``."""


class InvalidPredictionsError(InputError, ValueError):
    """Labels, scores or probabilities passed to a metric are malformed."""


def binary_metrics(
    y_true: ArrayLike, y_score: ArrayLike, *, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """Compute AUC, Sn, Sp, Ac, PPV, NPV, MCC and the confusion counts of a binary prediction.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 0 (negative) or 1 (positive); booleans are accepted.
    y_score : array-like of shape (n_samples,)
        Score of the positive class, usually its probability. Any finite value is accepted.
    threshold : float, default 0.5
        A sample is predicted positive when ``y_score >= threshold``.

    Returns
    -------
    dict of str to float
        Keys :data:`METRIC_KEYS`. Rates are proportions in [0, 1] (MCC in [-1, 1]); counts are
        whole numbers stored as float. Undefined rates are ``nan``.

    Raises
    ------
    InvalidPredictionsError
        When the inputs are empty, differ in length, contain non-finite values or labels other
        than 0 and 1.

    Warns
    -----
    UndefinedMetricWarning
        When a rate is undefined: AUC with one class present, Sn without positives, Sp without
        negatives, PPV without predicted positives, NPV without predicted negatives, MCC with a
        zero margin of the confusion matrix.
    """
    labels = _binary_labels(y_true, "y_true")
    scores = _score_vector(y_score, len(labels), "y_score")
    threshold = _finite_threshold(threshold)
    values, reasons = _binary_metrics(labels, scores >= threshold, scores)
    _warn_undefined(reasons)
    return values


def one_vs_rest_metrics(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    class_names: Sequence[str],
    *,
    positive_class: str | None = None,
) -> pd.DataFrame:
    """Compute one-vs-rest metrics per class from class probabilities.

    The predicted class is the argmax of each probability row (the first class wins a tie).
    Class ``c``'s confusion matrix compares ``y_true == c`` with ``predicted == c`` and its AUC
    uses ``probabilities[:, c]``. For a two-class task with ``positive_class`` given, only that
    class is reported and a sample is predicted positive when its probability is >= 0.5.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Class indices into ``class_names``.
    probabilities : array-like of shape (n_samples, n_classes)
        Class probabilities; each row sums to 1 (within 1e-4).
    class_names : sequence of str
        Names of the ``n_classes`` columns, at least two, unique.
    positive_class : str, optional
        Only for two classes: the class whose row is reported with the 0.5 threshold rule.

    Returns
    -------
    pandas.DataFrame
        One row per reported class: column ``class`` then :data:`METRIC_KEYS`.

    Raises
    ------
    InvalidPredictionsError
        When shapes disagree, a probability is outside [0, 1], a row does not sum to 1, a label
        is not a valid class index, or ``positive_class`` is unknown or used with more than two
        classes.

    Warns
    -----
    UndefinedMetricWarning
        Once per call, naming every class and metric that is undefined.
    """
    names = validate_class_names(class_names)
    labels = class_index_vector(y_true, names, "y_true")
    matrix = probability_matrix(probabilities, len(labels), names)
    positive_index = positive_class_index(names, positive_class)
    table, reasons = _one_vs_rest(labels, matrix, names, positive_index)
    _warn_undefined(reasons)
    return table


def per_outcome_metrics(
    y_true: ArrayLike,
    y_score: ArrayLike,
    outcome_names: Sequence[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """Compute binary metrics for each column of a multi-label outcome matrix.

    Each outcome (for example ICU admission and death) is scored on its own, so a column with
    one class only yields ``nan`` for its AUC while the other columns are computed normally.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_outcomes)
        0/1 labels, one column per outcome.
    y_score : array-like of shape (n_samples, n_outcomes)
        Scores of the positive label of each outcome.
    outcome_names : sequence of str
        Names of the ``n_outcomes`` columns.
    threshold : float, default 0.5
        A sample is predicted positive for an outcome when its score is >= ``threshold``.

    Returns
    -------
    pandas.DataFrame
        One row per outcome: column ``outcome`` then :data:`METRIC_KEYS`.

    Raises
    ------
    InvalidPredictionsError
        When the matrices differ in shape, contain non-finite values or labels other than 0/1.

    Warns
    -----
    UndefinedMetricWarning
        Once per call, naming every outcome and metric that is undefined.
    """
    names = validate_class_names(outcome_names, minimum=1, argument="outcome_names")
    truth = np.asarray(y_true)
    scores = np.asarray(y_score)
    if truth.ndim != 2 or truth.shape[1] != len(names):
        raise InvalidPredictionsError(
            f"y_true has shape {truth.shape} but must be (n_samples, {len(names)}), one column "
            f"per outcome in {list(names)}"
        )
    if scores.shape != truth.shape:
        raise InvalidPredictionsError(
            f"y_score has shape {scores.shape} but y_true has shape {truth.shape}; pass one "
            "score per sample and outcome"
        )
    threshold = _finite_threshold(threshold)
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    for column, name in enumerate(names):
        labels = _binary_labels(truth[:, column], f"y_true column {column} ({name!r})")
        column_scores = _score_vector(
            scores[:, column], len(labels), f"y_score column {column} ({name!r})"
        )
        values, undefined = _binary_metrics(labels, column_scores >= threshold, column_scores)
        rows.append({"outcome": name, **values})
        reasons.extend(f"outcome {name!r}: {reason}" for reason in undefined)
    _warn_undefined(reasons)
    return _with_integer_counts(pd.DataFrame(rows, columns=["outcome", *METRIC_KEYS]))


def roc_points(y_true: ArrayLike, y_score: ArrayLike) -> pd.DataFrame:
    """Compute the ROC curve of a binary prediction.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 labels.
    y_score : array-like of shape (n_samples,)
        Scores of the positive class.

    Returns
    -------
    pandas.DataFrame
        Columns ``fpr``, ``tpr`` and ``threshold`` (the first threshold is ``inf``: nothing
        predicted positive). Empty when ``y_true`` contains one class only, because the curve
        is then undefined. No warning is issued here: callers report the undefined AUC.

    Raises
    ------
    InvalidPredictionsError
        When the inputs are malformed, as in :func:`binary_metrics`.
    """
    labels = _binary_labels(y_true, "y_true")
    scores = _score_vector(y_score, len(labels), "y_score")
    return _roc_frame(labels, scores)


def apply_decision_rule(
    probabilities: NDArray[np.float64], positive_index: int | None
) -> NDArray[np.intp]:
    """Return the predicted class index of each probability row.

    Parameters
    ----------
    probabilities : ndarray of shape (n_samples, n_classes)
        Validated class probabilities (see :func:`probability_matrix`).
    positive_index : int or None
        For a two-class task, the column of the positive class: predicted positive when its
        probability is >= 0.5. ``None`` selects the argmax rule (ties go to the first class).

    Returns
    -------
    ndarray of int of shape (n_samples,)
    """
    if positive_index is None:
        return np.argmax(probabilities, axis=1)
    negative_index = 1 - positive_index
    positive = probabilities[:, positive_index] >= DEFAULT_THRESHOLD
    return np.where(positive, positive_index, negative_index).astype(np.intp)


def validate_class_names(
    class_names: Sequence[str], *, minimum: int = 2, argument: str = "class_names"
) -> tuple[str, ...]:
    """Check that ``class_names`` are at least ``minimum`` unique non-empty strings.

    Raises
    ------
    InvalidPredictionsError
        When a name is not a non-empty string, is repeated, or there are too few names.
    """
    if isinstance(class_names, str):
        raise InvalidPredictionsError(
            f"{argument} must be a sequence of names, not the single string {class_names!r}"
        )
    names = tuple(class_names)
    if len(names) < minimum:
        raise InvalidPredictionsError(
            f"{argument} has {len(names)} entries but needs at least {minimum}: {list(names)}"
        )
    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidPredictionsError(
                f"{argument} contains {name!r}; every name must be a non-empty string"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidPredictionsError(f"{argument} repeats {duplicates}; every name must be unique")
    return names


def class_index_vector(
    y_true: ArrayLike, class_names: Sequence[str], argument: str
) -> NDArray[np.intp]:
    """Convert ``y_true`` to a vector of class indices into ``class_names``.

    Raises
    ------
    InvalidPredictionsError
        When ``y_true`` is empty, not one-dimensional, or contains a value that is not an integer
        in ``0 .. len(class_names) - 1``.
    """
    values = _one_dimensional(y_true, argument)
    numeric = _as_float(values, argument)
    bad = ~np.isfinite(numeric) | (numeric != np.round(numeric))
    bad |= (numeric < 0) | (numeric >= len(class_names))
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise InvalidPredictionsError(
            f"{argument} contains {_plain(values[position])!r} at position {position}, which is not a class "
            f"index 0..{len(class_names) - 1} for classes {list(class_names)}; encode labels as "
            "integer class indices"
        )
    return numeric.astype(np.intp)


def probability_matrix(
    probabilities: ArrayLike, n_samples: int, class_names: Sequence[str]
) -> NDArray[np.float64]:
    """Validate class probabilities and return them as a float array.

    Raises
    ------
    InvalidPredictionsError
        When the shape is not ``(n_samples, len(class_names))``, a value is not finite or lies
        outside [0, 1], or a row does not sum to 1 within :data:`PROBABILITY_SUM_TOLERANCE`.
    """
    matrix = _as_float(np.asarray(probabilities), "probabilities")
    expected = (n_samples, len(class_names))
    if matrix.shape != expected:
        raise InvalidPredictionsError(
            f"probabilities have shape {matrix.shape} but must be {expected}: one row per sample "
            f"and one column per class in {list(class_names)}"
        )
    bad_rows = ~np.isfinite(matrix).all(axis=1)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        raise InvalidPredictionsError(
            f"probabilities row {row} contains a missing or infinite value; every row needs a "
            "probability for every class"
        )
    out_of_range = (matrix < -PROBABILITY_RANGE_TOLERANCE) | (
        matrix > 1 + PROBABILITY_RANGE_TOLERANCE
    )
    if out_of_range.any():
        row, column = (int(index) for index in np.argwhere(out_of_range)[0])
        raise InvalidPredictionsError(
            f"probabilities row {row} has {_plain(matrix[row, column])!r} for class {class_names[column]!r}, "
            "outside [0, 1]; pass probabilities (for example a softmax), not logits"
        )
    sums = matrix.sum(axis=1)
    off = np.abs(sums - 1.0) > PROBABILITY_SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise InvalidPredictionsError(
            f"probabilities row {row} sums to {sums[row]:.6g}, not 1 (tolerance "
            f"{PROBABILITY_SUM_TOLERANCE:g}); pass one probability per class for every sample"
        )
    return np.clip(matrix, 0.0, 1.0)


def positive_class_index(class_names: Sequence[str], positive_class: str | None) -> int | None:
    """Return the column of ``positive_class``, or ``None`` when it is not given.

    Raises
    ------
    InvalidPredictionsError
        When ``positive_class`` is not one of ``class_names`` or there are more than two classes.
    """
    if positive_class is None:
        return None
    if positive_class not in class_names:
        raise InvalidPredictionsError(
            f"positive_class {positive_class!r} is not one of the classes {list(class_names)}"
        )
    if len(class_names) != 2:
        raise InvalidPredictionsError(
            f"positive_class is only valid for two classes, but {len(class_names)} were given "
            f"({list(class_names)}); leave it unset to use the argmax rule"
        )
    return list(class_names).index(positive_class)


def _one_vs_rest(
    labels: NDArray[np.intp],
    probabilities: NDArray[np.float64],
    class_names: Sequence[str],
    positive_index: int | None,
) -> tuple[pd.DataFrame, list[str]]:
    """Compute the one-vs-rest table and the reasons for undefined values, without warning."""
    predicted = apply_decision_rule(probabilities, positive_index)
    indices = range(len(class_names)) if positive_index is None else [positive_index]
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    for index in indices:
        name = class_names[index]
        values, undefined = _binary_metrics(
            labels == index, predicted == index, probabilities[:, index]
        )
        rows.append({"class": name, **values})
        reasons.extend(f"class {name!r}: {reason}" for reason in undefined)
    return _with_integer_counts(pd.DataFrame(rows, columns=["class", *METRIC_KEYS])), reasons


def _binary_metrics(
    truth: NDArray[np.bool_], predicted: NDArray[np.bool_], scores: NDArray[np.float64]
) -> tuple[dict[str, float], list[str]]:
    """Compute every metric of :data:`METRIC_KEYS` and list why each undefined one is ``nan``."""
    tp = int(np.sum(truth & predicted))
    fp = int(np.sum(~truth & predicted))
    tn = int(np.sum(~truth & ~predicted))
    fn = int(np.sum(truth & ~predicted))
    reasons: list[str] = []

    def ratio(numerator: int, denominator: int, name: str, reason: str) -> float:
        if denominator == 0:
            reasons.append(f"{name} is undefined because {reason}")
            return math.nan
        return numerator / denominator

    values: dict[str, float] = {}
    n_positive = tp + fn
    n_negative = tn + fp
    if n_positive == 0 or n_negative == 0:
        present = "positive" if n_negative == 0 else "negative"
        reasons.append(f"AUC is undefined because all {len(truth)} samples are {present}")
        values["auc"] = math.nan
    else:
        values["auc"] = float(roc_auc_score(truth, scores))
    values["sensitivity"] = ratio(tp, n_positive, "sensitivity", "there are no positives (TP+FN=0)")
    values["specificity"] = ratio(tn, n_negative, "specificity", "there are no negatives (TN+FP=0)")
    values["accuracy"] = ratio(tp + tn, len(truth), "accuracy", "there are no samples")
    values["ppv"] = ratio(tp, tp + fp, "PPV", "nothing is predicted positive (TP+FP=0)")
    values["npv"] = ratio(tn, tn + fn, "NPV", "nothing is predicted negative (TN+FN=0)")
    # Float products avoid integer overflow for large cohorts; the margins are counts.
    margins = (tp + fp, tp + fn, tn + fp, tn + fn)
    if 0 in margins:
        reasons.append(
            "MCC is undefined because a margin of the confusion matrix is zero "
            f"(TP+FP={margins[0]}, TP+FN={margins[1]}, TN+FP={margins[2]}, TN+FN={margins[3]})"
        )
        values["mcc"] = math.nan
    else:
        denominator = math.sqrt(float(margins[0]) * margins[1] * margins[2] * margins[3])
        values["mcc"] = (float(tp) * tn - float(fp) * fn) / denominator
    values.update(
        tp=float(tp),
        fp=float(fp),
        tn=float(tn),
        fn=float(fn),
        n_positive=float(n_positive),
        n_negative=float(n_negative),
    )
    return {key: values[key] for key in METRIC_KEYS}, reasons


def _with_integer_counts(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype({column: np.int64 for column in COUNT_METRICS})


def _roc_frame(truth: NDArray[np.bool_], scores: NDArray[np.float64]) -> pd.DataFrame:
    if truth.all() or not truth.any():
        return pd.DataFrame({"fpr": [], "tpr": [], "threshold": []}, dtype=float)
    fpr, tpr, thresholds = roc_curve(truth, scores)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds.astype(float)})


def _warn_undefined(reasons: Sequence[str]) -> None:
    if not reasons:
        return
    warnings.warn(
        "; ".join(reasons) + "; these values are reported as nan",
        UndefinedMetricWarning,
        stacklevel=3,
    )


def _one_dimensional(values: ArrayLike, argument: str) -> NDArray[Any]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidPredictionsError(
            f"{argument} has shape {array.shape} but must be one-dimensional (n_samples,)"
        )
    if array.size == 0:
        raise InvalidPredictionsError(f"{argument} is empty; metrics need at least one sample")
    return array


def _as_float(values: NDArray[Any], argument: str) -> NDArray[np.float64]:
    if values.dtype == np.bool_:
        return values.astype(np.float64)
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidPredictionsError(
            f"{argument} contains non-numeric values (dtype {values.dtype}); pass numbers"
        ) from err


def _binary_labels(y_true: ArrayLike, argument: str) -> NDArray[np.bool_]:
    values = _one_dimensional(y_true, argument)
    numeric = _as_float(values, argument)
    bad = ~np.isin(numeric, (0.0, 1.0))
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise InvalidPredictionsError(
            f"{argument} contains {_plain(values[position])!r} at position {position}; binary labels must be "
            "0 (negative) or 1 (positive)"
        )
    return numeric == 1.0


def _score_vector(y_score: ArrayLike, n_samples: int, argument: str) -> NDArray[np.float64]:
    scores = _as_float(_one_dimensional(y_score, argument), argument)
    if len(scores) != n_samples:
        raise InvalidPredictionsError(
            f"{argument} has {len(scores)} values but y_true has {n_samples}; pass one score per sample"
        )
    bad = ~np.isfinite(scores)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise InvalidPredictionsError(
            f"{argument} contains {_plain(scores[position])!r} at position {position}; scores must be finite"
        )
    return scores


def _finite_threshold(threshold: float) -> float:
    value = float(threshold)
    if not math.isfinite(value):
        raise InvalidPredictionsError(f"threshold {threshold!r} is not a finite number")
    return value


def _plain(value: Any) -> Any:
    """Return a numpy scalar as the Python scalar, so messages show ``2`` rather than ``np.int64(2)``."""
    return value.item() if isinstance(value, np.generic) else value
