"""``ictcf import dicom|jpeg|nifti|labelled-slices``, ``import prune-store`` and ``export slices``."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ictcf.cli.main import cli
from ictcf.db import open_database
from ictcf.errors import DataNotFoundError, InputError
from tests.imaging.ingest_fixtures import (
    add_patient,
    files_under,
    phantom_volume,
    table_counts,
    write_ct_series,
    write_grey_series,
)


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--no-progress", *args], catch_exceptions=True)


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'ictcf.sqlite3'}"


def test_import_dicom_then_export_png(database: str, tmp_path: Path) -> None:
    factory = open_database(database)
    add_patient(factory, 17)
    write_ct_series(tmp_path / "upload", phantom_volume(6))
    report_path = tmp_path / "report.json"

    result = _run(
        "import", "dicom", str(tmp_path / "upload"), "--patient", "Patient 17",
        "--database-url", database, "--report", str(report_path),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "6 slices stored" in result.output
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["n_slices_stored"] == 6
    assert report["deidentification"]
    assert (tmp_path / "db" / "store").is_dir()

    exported = _run(
        "export", "slices", "--output", str(tmp_path / "out"), "--format", "png",
        "--patient", "17", "--database-url", database,
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    with (tmp_path / "out" / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert {row["window"] for row in rows} == {"lung"}


def test_import_dicom_twice_reports_already_imported(database: str, tmp_path: Path) -> None:
    factory = open_database(database)
    add_patient(factory, 2)
    write_ct_series(tmp_path / "upload", phantom_volume(3))
    args = (
        "import",
        "dicom",
        str(tmp_path / "upload"),
        "--patient",
        "2",
        "--database-url",
        database,
    )
    assert _run(*args).exit_code == 0
    counts = table_counts(factory)
    second = _run(*args)
    assert second.exit_code == 0, second.output
    assert "already imported" in second.output
    assert table_counts(factory) == counts


def test_import_unknown_patient_message(database: str, tmp_path: Path) -> None:
    write_ct_series(tmp_path / "upload", phantom_volume(2))
    result = _run(
        "import", "dicom", str(tmp_path / "upload"), "--patient", "404", "--database-url", database
    )
    assert isinstance(result.exception, DataNotFoundError)
    assert "No patient with iCTCF number 404" in str(result.exception)


def test_import_zip_with_absolute_entry_leaves_nothing(database: str, tmp_path: Path) -> None:
    factory = open_database(database)
    add_patient(factory, 3)
    series = write_ct_series(tmp_path / "series", phantom_volume(2))
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("series/1.dcm", series[0].read_bytes())
        bundle.writestr("/tmp/evil.txt", b"outside")
        bundle.writestr("../abc-extra/x.dcm", series[1].read_bytes())
    before = files_under(tmp_path)
    result = _run("import", "dicom", str(archive), "--patient", "3", "--database-url", database)
    assert isinstance(result.exception, InputError)
    assert files_under(tmp_path) == before | files_under(tmp_path / "db")
    assert table_counts(factory)["ct_series"] == 0
    assert files_under(tmp_path / "db" / "store") == set()


def test_import_jpeg_with_store_option(database: str, tmp_path: Path) -> None:
    factory = open_database(database)
    add_patient(factory, 4)
    write_grey_series(tmp_path / "jpeg", phantom_volume(3, 128, 128))
    result = _run(
        "import", "jpeg", str(tmp_path / "jpeg"), "--patient", "4", "--store",
        str(tmp_path / "elsewhere"), "--no-lung-extraction", "--database-url", database,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "elsewhere")
    assert not (tmp_path / "db" / "store").exists()


def test_import_labelled_slices_create_patients(database: str, tmp_path: Path) -> None:
    write_grey_series(tmp_path / "hust19" / "pCT" / "case-a", phantom_volume(2, 128, 128))
    result = _run(
        "import", "labelled-slices", str(tmp_path / "hust19"), "--create-patients",
        "--database-url", database,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "pCT 2" in result.output


def test_prune_store_dry_run(database: str, tmp_path: Path) -> None:
    open_database(database)
    orphan = tmp_path / "db" / "store" / "ab" / ("c" * 62 + ".npz")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    result = _run(
        "import", "prune-store", "--dry-run", "--min-age", "0", "--database-url", database
    )
    assert result.exit_code == 0, result.output
    assert "1 unused; 1 would be deleted" in result.output
    assert orphan.exists()
    result = _run("import", "prune-store", "--min-age", "0", "--database-url", database)
    assert "1 deleted" in result.output
    assert not orphan.exists()


def test_export_slices_nothing_stored(database: str, tmp_path: Path) -> None:
    open_database(database)
    result = _run("export", "slices", "--output", str(tmp_path / "out"), "--database-url", database)
    assert isinstance(result.exception, DataNotFoundError)
    assert "No stored slice matches" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_keep_dates_reaches_deidentification(database: str, tmp_path: Path) -> None:
    factory = open_database(database)
    add_patient(factory, 5)
    write_ct_series(tmp_path / "upload", phantom_volume(2))
    report_path = tmp_path / "report.json"
    result = _run(
        "import", "dicom", str(tmp_path / "upload"), "--patient", "5", "--keep-dates",
        "--report", str(report_path), "--database-url", database,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["deidentification"]["dates_shifted"] is True


def test_export_label_in_any_case(database: str, tmp_path: Path) -> None:
    factory = open_database(database)
    add_patient(factory, 6)
    write_grey_series(tmp_path / "hust19" / "pCT" / "6", phantom_volume(2, 128, 128))
    write_grey_series(tmp_path / "hust19" / "nCT" / "6", phantom_volume(3, 128, 128))
    assert (
        _run(
            "import", "labelled-slices", str(tmp_path / "hust19"), "--database-url", database
        ).exit_code
        == 0
    )
    result = _run(
        "export", "slices", "--output", str(tmp_path / "out"), "--label", "pct",
        "--format", "npz", "--database-url", database,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 slices written" in result.output
    assert "pCT 2" in result.output


def _write_two_patients(folder: Path) -> None:
    write_ct_series(folder / "a", phantom_volume(2), patient_names=["ALPHA^ONE"] * 2)
    write_ct_series(
        folder / "b", phantom_volume(2), patient_names=["BETA^TWO"] * 2, patient_id="87654321"
    )


def test_import_dicom_mixed_patients_rejected(database_url: str, tmp_path: Path) -> None:
    factory = open_database(database_url)
    add_patient(factory, 31)
    _write_two_patients(tmp_path / "upload")
    counts = table_counts(factory)

    result = _run(
        "import", "dicom", str(tmp_path / "upload"), "--patient", "31", "--no-lung-extraction",
        "--store", str(tmp_path / "store"), "--database-url", database_url,
    )  # fmt: skip

    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert "contains images of 2 patients" in str(result.exception)
    assert "--allow-mixed-patients" in str(result.exception)
    assert table_counts(factory) == counts
    assert files_under(tmp_path / "store") == set()


def test_import_dicom_allow_mixed_patients(database_url: str, tmp_path: Path) -> None:
    factory = open_database(database_url)
    add_patient(factory, 32)
    _write_two_patients(tmp_path / "upload")
    report_path = tmp_path / "report.json"

    result = _run(
        "import", "dicom", str(tmp_path / "upload"), "--patient", "32", "--no-lung-extraction",
        "--allow-mixed-patients", "--store", str(tmp_path / "store"),
        "--report", str(report_path), "--database-url", database_url,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "warning: the upload contains images of 2 patients" in result.output
    assert "2 series and 4 slices stored" in result.output
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert len(report["warnings"]) == 1
    assert report["deidentification"]["n_patient_keys"] == 2
    assert "ALPHA" not in result.output
