"""Metrics against scikit-learn and against slow, obviously correct reference implementations."""

from __future__ import annotations

import math
import warnings
from itertools import product

import numpy as np
import pytest
from sklearn import metrics as skm

from ictcf.evaluation.metrics import (
    METRIC_KEYS,
    InvalidPredictionsError,
    UndefinedMetricWarning,
    binary_metrics,
    one_vs_rest_metrics,
    per_outcome_metrics,
    roc_points,
)

MORBIDITY = ["control", "type_i", "type_ii"]


def reference_auc(y_true: list[int], scores: list[float]) -> float:
    """Mann–Whitney AUC: the share of (positive, negative) pairs ranked correctly, ties 1/2."""
    positives = [score for label, score in zip(y_true, scores, strict=True) if label == 1]
    negatives = [score for label, score in zip(y_true, scores, strict=True) if label == 0]
    if not positives or not negatives:
        return math.nan
    total = 0.0
    for positive, negative in product(positives, negatives):
        if positive > negative:
            total += 1.0
        elif positive == negative:
            total += 0.5
    return total / (len(positives) * len(negatives))


def reference_metrics(y_true: list[int], predicted: list[int]) -> dict[str, float]:
    """The formulas of Ning et al. 2020, counted one sample at a time."""
    tp = fp = tn = fn = 0
    for label, guess in zip(y_true, predicted, strict=True):
        if label == 1 and guess == 1:
            tp += 1
        elif label == 0 and guess == 1:
            fp += 1
        elif label == 0 and guess == 0:
            tn += 1
        else:
            fn += 1

    def divide(numerator: float, denominator: float) -> float:
        return numerator / denominator if denominator else math.nan

    mcc_denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "sensitivity": divide(tp, tp + fn),
        "specificity": divide(tn, tn + fp),
        "accuracy": divide(tp + tn, tp + tn + fp + fn),
        "ppv": divide(tp, tp + fp),
        "npv": divide(tn, tn + fn),
        "mcc": divide(tp * tn - fp * fn, mcc_denominator),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def assert_same(actual: float, expected: float, name: str) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), f"{name}: expected nan, got {actual}"
    else:
        assert actual == pytest.approx(expected, abs=1e-12), name


def test_binary_metrics_hand_made_case() -> None:
    values = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])

    assert values["auc"] == pytest.approx(0.75)
    assert values["tp"] == 1
    assert values["fn"] == 1
    assert values["tn"] == 2
    assert values["fp"] == 0
    assert values["sensitivity"] == pytest.approx(0.5)
    assert values["specificity"] == pytest.approx(1.0)
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["ppv"] == pytest.approx(1.0)
    assert values["npv"] == pytest.approx(2 / 3)
    assert values["mcc"] == pytest.approx(2 / math.sqrt(12))
    assert values["n_positive"] == 2
    assert values["n_negative"] == 2
    assert list(values) == list(METRIC_KEYS)


def test_binary_metrics_random_cases_match_references() -> None:
    rng = np.random.default_rng(20200826)
    checked_defined = 0
    for case in range(100):
        n = int(rng.integers(1, 30))
        y_true = rng.integers(0, 2, size=n).tolist()
        # Rounding to one decimal creates many tied scores.
        scores = np.round(rng.random(n), 1).tolist()
        threshold = float(rng.choice([0.3, 0.5, 0.7]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            values = binary_metrics(y_true, scores, threshold=threshold)
        predicted = [int(score >= threshold) for score in scores]
        expected = reference_metrics(y_true, predicted)
        for name, value in expected.items():
            assert_same(values[name], value, f"case {case} {name}")
        assert_same(values["auc"], reference_auc(y_true, scores), f"case {case} auc")

        both_classes = 0 < sum(y_true) < n
        if both_classes:
            checked_defined += 1
            assert values["auc"] == pytest.approx(skm.roc_auc_score(y_true, scores))
            assert values["sensitivity"] == pytest.approx(skm.recall_score(y_true, predicted))
            assert values["accuracy"] == pytest.approx(skm.accuracy_score(y_true, predicted))
            if not math.isnan(values["mcc"]):
                assert values["mcc"] == pytest.approx(skm.matthews_corrcoef(y_true, predicted))
            if not math.isnan(values["ppv"]):
                assert values["ppv"] == pytest.approx(
                    skm.precision_score(y_true, predicted, zero_division=np.nan)
                )
    assert checked_defined > 60


def test_binary_metrics_tied_scores() -> None:
    with pytest.warns(UndefinedMetricWarning, match="NPV is undefined"):
        values = binary_metrics([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])

    assert values["auc"] == pytest.approx(0.5)
    assert values["auc"] == pytest.approx(skm.roc_auc_score([0, 1, 0, 1], [0.5] * 4))
    # Every score equals the threshold, so every sample is predicted positive.
    assert values["tp"] == 2
    assert values["fp"] == 2


def test_binary_metrics_score_at_threshold_is_positive() -> None:
    values = binary_metrics([1, 0], [0.5, 0.4999], threshold=0.5)

    assert values["tp"] == 1
    assert values["tn"] == 1


def test_binary_metrics_single_class() -> None:
    with pytest.warns(
        UndefinedMetricWarning, match="AUC is undefined because all 4 samples are positive"
    ):
        values = binary_metrics([1, 1, 1, 1], [0.2, 0.6, 0.7, 0.9])

    assert math.isnan(values["auc"])
    assert math.isnan(values["specificity"])
    assert math.isnan(values["mcc"])
    assert values["sensitivity"] == pytest.approx(0.75)
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["ppv"] == pytest.approx(1.0)


def test_binary_metrics_no_predicted_positive_gives_nan_ppv() -> None:
    with pytest.warns(
        UndefinedMetricWarning, match=r"PPV is undefined because nothing is predicted positive"
    ):
        values = binary_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4])

    assert math.isnan(values["ppv"])
    assert math.isnan(values["mcc"])
    assert values["sensitivity"] == 0.0
    assert values["specificity"] == 1.0
    assert values["npv"] == pytest.approx(0.5)
    assert values["auc"] == pytest.approx(0.75)


