"""The main job as an API: export → database → cross-validated CF models → report.

:func:`run_demo` is what ``ictcf demo`` runs. :func:`cross_validate_tasks` and
:func:`write_cross_validation_report` are its two halves and also back
``ictcf cross-validate``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ictcf import __version__
from ictcf.db.queries import load_measurements, load_patients
from ictcf.db.session import open_database, session_scope
from ictcf.errors import InputError
from ictcf.evaluation.cross_validation import (
    DEFAULT_FOLDS,
    DEFAULT_REPEATS,
    cross_validate,
    independent_predictions,
    leave_one_hospital_out,
)
from ictcf.evaluation.metrics import UndefinedMetricWarning
from ictcf.evaluation.summary import MODEL_LABELS, EvaluationSummary, evaluate_predictions
from ictcf.features.cf_features import NormalisationPolicy
from ictcf.models.artefact import training_data_sha256
from ictcf.models.cf_model import CFModel, fit_cf_model
from ictcf.models.cf_network import CFNetworkConfig
from ictcf.models.estimators import (
    GRADIENT_BOOSTING_KIND,
    NETWORK_KIND,
    ModelConfig,
    check_model_kind,
    default_model_config,
    model_kind_of,
)
from ictcf.models.tasks import TaskSpec, get_task, labelled_patients
from ictcf.settings import Settings

logger = logging.getLogger(__name__)

#: Model kinds ``ictcf demo`` cross-validates by default: the paper's network and the
#: gradient-boosting comparison model, on the same folds.
DEMO_MODELS: tuple[str, ...] = (NETWORK_KIND, GRADIENT_BOOSTING_KIND)

#: Characters of the configuration hash in a run id (32 bits: enough to tell runs apart).
RUN_ID_HASH_LENGTH = 8

#: Statements every CF report carries, so a reader knows what the numbers do and do not mean.
STANDARD_NOTES = (
    "Each patient is one sample. Folds are stratified by class and split by patient, so no "
    "patient is in both the training and the test part of a fold.",
    "The CF feature list (CFs measured in at least the policy's minimum fraction of patients), "
    "the fallback normal ranges, the class weights and the early-stopping validation split "
    "are all computed from the training part of each fold only.",
    "Class imbalance is handled by weighting each class's loss by n / (n_classes * n_class), "
    "counted on the training part of each fold; every model kind uses these weights.",
    "All model kinds of a run are trained and tested on the same folds with the same features. "
    "The comparison models (gradient boosting, logistic regression) have fixed hyperparameters "
    "of the package; no value is searched on these results.",
    "Morbidity: suspected patients and patients of unknown morbidity type are excluded from "
    "training and evaluation. Mortality: patients with an unknown outcome are excluded.",
    "The paper's values are shown as reported by Ning et al. 2020. They come from the paper's "
    "own data and split, so they are for orientation, not a like-for-like comparison.",
)


@dataclass
class CrossValidationRun:
    """Predictions and summaries of one cross-validation run over one or more tasks.

    Attributes
    ----------
    predictions : DataFrame
        All predictions frames (every task and evaluation kind) concatenated; the
        ``prob_<class>`` columns of a task are NaN on other tasks' rows.
    summaries : list of EvaluationSummary
        One per (task, model kind, evaluation kind), in run order.
    durations_s : dict of str to float
        Wall-clock seconds per step, such as ``"morbidity network cv"``.
    labelled : dict of str to int
        Labelled patients per task.
    """

    predictions: pd.DataFrame
    summaries: list[EvaluationSummary]
    durations_s: dict[str, float] = field(default_factory=dict)
    labelled: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    run_id : str
        UTC timestamp plus a short hash of data and settings, such as
        ``20261204T210501Z-3fa2c1d0``.
    report_dir : Path
        Folder with ``index.html``, ``report.md``, ``metrics.json``, tables and figures.
    index_html : Path
    headline : str
        The plain-text AUC table printed by ``ictcf demo``.
    run : CrossValidationRun
    run_info : dict
        The provenance written to the report.
    """

    run_id: str
    report_dir: Path
    index_html: Path
    headline: str
    run: CrossValidationRun
    run_info: dict[str, Any]


