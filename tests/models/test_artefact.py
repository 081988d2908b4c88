"""Saving and loading model artefact folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ictcf.errors import ModelError
from ictcf.models import (
    MORTALITY,
    CFNetworkConfig,
    fit_cf_model,
    load_model,
    save_model,
    training_data_sha256,
)
from ictcf.models.artefact import ARTEFACT_FORMAT_VERSION, METADATA_FILE, WEIGHTS_FILE
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
    with pytest.raises(ModelError, match=r"format version 99, but this ictcf .* reads version 1"):
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
