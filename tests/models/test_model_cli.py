"""``ictcf train``, ``predict``, ``evaluate`` and ``cross-validate`` on parts of the real export.

The export lists patients grouped by hospital and morbidity form, so the parts are taken by
stride: every 4th line (about 290 patients of both hospitals) is imported into the test
database, and every 8th line starting at the second (about 150 other patients) serves as an
"independent" export for ``evaluate`` and ``predict --export``. The parts are written to the
test's temporary folder only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ictcf.cli.main import cli
from ictcf.db.queries import load_patients
from ictcf.db.session import open_database, session_scope
from ictcf.errors import InputError, ModelError
from ictcf.ingest.importer import import_ictcf_export

TRAINING_LINES = slice(0, None, 4)
INDEPENDENT_LINES = slice(1, None, 8)


def _slice_export(source: Path, target: Path, lines: slice) -> tuple[Path, int]:
    chosen = [line for line in source.read_bytes().split(b"\r\n") if line.strip()][lines]
    target.write_bytes(b"\r\n".join(chosen) + b"\r\n")
    return target, len(chosen)


def _import_part(database_url: str, export: Path, folder: Path) -> str:
    part, _count = _slice_export(export, folder / "training.txt", TRAINING_LINES)
    factory = open_database(database_url)
    import_ictcf_export(factory, part)
    factory.kw["bind"].dispose()
    return database_url


@pytest.fixture
def imported(database_url: str, cohort1_export: Path, tmp_path: Path) -> str:
    """The training part in SQLite and, when configured, PostgreSQL."""
    return _import_part(database_url, cohort1_export, tmp_path)


@pytest.fixture
def imported_sqlite(sqlite_url: str, cohort1_export: Path, tmp_path: Path) -> str:
    """The training part in SQLite only, for commands whose database access is tested above."""
    return _import_part(sqlite_url, cohort1_export, tmp_path)


@pytest.fixture
def independent_export(cohort1_export: Path, tmp_path: Path) -> tuple[Path, int]:
    return _slice_export(cohort1_export, tmp_path / "independent.txt", INDEPENDENT_LINES)


def _invoke(*args: str) -> object:
    return CliRunner().invoke(cli, ["--no-progress", *args], catch_exceptions=True)


def test_train_predict_evaluate(
    imported: str, independent_export: tuple[Path, int], tmp_path: Path
) -> None:
    export_path, n_independent = independent_export
    model_dir = tmp_path / "model"
    result = _invoke(
        "train",
        "--task",
        "morbidity",
        "--max-epochs",
        "40",
        "--cv-repeats",
        "1",
        "--folds",
        "2",
        "--database-url",
        imported,
        "--output",
        str(model_dir),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "Trained the morbidity network model on control" in result.output  # type: ignore[attr-defined]
    assert "CV AUC control:" in result.output  # type: ignore[attr-defined]
    artefact = json.loads((model_dir / "artefact.json").read_text())
    assert artefact["cv_metrics"]["evaluation"] == "cv"
    assert artefact["cv_metrics"]["n_folds"] == 2

    suspected_csv = tmp_path / "suspected.csv"
    result = _invoke(
        "predict",
        "--model",
        str(model_dir),
        "--suspected",
        "--database-url",
        imported,
        "--output",
        str(suspected_csv),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    scored = pd.read_csv(suspected_csv, keep_default_na=False)
    assert list(scored.columns) == [
        "source_id",
        "hospital",
        "label",
        "prob_control",
        "prob_type_i",
        "prob_type_ii",
        "predicted_class",
        "n_cfs_measured",
        "note",
    ]
    assert len(scored) > 0
    assert (scored["label"] == "").all()
    assert scored["source_id"].str.match(r"Patient \d+$").all()

    result = _invoke(
        "predict",
        "--model",
        str(model_dir),
        "--patients",
        "Patient 1",
        "--patients",
        "Patient 5",
        "--database-url",
        imported,
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.output.strip().splitlines()  # type: ignore[attr-defined]
    assert lines[0].startswith("source_id,hospital,label,prob_control")
    assert [line.split(",")[0] for line in lines[1:]] == ["Patient 1", "Patient 5"]

    result = _invoke(
        "predict",
        "--model",
        str(model_dir),
        "--patients",
        "Patient 99999",
        "--database-url",
        imported,
    )
    assert isinstance(result.exception, InputError)  # type: ignore[attr-defined]
    assert "Patients not found: Patient 99999. Give an iCTCF number" in str(result.exception)  # type: ignore[attr-defined]

    export_csv = tmp_path / "export.csv"
    result = _invoke(
        "predict",
        "--model",
        str(model_dir),
        "--export",
        str(export_path),
        "-o",
        str(export_csv),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert len(pd.read_csv(export_csv)) == n_independent

    report_dir = tmp_path / "independent-report"
    result = _invoke(
        "evaluate",
        "--model",
        str(model_dir),
        "--data",
        str(export_path),
        "--output",
        str(report_dir),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "independent cohort" in result.output  # type: ignore[attr-defined]
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["evaluations"][0]["evaluation"] == "independent"
    predictions = pd.read_csv(report_dir / "predictions.csv")
    assert set(predictions["evaluation"]) == {"independent"}
    numbers = predictions["source_id"].str.extract(r"(\d+)")[0].astype(int)
    assert ((numbers - 2) % 8 == 0).all()


def test_predict_needs_a_selection(tmp_path: Path) -> None:
    result = _invoke("predict", "--model", str(tmp_path))
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "Give --patients, --suspected or --export" in result.output  # type: ignore[attr-defined]


def test_predict_with_missing_model(tmp_path: Path) -> None:
    result = _invoke("predict", "--model", str(tmp_path / "none"), "--suspected")
    assert isinstance(result.exception, ModelError)  # type: ignore[attr-defined]
    assert "not found" in str(result.exception)  # type: ignore[attr-defined]


def test_cross_validate_command(imported_sqlite: str, tmp_path: Path) -> None:
    report_dir = tmp_path / "cv"
    result = _invoke(
        "cross-validate",
        "--task",
        "morbidity",
        "--repeats",
        "1",
        "--folds",
        "2",
        "--max-epochs",
        "30",
        "--database-url",
        imported_sqlite,
        "--output",
        str(report_dir),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "morbidity" in result.output  # type: ignore[attr-defined]
    predictions = pd.read_csv(report_dir / "predictions.csv")
    assert set(predictions["evaluation"]) == {"cv", "loho"}
    cv = predictions[predictions["evaluation"] == "cv"]
    assert cv["patient_id"].is_unique
    assert (report_dir / "index.html").is_file()


def test_cross_validate_empty_database(sqlite_url: str) -> None:
    open_database(sqlite_url).kw["bind"].dispose()  # an existing database without patients
    result = _invoke("cross-validate", "--database-url", sqlite_url)
    assert isinstance(result.exception, InputError)  # type: ignore[attr-defined]
    assert "No patients found in the database" in str(result.exception)  # type: ignore[attr-defined]


def test_cross_validate_command_compares_models(imported_sqlite: str, tmp_path: Path) -> None:
    report_dir = tmp_path / "cv-models"
    result = _invoke(
        "cross-validate",
        "--task",
        "mortality",
        "--model",
        "network",
        "--model",
        "gradient-boosting",
        "--model",
        "logistic",
        "--repeats",
        "1",
        "--folds",
        "2",
        "--max-epochs",
        "30",
        "--no-hospital-holdout",
        "--database-url",
        imported_sqlite,
        "--output",
        str(report_dir),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    header = result.output.splitlines()[0]  # type: ignore[attr-defined]
    assert "network AUC (95% interval)" in header
    assert "gradient-boosting AUC (95% interval)" in header
    assert "logistic AUC (95% interval)" in header
    assert header.rstrip().endswith("Paper AUC (as reported)")

    predictions = pd.read_csv(report_dir / "predictions.csv")
    assert set(predictions["model"]) == {"network", "gradient-boosting", "logistic"}
    folds = predictions.pivot(index="patient_id", columns="model", values="fold")
    assert (folds.nunique(axis=1) == 1).all()
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert [item["model"] for item in metrics["evaluations"]] == [
        "network",
        "gradient-boosting",
        "logistic",
    ]
    assert metrics["run_info"]["model"]["kinds"] == ["network", "gradient-boosting", "logistic"]
    assert metrics["run_info"]["model"]["gradient-boosting"]["max_iter"] == 200
    assert (report_dir / "figures" / "mortality_cv_gradient-boosting_roc.png").is_file()
    assert (report_dir / "figures" / "mortality_cv_roc.png").is_file()


def test_cross_validate_rejects_unknown_model(sqlite_url: str) -> None:
    result = _invoke("cross-validate", "--model", "forest", "--database-url", sqlite_url)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "'forest' is not one of 'network', 'gradient-boosting', 'logistic'" in (
        result.output  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("kind", ["gradient-boosting", "logistic"])
def test_train_predict_evaluate_comparison_model(
    kind: str, imported_sqlite: str, independent_export: tuple[Path, int], tmp_path: Path
) -> None:
    export_path, n_independent = independent_export
    model_dir = tmp_path / "model"
    result = _invoke(
        "train",
        "--task",
        "mortality",
        "--model",
        kind,
        "--database-url",
        imported_sqlite,
        "--output",
        str(model_dir),
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert f"Trained the mortality {kind} model on cured" in result.output  # type: ignore[attr-defined]
    artefact = json.loads((model_dir / "artefact.json").read_text())
    assert artefact["model_kind"] == kind
    assert artefact["weights_file"] == "estimator.joblib"

    result = _invoke(
        "predict",
        "--model",
        str(model_dir),
        "--patients",
        "Patient 1",
        "--database-url",
        imported_sqlite,
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.output.strip().splitlines()  # type: ignore[attr-defined]
    assert lines[0] == (
        "source_id,hospital,label,prob_cured,prob_deceased,predicted_class,n_cfs_measured,note"
    )
    assert lines[1].startswith("Patient 1,")

    report_dir = tmp_path / "independent-report"
    result = _invoke(
        "evaluate", "--model", str(model_dir), "--data", str(export_path), "-o", str(report_dir)
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert f"{kind} AUC (95% interval)" in result.output  # type: ignore[attr-defined]
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["evaluations"][0]["model"] == kind
    assert metrics["run_info"]["model"]["kind"] == kind
    predictions = pd.read_csv(report_dir / "predictions.csv")
    assert set(predictions["model"]) == {kind}
    assert len(predictions) <= n_independent


def _train_logistic(database_url: str, folder: Path) -> Path:
    result = _invoke(
        "train", "--task", "mortality", "--model", "logistic", "--database-url", database_url,
        "--output", str(folder),
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    return folder


def _patient_ids(database_url: str) -> dict[str, int]:
    factory = open_database(database_url, create=False)
    with session_scope(factory) as session:
        patients = load_patients(session)
    factory.kw["bind"].dispose()
    return dict(zip(patients["source_id"], patients["patient_id"].astype(int), strict=True))


def test_predict_accepts_import_key_forms(imported_sqlite: str, tmp_path: Path) -> None:
    model_dir = _train_logistic(imported_sqlite, tmp_path / "model")
    internal = _patient_ids(imported_sqlite)["Patient 5"]

    result = _invoke(
        "predict", "--model", str(model_dir), "--patients", "1", "--patients", f"id:{internal}",
        "--patients", "patient 9", "--database-url", imported_sqlite,
    )  # fmt: skip

    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.output.strip().splitlines()  # type: ignore[attr-defined]
    assert [line.split(",")[0] for line in lines[1:]] == ["Patient 1", "Patient 5", "Patient 9"]


def test_predict_rejects_file_as_model(tmp_path: Path) -> None:
    not_a_model = tmp_path / "some_file.csv"
    not_a_model.write_text("a,b\n1,2\n")

    result = _invoke("predict", "--model", str(not_a_model), "--patients", "1")

    assert isinstance(result.exception, ModelError)  # type: ignore[attr-defined]
    assert "some_file.csv is a file, not a model folder" in str(result.exception)  # type: ignore[attr-defined]


def test_predict_rejects_patient_without_cfs(imported_sqlite: str, tmp_path: Path) -> None:
    from ictcf.imaging.linking import resolve_patient

    model_dir = _train_logistic(imported_sqlite, tmp_path / "model")
    factory = open_database(imported_sqlite, create=False)
    with session_scope(factory) as session:
        resolve_patient(session, "scan-only-A", create=True)
    factory.kw["bind"].dispose()
    output = tmp_path / "scored.csv"

    result = _invoke(
        "predict", "--model", str(model_dir), "--patients", "scan-only-A",
        "--database-url", imported_sqlite, "-o", str(output),
    )  # fmt: skip

    assert isinstance(result.exception, InputError)  # type: ignore[attr-defined]
    message = str(result.exception)  # type: ignore[attr-defined]
    assert "Cannot score 1 of the patients given with --patients" in message
    assert "scan-only-A has 0" in message
    assert not output.exists()


def test_evaluate_rejects_training_patients(
    imported_sqlite: str, cohort1_export: Path, tmp_path: Path
) -> None:
    model_dir = _train_logistic(imported_sqlite, tmp_path / "model")
    # Every 8th line from the first is a subset of the training part (every 4th line).
    overlapping, _count = _slice_export(cohort1_export, tmp_path / "overlap.txt", slice(0, None, 8))

    result = _invoke("evaluate", "--model", str(model_dir), "--data", str(overlapping))

    assert isinstance(result.exception, InputError)  # type: ignore[attr-defined]
    assert "were used to train the model" in str(result.exception)  # type: ignore[attr-defined]
    assert "--allow-overlap" in str(result.exception)  # type: ignore[attr-defined]

    report_dir = tmp_path / "overlap-report"
    result = _invoke(
        "evaluate", "--model", str(model_dir), "--data", str(overlapping), "--allow-overlap",
        "-o", str(report_dir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert any("NOT AN INDEPENDENT COHORT" in note for note in metrics["run_info"]["notes"])
    assert metrics["evaluations"][0]["description"]["split"].startswith("NOT independent")
    assert "NOT AN INDEPENDENT COHORT" in (report_dir / "index.html").read_text()


def test_evaluate_warns_on_old_artefact(
    imported_sqlite: str, independent_export: tuple[Path, int], tmp_path: Path
) -> None:
    model_dir = _train_logistic(imported_sqlite, tmp_path / "model")
    metadata_path = model_dir / "artefact.json"
    metadata = json.loads(metadata_path.read_text())
    assert "Patient 1" in metadata["training_source_ids"]
    del metadata["training_source_ids"]
    metadata_path.write_text(json.dumps(metadata))

    report_dir = tmp_path / "report"
    result = _invoke(
        "evaluate", "--model", str(model_dir), "--data", str(independent_export[0]),
        "-o", str(report_dir),
    )  # fmt: skip

    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "Independence not checked" in result.stderr  # type: ignore[attr-defined]
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["run_info"]["data"]["overlap_with_training"] == "not checked"


@pytest.mark.parametrize(
    ("command", "extra"), [("cross-validate", []), ("train", ["--task", "mortality"])]
)
def test_read_only_commands_need_database(command: str, extra: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "ictcf.sqlite3"

    result = _invoke(command, *extra, "--database-url", f"sqlite:///{missing}")

    assert result.exit_code != 0
    assert "does not exist" in str(result.exception)  # type: ignore[attr-defined]
    assert not missing.parent.exists()