def software_versions() -> dict[str, str]:
    """Return the versions of Python, ictcf and the numerical libraries behind the results."""
    import numpy
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "ictcf": __version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
    }


def make_run_id(settings_for_hash: Mapping[str, Any], *, now: dt.datetime | None = None) -> str:
    """Return ``<UTC timestamp>-<hash>``; the hash covers the data checksum and the settings."""
    now = now or dt.datetime.now(dt.UTC)
    payload = json.dumps(settings_for_hash, sort_keys=True, default=str).encode("utf-8")
    digest = hashlib.sha256(payload).hexdigest()[:RUN_ID_HASH_LENGTH]
    return f"{now:%Y%m%dT%H%M%SZ}-{digest}"


def resolve_model_configs(
    models: Sequence[str], config: ModelConfig | None = None
) -> list[ModelConfig]:
    """Return one configuration per model kind in ``models``.

    ``config`` is used for its own kind; every other kind gets its default configuration.

    Raises
    ------
    InputError
        If ``models`` is empty, repeats a kind or names an unknown kind.
    """
    if not models:
        raise InputError("No model kind given; name at least one, such as 'network'.")
    repeated = sorted({kind for kind in models if list(models).count(kind) > 1})
    if repeated:
        raise InputError(f"Model kind {repeated[0]!r} is given twice; name each kind once.")
    configs: list[ModelConfig] = []
    for kind in models:
        check_model_kind(kind)
        if config is not None and model_kind_of(config) == kind:
            configs.append(config)
        else:
            configs.append(default_model_config(kind))
    return configs


def _summarise(
    predictions: pd.DataFrame, task: TaskSpec, description: dict[str, str]
) -> EvaluationSummary:
    # The summary logs each undefined-metric warning itself, and the report lists undefined
    # values, so the Python warning is kept from reaching the console a second time here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return evaluate_predictions(
            predictions,
            task=task.name,
            class_names=list(task.class_names),
            positive_class=task.positive_class,
            description=description,
            model=str(predictions["model"].iloc[0]),
        )


def cross_validate_tasks(
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    *,
    tasks: Sequence[str] = ("morbidity", "mortality"),
    folds: int = DEFAULT_FOLDS,
    repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    policy: NormalisationPolicy | None = None,
    config: ModelConfig | None = None,
    models: Sequence[str] = (NETWORK_KIND,),
    hospital_holdout: bool = True,
    data_label: str = "patients from the database",
    progress: bool = False,
    jobs: int = 1,
) -> CrossValidationRun:
    """Cross-validate the CF models of each task and, optionally, leave one hospital out.

    Every model kind of ``models`` is trained and tested on the same folds (they depend on
    ``seed`` only) and with the same feature policy.

    Parameters
    ----------
    patients, measurements : DataFrame
        Frames of ``ictcf.db.queries.load_patients`` and ``load_measurements``.
    tasks : sequence of str, optional
        Task names (default both).
    folds, repeats, seed : int, optional
        Stratified ``folds``-fold CV repeated ``repeats`` times; ``seed`` fixes everything.
    policy : NormalisationPolicy, optional
        Normalisation policy (default ``NormalisationPolicy()``).
    config : CFNetworkConfig, GradientBoostingConfig or LogisticConfig, optional
        Configuration of its own model kind; the other kinds use their defaults.
    models : sequence of str, optional
        Model kinds to cross-validate, in order (default only ``"network"``).
    hospital_holdout : bool, optional
        Also run leave-one-hospital-out (default True).
    data_label : str, optional
        Names the data in each summary's description, such as
        ``"iCTCF export patient_cohort1.txt sha256 3dfc…, cohort1"``.
    progress : bool, optional
        Draw progress bars.
    jobs : int, optional
        Worker processes fitting cross-validation folds at the same time (default 1); the
        results are identical for any value.

    Returns
    -------
    CrossValidationRun

    Raises
    ------
    InputError
        If ``models`` is empty, repeats or names an unknown kind, or the split is impossible.
    """
    policy = policy or NormalisationPolicy()
    configs = resolve_model_configs(models, config)
    frames: list[pd.DataFrame] = []
    summaries: list[EvaluationSummary] = []
    durations: dict[str, float] = {}
    labelled: dict[str, int] = {}
    notes: list[str] = []
    for name in tasks:
        task = get_task(name)
        eligible, _labels = labelled_patients(patients, task)
        labelled[task.name] = len(eligible)
        data = f"{data_label}, {len(eligible)} patients labelled for {task.name}"
        for model_config in configs:
            step = _cross_validate_one_model(
                patients,
                measurements,
                task,
                model_config,
                folds=folds,
                repeats=repeats,
                seed=seed,
                policy=policy,
                hospital_holdout=hospital_holdout,
                data=data,
                progress=progress,
                jobs=jobs,
            )
            frames.extend(step.frames)
            summaries.extend(step.summaries)
            durations.update(step.durations_s)
            notes.extend(step.notes)
    predictions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return CrossValidationRun(
        predictions=predictions,
        summaries=summaries,
        durations_s=durations,
        labelled=labelled,
        notes=notes,
    )


