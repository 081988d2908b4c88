"""Comparison models beside the HUST-19 CF network: gradient boosting and logistic regression.

The network is the model of Ning et al., Nat. Biomed. Eng. 4, 1197-1207 (2020). Both kinds see the same feature matrix as the network (same CF list, same normalisation
policy, fitted on the same training patients) and weight classes as the network does, by
n / (n_classes * n_c) counted on the training data. Their hyperparameters are fixed here and
were not tuned on any cross-validation result, so the cross-validated numbers of these models
are not biased by model selection.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, TypeAlias

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ictcf.errors import InputError, ModelError
from ictcf.models.cf_network import CFNetworkConfig, check_training_data, class_weights_for

logger = logging.getLogger(__name__)

#: Kind of the seven-layer dense HUST-19 CF network of Ning et al. 2020.
NETWORK_KIND = "network"
GRADIENT_BOOSTING_KIND = "gradient-boosting"
LOGISTIC_KIND = "logistic"
#: Every model kind, the HUST-19 network first.
MODEL_KINDS: tuple[str, ...] = (NETWORK_KIND, GRADIENT_BOOSTING_KIND, LOGISTIC_KIND)


@dataclass(frozen=True)
class GradientBoostingConfig:
    """Fixed hyperparameters of the gradient-boosting comparison model.

    ``sklearn.ensemble.HistGradientBoostingClassifier`` with scikit-learn's defaults except
    two. It runs 200 boosting rounds at learning rate 0.05 instead of 100 at 0.1 (smaller
    steps, the same total shrinkage). Early stopping is off, so every fold trains the same
    number of rounds on all of its training patients. The values are fixed and are not
    searched on cross-validation results.

    Attributes
    ----------
    max_iter : int
        Boosting rounds per class (default 200).
    learning_rate : float
        Shrinkage of each tree (default 0.05).
    max_leaf_nodes : int
        Leaves per tree (default 31).
    min_samples_leaf : int
        Fewest training patients per leaf (default 20).
    l2_regularization : float
        L2 penalty on leaf values (default 0).
    seed : int
        ``random_state`` of the estimator (used to bin large data; recorded for provenance).
    n_threads : int
        OpenMP and BLAS threads while fitting and predicting (default 1). On the shared 2-core
        x86-64 test machine, under load from other jobs, one fit on 780 patients took 2.3 s
        with one thread and 19.7 s with scikit-learn's default of all cores, because the
        threads wait on each other when the cores are busy.
    """

    kind: ClassVar[str] = GRADIENT_BOOSTING_KIND

    max_iter: int = 200
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    seed: int = 0
    n_threads: int = 1

    def __post_init__(self) -> None:
        if self.n_threads < 1:
            raise InputError(
                f"Invalid gradient-boosting configuration: n_threads {self.n_threads} must be at "
                "least 1."
            )
        if self.max_iter < 1 or self.max_leaf_nodes < 2 or self.min_samples_leaf < 1:
            raise InputError(
                "Invalid gradient-boosting configuration: max_iter and min_samples_leaf must be "
                f"at least 1 and max_leaf_nodes at least 2 (got {self.max_iter}, "
                f"{self.min_samples_leaf}, {self.max_leaf_nodes})."
            )
        if self.learning_rate <= 0 or self.l2_regularization < 0:
            raise InputError(
                "Invalid gradient-boosting configuration: learning_rate must be positive and "
                f"l2_regularization >= 0 (got {self.learning_rate}, {self.l2_regularization})."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GradientBoostingConfig:
        """Rebuild a configuration written by :meth:`to_dict`."""
        return cls(**values)


@dataclass(frozen=True)
class LogisticConfig:
    """Fixed hyperparameters of the penalised logistic-regression comparison model.

    ``sklearn.linear_model.LogisticRegression`` (L2 penalty, lbfgs solver, multinomial for
    three classes). ``C`` = 0.3 is a moderately strong penalty for a few dozen normalised
    inputs and a few hundred training patients per fold. It is fixed and is not searched on
    cross-validation results.

    Attributes
    ----------
    C : float
        Inverse L2 penalty strength (default 0.3).
    max_iter : int
        lbfgs iteration limit (default 2000; every fold of the cohort-1 benchmark converged
        within it).
    seed : int
        ``random_state`` of the estimator (unused by lbfgs; recorded for provenance).
    n_threads : int
        BLAS and OpenMP threads while fitting and predicting (default 1), as for gradient
        boosting.
    """

    kind: ClassVar[str] = LOGISTIC_KIND

    C: float = 0.3
    max_iter: int = 2000
    seed: int = 0
    n_threads: int = 1

    def __post_init__(self) -> None:
        if self.C <= 0 or self.max_iter < 1 or self.n_threads < 1:
            raise InputError(
                "Invalid logistic-regression configuration: C must be positive and max_iter and "
                f"n_threads at least 1 (got {self.C}, {self.max_iter}, {self.n_threads})."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LogisticConfig:
        """Rebuild a configuration written by :meth:`to_dict`."""
        return cls(**values)


#: Configuration of any model kind; each has ``seed``, ``to_dict`` and ``from_dict``.
ModelConfig: TypeAlias = CFNetworkConfig | GradientBoostingConfig | LogisticConfig
#: A fitted scikit-learn comparison model.
Estimator: TypeAlias = HistGradientBoostingClassifier | LogisticRegression


def check_model_kind(kind: str) -> str:
    """Return ``kind`` when it names a model kind.

    Raises
    ------
    InputError
        If ``kind`` is not one of :data:`MODEL_KINDS`.
    """
    if kind not in MODEL_KINDS:
        raise InputError(f"Unknown model kind {kind!r}: use one of {', '.join(MODEL_KINDS)}.")
    return kind


def model_kind_of(config: ModelConfig) -> str:
    """Return the model kind a configuration belongs to."""
    if isinstance(config, CFNetworkConfig):
        return NETWORK_KIND
    return config.kind


def default_model_config(kind: str, *, seed: int = 0) -> ModelConfig:
    """Return the default configuration of ``kind`` with ``seed``.

    Raises
    ------
    InputError
        If ``kind`` is not a model kind.
    """
    check_model_kind(kind)
    if kind == GRADIENT_BOOSTING_KIND:
        return GradientBoostingConfig(seed=seed)
    if kind == LOGISTIC_KIND:
        return LogisticConfig(seed=seed)
    return CFNetworkConfig(seed=seed)


def model_config_from_dict(kind: str, values: dict[str, Any]) -> ModelConfig:
    """Rebuild the configuration of ``kind`` from its ``to_dict`` form.

    Raises
    ------
    ModelError
        If ``kind`` is unknown.
    TypeError, ValueError, InputError
        If ``values`` does not fit the configuration.
    """
    if kind == NETWORK_KIND:
        return CFNetworkConfig.from_dict(values)
    if kind == GRADIENT_BOOSTING_KIND:
        return GradientBoostingConfig.from_dict(values)
    if kind == LOGISTIC_KIND:
        return LogisticConfig.from_dict(values)
    raise ModelError(f"Unknown model kind {kind!r}: this ictcf reads {', '.join(MODEL_KINDS)}.")


def fit_estimator(
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    config: GradientBoostingConfig | LogisticConfig,
) -> tuple[Estimator, list[float]]:
    """Fit a comparison model with the network's class weights.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Normalised features (see ``ictcf.features.build_feature_matrix``).
    y : ndarray of shape (n_samples,), int
        Class indices in ``range(n_classes)``.
    n_classes : int
        Number of classes of the task.
    config : GradientBoostingConfig or LogisticConfig
        Fixed hyperparameters and seed. The same inputs and config give the same model.

    Returns
    -------
    estimator : HistGradientBoostingClassifier or LogisticRegression
    class_weights : list of float
        Weight of each class, n / (n_classes * n_c), applied as sample weights.

    Raises
    ------
    InputError
        If shapes disagree, labels are out of range, fewer than two classes are present or a
        feature is not finite.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    check_training_data(X, y, n_classes)
    weights = class_weights_for(y, n_classes)
    estimator: Estimator
    if isinstance(config, GradientBoostingConfig):
        estimator = HistGradientBoostingClassifier(
            max_iter=config.max_iter,
            learning_rate=config.learning_rate,
            max_leaf_nodes=config.max_leaf_nodes,
            min_samples_leaf=config.min_samples_leaf,
            l2_regularization=config.l2_regularization,
            early_stopping=False,
            random_state=config.seed,
        )
    else:
        estimator = LogisticRegression(
            C=config.C, max_iter=config.max_iter, random_state=config.seed
        )
    with threadpool_limits(limits=config.n_threads):
        estimator.fit(X, y, sample_weight=weights[y])
    logger.debug("fitted %s on %d samples", config.kind, len(y))
    return estimator, [float(weight) for weight in weights]


