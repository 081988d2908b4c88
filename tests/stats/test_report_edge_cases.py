"""Statistics report on non-finite statistics, small subsets of the real export and empty groups."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from ictcf.cli.main import cli
from ictcf.db.session import session_scope
from ictcf.errors import DataNotFoundError, InputError
from ictcf.stats.comparisons import FISHER_EXACT, two_by_two_test
from ictcf.stats.groups import parse_comparison
from ictcf.stats.report import _json_ready, write_stats_report


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _load_strict_json(path: Path) -> Any:
    """Parse ``path`` as standard JSON: NaN and Infinity raise instead of loading."""
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)


def _import_subset(tmp_path: Path, export: Path, n_lines: int) -> str:
    subset = tmp_path / "subset.txt"
    with export.open(encoding="utf-8") as source:
        subset.write_text("".join(line for _, line in zip(range(n_lines), source, strict=False)))
    url = f"sqlite:///{tmp_path / 'subset.sqlite3'}"
    result = CliRunner().invoke(
        cli, ["--no-progress", "import", "ictcf-export", str(subset), "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    return url


def test_json_ready_maps_non_finite() -> None:
    payload = {"a": math.inf, "b": -math.inf, "c": math.nan, "d": [math.inf], "e": 1.5}
    ready = _json_ready(payload)
    assert ready["a"] is None
    assert ready["a_note"] == "infinite"
    assert ready["b"] is None
    assert ready["b_note"] == "negative infinite"
    assert ready["c"] is None
    assert "c_note" not in ready
    assert ready["d"] == [None]
    assert ready["e"] == 1.5


def test_json_ready_keeps_existing_note() -> None:
    ready = _json_ready({"statistic": math.inf, "statistic_note": "odds ratio infinite"})
    assert ready == {"statistic": None, "statistic_note": "odds ratio infinite"}


def test_two_by_two_zero_cell_note() -> None:
    row = two_by_two_test(4, 10, 0, 10)
    assert row["test"] == FISHER_EXACT
    assert math.isinf(row["statistic"])
    assert row["statistic_note"] == "odds ratio infinite (a zero cell in the 2x2 table)"
    assert two_by_two_test(0, 10, 4, 10)["statistic_note"].startswith("odds ratio 0")
    assert two_by_two_test(30, 60, 20, 60)["statistic_note"] == ""


def test_report_first_200_lines(cohort1_export: Path, tmp_path: Path) -> None:
    url = _import_subset(tmp_path, cohort1_export, 200)
    output = tmp_path / "st200"
    result = CliRunner().invoke(
        cli, ["--no-progress", "stats", "--database-url", url, "-o", str(output), "--no-figures"]
    )
    assert result.exit_code == 0, result.output
    assert "200 patients" in result.output

    infinite_rows = []
    for path in sorted((output / "comparisons").glob("*.json")):
        document = _load_strict_json(path)
        infinite_rows += [row for row in document["rows"] if row.get("statistic_note")]
    _load_strict_json(output / "summary.json")
    # Six controls in the first 200 lines leave zero cells in the disease tables.
    assert infinite_rows
    assert all(row["statistic"] in (None, 0.0) for row in infinite_rows)
    assert "zero cell in the 2x2 table" in (output / "report.html").read_text(encoding="utf-8")


def test_report_without_controls(cohort1_export: Path, tmp_path: Path) -> None:
    # The first 50 patients of the export contain no control patient.
    url = _import_subset(tmp_path, cohort1_export, 50)
    output = tmp_path / "st50"
    result = CliRunner().invoke(cli, ["stats", "--database-url", url, "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "warning: comparison covid_vs_control omitted: group 'control' has 0" in result.output

    summary = _load_strict_json(output / "summary.json")
    reason = summary["comparisons"]["covid_vs_control"]["omitted"]
    assert reason.startswith("group 'control' has 0 patients")
    assert summary["comparisons"]["type_ii_vs_type_i"]["omitted"] is None
    assert "comparison_covid_vs_control" in summary["omitted"]
    paper = [row for row in summary["paper_statements"] if row["group_a"] == "COVID-19"]
    assert paper
    assert all(row["ours"].startswith("not available (comparison omitted") for row in paper)
    assert (output / "table_one_morbidity_type.csv").is_file()
    assert "Comparison omitted" in (output / "report.html").read_text(encoding="utf-8")


def test_cli_all_comparisons_omitted(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path
) -> None:
    url = synthetic_sqlite.kw["bind"].url.render_as_string(hide_password=False)
    output = tmp_path / "o"
    result = CliRunner().invoke(
        cli,
        [
            "stats",
            "--database-url",
            url,
            "-o",
            str(output),
            "--no-paper",
            "--compare",
            "sex=male & sex=female vs sex=female",
        ],
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert "every requested comparison is omitted" in str(result.exception)
    assert "'sex=male & sex=female' has 0 patients" in str(result.exception)
    assert not output.exists()


def test_report_small_group_omitted(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path
) -> None:
    spec = parse_comparison("old: age>=200 vs age<200")
    with session_scope(synthetic_sqlite) as session:
        report = write_stats_report(session, tmp_path / "o", comparisons=[spec], figures=False)
    assert report.results["old"].omitted_reason is not None
    assert report.results["covid_vs_control"].omitted_reason is None
    assert "comparison_old" in report.omitted
    assert (tmp_path / "o" / "comparisons" / "old_cfs.csv").is_file()


def test_write_report_rejects_all_omitted(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path
) -> None:
    spec = parse_comparison("tiny: age>=200 vs age<200")
    with (
        session_scope(synthetic_sqlite) as session,
        pytest.raises(
            InputError, match=r"every requested comparison is omitted.*tiny: group 'age>=200'"
        ),
    ):
        write_stats_report(session, tmp_path / "o", comparisons=[spec], include_paper=False)
    assert not (tmp_path / "o").exists()


def test_comparison_name_spells_operators() -> None:
    assert parse_comparison("age>=60 vs age<60").name == "age_ge_60_vs_age_lt_60"
    assert parse_comparison("age<=60 vs age>60").name == "age_le_60_vs_age_gt_60"


def test_unknown_cohort_lists_cohorts(
    synthetic_sqlite: sessionmaker[Session], tmp_path: Path
) -> None:
    with (
        session_scope(synthetic_sqlite) as session,
        pytest.raises(DataNotFoundError, match=r"cohort 'nope' contains no patients; cohorts in"),
    ):
        write_stats_report(session, tmp_path / "o", cohort="nope")
    assert not (tmp_path / "o").exists()