@dataclass
class _ModelStep:
    frames: list[pd.DataFrame] = field(default_factory=list)
    summaries: list[EvaluationSummary] = field(default_factory=list)
    durations_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _cross_validate_one_model(
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    task: TaskSpec,
    config: ModelConfig,
    *,
    folds: int,
    repeats: int,
    seed: int,
    policy: NormalisationPolicy,
    hospital_holdout: bool,
    data: str,
    progress: bool,
    jobs: int,
) -> _ModelStep:
    kind = model_kind_of(config)
    step = _ModelStep()
    started = time.perf_counter()
    predictions = cross_validate(
        patients,
        measurements,
        task,
        folds=folds,
        repeats=repeats,
        seed=seed,
        policy=policy,
        config=config,
        progress=progress,
        jobs=jobs,
    )
    step.durations_s[f"{task.name} {kind} cv"] = time.perf_counter() - started
    step.frames.append(predictions)
    step.summaries.append(
        _summarise(
            predictions,
            task,
            {
                "data": data,
                "split": (
                    f"stratified {folds}-fold cross-validation by patient, {repeats} "
                    f"repeat{'s' if repeats != 1 else ''}, seed {seed}"
                ),
            },
        )
    )
    if not hospital_holdout:
        return step

    started = time.perf_counter()
    held_out = leave_one_hospital_out(
        patients,
        measurements,
        task,
        seed=seed,
        policy=policy,
        config=config,
        progress=progress,
    )
    step.durations_s[f"{task.name} {kind} loho"] = time.perf_counter() - started
    eligible, _labels = labelled_patients(patients, task)
    tested = set(held_out["fold_label"]) if not held_out.empty else set()
    hospitals = sorted(str(name) for name in eligible["hospital"].dropna().unique())
    untested = [name for name in hospitals if f"test={name}" not in tested]
    if untested:
        step.notes.append(
            f"Leave-one-hospital-out, {task.name}, {kind}: no result for "
            f"{', '.join(untested) or 'any hospital'} because the patients of the other "
            "hospitals lack a class (or there is only one hospital)."
        )
    if held_out.empty:
        return step
    step.frames.append(held_out)
    step.summaries.append(
        _summarise(
            held_out,
            task,
            {
                "data": data,
                "split": (
                    "leave-one-hospital-out: trained on all other hospitals, tested on "
                    "each hospital in turn (" + ", ".join(held_out["fold_label"].unique()) + ")"
                ),
            },
        )
    )
    return step


