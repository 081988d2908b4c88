"""A fitted CF model: task, feature list, normalisation policy and trained model together.

The model is the paper's network (kind ``"network"``) or a comparison model of
``ictcf.models.estimators`` (``"gradient-boosting"``, ``"logistic"``). :func:`fit_cf_model`
chooses the feature list from the patients it is given, builds their features and trains the
model. Everything it learns comes from those patients only, so a cross-validation test fold
stays out of training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ictcf.errors import InputError, ModelError
from ictcf.features.cf_features import (
    CFFeature,
    FeatureMatrix,
    NormalisationPolicy,
    build_feature_matrix,
    select_features,
)
from ictcf.models.cf_network import (
    CFNetwork,
    CFNetworkConfig,
    TrainingResult,
    predict_probabilities,
    train_cf_network,
)
from ictcf.models.estimators import (
    Estimator,
    ModelConfig,
    estimator_probabilities,
    fit_estimator,
    model_kind_of,
)
from ictcf.models.tasks import TaskSpec, labelled_patients

logger = logging.getLogger(__name__)

#: Fewest of a model's CFs a patient must have measured for ``predict_frame`` to score them.
#: In the real cohort-1 export 101 of 1,170 patients have fewer than 3 of the ~90 selected CFs
#: and the same 101 have fewer than 5, so 3 separates near-empty records from measured ones.
MIN_MEASURED_CFS = 3


@dataclass
class CFModel:
    """A trained CF model for one task.

    Attributes
    ----------
    task : TaskSpec
    policy : NormalisationPolicy
    features : list of CFFeature
        CF columns chosen from the training patients.
    feature_names : list of str
        All matrix columns (basic features, then CFs).
    config : CFNetworkConfig, GradientBoostingConfig or LogisticConfig
        Hyperparameters; its type decides the model kind.
    network : CFNetwork or None
        The trained network of kind ``"network"``, else None.
    training : dict
        ``n_patients``, ``class_counts``, ``class_weights``, and for the network
        ``best_epoch`` and ``epochs_run``.
    estimator : HistGradientBoostingClassifier, LogisticRegression or None
        The fitted comparison model of the other kinds, else None.
    """

    task: TaskSpec
    policy: NormalisationPolicy
    features: list[CFFeature]
    feature_names: list[str]
    config: ModelConfig
    network: CFNetwork | None
    training: dict[str, Any]
    estimator: Estimator | None = None

    @property
    def kind(self) -> str:
        """Model kind: ``"network"``, ``"gradient-boosting"`` or ``"logistic"``."""
        return model_kind_of(self.config)

    @property
    def n_inputs(self) -> int:
        """Number of features the model takes per patient."""
        return len(self.feature_names)

    def predict_proba(self, patients: pd.DataFrame, measurements: pd.DataFrame) -> np.ndarray:
        """Return class probabilities of shape (n_patients, n_classes), rows in patient order.

        Every row is scored, however few CFs it has; :meth:`predict_frame` leaves patients
        with fewer than :data:`MIN_MEASURED_CFS` measured CFs unscored.
        """
        return self._probabilities(self._matrix(patients, measurements).X)

    def _matrix(self, patients: pd.DataFrame, measurements: pd.DataFrame) -> FeatureMatrix:
        matrix = build_feature_matrix(
            patients, measurements, features=self.features, policy=self.policy
        )
        if matrix.feature_names != self.feature_names:
            raise InputError(
                "The features built for prediction differ from the model's feature list; "
                "the normalisation policy stored with the model was changed."
            )
        return matrix

    def _probabilities(self, X: np.ndarray) -> np.ndarray:
        if isinstance(self.config, CFNetworkConfig) and self.network is not None:
            return predict_probabilities(
                self.network,
                X,
                n_classes=self.task.n_classes,
                n_threads=self.config.n_threads,
            )
        if self.estimator is None:
            raise ModelError(f"The {self.kind} model has no fitted estimator; train it again.")
        return estimator_probabilities(
            self.estimator,
            X,
            n_classes=self.task.n_classes,
            n_threads=self.config.n_threads,
        )

    def predict_frame(
        self,
        patients: pd.DataFrame,
        measurements: pd.DataFrame,
        *,
        min_measured_cfs: int = MIN_MEASURED_CFS,
    ) -> pd.DataFrame:
        """Score ``patients``, leaving those with too few measured CFs unscored.

        Parameters
        ----------
        patients, measurements : DataFrame
            Frames of ``ictcf.db.queries.load_patients`` and ``load_measurements``.
        min_measured_cfs : int, optional
            Fewest of the model's CFs a patient must have measured to be scored (default
            :data:`MIN_MEASURED_CFS`). For a patient with fewer, nearly every input is the
            "not measured" value, so a probability would describe that default, not the patient.

        Returns
        -------
        DataFrame
            ``patient_id``, ``source_id``, ``hospital``, one ``prob_<class>`` column per class,
            ``predicted_class``, ``n_cfs_measured`` (of the model's CFs) and ``note``, in the
            order of ``patients``. The predicted class is the argmax, except for mortality:
            "deceased" when its probability is at least 0.5. Unscored rows have empty
            probabilities and predicted class and say why in ``note``; scored rows have an
            empty ``note``. A warning is logged with the number of unscored rows.
        """
        matrix = self._matrix(patients, measurements)
        probabilities = self._probabilities(matrix.X)
        n_measured = matrix.n_cfs_measured
        scored = n_measured >= min_measured_cfs
        frame = pd.DataFrame(
            {
                "patient_id": patients["patient_id"].to_numpy(),
                "source_id": patients["source_id"].to_numpy(),
                "hospital": patients["hospital"].to_numpy(),
            }
        )
        for index, column in enumerate(self.task.probability_columns):
            frame[column] = np.where(scored, probabilities[:, index], np.nan)
        names = predicted_class_names(probabilities, self.task)
        frame["predicted_class"] = [
            name if ok else "" for name, ok in zip(names, scored, strict=True)
        ]
        frame["n_cfs_measured"] = n_measured
        n_cfs = len(self.features)
        frame["note"] = [
            ""
            if ok
            else (
                f"not scored: {count} of the model's {n_cfs} CFs measured, at least "
                f"{min_measured_cfs} needed"
            )
            for count, ok in zip(n_measured, scored, strict=True)
        ]
        n_unscored = int((~scored).sum())
        if n_unscored:
            logger.warning(
                "%d of %d patients were not scored: fewer than %d of the model's CFs measured",
                n_unscored,
                len(frame),
                min_measured_cfs,
            )
        return frame


def predicted_class_names(probabilities: np.ndarray, task: TaskSpec) -> list[str]:
    """Return the predicted class per row: the argmax, or for a binary task the positive class
    when its probability is at least 0.5 (the decision rule of ``ictcf.evaluation.metrics``)."""
    if task.positive_class is not None and task.n_classes == 2:
        positive = task.class_names.index(task.positive_class)
        negative = 1 - positive
        return [
            task.class_names[positive if row[positive] >= 0.5 else negative]
            for row in probabilities
        ]
    return [task.class_names[index] for index in np.argmax(probabilities, axis=1)]


def fit_features_and_model(
    patients: pd.DataFrame,
    labels: np.ndarray,
    measurements: pd.DataFrame,
    task: TaskSpec,
    *,
    policy: NormalisationPolicy,
    config: ModelConfig,
) -> CFModel:
    """Choose features from ``patients``, build their matrix and train the model.

    Parameters
    ----------
    patients : DataFrame
        Training patients only, one row each.
    labels : ndarray of shape (n_patients,), int
        Class index of each patient.
    measurements : DataFrame
        Long layout; rows of other patients are ignored.
    task, policy
        Task definition and normalisation choices.
    config : CFNetworkConfig, GradientBoostingConfig or LogisticConfig
        Hyperparameters; the type chooses the model kind.

    Returns
    -------
    CFModel
    """
    features = select_features(patients, measurements, policy=policy)
    matrix = build_feature_matrix(patients, measurements, features=features, policy=policy)
    counts = np.bincount(labels, minlength=task.n_classes)
    training: dict[str, Any] = {
        "n_patients": len(patients),
        "class_counts": {
            name: int(count) for name, count in zip(task.class_names, counts, strict=True)
        },
    }
    network: CFNetwork | None = None
    estimator: Estimator | None = None
    if isinstance(config, CFNetworkConfig):
        result: TrainingResult = train_cf_network(
            matrix.X, labels, n_classes=task.n_classes, config=config
        )
        network = result.network
        class_weights = result.class_weights
        training["best_epoch"] = result.best_epoch
        training["epochs_run"] = result.epochs_run
    else:
        estimator, class_weights = fit_estimator(
            matrix.X, labels, n_classes=task.n_classes, config=config
        )
    training["class_weights"] = dict(zip(task.class_names, class_weights, strict=True))
    return CFModel(
        task=task,
        policy=policy,
        features=features,
        feature_names=matrix.feature_names,
        config=config,
        network=network,
        training=training,
        estimator=estimator,
    )


def fit_cf_model(
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    task: TaskSpec,
    *,
    policy: NormalisationPolicy | None = None,
    config: ModelConfig | None = None,
) -> CFModel:
    """Fit the final model of ``task`` on every eligible patient of ``patients``.

    Patients without a label for the task (suspected or unknown morbidity type, unknown
    outcome) are left out.

    Parameters
    ----------
    patients : DataFrame
        Columns of ``ictcf.db.queries.load_patients``.
    measurements : DataFrame
        Columns of ``ictcf.db.queries.load_measurements``.
    task : TaskSpec
        ``ictcf.models.tasks.MORBIDITY`` or ``MORTALITY``.
    policy : NormalisationPolicy, optional
        Default ``NormalisationPolicy()``.
    config : CFNetworkConfig, GradientBoostingConfig or LogisticConfig, optional
        Hyperparameters; the type chooses the model kind. Default ``CFNetworkConfig()``.

    Returns
    -------
    CFModel

    Raises
    ------
    InputError
        If fewer than two classes have labelled patients.
    """
    policy = policy or NormalisationPolicy()
    config = config or CFNetworkConfig()
    eligible, labels = labelled_patients(patients, task)
    if len(np.unique(labels)) < 2:
        raise InputError(
            f"The {task.name} task needs labelled patients of at least two classes; "
            f"found {len(eligible)} labelled patients. Import an export with labels first."
        )
    logger.info(
        "fitting the %s %s model on %d patients", task.name, model_kind_of(config), len(eligible)
    )
    return fit_features_and_model(
        eligible, labels, measurements, task, policy=policy, config=config
    )
