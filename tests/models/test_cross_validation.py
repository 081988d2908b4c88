"""Patient-level cross-validation, leave-one-hospital-out and independent predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ictcf.errors import InputError
from ictcf.evaluation import cross_validation
from ictcf.evaluation.cross_validation import (
    PREDICTION_COLUMNS,
    cross_validate,
    independent_predictions,
    leave_one_hospital_out,
    stratified_folds,
)
from ictcf.features import NormalisationPolicy, select_features
from ictcf.models import (
    MORBIDITY,
    MORTALITY,
    CFNetworkConfig,
    GradientBoostingConfig,
    LogisticConfig,
    fit_cf_model,
)
from ictcf.models.cf_model import CFModel
from tests.models.synthetic import measurement_row, synthetic_frames

FAST = CFNetworkConfig(max_epochs=30, patience=5, batch_size=64)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return synthetic_frames(160, seed=11)


def test_folds_partition_patients() -> None:
    labels = np.repeat([0, 1, 2], [30, 20, 12])
    splits = stratified_folds(labels, folds=5, seed=3)
    tested = np.concatenate([test for _train, test in splits])
    assert sorted(tested.tolist()) == list(range(len(labels)))
    for train, test in splits:
        assert not set(train) & set(test)
        assert len(train) + len(test) == len(labels)
        assert np.bincount(labels[test], minlength=3).min() >= 2


def test_too_many_folds_rejected() -> None:
    labels = np.repeat([0, 1], [30, 4])
    with pytest.raises(InputError, match="smallest class has 4 patients, fewer than the 5 folds"):
        stratified_folds(labels, folds=5, seed=0)


def test_cv_frame_layout(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    predictions = cross_validate(
        patients, measurements, MORBIDITY, folds=4, repeats=2, seed=1, config=FAST
    )
    assert list(predictions.columns) == [*PREDICTION_COLUMNS, *MORBIDITY.probability_columns]
    labelled = patients[patients["morbidity_type"] != "suspected"]
    assert len(predictions) == 2 * len(labelled)
    for _repeat, group in predictions.groupby("repeat"):
        assert group["patient_id"].is_unique
        assert set(group["patient_id"]) == set(labelled["patient_id"])
        assert sorted(group["fold"].unique()) == [0, 1, 2, 3]
    probabilities = predictions[MORBIDITY.probability_columns].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert set(predictions["evaluation"]) == {"cv"}
    assert set(predictions["task"]) == {"morbidity"}
    truth = labelled.set_index("patient_id")["morbidity_type"]
    expected = truth.loc[predictions["patient_id"]].map(
        {name: index for index, name in enumerate(MORBIDITY.class_names)}
    )
    np.testing.assert_array_equal(predictions["y_true"], expected)


def test_repeats_shuffle_differently(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    predictions = cross_validate(
        patients, measurements, MORTALITY, folds=3, repeats=2, seed=0, config=FAST
    )
    first = predictions[predictions["repeat"] == 0].set_index("patient_id")["fold"]
    second = predictions[predictions["repeat"] == 1].set_index("patient_id")["fold"]
    assert not first.sort_index().equals(second.sort_index())


def test_same_seed_same_predictions(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    first = cross_validate(patients, measurements, MORTALITY, folds=3, repeats=1, config=FAST)
    second = cross_validate(patients, measurements, MORTALITY, folds=3, repeats=1, config=FAST)
    other = cross_validate(
        patients, measurements, MORTALITY, folds=3, repeats=1, seed=5, config=FAST
    )
    pd.testing.assert_frame_equal(first, second)
    assert not np.allclose(first["prob_deceased"], other["prob_deceased"])


def test_fold_training_never_sees_test_patients(
    frames: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    patients, measurements = frames
    # A CF measured only in a handful of patients: it may enter a fold's feature list only
    # through that fold's training patients.
    rare = patients["patient_id"].iloc[:12].tolist()
    extra = pd.DataFrame([measurement_row(pid, "RARE", 5.0, low=0.0, high=10.0) for pid in rare])
    measurements = pd.concat([measurements, extra], ignore_index=True)
    policy = NormalisationPolicy(min_fraction=0.08)
    calls: list[tuple[set[int], CFModel]] = []
    real_fit = cross_validation.fit_features_and_model

    def spy(train_patients: pd.DataFrame, *args: Any, **kwargs: Any) -> CFModel:
        model = real_fit(train_patients, *args, **kwargs)
        calls.append((set(train_patients["patient_id"]), model))
        return model

    monkeypatch.setattr(cross_validation, "fit_features_and_model", spy)
    predictions = cross_validate(
        patients, measurements, MORBIDITY, folds=4, repeats=1, policy=policy, config=FAST
    )
    assert len(calls) == 4
    for fold, (train_ids, model) in enumerate(calls):
        test_ids = set(predictions.loc[predictions["fold"] == fold, "patient_id"])
        assert not train_ids & test_ids
        train_patients = patients[patients["patient_id"].isin(train_ids)]
        expected = select_features(train_patients, measurements, policy=policy)
        assert model.features == expected
        in_training = len(set(rare) & train_ids) / len(train_ids)
        assert ("RARE" in model.feature_names) == (in_training >= policy.min_fraction)


def test_feature_only_test_hospital_has_is_unused() -> None:
    patients, measurements = synthetic_frames(160, seed=12)
    liyuan = patients.loc[patients["hospital"] == "Liyuan", "patient_id"].tolist()
    extra = pd.DataFrame(
        [measurement_row(pid, "ONLY_LIYUAN", 3.0, low=0.0, high=10.0) for pid in liyuan]
    )
    measurements = pd.concat([measurements, extra], ignore_index=True)
    calls: list[CFModel] = []
    real_fit = cross_validation.fit_features_and_model

    def spy(*args: Any, **kwargs: Any) -> CFModel:
        calls.append(real_fit(*args, **kwargs))
        return calls[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cross_validation, "fit_features_and_model", spy)
        predictions = leave_one_hospital_out(patients, measurements, MORBIDITY, config=FAST)
    assert list(predictions["fold_label"].unique()) == ["test=Liyuan", "test=Union"]
    trained_without_liyuan, trained_with_liyuan = calls
    assert "ONLY_LIYUAN" not in trained_without_liyuan.feature_names
    assert "ONLY_LIYUAN" in trained_with_liyuan.feature_names
    tested = predictions[predictions["fold_label"] == "test=Liyuan"]
    assert set(tested["hospital"]) == {"Liyuan"}
    assert (predictions["repeat"] == 0).all()


def test_single_hospital_skips_loho(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    one_hospital = patients.assign(hospital="Union")
    predictions = leave_one_hospital_out(one_hospital, measurements, MORTALITY, config=FAST)
    assert predictions.empty
    assert "prob_deceased" in predictions.columns


def test_independent_predictions(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    model = fit_cf_model(patients.iloc[:100], measurements, MORBIDITY, config=FAST)
    held_out = patients.iloc[100:]
    predictions = independent_predictions(model, held_out, measurements)
    assert set(predictions["evaluation"]) == {"independent"}
    assert set(predictions["patient_id"]) == set(
        held_out.loc[held_out["morbidity_type"] != "suspected", "patient_id"]
    )


def test_no_labelled_patients_rejected(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    suspected = patients.assign(morbidity_type="suspected")
    with pytest.raises(InputError, match="No patients have a label for the morbidity task"):
        cross_validate(suspected, measurements, MORBIDITY, folds=2, repeats=1, config=FAST)


def test_zero_repeats_rejected(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    with pytest.raises(InputError, match="Invalid number of repeats 0"):
        cross_validate(patients, measurements, MORBIDITY, repeats=0, config=FAST)


def test_repeated_patient_rejected(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    doubled = pd.concat([patients, patients.iloc[[3]]], ignore_index=True)
    message = f"patient_id {patients['patient_id'].iloc[3]} appears more than once"
    with pytest.raises(InputError, match=message):
        cross_validate(doubled, measurements, MORBIDITY, folds=2, repeats=1, config=FAST)
    with pytest.raises(InputError, match=message):
        leave_one_hospital_out(doubled, measurements, MORBIDITY, config=FAST)


COMPARISON = {
    "gradient-boosting": GradientBoostingConfig(max_iter=30),
    "logistic": LogisticConfig(),
}


@pytest.mark.parametrize("kind", sorted(COMPARISON))
def test_comparison_kinds_share_the_folds(
    kind: str, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    patients, measurements = frames
    network = cross_validate(
        patients, measurements, MORTALITY, folds=3, repeats=2, seed=4, config=FAST
    )
    other = cross_validate(
        patients, measurements, MORTALITY, folds=3, repeats=2, seed=4, config=COMPARISON[kind]
    )
    assert list(other.columns) == list(network.columns)
    assert set(network["model"]) == {"network"}
    assert set(other["model"]) == {kind}
    key = ["repeat", "patient_id"]
    pd.testing.assert_frame_equal(
        network[[*key, "fold", "y_true"]].sort_values(key).reset_index(drop=True),
        other[[*key, "fold", "y_true"]].sort_values(key).reset_index(drop=True),
    )


@pytest.mark.parametrize("kind", sorted(COMPARISON))
def test_comparison_kind_reproducible(kind: str, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    runs = [
        cross_validate(
            patients, measurements, MORBIDITY, folds=3, repeats=1, seed=2, config=COMPARISON[kind]
        )
        for _ in range(2)
    ]
    pd.testing.assert_frame_equal(runs[0], runs[1])


@pytest.mark.parametrize("kind", sorted(COMPARISON))
def test_comparison_fold_training_never_sees_test_patients(
    kind: str, frames: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    patients, measurements = frames
    rare = patients["patient_id"].iloc[:12].tolist()
    extra = pd.DataFrame([measurement_row(pid, "RARE", 5.0, low=0.0, high=10.0) for pid in rare])
    measurements = pd.concat([measurements, extra], ignore_index=True)
    policy = NormalisationPolicy(min_fraction=0.08)
    calls: list[tuple[set[int], CFModel]] = []
    real_fit = cross_validation.fit_features_and_model

    def spy(train_patients: pd.DataFrame, *args: Any, **kwargs: Any) -> CFModel:
        model = real_fit(train_patients, *args, **kwargs)
        calls.append((set(train_patients["patient_id"]), model))
        return model

    monkeypatch.setattr(cross_validation, "fit_features_and_model", spy)
    predictions = cross_validate(
        patients,
        measurements,
        MORBIDITY,
        folds=4,
        repeats=1,
        policy=policy,
        config=COMPARISON[kind],
    )
    assert len(calls) == 4
    for fold, (train_ids, model) in enumerate(calls):
        assert model.kind == kind
        assert model.estimator is not None
        assert model.estimator.n_features_in_ == len(model.feature_names)
        test_ids = set(predictions.loc[predictions["fold"] == fold, "patient_id"])
        assert not train_ids & test_ids
        train_patients = patients[patients["patient_id"].isin(train_ids)]
        assert model.features == select_features(train_patients, measurements, policy=policy)
        in_training = len(set(rare) & train_ids) / len(train_ids)
        assert ("RARE" in model.feature_names) == (in_training >= policy.min_fraction)
        class_counts = model.training["class_counts"]
        assert sum(class_counts.values()) == len(train_ids)


@pytest.mark.parametrize("kind", sorted(COMPARISON))
def test_comparison_loho_trains_without_test_hospital(kind: str) -> None:
    patients, measurements = synthetic_frames(160, seed=12)
    calls: list[set[str]] = []
    real_fit = cross_validation.fit_features_and_model

    def spy(train_patients: pd.DataFrame, *args: Any, **kwargs: Any) -> CFModel:
        calls.append(set(train_patients["hospital"]))
        return real_fit(train_patients, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cross_validation, "fit_features_and_model", spy)
        predictions = leave_one_hospital_out(
            patients, measurements, MORBIDITY, config=COMPARISON[kind]
        )
    assert calls == [{"Union"}, {"Liyuan"}]
    assert set(predictions["model"]) == {kind}
    assert list(predictions["fold_label"].unique()) == ["test=Liyuan", "test=Union"]


@pytest.mark.parametrize(
    "config",
    [CFNetworkConfig(max_epochs=10, patience=3, batch_size=64), GradientBoostingConfig()],
    ids=["network", "gradient-boosting"],
)
def test_parallel_folds_match_in_process(
    frames: tuple[pd.DataFrame, pd.DataFrame], config: Any
) -> None:
    patients, measurements = frames
    settings: dict[str, Any] = {"folds": 3, "repeats": 2, "seed": 5, "config": config}

    in_process = cross_validate(patients, measurements, MORTALITY, jobs=1, **settings)
    parallel = cross_validate(patients, measurements, MORTALITY, jobs=2, **settings)

    pd.testing.assert_frame_equal(in_process, parallel, check_exact=True)


def test_jobs_must_be_positive(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, measurements = frames
    with pytest.raises(InputError, match="Invalid number of jobs 0"):
        cross_validate(patients, measurements, MORTALITY, jobs=0)