def describe_models(configs: Sequence[ModelConfig]) -> dict[str, Any]:
    """Return the run information's ``model`` entry: kind, description and configuration.

    One model gives ``{"kind", "name", <configuration fields>}``. Several give
    ``{"kinds": [...], "<kind>": {"name", <configuration fields>}, ...}``.
    """
    entries = {
        model_kind_of(config): {
            "name": MODEL_LABELS.get(model_kind_of(config), model_kind_of(config)),
            **config.to_dict(),
        }
        for config in configs
    }
    if len(entries) == 1:
        ((kind, entry),) = entries.items()
        return {"kind": kind, **entry}
    return {"kinds": list(entries), **entries}


def build_run_info(
    *,
    run_id: str,
    data: Mapping[str, Any],
    folds: int,
    repeats: int,
    seed: int,
    policy: NormalisationPolicy,
    config: ModelConfig | Sequence[ModelConfig],
    durations_s: Mapping[str, float],
    notes: Sequence[str] = (),
    include_cv_notes: bool = True,
) -> dict[str, Any]:
    """Assemble the provenance that ``ictcf.evaluation.report.write_report`` records.

    ``config`` is the configuration of the one model of the run, or a sequence with one per
    model kind (see :func:`describe_models`). ``include_cv_notes`` adds ``STANDARD_NOTES``
    (how folds, features and class weights were fitted) before ``notes``.
    """
    configs = list(config) if isinstance(config, Sequence) else [config]
    return {
        "run_id": run_id,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": dict(data),
        "split": {"folds": folds, "repeats": repeats, "seed": seed},
        "model": describe_models(configs),
        "normalisation_policy": policy.to_dict(),
        "software": software_versions(),
        "durations_s": {key: round(value, 2) for key, value in durations_s.items()},
        "notes": [*(STANDARD_NOTES if include_cv_notes else ()), *notes],
    }


def write_cross_validation_report(
    output_dir: Path, run: CrossValidationRun, run_info: Mapping[str, Any]
) -> Path:
    """Write the report and the raw predictions; return the path of ``index.html``.

    ``predictions.csv`` beside the report contains every out-of-fold prediction, so any metric
    can be recomputed. When writing the report fails, the predictions are still saved to
    ``output_dir`` before the error is raised, so a long run is not lost.
    """
    from ictcf.evaluation.report import write_report

    try:
        index_html = write_report(output_dir, run.summaries, run_info)
    except Exception:
        output_dir.mkdir(parents=True, exist_ok=True)
        saved = output_dir / "predictions.csv"
        run.predictions.to_csv(saved, index=False)
        logger.error("writing the report failed; the predictions were saved to %s", saved)
        raise
    run.predictions.to_csv(output_dir / "predictions.csv", index=False)
    return index_html


def _new_report_dir(parent: Path, run_id: str) -> Path:
    report_dir = parent / run_id
    if report_dir.exists() and any(report_dir.iterdir()):
        raise InputError(
            f"The report folder {report_dir} already exists and is not empty; wait a second "
            "and run again, or choose another --output folder."
        )
    return report_dir


def export_source_ids(path: Path) -> list[str]:
    """Return the patient numbers (``source_id``, such as ``Patient 17``) listed in an export.

    Raises
    ------
    InputError
        If the file cannot be read or decoded.
    """
    from ictcf.ingest.ictcf_export import decode_export

    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"Cannot read the export ({err.strerror}).", path=path) from err
    return [text.split("\t", 1)[0].strip() for _line, text in decode_export(data, path=path)]


@dataclass
class ImportedExport:
    """Patients of one export after importing it.

    Attributes
    ----------
    patients, measurements : DataFrame
        Frames of ``ictcf.db.queries`` restricted to the patients listed in the export.
    import_report : ImportReport
        What the import did (nothing, when every patient was already stored).
    """

    patients: pd.DataFrame
    measurements: pd.DataFrame
    import_report: Any


