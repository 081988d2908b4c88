"""The CF network, task labels and the fitted model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ictcf.errors import InputError, ModelError
from ictcf.models import MORBIDITY, MORTALITY, CFNetworkConfig, fit_cf_model, get_task, task_labels
from ictcf.models.cf_network import (
    class_weights_for,
    learning_rate_factor,
    predict_probabilities,
    train_cf_network,
)
from tests.models.synthetic import synthetic_frames

FAST = CFNetworkConfig(max_epochs=60, patience=10, batch_size=64)


def test_morbidity_labels_exclude_suspected() -> None:
    patients = pd.DataFrame(
        {"morbidity_type": ["control", "type_i", "type_ii", "suspected", "unknown"]}
    )
    np.testing.assert_array_equal(task_labels(patients, MORBIDITY), [0, 1, 2, -1, -1])


def test_mortality_labels_exclude_unknown() -> None:
    patients = pd.DataFrame({"outcome": ["cured", "deceased", "unknown"]})
    np.testing.assert_array_equal(task_labels(patients, MORTALITY), [0, 1, -1])


def test_unknown_task_rejected() -> None:
    with pytest.raises(InputError, match="Unknown task 'severity'"):
        get_task("severity")


def test_class_weights_inverse_frequency() -> None:
    weights = class_weights_for(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(weights, [4 / 9, 4 / 3, 0.0])


def test_learning_rate_decay() -> None:
    assert learning_rate_factor(0, 0.01) == 1.0
    assert learning_rate_factor(100, 0.01) == pytest.approx(0.5)


def test_network_learns_separable_data() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    result = train_cf_network(X, y, n_classes=2, config=FAST)
    probabilities = predict_probabilities(result.network, X, n_classes=2)
    assert probabilities.shape == (300, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert ((probabilities[:, 1] >= 0.5) == y).mean() > 0.9
    assert 1 <= result.best_epoch <= result.epochs_run <= FAST.max_epochs


def test_three_class_softmax_rows_sum_to_one() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 3)).astype(np.float32)
    y = np.argmax(X, axis=1)
    result = train_cf_network(X, y, n_classes=3, config=FAST)
    probabilities = predict_probabilities(result.network, X, n_classes=3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == y).mean() > 0.8


def test_same_seed_same_weights() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    first = train_cf_network(X, y, n_classes=2, config=FAST)
    second = train_cf_network(X, y, n_classes=2, config=FAST)
    other = train_cf_network(
        X, y, n_classes=2, config=CFNetworkConfig.from_dict({**FAST.to_dict(), "seed": 7})
    )
    for name, tensor in first.network.state_dict().items():
        assert torch.equal(tensor, second.network.state_dict()[name]), name
    assert not torch.equal(
        first.network.state_dict()["layers.0.weight"], other.network.state_dict()["layers.0.weight"]
    )


def test_training_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    X = np.random.default_rng(3).normal(size=(60, 3)).astype(np.float32)
    train_cf_network(X, (X[:, 0] > 0).astype(np.int64), n_classes=2, config=FAST)
    assert torch.equal(torch.rand(3), expected)


def test_early_stopping_on_noise() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = rng.integers(0, 2, 200)
    config = CFNetworkConfig.from_dict({**FAST.to_dict(), "max_epochs": 500, "patience": 5})
    result = train_cf_network(X, y, n_classes=2, config=config)
    assert result.epochs_run < 500
    assert result.epochs_run == result.best_epoch + 5


def test_single_class_rejected() -> None:
    with pytest.raises(InputError, match="at least two classes"):
        train_cf_network(np.zeros((10, 2)), np.zeros(10, dtype=int), n_classes=2, config=FAST)


def test_nan_features_rejected() -> None:
    X = np.zeros((10, 2))
    X[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        train_cf_network(X, np.arange(10) % 2, n_classes=2, config=FAST)


def test_wrong_feature_count_rejected() -> None:
    X = np.random.default_rng(5).normal(size=(40, 3)).astype(np.float32)
    result = train_cf_network(X, (X[:, 0] > 0).astype(np.int64), n_classes=2, config=FAST)
    with pytest.raises(ModelError, match="expects 3 features per patient"):
        predict_probabilities(result.network, np.zeros((2, 4)), n_classes=2)


def test_invalid_config_rejected() -> None:
    with pytest.raises(InputError, match=r"dropout 1\.2 must be in \[0, 1\)"):
        CFNetworkConfig(dropout=1.2)


def test_fit_model_predicts_every_patient() -> None:
    patients, measurements = synthetic_frames(150, seed=1)
    model = fit_cf_model(patients, measurements, MORBIDITY, config=FAST)
    frame = model.predict_frame(patients, measurements)
    assert len(frame) == len(patients)
    assert list(frame.columns) == [
        "patient_id",
        "source_id",
        "hospital",
        "prob_control",
        "prob_type_i",
        "prob_type_ii",
        "predicted_class",
        "n_cfs_measured",
        "note",
    ]
    assert (frame["note"] == "").all()
    assert set(frame["predicted_class"]) <= set(MORBIDITY.class_names)
    trained_on = model.training["n_patients"]
    assert trained_on == int((patients["morbidity_type"] != "suspected").sum())


def test_mortality_model_decision_threshold() -> None:
    patients, measurements = synthetic_frames(200, seed=2)
    model = fit_cf_model(patients, measurements, MORTALITY, config=FAST)
    frame = model.predict_frame(patients, measurements, min_measured_cfs=0)
    expected = np.where(frame["prob_deceased"] >= 0.5, "deceased", "cured")
    np.testing.assert_array_equal(frame["predicted_class"], expected)
    assert model.training["class_counts"]["deceased"] == int(
        (patients["outcome"] == "deceased").sum()
    )


def test_sparse_patients_not_scored(caplog: pytest.LogCaptureFixture) -> None:
    patients, measurements = synthetic_frames(150, seed=1)
    model = fit_cf_model(patients, measurements, MORBIDITY, config=FAST)
    empty_id, sparse_id = (int(key) for key in patients["patient_id"].iloc[:2])
    sparse_cfs = measurements.loc[measurements["patient_id"] == sparse_id, "abbreviation"]
    kept = sparse_cfs[sparse_cfs.isin([f.abbreviation for f in model.features])].iloc[:2]
    measurements = measurements[
        (measurements["patient_id"] != empty_id)
        & ((measurements["patient_id"] != sparse_id) | measurements.index.isin(kept.index))
    ]

    with caplog.at_level("WARNING", logger="ictcf.models.cf_model"):
        frame = model.predict_frame(patients, measurements)

    assert frame["n_cfs_measured"].iloc[0] == 0
    assert frame["n_cfs_measured"].iloc[1] == 2
    for row in (0, 1):
        assert frame[list(MORBIDITY.probability_columns)].iloc[row].isna().all()
        assert frame["predicted_class"].iloc[row] == ""
        assert frame["note"].iloc[row].startswith("not scored: ")
        assert "at least 3 needed" in frame["note"].iloc[row]
    assert frame.iloc[2:][list(MORBIDITY.probability_columns)].notna().all().all()
    assert "2 of 150 patients were not scored" in caplog.text
    # The threshold is a parameter: with 0 every patient is scored from the defaults.
    assert model.predict_frame(patients, measurements, min_measured_cfs=0)["note"].eq("").all()
