"""The comparisons, Table 1 and the report on the real iCTCF cohort-1 export (1,170 patients).

Group sizes follow from the export: control 222, type I 438, type II 211; 53 deceased and 450
cured patients, all of type I or II. Directions checked here are those Ning et al. (Nat. Biomed. Eng. 2020) report for
lymphocytes, albumin, LDH and D-dimer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db.session import open_database, session_scope
from ictcf.stats.analysis import ComparisonResult, paper_comparisons
from ictcf.stats.comparisons import MANN_WHITNEY_U, TESTED, WELCH_T_TEST
from ictcf.stats.report import write_stats_report
from ictcf.stats.table_one import table_one


@pytest.fixture(scope="module")
def cohort1_factory(cohort1_database: str) -> sessionmaker[Session]:
    return open_database(cohort1_database)


@pytest.fixture(scope="module")
def cohort1_results(cohort1_factory: sessionmaker[Session]) -> dict[str, ComparisonResult]:
    with session_scope(cohort1_factory) as session:
        return paper_comparisons(session)


def test_cohort1_group_sizes(cohort1_results: dict[str, ComparisonResult]) -> None:
    sizes = {name: (result.n_a, result.n_b) for name, result in cohort1_results.items()}
    assert sizes == {
        "covid_vs_control": (649, 222),
        "type_ii_vs_type_i": (211, 438),
        "deceased_vs_cured": (53, 450),
    }


def test_cohort1_rows_are_consistent(cohort1_results: dict[str, ComparisonResult]) -> None:
    for result in cohort1_results.values():
        table = result.table
        tested = table[table["status"] == TESTED]
        untested = table[table["status"] != TESTED]
        assert len(tested) > 80
        assert tested["test"].isin([WELCH_T_TEST, MANN_WHITNEY_U]).all()
        assert tested["p_value"].between(0, 1).all()
        assert (tested["p_adjusted"] >= tested["p_value"]).all()
        assert (table["n_tests"] == len(tested)).all()
        assert untested["p_value"].isna().all()
        assert (untested["reason"].str.len() > 0).all()
        assert untested["significant"].isna().all()
        assert (table["n_a"] + table["missing_a"] == result.n_a).all()
        assert result.n_higher + result.n_lower == len(result.significant_cfs)
        assert len(result.significant_cfs) > 0


def test_cohort1_known_directions(cohort1_results: dict[str, ComparisonResult]) -> None:
    covid = cohort1_results["covid_vs_control"].table
    assert covid.loc["LY", "direction"] == "lower"
    assert covid.loc["body_temperature", "direction"] == "higher"
    assert covid.loc["body_temperature", "significant"] is True
    severe = cohort1_results["type_ii_vs_type_i"].table
    for feature, direction in (
        ("LY", "lower"),
        ("ALB", "lower"),
        ("LDH", "higher"),
        ("DD", "higher"),
    ):
        assert severe.loc[feature, "direction"] == direction, feature
        assert severe.loc[feature, "significant"] is True, feature
    deceased = cohort1_results["deceased_vs_cured"].table
    assert deceased.loc["DD", "direction"] == "higher"
    assert deceased.loc["DD", "censored_a"] + deceased.loc["DD", "censored_b"] > 0


def test_cohort1_table_one(cohort1_factory: sessionmaker[Session]) -> None:
    with session_scope(cohort1_factory) as session:
        result = table_one(session)
    assert result.group_sizes == {"control": 222, "type I": 438, "type II": 211}
    assert any(label.startswith("LY (") for label in result.table.index)
    temperature = result.availability.loc["body_temperature"]
    recorded, total = (int(part) for part in temperature["control"].split("/"))
    assert total == 222
    assert recorded < total


def test_cohort1_report(cohort1_factory: sessionmaker[Session], tmp_path: Path) -> None:
    with session_scope(cohort1_factory) as session:
        report = write_stats_report(session, tmp_path / "stats", figures=False)
    summary = json.loads((tmp_path / "stats" / "summary.json").read_text())
    assert summary["n_patients"] == 1170
    temperature = summary["paper_statements"][0]
    our_covid, our_control = (float(v) for v in temperature["ours"].split(" vs "))
    assert our_covid > our_control
    assert not math.isnan(our_covid)
    assert report.html_path.is_file()