def import_export_frames(
    database_url: str, path: Path, *, cohort: str | None = None, progress: bool = False
) -> ImportedExport:
    """Import an export (idempotently) and load the frames of exactly its patients.

    Parameters
    ----------
    database_url : str
        SQLAlchemy URL of the database to import into.
    path : Path
        The iCTCF export file.
    cohort : str, optional
        Cohort of every patient; default the paper's split by patient number.
    progress : bool, optional

    Returns
    -------
    ImportedExport
    """
    from ictcf.ingest.importer import import_ictcf_export

    factory = open_database(database_url)
    try:
        report = import_ictcf_export(factory, path, cohort=cohort, progress=progress)
        source_ids = set(export_source_ids(path))
        with session_scope(factory) as session:
            patients = load_patients(session)
            patients = patients[patients["source_id"].isin(source_ids)].reset_index(drop=True)
            measurements = load_measurements(
                session, patient_ids=[int(key) for key in patients["patient_id"]]
            )
    finally:
        factory.kw["bind"].dispose()
    return ImportedExport(patients=patients, measurements=measurements, import_report=report)


def evaluate_on_independent_cohort(
    training: pd.DataFrame,
    independent: pd.DataFrame,
    measurements: pd.DataFrame,
    *,
    tasks: Sequence[str] = ("morbidity", "mortality"),
    policy: NormalisationPolicy,
    config: ModelConfig,
    seed: int,
    data_label: str,
    models: Sequence[str] = (NETWORK_KIND,),
) -> tuple[list[pd.DataFrame], list[EvaluationSummary], list[str]]:
    """Train each task's models on ``training`` and evaluate them on ``independent``.

    ``config`` is used for its own model kind and the other kinds of ``models`` use their
    defaults; every model trains with ``seed``.

    Returns
    -------
    predictions : list of DataFrame
    summaries : list of EvaluationSummary
    notes : list of str
        One line per task that could not be evaluated, with the reason.
    """
    frames: list[pd.DataFrame] = []
    summaries: list[EvaluationSummary] = []
    notes: list[str] = []
    for name in tasks:
        task = get_task(name)
        _eligible, labels = labelled_patients(independent, task)
        if len(labels) == 0:
            notes.append(
                f"Independent cohort: no patient has a {task.name} label, so the {task.name} "
                "model was not evaluated there."
            )
            continue
        for model_config in resolve_model_configs(models, config):
            task_config = dataclasses.replace(model_config, seed=seed)
            model = fit_cf_model(training, measurements, task, policy=policy, config=task_config)
            predictions, summary = evaluate_independent(
                model, independent, measurements, data_label=data_label
            )
            frames.append(predictions)
            summaries.append(summary)
    return frames, summaries, notes


#: Cohort names of the importer's default split: the paper's training cohort (patients
#: 1-1170) is cross-validated; its independent cohort (patients 1171-1521) is held out.
TRAINING_COHORT = "cohort1"
INDEPENDENT_COHORT = "cohort2"


