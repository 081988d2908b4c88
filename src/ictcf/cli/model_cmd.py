"""``ictcf cross-validate``, ``train``, ``predict`` and ``evaluate``: the CF models.

``--model`` chooses the model kind: ``network`` (the paper's HUST-19 CF network, default),
``gradient-boosting`` or ``logistic`` (comparison models with fixed hyperparameters).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
import pandas as pd

from ictcf.cli.common import (
    CLIContext,
    database_url_option,
    output_option,
    pass_cli_context,
    resolve_database_url,
)
from ictcf.db.queries import load_measurements, load_patients
from ictcf.db.session import open_database, session_scope
from ictcf.errors import InputError
from ictcf.evaluation.cross_validation import DEFAULT_FOLDS, DEFAULT_REPEATS
from ictcf.features.cf_features import NormalisationPolicy
from ictcf.models.artefact import load_model, save_model
from ictcf.models.cf_model import MIN_MEASURED_CFS
from ictcf.models.cf_network import CFNetworkConfig
from ictcf.models.estimators import MODEL_KINDS, NETWORK_KIND, default_model_config
from ictcf.models.tasks import TASKS, get_task, labelled_patients
from ictcf.pipeline import (
    build_run_info,
    check_training_overlap,
    cross_validate_tasks,
    evaluate_independent,
    import_export_frames,
    make_run_id,
    resolve_model_configs,
    train_final_model,
    write_cross_validation_report,
)

logger = logging.getLogger(__name__)

TASK_CHOICE = click.Choice(sorted(TASKS))
#: Default of --jobs: one fold-fitting process per CPU.
DEFAULT_JOBS = os.cpu_count() or 1
MODEL_CHOICE = click.Choice(MODEL_KINDS)


def _load_frames(database_url: str, cohort: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    # The commands that load frames only read, so a missing SQLite file is an error rather
    # than a new, empty database.
    factory = open_database(database_url, create=False)
    try:
        with session_scope(factory) as session:
            patients = load_patients(session, cohort=cohort)
            measurements = load_measurements(session)
    finally:
        factory.kw["bind"].dispose()
    if patients.empty:
        where = f"cohort {cohort!r} of the database" if cohort else "the database"
        raise InputError(
            f"No patients found in {where}; import the iCTCF export first "
            "(`ictcf import export FILE` or `ictcf demo`)."
        )
    return patients, measurements


@contextmanager
def _imported_export(
    path: Path, database_url: str | None, progress: bool
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Import ``path`` into ``database_url`` or a temporary SQLite file; yield its patients."""
    with tempfile.TemporaryDirectory(prefix="ictcf-import-") as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'import.sqlite3'}"
        imported = import_export_frames(url, path, progress=progress)
        yield imported.patients, imported.measurements


def cv_folds_option(function: click.decorators.FC) -> click.decorators.FC:
    """Add ``--folds``, shared by ``cross-validate`` and ``demo``."""
    return click.option(
        "--folds",
        type=click.IntRange(min=2),
        default=DEFAULT_FOLDS,
        show_default=True,
        help="Folds per repeat (stratified by class, split by patient).",
    )(function)


def seed_option(function: click.decorators.FC) -> click.decorators.FC:
    """Add ``--seed``, shared by the commands that fit models and ``demo``."""
    return click.option(
        "--seed",
        type=int,
        default=0,
        show_default=True,
        help="Seed of the fold shuffles and of network training; one seed fixes the whole run.",
    )(function)


def jobs_option(function: click.decorators.FC) -> click.decorators.FC:
    """Add ``--jobs``, shared by the commands that cross-validate and ``demo``."""
    return click.option(
        "--jobs",
        type=click.IntRange(min=1),
        default=DEFAULT_JOBS,
        show_default=True,
        help="Worker processes fitting cross-validation folds at the same time (default: the "
        "number of CPUs; 1 fits every fold in this process). Results are identical for any "
        "value.",
    )(function)


