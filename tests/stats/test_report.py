"""Tests of the statistics report files and of the ``ictcf stats`` command."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from ictcf.cli.main import cli
from ictcf.db.models import Hospital, Patient
from ictcf.db.session import session_scope
from ictcf.errors import InputError
from ictcf.stats import report as report_module
from ictcf.stats.groups import parse_comparison
from ictcf.stats.report import write_stats_report


def test_report_writes_tables_figures_and_html(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path
) -> None:
    output = tmp_path / "stats"
    with session_scope(synthetic_sqlite) as session:
        report = write_stats_report(
            session, output, comparisons=[parse_comparison("sexes: sex=male vs sex=female")]
        )
    assert set(report.results) == {
        "covid_vs_control",
        "type_ii_vs_type_i",
        "deceased_vs_cured",
        "sexes",
    }
    for relative in report.files:
        assert (output / relative).is_file(), relative
    for name in ("covid_vs_control_cfs.csv", "sexes_diseases.json"):
        assert (output / "comparisons" / name).is_file()
    assert (output / "figures" / "significance_summary.svg").is_file()
    assert (output / "figures" / "form_counts.png").is_file()
    assert "slice_counts" in report.omitted
    assert not list(tmp_path.glob(".stats.partial-*"))

    table = pd.read_csv(output / "comparisons" / "covid_vs_control_cfs.csv", index_col="feature")
    assert table.loc["SHIFT", "test"] == "Welch's t-test"
    assert table.loc["FLAT", "status"] == "not testable"
    assert math.isnan(table.loc["FLAT", "p_value"])

    rows = json.loads((output / "comparisons" / "covid_vs_control_cfs.json").read_text())
    flat = next(row for row in rows["rows"] if row["feature"] == "FLAT")
    assert flat["p_value"] is None
    assert flat["significant"] is None
    assert rows["comparison"]["n_cfs_higher_in_a"] == 1

    summary = json.loads((output / "summary.json").read_text())
    assert summary["n_patients"] == 60
    assert "report.html" in summary["files"]
    statements = {(row["quantity"], row["comparison"]) for row in summary["paper_statements"]}
    assert len(statements) == 6
    temperature = summary["paper_statements"][0]
    assert temperature["paper"] == "37.9 vs 37.1"
    assert temperature["ours"] != "not available"

    html = (output / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "1,521 patients" in html
    assert "Welch&#39;s t-test" in html
    assert "<script" not in html


def test_report_escapes_names(synthetic_sqlite: sessionmaker[Session], tmp_path: Path) -> None:
    with session_scope(synthetic_sqlite) as session:
        session.get(Hospital, 1).name = "<b>Union</b>"  # type: ignore[union-attr]
    spec = parse_comparison("hospital=<b>Union</b> vs hospital!=<b>Union</b>")
    with session_scope(synthetic_sqlite) as session:
        write_stats_report(session, tmp_path / "out", comparisons=[spec], figures=False)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<b>Union</b>" not in html
    assert "&lt;b&gt;Union&lt;/b&gt;" in html


def test_report_failure_leaves_no_files(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> Path:
        raise RuntimeError("template failed")

    monkeypatch.setattr(report_module, "_render_html", broken)
    output = tmp_path / "stats"
    with session_scope(synthetic_sqlite) as session, pytest.raises(RuntimeError):
        write_stats_report(session, output, figures=False)
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "test.sqlite3"]


def test_report_replaces_earlier_files(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path
) -> None:
    output = tmp_path / "stats"
    output.mkdir()
    (output / "notes.txt").write_text("kept")
    (output / "summary.json").write_text("old")
    with session_scope(synthetic_sqlite) as session:
        write_stats_report(session, output, figures=False)
    assert (output / "notes.txt").read_text() == "kept"
    assert json.loads((output / "summary.json").read_text())["n_patients"] == 60
    assert "figures" in json.loads((output / "summary.json").read_text())["omitted"]


def test_report_rejects_file_output(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path
) -> None:
    target = tmp_path / "file.txt"
    target.write_text("")
    with session_scope(synthetic_sqlite) as session, pytest.raises(InputError, match="is a file"):
        write_stats_report(session, target)
    with (
        session_scope(synthetic_sqlite) as session,
        pytest.raises(InputError, match="no comparison"),
    ):
        write_stats_report(session, tmp_path / "x", include_paper=False)


def test_cli_stats_summary(synthetic_sqlite: sessionmaker[Session], tmp_path: Path) -> None:
    url = synthetic_sqlite.kw["bind"].url.render_as_string(hide_password=False)
    output = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        [
            "--no-progress",
            "stats",
            "--database-url",
            url,
            "--output",
            str(output),
            "--compare",
            "older: age>=55 vs age<55",
            "--threshold",
            "older=0.01",
            "--adjusted-threshold",
            "0.05",
            "--censored",
            "half-limit",
            "--no-figures",
        ],
    )
    assert result.exit_code == 0, result.output

    assert "covid_vs_control: 36 COVID-19 vs 20 control" in result.output
    assert "1 CFs higher and 0 lower in COVID-19" in result.output
    assert "older:" in result.output
    assert f"Report: {output / 'report.html'}" in result.output

    summary = json.loads((output / "summary.json").read_text())
    assert summary["comparisons"]["older"]["alpha"] == 0.01
    assert summary["comparisons"]["covid_vs_control"]["alpha_adjusted"] == 0.05
    assert "half the limit" in summary["methods"]["censored_values"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--threshold", "covid_vs_control"], "must be NAME=P"),
        (["--threshold", "covid_vs_control=2"], r"must be a probability in \(0, 1\]"),
        (["--adjusted-threshold", "abc"], "is not a number"),
        (["--compare", "age>=60"], "exactly one ' vs '"),
        (["--threshold", "other=0.1"], "unknown comparison 'other'"),
        (["--no-paper"], "no comparison requested"),
    ],
)
def test_cli_stats_errors(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path, arguments: list[str], message: str
) -> None:
    url = synthetic_sqlite.kw["bind"].url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        cli, ["stats", "--database-url", url, "--output", str(tmp_path / "o"), *arguments]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert result.exception is not None
    assert re.search(message, str(result.exception))
    assert not (tmp_path / "o").exists()


def test_cli_stats_requires_output(sqlite_url: str) -> None:
    result = CliRunner().invoke(cli, ["stats", "--database-url", sqlite_url])
    assert result.exit_code == 2
    assert "--output is required" in result.output


def test_report_counts_patients_only_from_cohort(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path
) -> None:
    # Three controls and the four suspected patients move to cohort "other": the paper's
    # comparisons have empty groups there, the comparison of sexes (4 vs 3) does not.
    with session_scope(synthetic_sqlite) as session:
        for patient_id in (1, 2, 3, 57, 58, 59, 60):
            patient = session.get(Patient, patient_id)
            assert patient is not None
            patient.cohort = "other"
    sexes = parse_comparison("sex=male vs sex=female")
    with session_scope(synthetic_sqlite) as session:
        report = write_stats_report(
            session, tmp_path / "o", comparisons=[sexes], cohort="other", figures=False
        )
    assert report.summary["n_patients"] == 7
    assert report.results["covid_vs_control"].n_tests == 0
    assert "comparison_covid_vs_control" in report.omitted
    assert report.results[sexes.name].n_a == 4
    assert report.results[sexes.name].omitted_reason is None
    assert "no patient belongs" in report.omitted["table_one_outcome"]
    assert "table_one_morbidity_type" not in report.omitted


def test_slice_counts_figure(synthetic_sqlite: sessionmaker[Session], tmp_path: Path) -> None:
    imaging = pytest.importorskip("ictcf.db.imaging_models")
    with session_scope(synthetic_sqlite) as session:
        for patient_id, labels in ((1, ["NiCT", "nCT", "nCT"]), (30, ["pCT", "pCT", None])):
            series = imaging.CTSeries(
                patient_id=patient_id,
                series_key=f"jpeg:{patient_id}",
                source_kind=imaging.SourceKind.JPEG,
                source_sha256=f"{patient_id:064d}",
                n_slices_kept=len(labels),
            )
            series.slices = [
                imaging.CTSlice(
                    index=index,
                    rows=512,
                    columns=512,
                    label=imaging.SliceLabel(label) if label else None,
                    source_sha256=f"{index:064d}",
                    image_kind=imaging.ImageKind.GREY,
                    image_key=f"00/{index:062d}.png",
                )
                for index, label in enumerate(labels)
            ]
            session.add(series)

    with session_scope(synthetic_sqlite) as session:
        counts = report_module.count_ct_slices(session)
        report = write_stats_report(session, tmp_path / "o")
    assert counts is not None
    by_label = counts.groupby("label")["n_slices"].sum().to_dict()
    assert by_label == {"NiCT": 1, "nCT": 2, "pCT": 2, "unlabelled": 1}
    assert set(counts["morbidity_type"]) == {"control", "type_i"}
    assert "slice_counts" not in report.omitted
    assert (tmp_path / "o" / "figures" / "slice_counts.svg").is_file()