def test_binary_metrics_defined_case_raises_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        binary_metrics([0, 1, 0, 1], [0.1, 0.9, 0.6, 0.4])


@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        ([0, 2, 1], [0.1, 0.2, 0.3], r"y_true contains 2 at position 1; binary labels must be 0"),
        ([0, 1], [0.1, 0.2, 0.3], r"y_score has 3 values but y_true has 2"),
        ([0, 1], [0.1, float("nan")], r"y_score contains nan at position 1"),
        ([], [], r"y_true is empty"),
        ([[0, 1]], [[0.1, 0.2]], r"y_true has shape \(1, 2\) but must be one-dimensional"),
        (["a", "b"], [0.1, 0.2], r"y_true contains non-numeric values"),
    ],
)
def test_binary_metrics_rejects_invalid_input(y_true: list, y_score: list, message: str) -> None:
    with pytest.raises(InvalidPredictionsError, match=message):
        binary_metrics(y_true, y_score)


def test_invalid_predictions_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="threshold"):
        binary_metrics([0, 1], [0.1, 0.9], threshold=float("inf"))


def test_one_vs_rest_matches_sklearn_per_class() -> None:
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 3, size=200)
    logits = rng.normal(size=(200, 3))
    logits[np.arange(200), y_true] += 1.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    table = one_vs_rest_metrics(y_true, probabilities, MORBIDITY)

    predicted = probabilities.argmax(axis=1)
    confusion = skm.confusion_matrix(y_true, predicted)
    assert list(table["class"]) == MORBIDITY
    for index, row in table.iterrows():
        truth = (y_true == index).astype(int)
        guess = (predicted == index).astype(int)
        assert row["auc"] == pytest.approx(skm.roc_auc_score(truth, probabilities[:, index]))
        assert row["auc"] == pytest.approx(
            reference_auc(truth.tolist(), probabilities[:, index].tolist())
        )
        assert row["tp"] == confusion[index, index]
        assert row["fn"] == confusion[index].sum() - confusion[index, index]
        assert row["fp"] == confusion[:, index].sum() - confusion[index, index]
        assert row["sensitivity"] == pytest.approx(skm.recall_score(truth, guess))
        assert row["ppv"] == pytest.approx(skm.precision_score(truth, guess))
        assert row["mcc"] == pytest.approx(skm.matthews_corrcoef(truth, guess))
        assert row["accuracy"] == pytest.approx(skm.accuracy_score(truth, guess))


def test_one_vs_rest_counts_are_integers() -> None:
    table = one_vs_rest_metrics([0, 1, 2], np.eye(3), MORBIDITY)

    for column in ("tp", "fp", "tn", "fn", "n_positive", "n_negative"):
        assert table[column].dtype == np.int64


def test_one_vs_rest_positive_class_uses_threshold() -> None:
    # Row 0 ties at 0.5: the argmax rule picks "cured", the 0.5 rule picks "deceased".
    probabilities = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y_true = [1, 0, 1, 1]

    binary = one_vs_rest_metrics(
        y_true, probabilities, ["cured", "deceased"], positive_class="deceased"
    )
    both = one_vs_rest_metrics(y_true, probabilities, ["cured", "deceased"])

    assert list(binary["class"]) == ["deceased"]
    assert binary.loc[0, "tp"] == 2
    assert binary.loc[0, "fn"] == 1
    deceased = both[both["class"] == "deceased"].iloc[0]
    assert deceased["tp"] == 1
    assert binary.loc[0, "auc"] == pytest.approx(deceased["auc"])


