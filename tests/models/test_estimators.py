"""Comparison model kinds: gradient boosting and logistic regression beside the network."""

from __future__ import annotations

import numpy as np
import pytest

from ictcf.errors import InputError, ModelError
from ictcf.models import (
    MODEL_KINDS,
    MORBIDITY,
    MORTALITY,
    CFNetworkConfig,
    GradientBoostingConfig,
    LogisticConfig,
    default_model_config,
    fit_cf_model,
)
from ictcf.models.cf_network import class_weights_for
from ictcf.models.estimators import (
    estimator_probabilities,
    fit_estimator,
    model_config_from_dict,
    model_kind_of,
)
from ictcf.models.tasks import TaskSpec
from tests.models.synthetic import synthetic_frames

CONFIGS = {
    "gradient-boosting": GradientBoostingConfig(max_iter=40, seed=1),
    "logistic": LogisticConfig(seed=1),
}


def learnable_data(n_samples: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n_samples)
    features = rng.normal(size=(n_samples, 6))
    features[:, 0] += 1.5 * labels
    features[:, 1] -= 1.0 * labels
    return features, labels


def test_kinds_and_defaults() -> None:
    assert MODEL_KINDS == ("network", "gradient-boosting", "logistic")
    assert isinstance(default_model_config("network", seed=4), CFNetworkConfig)
    assert default_model_config("gradient-boosting", seed=4) == GradientBoostingConfig(seed=4)
    assert default_model_config("logistic").C == 0.3
    assert GradientBoostingConfig().max_iter == 200
    for kind in MODEL_KINDS:
        assert model_kind_of(default_model_config(kind)) == kind


def test_unknown_kind_rejected() -> None:
    with pytest.raises(InputError, match="Unknown model kind 'forest': use one of network"):
        default_model_config("forest")
    with pytest.raises(ModelError, match="Unknown model kind 'forest'"):
        model_config_from_dict("forest", {})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_iter": 0}, "max_iter and min_samples_leaf must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"n_threads": 0}, "n_threads 0 must be at least 1"),
    ],
)
def test_invalid_boosting_config(values: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        GradientBoostingConfig(**values)  # type: ignore[arg-type]


def test_invalid_logistic_config() -> None:
    with pytest.raises(InputError, match="C must be positive"):
        LogisticConfig(C=0.0)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_config_dict_round_trip(kind: str) -> None:
    config = CONFIGS[kind]
    assert model_config_from_dict(kind, config.to_dict()) == config


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_fit_learns_and_weights_classes(kind: str) -> None:
    features, labels = learnable_data()
    estimator, weights = fit_estimator(features, labels, n_classes=3, config=CONFIGS[kind])
    np.testing.assert_allclose(weights, class_weights_for(labels, 3))

    probabilities = estimator_probabilities(estimator, features, n_classes=3)
    assert probabilities.shape == (len(labels), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    accuracy = np.mean(np.argmax(probabilities, axis=1) == labels)
    assert accuracy > 0.7


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_same_seed_same_probabilities(kind: str) -> None:
    features, labels = learnable_data(seed=5)
    first, _ = fit_estimator(features, labels, n_classes=3, config=CONFIGS[kind])
    second, _ = fit_estimator(features, labels, n_classes=3, config=CONFIGS[kind])
    np.testing.assert_array_equal(
        estimator_probabilities(first, features, n_classes=3),
        estimator_probabilities(second, features, n_classes=3),
    )


def test_absent_class_gets_zero_probability() -> None:
    features, labels = learnable_data()
    keep = labels != 1
    estimator, weights = fit_estimator(
        features[keep], labels[keep], n_classes=3, config=CONFIGS["logistic"]
    )
    probabilities = estimator_probabilities(estimator, features, n_classes=3)
    assert weights[1] == 0.0
    np.testing.assert_array_equal(probabilities[:, 1], 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros(10, dtype=int), "at least two classes"),
        (np.array([0, 1, 3, 0, 1, 0, 1, 0, 1, 0]), r"Class indices must lie in \[0, 2\]"),
        (np.zeros(9, dtype=int), "shapes disagree"),
    ],
)
def test_invalid_training_data(labels: np.ndarray, message: str) -> None:
    features = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(InputError, match=message):
        fit_estimator(features, labels, n_classes=3, config=CONFIGS["logistic"])


def test_non_finite_features_rejected() -> None:
    features, labels = learnable_data(30)
    features[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        fit_estimator(features, labels, n_classes=3, config=CONFIGS["gradient-boosting"])


def test_wrong_feature_count_rejected() -> None:
    features, labels = learnable_data()
    estimator, _ = fit_estimator(features, labels, n_classes=3, config=CONFIGS["logistic"])
    with pytest.raises(ModelError, match=r"expects 6 features per patient but got .*\(4, 5\)"):
        estimator_probabilities(estimator, features[:4, :5], n_classes=3)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("task", [MORBIDITY, MORTALITY], ids=lambda task: task.name)
def test_cf_model_of_each_kind(kind: str, task: TaskSpec) -> None:
    patients, measurements = synthetic_frames(150, seed=31)
    model = fit_cf_model(patients, measurements, task, config=CONFIGS[kind])
    assert model.kind == kind
    assert model.network is None
    assert model.estimator is not None
    assert set(model.training["class_weights"]) == set(model.task.class_names)
    assert "best_epoch" not in model.training

    frame = model.predict_frame(patients, measurements)
    probabilities = frame[model.task.probability_columns].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert set(frame["predicted_class"]) <= set(model.task.class_names)
