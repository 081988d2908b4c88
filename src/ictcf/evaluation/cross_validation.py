"""Patient-level cross-validation, leave-one-hospital-out and independent-cohort predictions.

Every function returns the predictions frame shared with ``ictcf.evaluation.summary``: one row
per (evaluation, repeat, patient) with the columns ``PREDICTION_COLUMNS`` plus one
``prob_<class>`` column per class of the task. Each patient is one sample, so a patient is in
exactly one test fold per repeat and never in the training data of its own fold. The feature
list, the fallback normal ranges, the class weights and the early-stopping split are all fitted
on the training part of each fold. The folds depend on the run seed only, so every model kind
cross-validated with one seed is trained and tested on the same folds.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator

import joblib
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from ictcf.errors import InputError
from ictcf.features.cf_features import NormalisationPolicy
from ictcf.models.cf_model import CFModel, fit_features_and_model
from ictcf.models.cf_network import CFNetworkConfig
from ictcf.models.estimators import ModelConfig, model_kind_of
from ictcf.models.tasks import TaskSpec, labelled_patients
from ictcf.progress import progress_bar

logger = logging.getLogger(__name__)

#: Columns every predictions frame starts with; ``prob_<class>`` columns follow.
PREDICTION_COLUMNS = [
    "task",
    "evaluation",
    "model",
    "repeat",
    "fold",
    "fold_label",
    "patient_id",
    "source_id",
    "hospital",
    "y_true",
]

#: Default number of folds and repeats: stratified 10-fold CV repeated 10 times, as in the
#: HUST-19 paper.
DEFAULT_FOLDS = 10
DEFAULT_REPEATS = 10


def derive_seed(*keys: int) -> int:
    """Return a 31-bit seed derived from ``keys`` with numpy's ``SeedSequence``.

    Seeds of different (repeat, fold) pairs are statistically independent, unlike ``seed + i``.
    """
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0] & 0x7FFFFFFF)


def stratified_folds(
    labels: np.ndarray, *, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split sample indices into stratified folds.

    Parameters
    ----------
    labels : ndarray of shape (n_patients,), int
        Class index of each patient (one sample per patient).
    folds : int
        Number of folds, at least 2.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    list of (train_index, test_index)
        Each index appears in exactly one test set.

    Raises
    ------
    InputError
        If ``folds`` < 2 or a class has fewer patients than folds.
    """
    if folds < 2:
        raise InputError(f"Invalid number of folds {folds}: use at least 2.")
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if len(present) < 2:
        raise InputError("Cross-validation needs patients of at least two classes.")
    if present.min() < folds:
        raise InputError(
            f"The smallest class has {present.min()} patients, fewer than the {folds} folds "
            f"requested; use --folds {max(2, int(present.min()))} or fewer."
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    placeholder = np.zeros((len(labels), 1))
    return [(train, test) for train, test in splitter.split(placeholder, labels)]


def _prediction_rows(
    model: CFModel,
    test_patients: pd.DataFrame,
    test_labels: np.ndarray,
    measurements: pd.DataFrame,
    *,
    evaluation: str,
    repeat: int,
    fold: int,
    fold_label: str,
) -> pd.DataFrame:
    probabilities = model.predict_proba(test_patients, measurements)
    frame = pd.DataFrame(
        {
            "task": model.task.name,
            "evaluation": evaluation,
            "model": model.kind,
            "repeat": repeat,
            "fold": fold,
            "fold_label": fold_label,
            "patient_id": test_patients["patient_id"].to_numpy(dtype=np.int64),
            "source_id": test_patients["source_id"].astype(str).to_numpy(),
            "hospital": test_patients["hospital"].astype(str).to_numpy(),
            "y_true": test_labels.astype(np.int64),
        }
    )
    for index, column in enumerate(model.task.probability_columns):
        frame[column] = probabilities[:, index]
    return frame


def _eligible_patients(patients: pd.DataFrame, task: TaskSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the labelled patients, rejecting a patient listed twice.

    A repeated patient could land in the training and the test part of one fold.
    """
    repeated = patients.loc[patients["patient_id"].duplicated(), "patient_id"]
    if len(repeated):
        raise InputError(
            f"patient_id {repeated.iloc[0]} appears more than once in the patients frame; "
            "each patient must be one sample, so pass one row per patient."
        )
    return labelled_patients(patients, task)


def _empty_predictions(task: TaskSpec) -> pd.DataFrame:
    return pd.DataFrame(columns=[*PREDICTION_COLUMNS, *task.probability_columns])


def cross_validate(
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    task: TaskSpec,
    *,
    folds: int = DEFAULT_FOLDS,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    policy: NormalisationPolicy | None = None,
    config: ModelConfig | None = None,
    progress: bool = False,
    jobs: int = 1,
) -> pd.DataFrame:
    """Run repeated stratified k-fold cross-validation by patient.

    Parameters
    ----------
    patients : DataFrame
        Columns of ``ictcf.db.queries.load_patients``; patients without a label for ``task``
        are left out.
    measurements : DataFrame
        Columns of ``ictcf.db.queries.load_measurements``.
    task : TaskSpec
        The task.
    folds : int, optional
        Folds per repeat (default 10).
    repeats : int, optional
        Repeats with different shuffles (default 10).
    seed : int, optional
        Run seed. Repeat r shuffles with ``derive_seed(seed, r)`` and fold k of repeat r trains
        with model seed ``derive_seed(seed, r, k)``, so one seed fixes the whole run and every
        model kind is trained and tested on the same folds.
    policy : NormalisationPolicy, optional
        Default ``NormalisationPolicy()``.
    config : CFNetworkConfig, GradientBoostingConfig or LogisticConfig, optional
        The model's hyperparameters; the type chooses the model kind. Default
        ``CFNetworkConfig()``; its ``seed`` is replaced per fold as above.
    progress : bool, optional
        Draw a progress bar over the folds.
    jobs : int, optional
        Worker processes fitting folds at the same time (default 1: every fold in this
        process). Each fold's result depends only on its data and derived seed, and each
        worker uses ``config.n_threads`` threads, so the predictions are identical for any
        ``jobs``.

    Returns
    -------
    DataFrame
        The predictions frame (``evaluation`` "cv"): ``repeats * n_labelled`` rows.

    Raises
    ------
    InputError
        If ``repeats`` < 1, ``folds`` < 2, ``jobs`` < 1 or a class has fewer patients than folds.
    """
    if jobs < 1:
        raise InputError(f"Invalid number of jobs {jobs}: use at least 1.")
    if repeats < 1:
        raise InputError(f"Invalid number of repeats {repeats}: use at least 1.")
    policy = policy or NormalisationPolicy()
    config = config or CFNetworkConfig()
    eligible, labels = _eligible_patients(patients, task)
    if len(eligible) == 0:
        raise InputError(f"No patients have a label for the {task.name} task.")

    def jobs_of_run() -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        for repeat in range(repeats):
            splits = stratified_folds(labels, folds=folds, seed=derive_seed(seed, repeat))
            for fold, (train_index, test_index) in enumerate(splits):
                yield repeat, fold, train_index, test_index

    tasks = (
        functools.partial(
            _cross_validation_fold,
            eligible,
            labels,
            measurements,
            task,
            policy=policy,
            config=dataclasses.replace(config, seed=derive_seed(seed, repeat, fold)),
            repeat=repeat,
            fold=fold,
            train_index=train_index,
            test_index=test_index,
        )
        for repeat, fold, train_index, test_index in jobs_of_run()
    )
    if jobs == 1:
        results: Iterator[pd.DataFrame] = (run_fold() for run_fold in tasks)
    else:
        # Each worker runs one fold at a time with the configuration's own thread count, so
        # the workers do not oversubscribe the cores and the numbers match jobs=1.
        parallel = joblib.Parallel(n_jobs=jobs, return_as="generator")
        results = parallel(joblib.delayed(run_fold)() for run_fold in tasks)
    frames = list(
        progress_bar(
            results,
            enabled=progress,
            description=f"{task.name} {model_kind_of(config)} CV",
            total=repeats * folds,
            unit="fold",
        )
    )
    return pd.concat(frames, ignore_index=True) if frames else _empty_predictions(task)


def _cross_validation_fold(
    eligible: pd.DataFrame,
    labels: np.ndarray,
    measurements: pd.DataFrame,
    task: TaskSpec,
    *,
    policy: NormalisationPolicy,
    config: ModelConfig,
    repeat: int,
    fold: int,
    train_index: np.ndarray,
    test_index: np.ndarray,
) -> pd.DataFrame:
    """Fit the model of one fold on its training part and return its test predictions."""
    model = fit_features_and_model(
        eligible.iloc[train_index].reset_index(drop=True),
        labels[train_index],
        measurements,
        task,
        policy=policy,
        config=config,
    )
    frame = _prediction_rows(
        model,
        eligible.iloc[test_index].reset_index(drop=True),
        labels[test_index],
        measurements,
        evaluation="cv",
        repeat=repeat,
        fold=fold,
        fold_label=f"fold {fold}",
    )
    logger.debug("%s %s repeat %d fold %d done", task.name, model_kind_of(config), repeat, fold)
    return frame


def leave_one_hospital_out(
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    task: TaskSpec,
    *,
    seed: int = 0,
    policy: NormalisationPolicy | None = None,
    config: ModelConfig | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Train on all hospitals but one and test on the one left out, for every hospital.

    A model that mostly learns which tests a hospital orders, rather than the patients'
    values, loses accuracy here.

    Parameters
    ----------
    patients, measurements, task, policy, config, progress
        As in :func:`cross_validate`.
    seed : int, optional
        The model of test hospital k trains with seed ``derive_seed(seed, 1_000_000, k)``.

    Returns
    -------
    DataFrame
        The predictions frame (``evaluation`` "loho", ``repeat`` 0, ``fold`` = index of the test
        hospital in sorted order, ``fold_label`` "test=<hospital>"). A hospital whose
        complement lacks a class is skipped with a warning; with fewer than two hospitals the
        frame is empty.
    """
    policy = policy or NormalisationPolicy()
    config = config or CFNetworkConfig()
    eligible, labels = _eligible_patients(patients, task)
    hospitals = sorted(str(name) for name in eligible["hospital"].dropna().unique())
    if len(hospitals) < 2:
        logger.warning(
            "leave-one-hospital-out skipped for %s: %d hospital(s) with labelled patients",
            task.name,
            len(hospitals),
        )
        return _empty_predictions(task)

    hospital_of = eligible["hospital"].astype(str).to_numpy()
    frames = []
    for fold, hospital in enumerate(
        progress_bar(
            hospitals,
            enabled=progress,
            description=f"{task.name} {model_kind_of(config)} LOHO",
            unit="hospital",
        )
    ):
        test_mask = hospital_of == hospital
        train_labels = labels[~test_mask]
        if len(np.unique(train_labels)) < task.n_classes:
            logger.warning(
                "leave-one-hospital-out for %s: training without %s lacks a class; skipped",
                task.name,
                hospital,
            )
            continue
        fold_config = dataclasses.replace(config, seed=derive_seed(seed, 1_000_000, fold))
        model = fit_features_and_model(
            eligible.loc[~test_mask].reset_index(drop=True),
            train_labels,
            measurements,
            task,
            policy=policy,
            config=fold_config,
        )
        frames.append(
            _prediction_rows(
                model,
                eligible.loc[test_mask].reset_index(drop=True),
                labels[test_mask],
                measurements,
                evaluation="loho",
                repeat=0,
                fold=fold,
                fold_label=f"test={hospital}",
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else _empty_predictions(task)


def independent_predictions(
    model: CFModel, patients: pd.DataFrame, measurements: pd.DataFrame
) -> pd.DataFrame:
    """Score an independent cohort with a trained model, without retraining.

    Returns
    -------
    DataFrame
        The predictions frame (``evaluation`` "independent", ``repeat`` 0, ``fold`` 0,
        ``fold_label`` "independent") for the patients with a label for the model's task.

    Raises
    ------
    InputError
        If no patient has a label for the task.
    """
    eligible, labels = labelled_patients(patients, model.task)
    if len(eligible) == 0:
        raise InputError(
            f"No patient in the independent data has a label for the {model.task.name} task."
        )
    return _prediction_rows(
        model,
        eligible,
        labels,
        measurements,
        evaluation="independent",
        repeat=0,
        fold=0,
        fold_label="independent",
    )


__all__ = [
    "DEFAULT_FOLDS",
    "DEFAULT_REPEATS",
    "PREDICTION_COLUMNS",
    "cross_validate",
    "derive_seed",
    "independent_predictions",
    "leave_one_hospital_out",
    "stratified_folds",
]