def run_demo(
    settings: Settings,
    *,
    from_path: Path | None = None,
    repeats: int = DEFAULT_REPEATS,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    output: Path | None = None,
    progress: bool = True,
    policy: NormalisationPolicy | None = None,
    config: CFNetworkConfig | None = None,
    models: Sequence[str] = DEMO_MODELS,
    jobs: int = 1,
) -> DemoResult:
    """Run the main job: locate or fetch the export, import it, cross-validate, report.

    The patients of the paper's training cohort (``cohort1``, patients 1-1170) are
    cross-validated (repeated stratified k-fold by patient, then leave-one-hospital-out) with
    every model kind of ``models`` on the same folds. When the export also holds the
    independent cohort (``cohort2``, patients 1171-1521), models trained on all of cohort 1
    are evaluated on it without retraining. An export without cohort-1 patients is
    cross-validated as a whole.

    Parameters
    ----------
    settings : Settings
        Home folder and database URL (``settings.database_url``).
    from_path : Path, optional
        A local copy of the iCTCF export; default ``settings.export_path`` or the cache, and
        otherwise a download checked against the published SHA-256.
    repeats, folds, seed : int, optional
        Cross-validation settings (default 10 repeats of stratified 10-fold CV, seed 0).
    output : Path, optional
        Parent folder of the report folder ``<run id>/`` (default ``settings.reports_dir``,
        ``reports`` in the working directory).
    progress : bool, optional
        Draw progress bars on stderr.
    policy, config : optional
        Normalisation policy and network configuration.
    models : sequence of str, optional
        Model kinds (default :data:`DEMO_MODELS`: the network and gradient boosting).
    jobs : int, optional
        Worker processes fitting cross-validation folds at the same time (default 1); the
        results are identical for any value.

    Returns
    -------
    DemoResult

    Raises
    ------
    DataNotFoundError
        If the export is neither given, cached nor downloadable.
    InputError
        If the export is invalid or the settings are impossible (such as more folds than
        patients in a class).
    """
    from ictcf.evaluation.report import format_headline_table
    from ictcf.ingest.fetch import locate_export

    policy = policy or NormalisationPolicy()
    config = config or CFNetworkConfig()
    configs = resolve_model_configs(models, config)
    durations: dict[str, float] = {}

    started = time.perf_counter()
    export = locate_export(settings, from_path=from_path, download=True, progress=progress)
    imported = import_export_frames(settings.database_url, export.path, progress=progress)
    durations["import"] = time.perf_counter() - started
    patients, measurements = imported.patients, imported.measurements
    if patients.empty:
        raise InputError(f"No patients were found after importing {export.path.name}.")

    cohorts = patients["cohort"].astype(str)
    if (cohorts == TRAINING_COHORT).any():
        training = patients[cohorts == TRAINING_COHORT].reset_index(drop=True)
        independent = patients[cohorts == INDEPENDENT_COHORT].reset_index(drop=True)
        training_label = TRAINING_COHORT
    else:
        training = patients
        independent = patients.iloc[:0]
        training_label = "all cohorts"
    logger.info(
        "cross-validating on %d patients; %d in the independent cohort",
        len(training),
        len(independent),
    )

    data_label = f"iCTCF export {export.path.name} (SHA-256 {export.sha256[:12]}…)"
    run_id = make_run_id(
        {
            "sha256": export.sha256,
            "folds": folds,
            "repeats": repeats,
            "seed": seed,
            "policy": policy.to_dict(),
            "config": config.to_dict(),
            "models": list(models),
        }
    )
    report_dir = _new_report_dir(output or settings.reports_dir, run_id)

    run = cross_validate_tasks(
        training,
        measurements,
        folds=folds,
        repeats=repeats,
        seed=seed,
        policy=policy,
        config=config,
        models=models,
        data_label=f"{data_label}, {training_label}",
        progress=progress,
        jobs=jobs,
    )
    durations.update(run.durations_s)

    notes: list[str] = list(run.notes)
    if len(independent):
        started = time.perf_counter()
        frames, summaries, skipped = evaluate_on_independent_cohort(
            training,
            independent,
            measurements,
            policy=policy,
            config=config,
            seed=seed,
            data_label=f"{data_label}, {INDEPENDENT_COHORT} (models trained on all of "
            f"{TRAINING_COHORT})",
            models=models,
        )
        durations["independent"] = time.perf_counter() - started
        run.predictions = pd.concat([run.predictions, *frames], ignore_index=True)
        run.summaries.extend(summaries)
        notes.extend(skipped)
    elif training_label == TRAINING_COHORT:
        notes.append(
            f"The export holds no {INDEPENDENT_COHORT} patients (1171-1521), so there is no "
            "independent-cohort evaluation."
        )

    data = {
        "file_name": export.path.name,
        "sha256": export.sha256,
        "published": export.published,
        "patients_per_cohort": {
            str(key): int(value) for key, value in cohorts.value_counts().sort_index().items()
        },
        "cross_validated_cohort": training_label,
        "labelled_patients": run.labelled,
        "hospitals": sorted(str(name) for name in training["hospital"].dropna().unique()),
    }
    if not export.published:
        notes.append(
            f"The export {export.path.name} is not the published iCTCF export (its SHA-256 "
            "differs); results describe this file only."
        )
    run_info = build_run_info(
        run_id=run_id,
        data=data,
        folds=folds,
        repeats=repeats,
        seed=seed,
        policy=policy,
        config=configs,
        durations_s=durations,
        notes=notes,
    )
    index_html = write_cross_validation_report(report_dir, run, run_info)
    return DemoResult(
        run_id=run_id,
        report_dir=report_dir,
        index_html=index_html,
        headline=format_headline_table(run.summaries),
        run=run,
        run_info=run_info,
    )