def _model_dir_option(function: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--model",
        "model_path",
        type=click.Path(path_type=Path),
        metavar="DIR",
        required=True,
        help="Model folder written by `ictcf train`.",
    )(function)


def _cohort_option(function: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--cohort",
        default=None,
        metavar="NAME",
        help="Use only the patients of this cohort of the database (default: all patients).",
    )(function)


@click.command("cross-validate")
@click.option(
    "--task",
    "tasks",
    type=TASK_CHOICE,
    multiple=True,
    help="Task to cross-validate; repeat for both (default: morbidity and mortality).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=DEFAULT_REPEATS,
    show_default=True,
    help="Repeats of the k-fold split, each with a new shuffle.",
)
@cv_folds_option
@click.option(
    "--model",
    "models",
    type=MODEL_CHOICE,
    multiple=True,
    help="Model kind to cross-validate; repeat to compare kinds on the same folds "
    "(default: network, the paper's model).",
)
@click.option(
    "--max-epochs",
    type=click.IntRange(min=1),
    default=CFNetworkConfig().max_epochs,
    show_default=True,
    help="Upper limit on the network's training epochs per fold (early stopping usually ends "
    "sooner).",
)
@seed_option
@jobs_option
@click.option(
    "--no-hospital-holdout",
    is_flag=True,
    help="Skip leave-one-hospital-out (train on the other hospitals, test on each one).",
)
@_cohort_option
@database_url_option
@functools.partial(
    output_option,
    help_text="Report folder to write (default: reports/<run id> in the working directory).",
)
@pass_cli_context
def cross_validate_command(
    context: CLIContext,
    tasks: tuple[str, ...],
    models: tuple[str, ...],
    repeats: int,
    folds: int,
    max_epochs: int,
    seed: int,
    jobs: int,
    no_hospital_holdout: bool,
    cohort: str | None,
    database_url: str | None,
    output: Path | None,
) -> None:
    """Cross-validate the CF models on the database's patients and write a report.

    Every model kind given with --model is trained and tested on the same folds. The report
    goes to OUTPUT (default reports/<run id>/): index.html, report.md,
    metrics.json, tables, figures and predictions.csv with every out-of-fold prediction.
    """
    from ictcf.evaluation.report import format_headline_table

    url = resolve_database_url(context, database_url)
    patients, measurements = _load_frames(url, cohort)
    policy = NormalisationPolicy()
    config = CFNetworkConfig(max_epochs=max_epochs)
    kinds = list(dict.fromkeys(models)) or [NETWORK_KIND]
    configs = resolve_model_configs(kinds, config)
    run_id = make_run_id(
        {
            "database": "patients",
            "n_patients": len(patients),
            "folds": folds,
            "repeats": repeats,
            "seed": seed,
            "tasks": list(tasks),
            "config": config.to_dict(),
            "models": kinds,
        }
    )
    run = cross_validate_tasks(
        patients,
        measurements,
        tasks=list(tasks) or ["morbidity", "mortality"],
        folds=folds,
        repeats=repeats,
        seed=seed,
        policy=policy,
        config=config,
        models=kinds,
        hospital_holdout=not no_hospital_holdout,
        data_label=f"database patients{f' of cohort {cohort}' if cohort else ''}",
        progress=context.progress,
        jobs=jobs,
    )
    run_info = build_run_info(
        run_id=run_id,
        data={
            "source": "database",
            "cohort": cohort,
            "patients_per_cohort": {
                str(key): int(value) for key, value in patients["cohort"].value_counts().items()
            },
            "labelled_patients": run.labelled,
        },
        folds=folds,
        repeats=repeats,
        seed=seed,
        policy=policy,
        config=configs,
        durations_s=run.durations_s,
        notes=run.notes,
    )
    report_dir = output or context.settings.reports_dir / run_id
    index_html = write_cross_validation_report(report_dir, run, run_info)
    click.echo(format_headline_table(run.summaries))
    click.echo(f"Report: {index_html}")