def test_one_vs_rest_absent_class() -> None:
    # Labels [1, 2] with 2x3 softmax rows: class 0 ("control") is absent.
    probabilities = np.array([[0.2, 0.5, 0.3], [0.1, 0.3, 0.6]])

    with pytest.warns(UndefinedMetricWarning, match=r"class 'control': AUC is undefined") as record:
        table = one_vs_rest_metrics([1, 2], probabilities, MORBIDITY)

    assert len(record) == 1
    control = table[table["class"] == "control"].iloc[0]
    assert math.isnan(control["auc"])
    assert math.isnan(control["sensitivity"])
    assert control["specificity"] == pytest.approx(1.0)
    type_i = table[table["class"] == "type_i"].iloc[0]
    assert type_i["auc"] == pytest.approx(1.0)
    type_ii = table[table["class"] == "type_ii"].iloc[0]
    assert type_ii["auc"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("probabilities", "class_names", "positive_class", "message"),
    [
        ([[0.5, 0.6, 0.1], [0.2, 0.2, 0.6]], MORBIDITY, None, r"row 0 sums to 1\.2, not 1"),
        (
            [[1.2, -0.2, 0.0], [0.2, 0.2, 0.6]],
            MORBIDITY,
            None,
            r"row 0 has 1\.2 for class 'control', outside \[0, 1\]",
        ),
        ([[0.5, 0.5], [0.2, 0.8]], MORBIDITY, None, r"shape \(2, 2\) but must be \(2, 3\)"),
        (
            [[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]],
            MORBIDITY,
            "type_i",
            "positive_class is only valid for two classes",
        ),
        (
            [[0.5, 0.5], [0.2, 0.8]],
            ["cured", "deceased"],
            "dead",
            "positive_class 'dead' is not one of",
        ),
        ([[float("nan"), 0.5, 0.5], [0.2, 0.2, 0.6]], MORBIDITY, None, "row 0 contains a missing"),
        ([[0.5, 0.5], [0.2, 0.8]], ["cured", "cured"], None, r"repeats \['cured'\]"),
    ],
)
def test_one_vs_rest_rejects_invalid_probabilities(
    probabilities: list, class_names: list[str], positive_class: str | None, message: str
) -> None:
    y_true = [0, 1]
    with pytest.raises(InvalidPredictionsError, match=message):
        one_vs_rest_metrics(y_true, probabilities, class_names, positive_class=positive_class)


def test_one_vs_rest_rejects_label_outside_classes() -> None:
    with pytest.raises(
        InvalidPredictionsError,
        match=r"contains 3 at position 1, which is not a class index 0\.\.2",
    ):
        one_vs_rest_metrics([0, 3], np.full((2, 3), 1 / 3), MORBIDITY)


def test_per_outcome_metrics_degenerate_column_only() -> None:
    # Columns are outcomes (for example ICU and death); column 1 has no positive at all.
    y_true = np.array([[1, 0, 0, 1], [0, 0, 1, 1], [0, 0, 0, 0]])
    y_pred = np.array([[0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])

    with pytest.warns(UndefinedMetricWarning, match=r"outcome 'b': AUC is undefined") as record:
        table = per_outcome_metrics(y_true, y_pred, ["a", "b", "c", "d"])

    assert len(record) == 1
    auc = dict(zip(table["outcome"], table["auc"], strict=True))
    assert auc["a"] == pytest.approx(0.5)
    assert math.isnan(auc["b"])
    assert auc["c"] == pytest.approx(1.0)
    assert auc["d"] == pytest.approx(0.75)
    for column in range(4):
        if column == 1:
            continue
        expected = skm.roc_auc_score(y_true[:, column], y_pred[:, column])
        assert table.loc[column, "auc"] == pytest.approx(expected)


def test_per_outcome_metrics_rejects_shape_mismatch() -> None:
    with pytest.raises(
        InvalidPredictionsError, match=r"y_score has shape \(3, 2\) but y_true has shape \(3, 4\)"
    ):
        per_outcome_metrics(np.zeros((3, 4)), np.zeros((3, 2)), ["a", "b", "c", "d"])


def test_roc_points_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, size=60)
    scores = np.round(rng.random(60), 2)

    curve = roc_points(y_true, scores)

    fpr, tpr, thresholds = skm.roc_curve(y_true, scores)
    np.testing.assert_allclose(curve["fpr"], fpr)
    np.testing.assert_allclose(curve["tpr"], tpr)
    np.testing.assert_allclose(curve["threshold"], thresholds)
    assert np.trapezoid(curve["tpr"], curve["fpr"]) == pytest.approx(
        skm.roc_auc_score(y_true, scores)
    )


def test_roc_points_single_class_is_empty() -> None:
    curve = roc_points([1, 1, 1], [0.2, 0.4, 0.9])

    assert curve.empty
    assert list(curve.columns) == ["fpr", "tpr", "threshold"]