@dataclass
class TrainedModel:
    """A final model with what :func:`train_final_model` learned about it.

    Attributes
    ----------
    model : CFModel
        Fitted on every eligible patient.
    training_sha256 : str
        SHA-256 of the patients and measurements the model was fitted on.
    cv_summary : EvaluationSummary or None
        Cross-validation of the same recipe on the same data, when requested.
    training_source_ids : list of str
        ``source_id`` of every patient the model was fitted on.
    """

    model: CFModel
    training_sha256: str
    cv_summary: EvaluationSummary | None = None
    training_source_ids: list[str] = field(default_factory=list)


def train_final_model(
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    task: TaskSpec,
    *,
    policy: NormalisationPolicy | None = None,
    config: ModelConfig | None = None,
    cv_repeats: int = 0,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    data_label: str = "patients from the database",
    progress: bool = False,
    jobs: int = 1,
) -> TrainedModel:
    """Fit the final model of ``task`` on all eligible patients, optionally cross-validating first.

    Parameters
    ----------
    patients, measurements : DataFrame
        Frames of ``ictcf.db.queries``.
    task : TaskSpec
    policy, config : optional
        Defaults ``NormalisationPolicy()`` and ``CFNetworkConfig(seed=seed)``. The type of
        ``config`` chooses the model kind (``GradientBoostingConfig``, ``LogisticConfig``).
    cv_repeats : int, optional
        Repeats of ``folds``-fold cross-validation whose summary is stored with the model
        (default 0: none).
    folds, seed : int, optional
    data_label : str, optional
        Names the data in the CV summary.
    jobs : int, optional
        Worker processes for the optional cross-validation (default 1).
    progress : bool, optional

    Returns
    -------
    TrainedModel
    """
    policy = policy or NormalisationPolicy()
    config = config or CFNetworkConfig(seed=seed)
    eligible, _labels = labelled_patients(patients, task)
    cv_summary = None
    if cv_repeats > 0:
        run = cross_validate_tasks(
            patients,
            measurements,
            tasks=[task.name],
            folds=folds,
            repeats=cv_repeats,
            seed=seed,
            policy=policy,
            config=config,
            models=[model_kind_of(config)],
            hospital_holdout=False,
            data_label=data_label,
            progress=progress,
            jobs=jobs,
        )
        cv_summary = run.summaries[0]
    model = fit_cf_model(patients, measurements, task, policy=policy, config=config)
    return TrainedModel(
        model=model,
        training_sha256=training_data_sha256(eligible, measurements),
        cv_summary=cv_summary,
        training_source_ids=sorted(str(source_id) for source_id in eligible["source_id"]),
    )


#: Patient numbers listed in an overlap error before the rest are only counted.
MAX_OVERLAP_SHOWN = 5


