"""Tests of Table 1: groups, tests named per row, SMD columns and stated denominators."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db.enums import MorbidityForm, Outcome, Sex
from ictcf.db.session import session_scope
from ictcf.stats.analysis import load_cohort
from ictcf.stats.table_one import build_table_one, table_one
from tests.stats.conftest import insert_patient


def test_table_one_by_morbidity_type(synthetic_sqlite: sessionmaker[Session]) -> None:
    with session_scope(synthetic_sqlite) as session:
        result = table_one(session)
    assert result.group_sizes == {"control": 20, "type I": 20, "type II": 16}
    table = result.table
    for column in ("Missing", "Overall", "control", "type I", "type II", "P-Value", "Test"):
        assert column in table.columns
    assert "SMD (control,type I)" in table.columns
    assert table.loc["n", "control"] == "20"
    age_row = next(label for label in table.index if label.startswith("age"))
    assert table.loc[age_row, "Test"] in ("One-way ANOVA", "Kruskal-Wallis")
    assert any(label.startswith("LY (G/L)") for label in table.index)
    assert any(label.startswith("PCT (ng/mL)") for label in table.index)
    # CFs of the default list that the database lacks are left out.
    assert not any(label.startswith("IL-6") for label in table.index)


def test_table_one_by_outcome(synthetic_sqlite: sessionmaker[Session]) -> None:
    with session_scope(synthetic_sqlite) as session:
        result = table_one(session, by="outcome")
    assert result.group_sizes == {"cured": 28, "deceased": 8}
    assert "SMD (cured,deceased)" in result.table.columns


def test_table_one_states_denominators(synthetic_sqlite: sessionmaker[Session]) -> None:
    with session_scope(synthetic_sqlite) as session:
        insert_patient(
            session,
            900,
            MorbidityForm.MILD,
            Outcome.CURED,
            age=None,
            temperature=None,
            sex=Sex.UNKNOWN,
        )
        insert_patient(
            session,
            901,
            MorbidityForm.MILD,
            Outcome.CURED,
            age=40.0,
            temperature=37.0,
            sex=Sex.FEMALE,
        )

    with session_scope(synthetic_sqlite) as session:
        data = load_cohort(session)
    result = build_table_one(data)

    availability = result.availability
    assert availability.loc["sex", "type I"] == "21/22"
    assert availability.loc["age", "type I"] == "21/22"
    assert availability.loc["sex", "control"] == "20/20"
    assert availability.loc["sex", "Overall"] == "57/58"

    sex_rows = [label for label in result.table.index if label.startswith("sex")]
    assert result.table.loc[sex_rows[0], "Missing"] == "1"
    # Percentages are of patients with a recorded sex: 11 of 21 type I patients are female.
    female = next(label for label in sex_rows if label.endswith("female"))
    assert result.table.loc[female, "type I"] == "11 (52.38)"


def test_table_one_unknown_grouping(synthetic_sqlite: sessionmaker[Session]) -> None:
    with session_scope(synthetic_sqlite) as session:
        data = load_cohort(session)
    with pytest.raises(ValueError, match="unknown Table 1 grouping 'hospital'"):
        build_table_one(data, by="hospital")


def test_table_one_nonnormal_follows_shapiro(synthetic_sqlite: sessionmaker[Session]) -> None:
    with session_scope(synthetic_sqlite) as session:
        data = load_cohort(session)
    result = build_table_one(data)
    # PCT contains many censored values at 0.05, so it is never normal.
    assert "PCT (ng/mL)" in result.nonnormal
    pct_row = next(label for label in result.table.index if label.startswith("PCT"))
    assert "median" in pct_row
    assert isinstance(result.table, pd.DataFrame)


def test_table_one_missing_as_level(synthetic_sqlite: sessionmaker[Session]) -> None:
    with session_scope(synthetic_sqlite) as session:
        insert_patient(
            session,
            900,
            MorbidityForm.MILD,
            Outcome.CURED,
            age=50.0,
            temperature=37.0,
            sex=Sex.UNKNOWN,
        )

    with session_scope(synthetic_sqlite) as session:
        data = load_cohort(session)
    result = build_table_one(data, include_missing=True)

    sex_rows = [label for label in result.table.index if label.startswith("sex")]
    assert len(sex_rows) == 3
    female = next(label for label in sex_rows if label.endswith("female"))
    # Over all 21 type I patients now: 10 female.
    assert result.table.loc[female, "type I"] == "10 (47.62)"