def estimator_probabilities(
    estimator: Estimator, X: np.ndarray, *, n_classes: int, n_threads: int = 1
) -> np.ndarray:
    """Return class probabilities of a fitted comparison model.

    Parameters
    ----------
    estimator : HistGradientBoostingClassifier or LogisticRegression
        Fitted by :func:`fit_estimator`.
    X : ndarray of shape (n_samples, n_features)
        Features built with the model's own feature list and policy.
    n_classes : int
        Number of classes of the task.
    n_threads : int, optional
        OpenMP and BLAS threads (default 1).

    Returns
    -------
    ndarray of shape (n_samples, n_classes), float64
        Rows sum to 1. A class absent from the training data has probability 0.

    Raises
    ------
    ModelError
        If ``X`` has a different number of features than the model was fitted on.
    """
    X = np.asarray(X, dtype=np.float64)
    expected = int(estimator.n_features_in_)
    if X.ndim != 2 or X.shape[1] != expected:
        raise ModelError(
            f"The model expects {expected} features per patient but got an array of shape "
            f"{X.shape}; build the features with the model's own feature list."
        )
    probabilities = np.zeros((X.shape[0], n_classes))
    with threadpool_limits(limits=n_threads):
        fitted = estimator.predict_proba(X)
    for column, class_index in enumerate(estimator.classes_):
        probabilities[:, int(class_index)] = fitted[:, column]
    return probabilities
