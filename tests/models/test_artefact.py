"""Saving and loading model artefact folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from ictcf.errors import ModelError
from ictcf.models import (
    MORBIDITY,
    MORTALITY,
    CFNetworkConfig,
    GradientBoostingConfig,
    LogisticConfig,
    fit_cf_model,
    load_model,
    save_model,
    training_data_sha256,
)
from ictcf.models import artefact as artefact_module
from ictcf.models.artefact import (
    ARTEFACT_FORMAT_VERSION,
    ESTIMATOR_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
)
from ictcf.models.cf_model import CFModel
from tests.models.synthetic import synthetic_frames

FAST = CFNetworkConfig(max_epochs=20, patience=5, batch_size=64)


@pytest.fixture(scope="module")
def fitted() -> tuple[CFModel, pd.DataFrame, pd.DataFrame]:
    patients, measurements = synthetic_frames(120, seed=21)
    return fit_cf_model(patients, measurements, MORTALITY, config=FAST), patients, measurements


@pytest.fixture
def saved(tmp_path: Path, fitted: tuple[CFModel, pd.DataFrame, pd.DataFrame]) -> Path:
    model, patients, measurements = fitted
    return save_model(
        model,
        tmp_path / "model",
        training_sha256=training_data_sha256(patients, measurements),
        cv_metrics={"auc": float("nan"), "n": np.int64(3)},
    )


def test_round_trip_same_predictions(
    saved: Path, fitted: tuple[CFModel, pd.DataFrame, pd.DataFrame]
) -> None:
    model, patients, measurements = fitted
    loaded = load_model(saved)
    np.testing.assert_array_equal(
        loaded.model.predict_proba(patients, measurements),
        model.predict_proba(patients, measurements),
    )
    assert loaded.model.features == model.features
    assert loaded.model.policy == model.policy
    assert loaded.model.config == model.config
    assert loaded.metadata["format_version"] == ARTEFACT_FORMAT_VERSION
    assert loaded.metadata["class_names"] == ["cured", "deceased"]
    assert loaded.metadata["cv_metrics"] == {"auc": None, "n": 3}
    assert len(loaded.metadata["training_data_sha256"]) == 64


def test_training_hash_ignores_row_order() -> None:
    patients, measurements = synthetic_frames(30, seed=4)
    shuffled = measurements.sample(frac=1.0, random_state=1)
    assert training_data_sha256(patients, measurements) == training_data_sha256(
        patients.iloc[::-1], shuffled
    )
    changed = measurements.copy()
    changed.loc[0, "value"] += 1.0
    assert training_data_sha256(patients, measurements) != training_data_sha256(patients, changed)


def test_existing_folder_not_overwritten(
    saved: Path, fitted: tuple[CFModel, pd.DataFrame, pd.DataFrame]
) -> None:
    with pytest.raises(ModelError, match="already exists and is not empty"):
        save_model(fitted[0], saved, training_sha256="0" * 64)
    save_model(fitted[0], saved, training_sha256="0" * 64, overwrite=True)
    assert load_model(saved).metadata["training_data_sha256"] == "0" * 64


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"Model folder .* not found"):
        load_model(tmp_path / "nowhere")


def test_missing_metadata(saved: Path) -> None:
    (saved / METADATA_FILE).unlink()
    with pytest.raises(ModelError, match=r"has no artefact\.json"):
        load_model(saved)


def test_missing_weights(saved: Path) -> None:
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelError, match=r"lacks its weights file weights\.pt"):
        load_model(saved)


def test_wrong_format_version(saved: Path) -> None:
    path = saved / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["format_version"] = 99
    path.write_text(json.dumps(metadata))
    with pytest.raises(
        ModelError, match=r"format version 99, but this ictcf .* reads versions 1, 2"
    ):
        load_model(saved)


def test_modified_weights(saved: Path) -> None:
    with (saved / WEIGHTS_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        load_model(saved)


def test_invalid_json(saved: Path) -> None:
    (saved / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="is not valid JSON"):
        load_model(saved)


def test_unrelated_json(saved: Path) -> None:
    (saved / METADATA_FILE).write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(ModelError, match="does not describe an ictcf CF model"):
        load_model(saved)


def test_weights_of_another_layout(saved: Path) -> None:
    path = saved / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["n_inputs"] = metadata["n_inputs"] + 1
    path.write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match="do not fit the network"):
        load_model(saved)


COMPARISON_CONFIGS = {
    "gradient-boosting": GradientBoostingConfig(max_iter=30, seed=3),
    "logistic": LogisticConfig(seed=3),
}


@pytest.mark.parametrize("kind", sorted(COMPARISON_CONFIGS))
def test_comparison_round_trip(kind: str, tmp_path: Path) -> None:
    patients, measurements = synthetic_frames(120, seed=21)
    model = fit_cf_model(patients, measurements, MORBIDITY, config=COMPARISON_CONFIGS[kind])
    folder = save_model(model, tmp_path / kind, training_sha256="1" * 64)
    assert (folder / ESTIMATOR_FILE).is_file()
    assert not (folder / WEIGHTS_FILE).exists()

    loaded = load_model(folder)
    assert loaded.model.kind == kind
    assert loaded.model.network is None
    assert loaded.model.config == model.config
    assert loaded.metadata["model_kind"] == kind
    assert loaded.metadata["model_config"] == model.config.to_dict()
    np.testing.assert_array_equal(
        loaded.model.predict_proba(patients, measurements),
        model.predict_proba(patients, measurements),
    )


def test_network_artefact_records_kind(saved: Path) -> None:
    metadata = json.loads((saved / METADATA_FILE).read_text())
    assert metadata["model_kind"] == "network"
    assert metadata["weights_file"] == WEIGHTS_FILE
    assert "hidden_sizes" in metadata["model_config"]


def test_version_1_network_artefact_loads(
    saved: Path, fitted: tuple[CFModel, pd.DataFrame, pd.DataFrame]
) -> None:
    # Version 1 had no model kind and kept the network configuration under network_config.
    path = saved / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["format_version"] = 1
    metadata["network_config"] = metadata.pop("model_config")
    del metadata["model_kind"]
    path.write_text(json.dumps(metadata))

    model, patients, measurements = fitted
    loaded = load_model(saved)
    assert loaded.model.kind == "network"
    assert loaded.model.config == model.config
    np.testing.assert_array_equal(
        loaded.model.predict_proba(patients, measurements),
        model.predict_proba(patients, measurements),
    )


def test_unknown_model_kind(saved: Path) -> None:
    path = saved / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["model_kind"] = "random-forest"
    path.write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match=r"unknown model kind 'random-forest'.*reads network"):
        load_model(saved)


@pytest.fixture
def saved_logistic(tmp_path: Path) -> Path:
    patients, measurements = synthetic_frames(90, seed=8)
    model = fit_cf_model(patients, measurements, MORTALITY, config=LogisticConfig())
    return save_model(model, tmp_path / "logistic", training_sha256="2" * 64)


def test_modified_estimator_rejected_unread(
    saved_logistic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (saved_logistic / ESTIMATOR_FILE).open("ab") as handle:
        handle.write(b"\0")

    def unpickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file with a wrong SHA-256 reached the unpickler")

    monkeypatch.setattr(artefact_module.joblib, "load", unpickle)
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        load_model(saved_logistic)


def test_estimator_of_another_class(saved_logistic: Path) -> None:
    # A consistent hash over the wrong estimator class: the class check still rejects it.
    estimator_path = saved_logistic / ESTIMATOR_FILE
    joblib.dump(HistGradientBoostingClassifier(), estimator_path)
    path = saved_logistic / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["weights_sha256"] = hashlib.sha256(estimator_path.read_bytes()).hexdigest()
    path.write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match="holds a HistGradientBoostingClassifier, but a logistic"):
        load_model(saved_logistic)


def test_missing_estimator_file(saved_logistic: Path) -> None:
    (saved_logistic / ESTIMATOR_FILE).unlink()
    with pytest.raises(ModelError, match=r"lacks its weights file estimator\.joblib"):
        load_model(saved_logistic)
