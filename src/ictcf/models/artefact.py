"""Saving and loading trained CF models as versioned artefact folders.

An artefact folder contains two files:

``artefact.json``
    Format version, model kind, task and class names, the normalisation policy, the feature
    list with its fallback normal ranges, the model configuration, the SHA-256 of the training
    data, the patient numbers (``source_id``) of the training patients, the package version,
    training counts, optional cross-validation metrics and the SHA-256 of the weights file.
``weights.pt`` (kind ``"network"``)
    The network's ``state_dict`` (loaded with ``torch.load(weights_only=True)``).
``estimator.joblib`` (kinds ``"gradient-boosting"`` and ``"logistic"``)
    The fitted scikit-learn estimator, written with ``joblib``. Unpickling runs code, so the
    file's SHA-256 is compared with the value in ``artefact.json`` before it is loaded; a
    changed or substituted file is rejected unread. Only load artefacts from a source you trust,
    because whoever can rewrite both files can also rewrite the hash.

Format version 1 (network only, configuration under ``network_config``) is still read, and so
are version-2 folders written before ``training_source_ids`` was recorded; their
:attr:`LoadedArtefact.training_source_ids` is None, so overlap with new data cannot be checked.
A folder is written under a temporary name and renamed into place, so an interrupted save
leaves no half-written artefact behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
import torch

from ictcf import __version__
from ictcf.errors import InputError, ModelError
from ictcf.features.cf_features import CFFeature, NormalisationPolicy
from ictcf.models.cf_model import CFModel
from ictcf.models.cf_network import CFNetwork, CFNetworkConfig, n_outputs_for
from ictcf.models.estimators import (
    MODEL_KINDS,
    NETWORK_KIND,
    Estimator,
    model_config_from_dict,
)
from ictcf.models.tasks import get_task

logger = logging.getLogger(__name__)

#: Version of the artefact layout written now; bump it when a field changes meaning.
ARTEFACT_FORMAT_VERSION = 2
#: Versions this ictcf reads: 1 (network only) and 2 (every model kind).
READABLE_FORMAT_VERSIONS = (1, 2)
#: Marks the JSON file as an ictcf CF model (guards against loading an unrelated folder).
ARTEFACT_KIND = "ictcf-cf-model"
METADATA_FILE = "artefact.json"
WEIGHTS_FILE = "weights.pt"
ESTIMATOR_FILE = "estimator.joblib"
#: scikit-learn class expected in the estimator file of each comparison kind.
ESTIMATOR_CLASSES: dict[str, str] = {
    "gradient-boosting": "HistGradientBoostingClassifier",
    "logistic": "LogisticRegression",
}

#: Patient columns that enter the training-data hash (the model's inputs and labels).
HASHED_PATIENT_COLUMNS = [
    "patient_id",
    "source_id",
    "hospital",
    "age",
    "sex",
    "body_temperature",
    "has_underlying_disease",
    "morbidity_type",
    "outcome",
]
#: Measurement columns that enter the training-data hash.
HASHED_MEASUREMENT_COLUMNS = [
    "patient_id",
    "abbreviation",
    "value",
    "censoring",
    "unit",
    "range_low",
    "range_high",
]


@dataclass
class LoadedArtefact:
    """A model read back from an artefact folder.

    Attributes
    ----------
    model : CFModel
    metadata : dict
        The content of ``artefact.json``.
    path : Path
        The artefact folder.
    """

    model: CFModel
    metadata: dict[str, Any]
    path: Path

    @property
    def training_source_ids(self) -> frozenset[str] | None:
        """Patient numbers (``source_id``) the model was fitted on; None if not recorded."""
        recorded = self.metadata.get("training_source_ids")
        if not isinstance(recorded, list):
            return None
        return frozenset(str(source_id) for source_id in recorded)


def training_data_sha256(patients: pd.DataFrame, measurements: pd.DataFrame) -> str:
    """Return the SHA-256 of the training data, independent of row order.

    Parameters
    ----------
    patients : DataFrame
        The patients a model was fitted on.
    measurements : DataFrame
        Measurements; only rows of ``patients`` enter the hash.

    Returns
    -------
    str
        64 hexadecimal digits over the sorted ``HASHED_PATIENT_COLUMNS`` and
        ``HASHED_MEASUREMENT_COLUMNS`` written as CSV.
    """
    patient_part = patients[HASHED_PATIENT_COLUMNS].sort_values("patient_id")
    measurement_part = measurements.loc[
        measurements["patient_id"].isin(patients["patient_id"]), HASHED_MEASUREMENT_COLUMNS
    ].sort_values(["patient_id", "abbreviation"])
    digest = hashlib.sha256()
    digest.update(patient_part.to_csv(index=False, float_format="%.10g").encode("utf-8"))
    digest.update(b"\n--measurements--\n")
    digest.update(measurement_part.to_csv(index=False, float_format="%.10g").encode("utf-8"))
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        number = float(value)
        return None if np.isnan(number) else number
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def save_model(
    model: CFModel,
    folder: Path,
    *,
    training_sha256: str,
    training_source_ids: Sequence[str] | None = None,
    cv_metrics: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as an artefact folder.

    Parameters
    ----------
    model : CFModel
        A fitted model.
    folder : Path
        Target folder; created with its parents.
    training_sha256 : str
        :func:`training_data_sha256` of the data the model was fitted on.
    training_source_ids : sequence of str, optional
        ``source_id`` of every patient the model was fitted on (such as ``Patient 17``),
        stored so that ``ictcf evaluate`` can reject test data that overlaps training. Omitted
        (null) when not given.
    cv_metrics : dict, optional
        Cross-validation summary to keep with the model (JSON-ready; NaN becomes null).
    overwrite : bool, optional
        Replace an existing artefact in ``folder`` (default False).

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    ModelError
        If ``folder`` exists and is not empty and ``overwrite`` is False.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise ModelError(
            f"The model folder {folder} already exists and is not empty; choose another "
            "--output folder or remove it."
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        weights_path = _write_weights(model, staging)
        metadata = {
            "kind": ARTEFACT_KIND,
            "format_version": ARTEFACT_FORMAT_VERSION,
            "model_kind": model.kind,
            "package_version": __version__,
            "torch_version": torch.__version__,
            "sklearn_version": sklearn.__version__,
            "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "task": model.task.name,
            "class_names": list(model.task.class_names),
            "positive_class": model.task.positive_class,
            "n_inputs": model.n_inputs,
            "feature_names": list(model.feature_names),
            "features": [feature.to_dict() for feature in model.features],
            "normalisation_policy": model.policy.to_dict(),
            "model_config": model.config.to_dict(),
            "training": _json_ready(model.training),
            "training_data_sha256": training_sha256,
            "training_source_ids": (
                sorted({str(source_id) for source_id in training_source_ids})
                if training_source_ids is not None
                else None
            ),
            "cv_metrics": _json_ready(cv_metrics) if cv_metrics is not None else None,
            "weights_file": weights_path.name,
            "weights_sha256": _file_sha256(weights_path),
        }
        (staging / METADATA_FILE).write_text(
            json.dumps(metadata, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("saved the %s %s model", model.task.name, model.kind)
    return folder


def _write_weights(model: CFModel, folder: Path) -> Path:
    if model.network is not None:
        path = folder / WEIGHTS_FILE
        torch.save(model.network.state_dict(), path)
        return path
    if model.estimator is None:
        raise ModelError(f"The {model.kind} model has no fitted estimator to save.")
    path = folder / ESTIMATOR_FILE
    joblib.dump(model.estimator, path)
    return path


def _read_metadata(folder: Path) -> dict[str, Any]:
    if folder.exists() and not folder.is_dir():
        raise ModelError(
            f"{folder} is a file, not a model folder; pass the folder written by `ictcf train` "
            f"(it holds {METADATA_FILE})."
        )
    if not folder.is_dir():
        raise ModelError(
            f"Model folder {folder} not found; pass the folder written by `ictcf train`."
        )
    metadata_path = folder / METADATA_FILE
    if not metadata_path.is_file():
        raise ModelError(
            f"Model folder {folder} has no {METADATA_FILE}; it is not an ictcf model artefact "
            "or was not completely written. Train the model again with `ictcf train`."
        )
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(
            f"{metadata_path} is not valid JSON ({err}); train the model again."
        ) from err
    if not isinstance(metadata, dict) or metadata.get("kind") != ARTEFACT_KIND:
        raise ModelError(
            f"{metadata_path} does not describe an ictcf CF model (kind "
            f"{metadata.get('kind') if isinstance(metadata, dict) else None!r})."
        )
    version = metadata.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise ModelError(
            f"Model artefact {folder} has format version {version!r}, but this ictcf "
            f"{__version__} reads versions "
            f"{', '.join(str(known) for known in READABLE_FORMAT_VERSIONS)}; train the model "
            "again with this version."
        )
    kind = metadata.get("model_kind", NETWORK_KIND) if version >= 2 else NETWORK_KIND
    if kind not in MODEL_KINDS:
        raise ModelError(
            f"Model artefact {folder} has the unknown model kind {kind!r}; this ictcf "
            f"{__version__} reads {', '.join(MODEL_KINDS)}. Train the model again with this "
            "version."
        )
    metadata["model_kind"] = kind
    return metadata


def load_model(folder: Path) -> LoadedArtefact:
    """Read an artefact folder written by :func:`save_model`.

    Parameters
    ----------
    folder : Path
        The artefact folder.

    Returns
    -------
    LoadedArtefact

    Raises
    ------
    ModelError
        If the folder, ``artefact.json`` or the weights are missing, the format version or
        model kind is unknown, the weights do not match their recorded SHA-256 (checked before
        anything is unpickled) or the model layout.
    """
    folder = Path(folder)
    metadata = _read_metadata(folder)
    weights_path = folder / str(metadata.get("weights_file", WEIGHTS_FILE))
    if not weights_path.is_file():
        raise ModelError(
            f"Model folder {folder} lacks its weights file {weights_path.name}; train the model "
            "again with `ictcf train`."
        )
    if _file_sha256(weights_path) != metadata.get("weights_sha256"):
        raise ModelError(
            f"The weights file {weights_path} does not match the SHA-256 recorded in "
            f"{METADATA_FILE}; the artefact was modified or damaged. Train the model again."
        )
    try:
        task = get_task(str(metadata["task"]))
        policy = NormalisationPolicy.from_dict(metadata["normalisation_policy"])
        kind = str(metadata["model_kind"])
        config_key = "network_config" if metadata["format_version"] == 1 else "model_config"
        config = model_config_from_dict(kind, dict(metadata[config_key]))
        features = [CFFeature.from_dict(item) for item in metadata["features"]]
        feature_names = [str(name) for name in metadata["feature_names"]]
        n_inputs = int(metadata["n_inputs"])
    except (KeyError, TypeError, ValueError, InputError) as err:
        raise ModelError(
            f"{folder / METADATA_FILE} lacks or has an invalid field ({err}); train the model "
            "again."
        ) from err
    if list(task.class_names) != list(metadata.get("class_names", [])):
        raise ModelError(
            f"Model artefact {folder} lists classes {metadata.get('class_names')}, but the "
            f"{task.name} task has {list(task.class_names)}; train the model again."
        )

    network: CFNetwork | None = None
    estimator: Estimator | None = None
    if isinstance(config, CFNetworkConfig):
        network = _load_network(weights_path, config, n_inputs, task.n_classes)
    else:
        estimator = _load_estimator(weights_path, kind, n_inputs)
    model = CFModel(
        task=task,
        policy=policy,
        features=features,
        feature_names=feature_names,
        config=config,
        network=network,
        training=dict(metadata.get("training") or {}),
        estimator=estimator,
    )
    return LoadedArtefact(model=model, metadata=metadata, path=folder)


def _load_network(
    weights_path: Path, config: CFNetworkConfig, n_inputs: int, n_classes: int
) -> CFNetwork:
    network = CFNetwork(n_inputs, n_outputs_for(n_classes), config.hidden_sizes, config.dropout)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, EOFError) as err:
        raise ModelError(
            f"The weights in {weights_path} do not fit the network described in "
            f"{METADATA_FILE} ({err.__class__.__name__}); train the model again."
        ) from err
    network.eval()
    return network


def _load_estimator(path: Path, kind: str, n_inputs: int) -> Estimator:
    # The caller has already compared the file's SHA-256 with artefact.json, so only the file
    # that was saved with this metadata reaches the unpickler.
    try:
        estimator = joblib.load(path)
    except Exception as err:
        raise ModelError(
            f"The estimator file {path} could not be read ({err.__class__.__name__}: {err}); "
            "it may come from another scikit-learn version. Train the model again."
        ) from err
    expected = ESTIMATOR_CLASSES[kind]
    if type(estimator).__name__ != expected:
        raise ModelError(
            f"The estimator file {path} holds a {type(estimator).__name__}, but a {kind} model "
            f"needs a {expected}; train the model again."
        )
    if int(getattr(estimator, "n_features_in_", -1)) != n_inputs:
        raise ModelError(
            f"The estimator in {path} takes {getattr(estimator, 'n_features_in_', None)} "
            f"features, but {METADATA_FILE} lists {n_inputs}; train the model again."
        )
    fitted: Estimator = estimator
    return fitted