@dataclass
class OverlapCheck:
    """How the patients of an evaluation relate to a model's training patients.

    Attributes
    ----------
    checked : bool
        False when the artefact predates recorded training patients.
    overlapping : list of str
        ``source_id`` of the evaluated patients the model was trained on, sorted.
    notes : list of str
        Lines for the report: why nothing could be checked, or that overlap was allowed.
    """

    checked: bool
    overlapping: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_training_overlap(
    training_source_ids: frozenset[str] | None,
    patients: pd.DataFrame,
    *,
    allow_overlap: bool = False,
) -> OverlapCheck:
    """Reject an evaluation on patients the model was trained on.

    Patients are matched by ``source_id`` (the export's patient number, such as
    ``Patient 17``).

    Parameters
    ----------
    training_source_ids : frozenset of str or None
        ``LoadedArtefact.training_source_ids``; None for an artefact that did not record
        them, which is allowed with a logged warning and a note.
    patients : DataFrame
        The patients to evaluate (column ``source_id``).
    allow_overlap : bool, optional
        Report overlapping patients in the notes instead of raising (default False).

    Returns
    -------
    OverlapCheck

    Raises
    ------
    InputError
        If any patient is among the training patients and ``allow_overlap`` is False.
    """
    if training_source_ids is None:
        logger.warning(
            "the model artefact does not record its training patients, so overlap with the "
            "evaluated patients cannot be checked"
        )
        return OverlapCheck(
            checked=False,
            notes=[
                "Independence not checked: the model artefact does not record its training "
                "patients (it was written by an older ictcf). Train it again so that overlap "
                "is rejected."
            ],
        )
    evaluated = {str(source_id) for source_id in patients["source_id"]}
    overlapping = sorted(evaluated & training_source_ids, key=_source_id_order)
    if not overlapping:
        return OverlapCheck(checked=True)
    shown = ", ".join(overlapping[:MAX_OVERLAP_SHOWN])
    more = len(overlapping) - MAX_OVERLAP_SHOWN
    listed = shown + (f" and {more} more" if more > 0 else "")
    if not allow_overlap:
        raise InputError(
            f"{len(overlapping)} of the {len(evaluated)} patients to evaluate were used to "
            f"train the model ({listed}), so this is not an independent cohort. Evaluate on "
            "patients outside the training data, or pass --allow-overlap to report the "
            "overlap as such."
        )
    return OverlapCheck(
        checked=True,
        overlapping=overlapping,
        notes=[
            f"NOT AN INDEPENDENT COHORT: {len(overlapping)} of the {len(evaluated)} evaluated "
            f"patients were used to train the model ({listed}); --allow-overlap was given. "
            "These results overstate performance on new patients."
        ],
    )


def _source_id_order(source_id: str) -> tuple[int, str]:
    digits = "".join(character for character in source_id if character.isdigit())
    return (int(digits) if digits else -1, source_id)


def evaluate_independent(
    model: CFModel,
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    *,
    data_label: str,
    overlapping: int = 0,
) -> tuple[pd.DataFrame, EvaluationSummary]:
    """Score an independent cohort with a trained model and summarise the metrics.

    ``overlapping`` is the number of these patients the model was trained on (see
    :func:`check_training_overlap`); when positive, the split description says the data is
    not independent.

    Returns
    -------
    predictions : DataFrame
        The predictions frame (``evaluation`` "independent").
    summary : EvaluationSummary
    """
    predictions = independent_predictions(model, patients, measurements)
    summary = _summarise(
        predictions,
        model.task,
        {
            "data": f"{data_label}, {predictions['patient_id'].nunique()} patients labelled "
            f"for {model.task.name}",
            "split": (
                "independent cohort: model trained on other data, applied without retraining"
                if overlapping == 0
                else f"NOT independent: {overlapping} of these patients were used to train the "
                "model (--allow-overlap); model applied without retraining"
            ),
        },
    )
    return predictions, summary


__all__ = [
    "DEMO_MODELS",
    "INDEPENDENT_COHORT",
    "TRAINING_COHORT",
    "CrossValidationRun",
    "DemoResult",
    "ImportedExport",
    "OverlapCheck",
    "TrainedModel",
    "build_run_info",
    "check_training_overlap",
    "cross_validate_tasks",
    "describe_models",
    "evaluate_independent",
    "evaluate_on_independent_cohort",
    "export_source_ids",
    "import_export_frames",
    "make_run_id",
    "resolve_model_configs",
    "run_demo",
    "software_versions",
    "train_final_model",
    "write_cross_validation_report",
]