@click.command("train")
@click.option("--task", type=TASK_CHOICE, required=True, help="Task of the model.")
@click.option(
    "--model",
    "model_kind",
    type=MODEL_CHOICE,
    default=NETWORK_KIND,
    show_default=True,
    help="Model kind: the paper's network or a comparison model with fixed hyperparameters.",
)
@click.option(
    "--cv-repeats",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Cross-validate the same recipe first with this many repeats and store the "
    "metrics with the model (0: skip).",
)
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=DEFAULT_FOLDS,
    show_default=True,
    help="Folds per repeat of the optional cross-validation.",
)
@click.option(
    "--max-epochs",
    type=click.IntRange(min=1),
    default=CFNetworkConfig().max_epochs,
    show_default=True,
    help="Upper limit on the network's training epochs (early stopping usually ends sooner).",
)
@seed_option
@jobs_option
@_cohort_option
@database_url_option
@functools.partial(
    output_option,
    help_text="Model folder to write (default: models/<task>-<model>-<UTC time> in the ictcf "
    "home folder).",
)
@pass_cli_context
def train_command(
    context: CLIContext,
    task: str,
    model_kind: str,
    cv_repeats: int,
    folds: int,
    max_epochs: int,
    seed: int,
    jobs: int,
    cohort: str | None,
    database_url: str | None,
    output: Path | None,
) -> None:
    """Fit the final CF model of --task on every eligible patient and save it as a model folder.

    The model folder (default: models/<task>-<model>-<UTC time> in the ictcf home folder)
    also records the training patients' numbers, so `ictcf evaluate` can reject overlap.
    """
    spec = get_task(task)
    url = resolve_database_url(context, database_url)
    patients, measurements = _load_frames(url, cohort)
    config = (
        CFNetworkConfig(seed=seed, max_epochs=max_epochs)
        if model_kind == NETWORK_KIND
        else default_model_config(model_kind, seed=seed)
    )
    trained = train_final_model(
        patients,
        measurements,
        spec,
        config=config,
        cv_repeats=cv_repeats,
        folds=folds,
        seed=seed,
        data_label=f"database patients{f' of cohort {cohort}' if cohort else ''}",
        progress=context.progress,
        jobs=jobs,
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = output or context.settings.models_dir / f"{task}-{model_kind}-{stamp}"
    cv_metrics = trained.cv_summary.to_dict() if trained.cv_summary is not None else None
    save_model(
        trained.model,
        folder,
        training_sha256=trained.training_sha256,
        training_source_ids=trained.training_source_ids,
        cv_metrics=cv_metrics,
    )
    counts = ", ".join(
        f"{name} {count}" for name, count in trained.model.training["class_counts"].items()
    )
    click.echo(f"Trained the {task} {model_kind} model on {counts}.")
    if trained.cv_summary is not None:
        for class_name in trained.cv_summary.reported_classes:
            row = trained.cv_summary.summary_row(class_name, "auc")
            if row is not None:
                click.echo(
                    f"  CV AUC {class_name}: {row['mean']:.3f} "
                    f"({row['ci_low']:.3f}-{row['ci_high']:.3f})"
                )
    click.echo(f"Model: {folder}")


@click.command("predict")
@_model_dir_option
@click.option(
    "--patients",
    "patient_keys",
    multiple=True,
    metavar="KEY",
    help="Patient to score: iCTCF number (17 or 'Patient 17'), internal key (id:5) or the "
    "key of an image-only patient; repeat for several.",
)
@click.option(
    "--export",
    "export_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Score the patients of this iCTCF export file (imported into a temporary database).",
)
@click.option(
    "--suspected", is_flag=True, help="Score every suspected patient (morbidity type 'suspected')."
)
@database_url_option
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="CSV file to write (default: standard output).",
)
@pass_cli_context
def predict_command(
    context: CLIContext,
    model_path: Path,
    patient_keys: tuple[str, ...],
    export_path: Path | None,
    suspected: bool,
    database_url: str | None,
    output: Path | None,
) -> None:
    """Score patients with a saved model and write a CSV keyed by source_id.

    Columns: source_id, hospital, label (the known class, empty for suspected or unknown),
    prob_<class> per class, predicted_class, n_cfs_measured (of the model's CFs) and note.
    A patient with fewer than 3 of the model's CFs measured is not scored: the
    probabilities and predicted_class stay empty and note says why. Naming such a patient
    with --patients is an error. Choose the patients with --patients, --suspected or --export
    (which may be combined to narrow an export down). With --export the patients come from
    the file alone and --database-url is not used.
    """
    if not (patient_keys or export_path or suspected):
        raise click.UsageError("Give --patients, --suspected or --export to choose patients.")
    artefact = load_model(model_path)
    model = artefact.model

    def score(patients: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
        chosen = patients
        if suspected:
            chosen = chosen[chosen["morbidity_type"] == "suspected"]
        if patient_keys:
            chosen = select_patients(
                chosen, patient_keys, among=" among suspected patients" if suspected else ""
            )
        if chosen.empty:
            raise InputError("No patients to score; check --patients, --suspected and --export.")
        frame = model.predict_frame(chosen.reset_index(drop=True), measurements)
        unscored = frame[frame["note"] != ""]
        if patient_keys and len(unscored):
            counts = ", ".join(
                f"{source_id} has {count}"
                for source_id, count in zip(
                    unscored["source_id"], unscored["n_cfs_measured"], strict=True
                )
            )
            raise InputError(
                f"Cannot score {len(unscored)} of the patients given with --patients: a patient "
                f"needs at least {MIN_MEASURED_CFS} of the model's {len(model.features)} CFs "
                f"measured ({counts}). Import the patient's clinical features first, or leave "
                "the patient out."
            )
        if len(unscored) == len(frame):
            raise InputError(
                f"None of the {len(frame)} patients can be scored: each has fewer than "
                f"{MIN_MEASURED_CFS} of the model's CFs measured. Import their clinical features "
                "first."
            )
        if len(unscored):
            click.echo(
                f"Warning: {len(unscored)} of {len(frame)} patients were not scored (fewer than "
                f"{MIN_MEASURED_CFS} of the model's CFs measured); see the note column.",
                err=True,
            )
        labels = chosen[model.task.label_column].astype(str).to_numpy()
        frame.insert(
            3, "label", [label if label in model.task.class_names else "" for label in labels]
        )
        return frame.drop(columns=["patient_id"])

    if export_path is not None:
        with _imported_export(export_path, None, context.progress) as (patients, measurements):
            result = score(patients, measurements)
    else:
        url = resolve_database_url(context, database_url)
        result = score(*_load_frames(url, None))

    if output is None:
        result.to_csv(sys.stdout, index=False, float_format="%.6f")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output, index=False, float_format="%.6f")
    click.echo(f"Wrote {len(result)} predictions to {output}", err=True)


