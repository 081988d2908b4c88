"""Tests of the comparisons on a database: the groups of Ning et al. 2020, censored values, units."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db.session import open_database, session_scope
from ictcf.errors import DataNotFoundError, InputError
from ictcf.stats.analysis import (
    ANY_DISEASE,
    build_feature_matrix,
    disease_indicators,
    load_cohort,
    paper_comparisons,
    run_comparisons,
)
from ictcf.stats.comparisons import NOT_TESTABLE, TESTED
from ictcf.stats.groups import PAPER_COMPARISONS, parse_comparison


def test_paper_comparisons_on_synthetic_cohort(
    synthetic_factory: sessionmaker[Session],
) -> None:
    with session_scope(synthetic_factory) as session:
        results = paper_comparisons(session)
    assert list(results) == ["covid_vs_control", "type_ii_vs_type_i", "deceased_vs_cured"]

    covid = results["covid_vs_control"]
    assert (covid.n_a, covid.n_b) == (36, 20)
    assert covid.alpha == 1e-5
    assert covid.alpha_adjusted == 1e-3
    table = covid.table
    assert table.loc["SHIFT", "status"] == TESTED
    assert table.loc["SHIFT", "direction"] == "higher"
    assert table.loc["SHIFT", "significant"] is True
    assert table.loc["FLAT", "status"] == NOT_TESTABLE
    assert table.loc["RARE", "status"] == NOT_TESTABLE
    assert table.loc["age", "kind"] == "basic"
    assert table.loc["age", "unit"] == "years"
    assert table.loc["PCT", "unit"] == "ng/mL"
    assert (table["n_tests"] == covid.n_tests).all()
    assert covid.n_tests == len(table) - 2
    assert covid.n_higher == 1
    assert covid.n_lower == 0
    assert "SHIFT" in covid.significant_cfs.index

    assert results["type_ii_vs_type_i"].alpha == 1e-9
    assert (results["type_ii_vs_type_i"].n_a, results["type_ii_vs_type_i"].n_b) == (16, 20)
    deceased = results["deceased_vs_cured"]
    assert (deceased.n_a, deceased.n_b) == (8, 28)


def test_censored_values_counted_per_group(synthetic_factory: sessionmaker[Session]) -> None:
    with session_scope(synthetic_factory) as session:
        results = paper_comparisons(session)
    row = results["covid_vs_control"].table.loc["PCT"]
    assert row["censored_a"] == 12
    assert row["censored_b"] == 6
    assert results["covid_vs_control"].summary()["censored_values_used"] == 18


def test_censored_policies(synthetic_factory: sessionmaker[Session]) -> None:
    with session_scope(synthetic_factory) as session:
        excluded = paper_comparisons(session, censored="exclude")
        half = load_cohort(session, censored="half_limit")
        limit = load_cohort(session, censored="limit")
    row = excluded["covid_vs_control"].table.loc["PCT"]
    assert row["censored_a"] == 0
    assert row["n_a"] == 36 - 12
    assert row["missing_a"] == 12
    assert half.features.values["PCT"].min() == pytest.approx(0.025)
    assert limit.features.values["PCT"].min() == pytest.approx(0.05)


def test_thresholds_override(synthetic_factory: sessionmaker[Session]) -> None:
    with session_scope(synthetic_factory) as session:
        results = paper_comparisons(session, thresholds={"covid_vs_control": 1e-30})
    assert results["covid_vs_control"].alpha == 1e-30
    assert results["covid_vs_control"].n_higher == 0


def test_user_comparison_and_errors(synthetic_factory: sessionmaker[Session]) -> None:
    with session_scope(synthetic_factory) as session:
        data = load_cohort(session)
    spec = parse_comparison("sex=male vs sex=female")
    results = run_comparisons(data, [spec])
    # 60 patients alternate male/female; the 4 suspected patients take part.
    assert results[spec.name].n_a + results[spec.name].n_b == 60
    with pytest.raises(InputError, match="unknown comparison 'nope'"):
        run_comparisons(data, [spec], thresholds={"nope": 0.01})
    with pytest.raises(InputError, match="is used twice"):
        run_comparisons(data, [spec, spec])


def test_empty_group_reported(synthetic_factory: sessionmaker[Session]) -> None:
    with session_scope(synthetic_factory) as session:
        data = load_cohort(session)
    spec = parse_comparison("outcome=deceased & morbidity_type=control vs outcome=cured")
    result = run_comparisons(data, [spec])[spec.name]
    assert result.n_a == 0
    assert (result.table["status"] == NOT_TESTABLE).all()
    assert any("has no patients" in note for note in result.notes)


def test_empty_database_raises(database_url: str) -> None:
    factory = open_database(database_url)
    with session_scope(factory) as session, pytest.raises(DataNotFoundError, match="no patients"):
        paper_comparisons(session)
    factory.kw["bind"].dispose()


def test_feature_matrix_mixed_units() -> None:
    measurements = pd.DataFrame(
        {
            "patient_id": [1, 2, 3, 1, 2],
            "abbreviation": ["PA", "PA", "PA", "CREA", "CREA"],
            "value": [0.2, 0.25, 180.0, 70.0, 80.0],
            "censoring": [None, None, None, None, None],
            "unit": ["g/L", "g/l", "mg/L", "µmol/L", "umol/L"],
        }
    )
    matrix = build_feature_matrix(measurements, [1, 2, 3, 4])
    assert matrix.units["PA"] in ("g/L", "g/l")
    assert matrix.excluded_other_unit["PA"] == 1
    assert math.isnan(matrix.values.loc[3, "PA"])
    assert matrix.excluded_other_unit["CREA"] == 0
    assert matrix.values.loc[2, "CREA"] == 80.0
    assert matrix.values.loc[4].isna().all()
    with pytest.raises(InputError, match="unknown censored-value policy 'drop'"):
        build_feature_matrix(measurements, [1], censored="drop")  # type: ignore[arg-type]


def test_disease_indicators_threshold() -> None:
    patients = pd.DataFrame(
        {
            "patient_id": [1, 2, 3, 4],
            "underlying_diseases": [["Hypertension"], ["hypertension", "Gout"], [], ["Gout"]],
            "has_underlying_disease": [True, True, False, True],
        }
    )
    indicators = disease_indicators(patients, min_patients=2)
    assert list(indicators.columns) == [ANY_DISEASE, "Gout", "Hypertension"] or list(
        indicators.columns
    ) == [ANY_DISEASE, "Gout", "hypertension"]
    np.testing.assert_array_equal(indicators.iloc[:, 0], [True, True, False, True])
    hypertension = indicators.columns[2]
    np.testing.assert_array_equal(indicators[hypertension], [True, True, False, False])
    assert list(disease_indicators(patients, min_patients=3).columns) == [ANY_DISEASE]


def test_paper_specs_are_distinct() -> None:
    assert len({spec.name for spec in PAPER_COMPARISONS}) == 3
