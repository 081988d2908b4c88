"""The ictcf import ictcf-export, data fetch and export cfs commands."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ictcf.cli.main import cli
from ictcf.errors import ConflictError, DataNotFoundError, IctcfError, InputError
from tests.ingest.conftest import make_line, write_export


def test_import_and_reimport(sqlite_url: str, export_dir: Path, tmp_path: Path) -> None:
    path = write_export(export_dir, [make_line(1), make_line(2)])
    report_path = tmp_path / "report.json"
    runner = CliRunner()
    arguments = ["--no-progress", "import", "ictcf-export", str(path), "--database-url", sqlite_url]
    result = runner.invoke(cli, [*arguments, "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    assert (
        "Imported export.txt: 2 patients added, 0 unchanged, 0 lines skipped; 12 CF values"
        in result.output
    )
    assert f"Report: {report_path}" in result.output
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["patients_added"] == 2
    assert report["import_run_id"] == 1

    again = runner.invoke(cli, arguments)
    assert again.exit_code == 0, again.output
    assert "Nothing changed: all 2 patients of export.txt are already stored" in again.output
    assert "import-reports" in again.output


def test_import_skip_invalid(sqlite_url: str, export_dir: Path) -> None:
    path = write_export(export_dir, [make_line(1), make_line(2)[:100]])
    runner = CliRunner()
    arguments = ["--no-progress", "import", "ictcf-export", str(path), "--database-url", sqlite_url]
    failed = runner.invoke(cli, arguments)
    assert failed.exit_code == 1
    assert "line 2: patient blob is malformed" in str(failed.exception)
    result = runner.invoke(cli, [*arguments, "--skip-invalid", "--cohort", "pilot"])
    assert result.exit_code == 0, result.output
    assert "1 patient added, 0 unchanged, 1 line skipped" in result.output


def test_import_conflict_exit_code(sqlite_url: str, export_dir: Path) -> None:
    runner = CliRunner()
    base = ["--no-progress", "import", "ictcf-export", "--database-url", sqlite_url]
    first = write_export(export_dir, [make_line(1)], "a.txt")
    assert runner.invoke(cli, [*base, str(first)]).exit_code == 0
    second = write_export(export_dir, [make_line(1, age="56", band="40to60")], "b.txt")
    result = runner.invoke(cli, [*base, str(second)])
    assert result.exit_code == 1
    assert isinstance(result.exception, ConflictError)


def test_data_fetch_from_local_file(export_dir: Path) -> None:
    path = write_export(export_dir, [make_line(1)])
    result = CliRunner().invoke(cli, ["--no-progress", "data", "fetch", "--from", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Path: {path}" in result.output
    assert "SHA-256: " in result.output
    assert "Published export: no" in result.output


def test_data_fetch_offline() -> None:
    result = CliRunner().invoke(
        cli, ["--no-progress", "data", "fetch", "--url", "http://127.0.0.1:9/patient.txt"]
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, DataNotFoundError)


def test_export_cfs_command(sqlite_url: str, export_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    path = write_export(export_dir, [make_line(1), make_line(2)])
    runner.invoke(
        cli, ["--no-progress", "import", "ictcf-export", str(path), "--database-url", sqlite_url]
    )
    output = tmp_path / "wide.parquet"
    result = runner.invoke(
        cli,
        [
            "export",
            "cfs",
            "--layout",
            "wide",
            "--output",
            str(output),
            "--database-url",
            sqlite_url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 2 rows x" in result.output
    assert pd.read_parquet(output)["cf_LY"].tolist() == [1.0, 1.0]


def test_import_all_lines_invalid(sqlite_url: str, export_dir: Path) -> None:
    path = write_export(export_dir, [make_line(1)[:50], make_line(2)[:50]])
    arguments = ["--no-progress", "import", "ictcf-export", str(path), "--skip-invalid"]
    result = CliRunner().invoke(cli, [*arguments, "--database-url", sqlite_url])
    assert result.exit_code == 0, result.output
    assert (
        "Nothing imported: export.txt has no valid patient line (2 lines skipped" in result.output
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        ("Patient 1\tx\r\n".encode("utf-16"), "the file is UTF-16 or UTF-32 text"),
        ("Patient 1\tHypertensión\r\n".encode("latin-1"), "invalid UTF-8 byte 0xf3"),
    ],
    ids=["empty", "utf-16", "latin-1"],
)
def test_data_fetch_rejects_non_export(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "given.txt"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["data", "fetch", "--from", str(path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, InputError)
    assert f"given.txt: {message}" in str(result.exception)
    assert "Path:" not in result.output


def test_unwritable_report_path(sqlite_url: str, export_dir: Path, tmp_path: Path) -> None:
    path = write_export(export_dir, [make_line(1)])
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    arguments = ["import", "ictcf-export", str(path), "--database-url", sqlite_url]
    result = CliRunner().invoke(cli, [*arguments, "--report", str(blocker / "report.json")])
    assert result.exit_code == 1
    assert isinstance(result.exception, IctcfError)
    assert "could not write the import report" in str(
        result.exception
    ) and "the import is stored (import run 1" in str(result.exception)
