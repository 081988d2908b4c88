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
from ictcf.db.session import open_database
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
    assert "Patients not found: Patient 99999" in str(result.exception)  # type: ignore[attr-defined]

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
    assert lines[0] == "source_id,hospital,label,prob_cured,prob_deceased,predicted_class"
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