def select_patients(
    patients: pd.DataFrame, keys: Sequence[str], *, among: str = ""
) -> pd.DataFrame:
    """Return the rows of ``patients`` named by ``keys``, in the order of the keys.

    Parameters
    ----------
    patients : DataFrame
        Frame of ``ictcf.db.queries.load_patients`` (``patient_id``, ``source_id``,
        ``source_number``, ``cohort``).
    keys : sequence of str
        The key forms of the import commands: ``17`` or ``Patient 17`` (iCTCF export number),
        ``id:5`` (internal key), or the ``source_id`` of an image-only patient.
    among : str, optional
        Words naming the narrowed set in the error, such as " among suspected patients".

    Raises
    ------
    InputError
        If a key names no patient, or an export number matches patients of several cohorts.
    """
    from ictcf.imaging.linking import parse_patient_key

    rows: list[int] = []
    missing: list[str] = []
    for key in keys:
        kind, value = parse_patient_key(key)
        if kind == "internal":
            matches = patients.index[patients["patient_id"] == value]
        elif kind == "export_number":
            matches = patients.index[patients["source_number"] == value]
        else:
            matches = patients.index[patients["source_id"] == value]
        if len(matches) > 1:
            cohorts = ", ".join(sorted(str(c) for c in patients.loc[matches, "cohort"]))
            internal = ", ".join(f"id:{patients.at[row, 'patient_id']}" for row in matches)
            raise InputError(
                f"Patient number {value} exists in several cohorts ({cohorts}); give the "
                f"internal key instead, one of: {internal}."
            )
        if len(matches) == 0:
            missing.append(str(key))
        elif matches[0] not in rows:
            rows.append(matches[0])
    if missing:
        raise InputError(
            f"Patients not found{among}: {', '.join(missing)}. Give an iCTCF number (17 or "
            "'Patient 17') or an internal key (id:5) and check it against the export."
        )
    return patients.loc[rows]


