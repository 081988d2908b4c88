"""Tests of the ``--compare`` syntax and of group selection on a patient frame."""

from __future__ import annotations

import pandas as pd
import pytest

from ictcf.errors import InputError
from ictcf.stats.groups import (
    DECEASED_VS_CURED,
    check_values_present,
    parse_comparison,
)


def make_patients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": [1, 2, 3, 4, 5, 6],
            "cohort": ["c1", "c1", "c1", "c2", "c2", "c2"],
            "hospital": ["Union", "Union", "Liyuan", "Union", None, "Liyuan"],
            "age": [70.0, 45.0, None, 60.0, 59.9, 30.0],
            "age_band": ["60", "40to60", None, "40to60", "40to60", "40"],
            "sex": ["male", "female", "male", "unknown", "female", "male"],
            "body_temperature": [38.0, 37.0, 36.5, None, 39.0, 37.2],
            "pcr_result": ["positive"] * 6,
            "ct_evidence": ["positive"] * 6,
            "morbidity_form": ["severe", "mild", "control", "regular", "unknown", "suspected"],
            "morbidity_type": ["type_ii", "type_i", "control", "type_i", "unknown", "suspected"],
            "outcome": ["deceased", "cured", "unknown", "cured", "unknown", "unknown"],
            "underlying_diseases": [["Hypertension"], [], ["Diabetes", "hypertension"], [], [], []],
            "has_underlying_disease": [True, False, True, False, False, False],
            "n_measurements": [10, 12, 0, 5, 0, 3],
        }
    )


def selected(spec_side: object, patients: pd.DataFrame) -> list[int]:
    mask = spec_side.select(patients)  # type: ignore[attr-defined]
    return patients.loc[mask, "patient_id"].tolist()


def test_parse_named_comparison_with_numeric_conditions() -> None:
    spec = parse_comparison("older: age>=60 & morbidity_type=type_i,type_ii vs age<60")
    assert spec.name == "older"
    assert spec.alpha == 0.05
    patients = make_patients()
    assert selected(spec.group_a, patients) == [1, 4]
    # Patient 5 is 59.9 but of unknown morbidity type: excluded from every comparison.
    assert selected(spec.group_b, patients) == [2, 6]


def test_parse_builds_name_without_prefix() -> None:
    spec = parse_comparison("sex=male vs sex=female")
    assert spec.name == "sex_male_vs_sex_female"
    assert spec.title == "sex=male vs sex=female"


def test_missing_values_never_match() -> None:
    patients = make_patients()
    spec = parse_comparison("hospital!=Union vs hospital=Union")
    assert selected(spec.group_a, patients) == [3, 6]
    assert selected(spec.group_b, patients) == [1, 2, 4]
    spec = parse_comparison("body_temperature>37.5 vs body_temperature<=37.5")
    assert selected(spec.group_a, patients) == [1]
    assert selected(spec.group_b, patients) == [2, 3, 6]


def test_underlying_disease_condition_is_case_insensitive() -> None:
    patients = make_patients()
    spec = parse_comparison("underlying_diseases=HYPERTENSION vs has_underlying_disease=false")
    assert selected(spec.group_a, patients) == [1, 3]
    assert selected(spec.group_b, patients) == [2, 4, 6]


def test_paper_deceased_group_is_covid_only() -> None:
    patients = make_patients()
    assert selected(DECEASED_VS_CURED.group_a, patients) == [1]
    assert selected(DECEASED_VS_CURED.group_b, patients) == [2, 4]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sex=male", "exactly one ' vs '"),
        ("sex=male vs sex=female vs sex=unknown", "exactly one ' vs '"),
        ("colour=red vs sex=male", "unknown field 'colour'"),
        ("sex=males vs sex=female", "unknown sex value 'males'"),
        ("age=60 vs age<60", "takes one number"),
        ("age>=sixty vs age<60", "is not a number"),
        ("age>=inf vs age<60", "must be finite"),
        ("sex>male vs sex=female", "is categorical"),
        ("sex= vs sex=female", "invalid condition"),
        ("sex=male & vs sex=female", "empty group or condition"),
        ("sex=male vs sex=male", "compares a group with itself"),
        ("sex male vs sex=female", "invalid condition"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_comparison(text)


def test_unknown_text_value_lists_observed_values() -> None:
    spec = parse_comparison("hospital=Tongji vs hospital=Union")
    with pytest.raises(InputError, match=r"no patient has hospital 'Tongji'.*Liyuan, Union"):
        check_values_present(spec, make_patients())


def test_known_text_value_passes() -> None:
    spec = parse_comparison("cohort=C2 vs cohort=c1")
    check_values_present(spec, make_patients())
    assert selected(spec.group_a, make_patients()) == [4, 6]
