"""Normalisation of CF values by their own normal range, and the feature list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ictcf.db.queries import MEASUREMENT_COLUMNS
from ictcf.errors import InputError
from ictcf.features import (
    NormalisationPolicy,
    build_feature_matrix,
    normalise_measurements,
    select_features,
)
from ictcf.features.cf_features import CFFeature
from tests.models.synthetic import measurement_row, synthetic_frames

CF_ONLY = NormalisationPolicy(
    include_sex=False,
    include_underlying_disease=False,
    include_age=False,
    include_body_temperature=False,
    min_fraction=0.0,
)


def _measurements(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(rows), columns=MEASUREMENT_COLUMNS)


def _patients(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ids,
            "source_id": [f"Patient {pid}" for pid in ids],
            "hospital": "Union",
            "sex": "male",
            "has_underlying_disease": False,
            "age": 50.0,
            "body_temperature": 37.0,
        }
    )


def test_two_sided_range_formula() -> None:
    rows = _measurements(measurement_row(1, "ALT", 25.0, low=5.0, high=45.0))
    assert normalise_measurements(rows, policy=CF_ONLY)[0] == pytest.approx(0.5)


def test_each_value_uses_its_own_range() -> None:
    rows = _measurements(
        measurement_row(1, "ALT", 40.0, low=0.0, high=40.0),
        measurement_row(2, "ALT", 40.0, low=0.0, high=80.0),
    )
    values = normalise_measurements(rows, policy=CF_ONLY)
    assert values[0] == pytest.approx(1.0)
    assert values[1] == pytest.approx(0.5)


def test_upper_one_sided_range() -> None:
    rows = _measurements(measurement_row(1, "CRP", 4.0, low=None, high=8.0))
    assert normalise_measurements(rows, policy=CF_ONLY)[0] == pytest.approx(0.5)


def test_lower_one_sided_range() -> None:
    rows = _measurements(measurement_row(1, "EGFR", 45.0, low=90.0, high=None))
    assert normalise_measurements(rows, policy=CF_ONLY)[0] == pytest.approx(0.5)


def test_censored_value_limit_or_half() -> None:
    rows = _measurements(
        measurement_row(1, "PCT", 0.13, low=None, high=0.5, censoring="<"),
        measurement_row(2, "DD", 21.0, low=None, high=0.5, censoring=">"),
    )
    at_limit = normalise_measurements(rows, policy=CF_ONLY)
    halved = normalise_measurements(
        rows, policy=NormalisationPolicy(censored_below="half_limit", out_of_range="keep")
    )
    assert at_limit[0] == pytest.approx(0.26)
    assert halved[0] == pytest.approx(0.13)
    assert halved[1] == pytest.approx(42.0)


def test_out_of_range_keep_or_clip() -> None:
    rows = _measurements(
        measurement_row(1, "PCT", 50.0, low=None, high=0.5),
        measurement_row(2, "ALB", 5.0, low=35.0, high=55.0),
    )
    kept = normalise_measurements(rows, policy=NormalisationPolicy(out_of_range="keep"))
    clipped = normalise_measurements(
        rows, policy=NormalisationPolicy(out_of_range="clip", clip_bounds=(-1.0, 4.0))
    )
    assert kept[0] == pytest.approx(100.0)
    assert kept[1] == pytest.approx(-1.5)
    assert clipped[0] == pytest.approx(4.0)
    assert clipped[1] == pytest.approx(-1.0)


def test_missing_cf_becomes_half() -> None:
    patients = _patients([1, 2])
    measurements = _measurements(measurement_row(1, "ALT", 45.0, low=5.0, high=45.0))
    features = [CFFeature("ALT", 0.5), CFFeature("AST", 0.5)]
    matrix = build_feature_matrix(patients, measurements, features=features, policy=CF_ONLY)
    assert matrix.feature_names == ["ALT", "AST"]
    np.testing.assert_allclose(matrix.X, [[1.0, 0.5], [0.5, 0.5]])
    assert matrix.X.dtype == np.float32


def test_missing_value_is_configurable() -> None:
    policy = NormalisationPolicy(
        missing_value=0.0,
        include_sex=False,
        include_underlying_disease=False,
        include_age=False,
        include_body_temperature=False,
    )
    matrix = build_feature_matrix(
        _patients([1]), _measurements(), features=[CFFeature("ALT", 1.0)], policy=policy
    )
    assert matrix.X[0, 0] == 0.0


def test_range_fallback_from_training() -> None:
    training = _measurements(
        measurement_row(1, "ALT", 20.0, low=5.0, high=45.0),
        measurement_row(2, "ALT", 30.0, low=5.0, high=45.0),
        measurement_row(3, "ALT", 30.0, low=0.0, high=50.0),
    )
    features = select_features(_patients([1, 2, 3]), training, policy=CF_ONLY)
    assert features[0].fallback_ranges["U/L"] == (5.0, 45.0)

    no_range = _measurements(measurement_row(4, "ALT", 25.0, low=None, high=None))
    matrix = build_feature_matrix(_patients([4]), no_range, features=features, policy=CF_ONLY)
    assert matrix.X[0, 0] == pytest.approx(0.5)


def test_value_without_any_range_is_missing() -> None:
    rows = _measurements(measurement_row(1, "XYZ", 3.0, low=None, high=None))
    matrix = build_feature_matrix(
        _patients([1]), rows, features=[CFFeature("XYZ", 1.0)], policy=CF_ONLY
    )
    assert matrix.X[0, 0] == pytest.approx(CF_ONLY.missing_value)


def test_basic_fields() -> None:
    patients = _patients([1, 2, 3])
    patients["sex"] = ["male", "female", "unknown"]
    patients["has_underlying_disease"] = [True, False, True]
    patients["age"] = [50.0, None, 100.0]
    patients["body_temperature"] = [36.0, 38.6, None]
    matrix = build_feature_matrix(
        patients, _measurements(), features=[], policy=NormalisationPolicy()
    )
    assert matrix.feature_names == ["sex_male", "underlying_disease", "age", "body_temperature"]
    np.testing.assert_allclose(
        matrix.X,
        [[1.0, 1.0, 0.5, 0.0], [0.0, 0.0, 0.5, 2.0], [0.5, 1.0, 1.0, 0.5]],
        rtol=1e-6,
    )


def test_min_fraction_selects_features() -> None:
    patients = _patients([1, 2, 3, 4])
    measurements = _measurements(
        measurement_row(1, "ALT", 20.0, low=5.0, high=45.0),
        measurement_row(2, "ALT", 20.0, low=5.0, high=45.0),
        measurement_row(1, "IL6", 2.0, low=None, high=7.0),
        measurement_row(9, "IL6", 2.0, low=None, high=7.0),
    )
    chosen = select_features(patients, measurements, policy=NormalisationPolicy(min_fraction=0.5))
    assert [feature.abbreviation for feature in chosen] == ["ALT"]
    assert chosen[0].fraction_measured == pytest.approx(0.5)


def test_feature_order_and_rows_follow_patients() -> None:
    patients, measurements = synthetic_frames(40, seed=3)
    reversed_patients = patients.iloc[::-1].reset_index(drop=True)
    features = select_features(patients, measurements, policy=NormalisationPolicy())
    forward = build_feature_matrix(
        patients, measurements, features=features, policy=NormalisationPolicy()
    )
    backward = build_feature_matrix(
        reversed_patients, measurements, features=features, policy=NormalisationPolicy()
    )
    np.testing.assert_array_equal(forward.X[::-1], backward.X)
    np.testing.assert_array_equal(forward.patient_ids[::-1], backward.patient_ids)


def test_duplicate_patient_rejected() -> None:
    with pytest.raises(InputError, match="patient_id 1 appears more than once"):
        build_feature_matrix(_patients([1, 1]), _measurements(), policy=CF_ONLY)


def test_missing_column_rejected() -> None:
    with pytest.raises(InputError, match=r"lacks the columns \['range_low'"):
        build_feature_matrix(
            _patients([1]),
            _measurements().drop(columns=["range_low"]),
            policy=CF_ONLY,
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"censored_below": "zero"}, "Invalid censored_below 'zero'"),
        ({"out_of_range": "drop"}, "Invalid out_of_range 'drop'"),
        ({"clip_bounds": (2.0, 1.0)}, "Invalid clip_bounds"),
        ({"min_fraction": 1.5}, "Invalid min_fraction 1.5"),
    ],
)
def test_policy_rejects_invalid_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        NormalisationPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_round_trip() -> None:
    policy = NormalisationPolicy(censored_below="half_limit", clip_bounds=(-2.0, 3.0))
    assert NormalisationPolicy.from_dict(policy.to_dict()) == policy