@click.command("evaluate")
@_model_dir_option
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="An iCTCF export file of an independent cohort.",
)
@click.option(
    "--allow-overlap",
    is_flag=True,
    help="Evaluate even if some patients of --data were used to train the model; the report "
    "then says the data is not independent.",
)
@database_url_option
@functools.partial(
    output_option,
    help_text="Report folder to write (default: reports/<run id> in the working directory).",
)
@pass_cli_context
def evaluate_command(
    context: CLIContext,
    model_path: Path,
    data_path: Path,
    allow_overlap: bool,
    database_url: str | None,
    output: Path | None,
) -> None:
    """Evaluate a saved model on an independent cohort without retraining.

    The export is imported into its own database: a temporary SQLite file, or --database-url
    when given. Patients the model was trained on (matched by patient number) are rejected
    unless --allow-overlap is given. The report goes to OUTPUT (default reports/<run id>/).
    """
    from ictcf.evaluation.report import format_headline_table

    artefact = load_model(model_path)
    with _imported_export(data_path, database_url, context.progress) as (patients, measurements):
        eligible, _labels = labelled_patients(patients, artefact.model.task)
        overlap = check_training_overlap(
            artefact.training_source_ids, eligible, allow_overlap=allow_overlap
        )
        for note in overlap.notes:
            click.echo(f"Warning: {note}", err=True)
        predictions, summary = evaluate_independent(
            artefact.model,
            patients,
            measurements,
            data_label=f"export {data_path.name}",
            overlapping=len(overlap.overlapping),
        )
    run_id = make_run_id({"model": artefact.metadata.get("weights_sha256"), "data": data_path.name})
    run_info = build_run_info(
        run_id=run_id,
        data={
            "file_name": data_path.name,
            "labelled_patients": {artefact.model.task.name: len(predictions)},
            "model": str(model_path),
            "model_training_data_sha256": artefact.metadata.get("training_data_sha256"),
            "overlap_with_training": (
                len(overlap.overlapping) if overlap.checked else "not checked"
            ),
        },
        folds=0,
        repeats=0,
        seed=int(artefact.model.config.seed),
        policy=artefact.model.policy,
        config=artefact.model.config,
        durations_s={},
        notes=[
            *overlap.notes,
            "Independent evaluation: the model was not retrained on this data.",
        ],
        include_cv_notes=False,
    )
    report_dir = output or context.settings.reports_dir / run_id
    from ictcf.evaluation.report import write_report

    report_dir.mkdir(parents=True, exist_ok=True)
    index_html = write_report(report_dir, [summary], run_info)
    predictions.to_csv(report_dir / "predictions.csv", index=False)
    click.echo(format_headline_table([summary]))
    click.echo(f"Report: {index_html}")


COMMANDS: list[click.Command] = [
    cross_validate_command,
    train_command,
    predict_command,
    evaluate_command,
]
