"""Summaries over folds and repeats on synthetic predictions frames."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from ictcf.evaluation.metrics import (
    RATE_METRICS,
    InvalidPredictionsError,
    UndefinedMetricWarning,
    one_vs_rest_metrics,
)
from ictcf.evaluation.report import format_summary_cell
from ictcf.evaluation.summary import (
    SUMMARY_COLUMNS,
    TASK_CLASS_NAMES,
    EvaluationSummary,
    evaluate_predictions,
    summarise_values,
)
from tests.evaluation.synthetic import description, make_predictions

MORBIDITY = list(TASK_CLASS_NAMES["morbidity"])
MORTALITY = list(TASK_CLASS_NAMES["mortality"])
PROBABILITY_COLUMNS = [f"prob_{name}" for name in MORBIDITY]


def evaluate_morbidity(frame: pd.DataFrame) -> EvaluationSummary:
    return evaluate_predictions(
        frame, task="morbidity", class_names=MORBIDITY, description=description()
    )


def test_per_repeat_and_per_fold_match_direct_metrics() -> None:
    frame = make_predictions(n_repeats=3, n_folds=5, n_patients=100)

    summary = evaluate_morbidity(frame)

    assert summary.n_repeats == 3
    assert summary.n_folds == 5
    assert summary.n_patients == 100
    assert len(summary.per_repeat) == 3 * 3
    assert len(summary.per_fold) == 3 * 5 * 3
    for repeat in range(3):
        rows = frame[frame["repeat"] == repeat]
        expected = one_vs_rest_metrics(
            rows["y_true"], rows[PROBABILITY_COLUMNS].to_numpy(), MORBIDITY
        )
        actual = summary.per_repeat[summary.per_repeat["repeat"] == repeat].reset_index(drop=True)
        pd.testing.assert_frame_equal(actual.drop(columns="repeat"), expected)
    rows = frame[(frame["repeat"] == 2) & (frame["fold"] == 4)]
    expected = one_vs_rest_metrics(rows["y_true"], rows[PROBABILITY_COLUMNS].to_numpy(), MORBIDITY)
    actual = summary.per_fold[(summary.per_fold["repeat"] == 2) & (summary.per_fold["fold"] == 4)]
    assert list(actual["fold_label"].unique()) == ["fold 4"]
    assert list(actual["n_patients"].unique()) == [20]
    np.testing.assert_allclose(actual["auc"], expected["auc"])


def test_summary_mean_and_t_interval_below_five_repeats() -> None:
    summary = evaluate_morbidity(make_predictions(n_repeats=3))

    assert list(summary.summary.columns) == list(SUMMARY_COLUMNS)
    assert len(summary.summary) == 3 * len(RATE_METRICS)
    values = summary.per_repeat.loc[summary.per_repeat["class"] == "type_i", "auc"].to_numpy()
    row = summary.summary_row("type_i", "auc")
    assert row is not None
    half_width = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
    assert row["mean"] == pytest.approx(values.mean())
    assert row["ci_low"] == pytest.approx(values.mean() - half_width)
    assert row["ci_high"] == pytest.approx(min(1.0, values.mean() + half_width))
    assert row["interval_method"] == "t"
    assert row["over"] == "repeats"
    assert row["n_defined"] == 3
    assert row["n_undefined"] == 0


def test_summary_percentile_interval_from_five_repeats() -> None:
    summary = evaluate_morbidity(make_predictions(n_repeats=6, n_patients=150))

    values = summary.per_repeat.loc[summary.per_repeat["class"] == "control", "mcc"].to_numpy()
    row = summary.summary_row("control", "mcc")
    assert row is not None
    assert row["interval_method"] == "percentile"
    assert row["ci_low"] == pytest.approx(np.percentile(values, 2.5))
    assert row["ci_high"] == pytest.approx(np.percentile(values, 97.5))
    assert row["mean"] == pytest.approx(values.mean())


def test_single_repeat_interval_is_over_folds() -> None:
    frame = make_predictions("mortality", n_repeats=1, n_folds=5, n_patients=100)

    summary = evaluate_predictions(
        frame,
        task="mortality",
        class_names=MORTALITY,
        positive_class="deceased",
        description=description(),
    )

    assert summary.interval_over == "folds"
    assert summary.reported_classes == ("deceased",)
    row = summary.summary_row("deceased", "auc")
    assert row is not None
    assert row["over"] == "folds"
    assert row["n_defined"] == 5
    assert row["mean"] == pytest.approx(summary.per_fold["auc"].mean())
    assert set(summary.per_repeat["class"]) == {"deceased"}


def test_mortality_confusion_uses_threshold_rule() -> None:
    frame = make_predictions("mortality", n_repeats=2, n_patients=50)

    summary = evaluate_predictions(
        frame,
        task="mortality",
        class_names=MORTALITY,
        positive_class="deceased",
        description=description(),
    )

    predicted = (frame["prob_deceased"] >= 0.5).astype(int)
    expected = pd.crosstab(frame["y_true"], predicted).to_numpy()
    np.testing.assert_array_equal(summary.confusion.to_numpy(), expected)
    assert list(summary.confusion.index) == MORTALITY
    assert summary.confusion.index.name == "true"
    assert summary.confusion.columns.name == "predicted"
    assert summary.decision_rule == "predicted 'deceased' when its probability is >= 0.5"


def test_confusion_sums_over_repeats() -> None:
    frame = make_predictions(n_repeats=3, n_patients=100)

    summary = evaluate_morbidity(frame)

    assert int(summary.confusion.to_numpy().sum()) == 300
    predicted = frame[PROBABILITY_COLUMNS].to_numpy().argmax(axis=1)
    expected = skm.confusion_matrix(frame["y_true"], predicted, labels=[0, 1, 2])
    np.testing.assert_array_equal(summary.confusion.to_numpy(), expected)


def test_pooled_roc_and_auc_match_sklearn() -> None:
    frame = make_predictions(n_repeats=2)

    summary = evaluate_morbidity(frame)

    truth = frame["y_true"] == 2
    fpr, tpr, _ = skm.roc_curve(truth, frame["prob_type_ii"])
    np.testing.assert_allclose(summary.roc["type_ii"]["fpr"], fpr)
    np.testing.assert_allclose(summary.roc["type_ii"]["tpr"], tpr)
    assert summary.pooled_auc["type_ii"] == pytest.approx(
        skm.roc_auc_score(truth, frame["prob_type_ii"])
    )
    assert set(summary.roc_per_repeat["type_ii"]["repeat"]) == {0, 1}


def test_undefined_repeat_values_are_counted_and_excluded() -> None:
    frame = make_predictions(n_repeats=4, n_patients=60)
    # In repeat 1 no patient gets type_ii as the most probable class, so its PPV is undefined.
    in_repeat = frame["repeat"] == 1
    first_half = in_repeat & (frame["patient_id"] <= 30)
    second_half = in_repeat & (frame["patient_id"] > 30)
    frame.loc[in_repeat, "prob_type_ii"] = 0.0
    frame.loc[first_half, ["prob_control", "prob_type_i"]] = [0.6, 0.4]
    frame.loc[second_half, ["prob_control", "prob_type_i"]] = [0.4, 0.6]

    with pytest.warns(
        UndefinedMetricWarning,
        match=r"morbidity cv: per-repeat values undefined of 12 rows: ppv 1, mcc 1;",
    ):
        summary = evaluate_morbidity(frame)

    row = summary.summary_row("type_ii", "ppv")
    assert row is not None
    assert row["n_defined"] == 3
    assert row["n_undefined"] == 1
    defined = summary.per_repeat.loc[
        (summary.per_repeat["class"] == "type_ii") & (summary.per_repeat["repeat"] != 1), "ppv"
    ]
    assert row["mean"] == pytest.approx(defined.mean())
    assert not math.isnan(row["mean"])


def test_class_absent_from_folds_gives_undefined_fold_auc() -> None:
    # Two classes present only: "control" never occurs, as in a fold of one hospital.
    frame = make_predictions(n_repeats=1, n_folds=3, n_patients=30)
    frame["y_true"] = np.where(frame["y_true"] == 0, 1, frame["y_true"])

    with pytest.warns(UndefinedMetricWarning, match="auc 3"):
        summary = evaluate_morbidity(frame)

    row = summary.summary_row("control", "auc")
    assert row is not None
    assert row["n_defined"] == 0
    assert row["n_undefined"] == 3
    assert math.isnan(row["mean"])
    assert row["interval_method"] == "undefined"
    assert summary.roc["control"].empty
    assert math.isnan(summary.pooled_auc["control"])
    assert summary.class_counts["control"] == 0


def test_summarise_values_edge_cases() -> None:
    undefined = summarise_values([math.nan, math.nan], "auc")
    single = summarise_values([0.8, math.nan], "auc")
    clipped = summarise_values([0.99, 1.0, 0.97], "auc")

    assert math.isnan(undefined["mean"])
    assert undefined["n_undefined"] == 2
    assert single["mean"] == pytest.approx(0.8)
    assert single["interval_method"] == "none"
    assert math.isnan(single["ci_low"])
    assert clipped["ci_high"] == 1.0
    assert clipped["ci_low"] < clipped["mean"]


def test_to_dict_is_strict_json() -> None:
    frame = make_predictions(n_repeats=1, n_folds=3, n_patients=30)
    frame["y_true"] = np.where(frame["y_true"] == 0, 1, frame["y_true"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        summary = evaluate_morbidity(frame)

    document = json.loads(json.dumps(summary.to_dict(), allow_nan=False))

    assert document["task"] == "morbidity"
    assert document["description"]["split"] == "stratified 5-fold CV by patient, seed 0"
    control_auc = [
        row for row in document["summary"] if row["class"] == "control" and row["metric"] == "auc"
    ]
    assert control_auc[0]["mean"] is None
    assert document["roc"]["type_i"]["threshold"][0] is None
    assert document["confusion"]["counts"][0] == [0, 0, 0]
    assert isinstance(document["per_fold"][0]["tp"], int)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop(columns="prob_type_i"), r"missing the columns \['prob_type_i'\]"),
        (lambda frame: frame.drop(columns="fold_label"), r"missing the columns \['fold_label'\]"),
        (
            lambda frame: frame.assign(task=["morbidity", "mortality"] * (len(frame) // 2)),
            "contains the tasks",
        ),
        (
            lambda frame: frame.assign(evaluation=["cv", "loho"] * (len(frame) // 2)),
            "mixes the evaluation kinds",
        ),
        (lambda frame: frame.assign(evaluation="holdout"), "evaluation 'holdout' is not one of"),
        (
            lambda frame: pd.concat([frame, frame.iloc[[0]]]),
            "patient 1 appears more than once in repeat 0",
        ),
        (lambda frame: frame.assign(repeat=-1), r"column repeat has -1 in row 0"),
        (lambda frame: frame.assign(y_true=5), r"column y_true contains 5 at position 0"),
        (lambda frame: frame.iloc[0:0], "no rows"),
    ],
)
def test_evaluate_predictions_rejects_invalid_frames(
    change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    frame = change(make_predictions(n_repeats=1, n_patients=20))

    with pytest.raises(InvalidPredictionsError, match=message):
        evaluate_morbidity(frame)


def test_evaluate_predictions_requires_data_and_split() -> None:
    frame = make_predictions(n_repeats=1, n_patients=20)

    with pytest.raises(
        InvalidPredictionsError, match=r"description\['split'\] is missing or empty"
    ):
        evaluate_predictions(
            frame, task="morbidity", class_names=MORBIDITY, description={"data": "x"}
        )


def test_evaluate_predictions_rejects_wrong_task_classes() -> None:
    frame = make_predictions(n_repeats=1, n_patients=20)

    with pytest.raises(InvalidPredictionsError, match="do not match the morbidity task's classes"):
        evaluate_predictions(
            frame,
            task="morbidity",
            class_names=["type_ii", "type_i", "control"],
            description=description(),
        )


def test_loho_fold_labels_are_kept() -> None:
    frame = make_predictions(n_repeats=1, n_folds=2, n_patients=40, evaluation="loho")
    frame["fold_label"] = np.where(frame["fold"] == 0, "test=Liyuan", "test=Union")

    summary = evaluate_morbidity(frame)

    assert summary.evaluation == "loho"
    assert summary.evaluation_label == "leave-one-hospital-out"
    assert set(summary.per_fold["fold_label"]) == {"test=Liyuan", "test=Union"}
    row = summary.summary_row("type_i", "auc")
    assert row is not None
    assert row["interval_method"] == "none"
    assert row["over"] == "hospitals"
    assert summary.interval_over == "hospitals"


def test_two_values_give_no_interval() -> None:
    # A t interval from two values spans nearly the whole range ("0.847 (0.000-1.000)").
    row = summarise_values([0.80, 0.894], "auc")
    assert row["mean"] == pytest.approx(0.847)
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert row["interval_method"] == "none"
    three = summarise_values([0.80, 0.894, 0.85], "auc")
    assert three["interval_method"] == "t"


def test_loho_cell_shows_na() -> None:
    frame = make_predictions(n_repeats=1, n_folds=2, n_patients=40, evaluation="loho")
    frame["fold_label"] = np.where(frame["fold"] == 0, "test=Liyuan", "test=Union")
    summary = evaluate_morbidity(frame)
    row = summary.summary_row("type_i", "auc")
    assert row is not None

    cell = format_summary_cell(row, "auc")

    assert cell.endswith("(n/a: 2 hospitals)")
    assert "0.000" not in cell
    assert format_summary_cell({**row, "n_defined": 1}, "auc").endswith("(n/a: 1 hospital)")


def test_model_defaults_to_network() -> None:
    summary = evaluate_morbidity(make_predictions("morbidity", n_repeats=2, seed=4))
    assert summary.model == "network"
    assert summary.to_dict()["model"] == "network"
    assert "the paper's model" in summary.to_dict()["model_label"]


def test_model_taken_from_model_column() -> None:
    frame = make_predictions("morbidity", n_repeats=2, seed=4).assign(model="gradient-boosting")
    summary = evaluate_morbidity(frame)
    assert summary.model == "gradient-boosting"
    assert summary.to_dict()["model"] == "gradient-boosting"
    assert summary.model_label == "gradient boosting (comparison model)"


def test_model_argument_without_column() -> None:
    summary = evaluate_predictions(
        make_predictions("mortality", n_repeats=2, seed=4),
        task="mortality",
        class_names=MORTALITY,
        positive_class="deceased",
        description=description(),
        model="logistic",
    )
    assert summary.model == "logistic"


def test_mixed_or_mismatched_models_rejected() -> None:
    frame = make_predictions("morbidity", n_repeats=2, seed=4)
    mixed = frame.assign(model=np.where(frame["repeat"] == 0, "network", "logistic"))
    with pytest.raises(InvalidPredictionsError, match=r"mixes the model kinds \['logistic', 'net"):
        evaluate_morbidity(mixed)
    with pytest.raises(
        InvalidPredictionsError, match="contains predictions of the 'network' model"
    ):
        evaluate_predictions(
            frame.assign(model="network"),
            task="morbidity",
            class_names=MORBIDITY,
            description=description(),
            model="logistic",
        )
