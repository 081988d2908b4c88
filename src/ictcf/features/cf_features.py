"""Clinical-feature (CF) matrices for the HUST-19 CF models.

Each CF value f is normalised by the normal range printed beside it in the export,
F = (f - Min) / (Max - Min), as in Ning et al., Nat. Biomed. Eng. 4, 1197-1207 (2020); a CF
the patient was not tested for becomes 0.5. Hospitals print different ranges for the same CF,
so every value is normalised by its own measurement's range. The open choices (one-sided
ranges, censored values, values far outside the range, which basic fields enter) are fields
of :class:`NormalisationPolicy`.

The feature list is chosen from training patients only (:func:`select_features`) and then
applied unchanged to any other patients (:func:`build_feature_matrix`), so a test fold never
influences which CFs a model sees.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ictcf.errors import InputError

logger = logging.getLogger(__name__)

#: Reference range of age in years used to scale age to [0, 1] (0 to 100 years).
AGE_RANGE_YEARS = (0.0, 100.0)
#: A commonly used normal range of axillary body temperature in degrees Celsius, used to scale
#: temperature.
BODY_TEMPERATURE_RANGE_CELSIUS = (36.0, 37.3)

#: Names of the basic (non-laboratory) features, in matrix column order.
BASIC_FEATURE_NAMES = ("sex_male", "underlying_disease", "age", "body_temperature")

#: Columns :func:`build_feature_matrix` needs in the patients frame.
REQUIRED_PATIENT_COLUMNS = (
    "patient_id",
    "sex",
    "has_underlying_disease",
    "age",
    "body_temperature",
)
#: Columns :func:`build_feature_matrix` needs in the measurements frame.
REQUIRED_MEASUREMENT_COLUMNS = (
    "patient_id",
    "abbreviation",
    "value",
    "censoring",
    "unit",
    "range_low",
    "range_high",
)

CensoredPolicy = Literal["limit", "half_limit"]
OutOfRangePolicy = Literal["keep", "clip"]


@dataclass(frozen=True)
class NormalisationPolicy:
    """The open choices of the CF normalisation, with the defaults used by ``ictcf demo``.

    Attributes
    ----------
    missing_value : float
        Value of a CF the patient was not tested for (0.5, the centre of the normal range,
        as in the HUST-19 paper).
    censored_below : {"limit", "half_limit"}
        How a value reported as ``<X`` (below the detection limit X) enters the formula: as X,
        or as X/2 (the usual LOD/2 substitution). A value reported as ``>X`` always enters as X.
    out_of_range : {"keep", "clip"}
        ``"keep"`` uses the formula's value however far outside [0, 1] it lies; ``"clip"``
        limits it to ``clip_bounds``. Default ``"clip"`` because in the cohort-1 export some
        CFs reach 60 (procalcitonin), 145 (D-dimer) and 320 (IL-6) times their upper limit,
        and one such value would otherwise dominate a dense network's input scale.
    clip_bounds : tuple of float
        Lower and upper bound of a normalised value under ``out_of_range="clip"``. The default
        (-1, 4) keeps values up to one range width below the lower limit and three range
        widths above the upper limit distinguishable.
    min_fraction : float
        A CF enters the feature list only when at least this fraction of the training
        patients had it measured (default 0.1).
    include_sex, include_underlying_disease : bool
        Add sex (1 = male, 0 = female, 0.5 = unknown) and any underlying disease (1/0).
    include_age : bool
        Add age scaled by ``AGE_RANGE_YEARS`` (0 to 100 years); missing age is 0.5.
    include_body_temperature : bool
        Add body temperature scaled by ``BODY_TEMPERATURE_RANGE_CELSIUS`` (36.0 to 37.3 °C,
        so 38.6 °C gives 2.0); missing temperature is 0.5.

    Notes
    -----
    One-sided ranges are read as ``<X``: Min = 0, Max = X, and ``>X``: Min = 0, Max = X, so
    both become F = f / X. A measurement printed without a usable range takes the range most
    often printed for that CF and unit among the training patients (stored with the feature
    list, see :class:`CFFeature`).
    """

    missing_value: float = 0.5
    censored_below: CensoredPolicy = "limit"
    out_of_range: OutOfRangePolicy = "clip"
    clip_bounds: tuple[float, float] = (-1.0, 4.0)
    min_fraction: float = 0.1
    include_sex: bool = True
    include_underlying_disease: bool = True
    include_age: bool = True
    include_body_temperature: bool = True

    def __post_init__(self) -> None:
        if self.censored_below not in ("limit", "half_limit"):
            raise InputError(
                f"Invalid censored_below {self.censored_below!r}: use 'limit' or 'half_limit'."
            )
        if self.out_of_range not in ("keep", "clip"):
            raise InputError(f"Invalid out_of_range {self.out_of_range!r}: use 'keep' or 'clip'.")
        low, high = self.clip_bounds
        if not low < high:
            raise InputError(
                f"Invalid clip_bounds {self.clip_bounds!r}: the lower bound must be below the upper."
            )
        if not 0.0 <= self.min_fraction <= 1.0:
            raise InputError(f"Invalid min_fraction {self.min_fraction!r}: use a value in [0, 1].")

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as a JSON-ready dict."""
        values = asdict(self)
        values["clip_bounds"] = list(self.clip_bounds)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NormalisationPolicy:
        """Rebuild a policy written by :meth:`to_dict`."""
        values = dict(values)
        if "clip_bounds" in values:
            values["clip_bounds"] = tuple(values["clip_bounds"])
        return cls(**values)


@dataclass(frozen=True)
class CFFeature:
    """One CF column of the feature matrix.

    Attributes
    ----------
    abbreviation : str
        The CF's abbreviation in the export (``LY``, ``CRP``).
    fraction_measured : float
        Fraction of the training patients with this CF measured.
    fallback_ranges : dict
        Unit (``""`` for none) -> (Min, Max) used for a measurement printed without a usable
        range: the range most often printed with that unit in the training data.
    """

    abbreviation: str
    fraction_measured: float
    fallback_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the feature as a JSON-ready dict."""
        return {
            "abbreviation": self.abbreviation,
            "fraction_measured": self.fraction_measured,
            "fallback_ranges": {
                unit: list(bounds) for unit, bounds in self.fallback_ranges.items()
            },
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CFFeature:
        """Rebuild a feature written by :meth:`to_dict`."""
        return cls(
            abbreviation=str(values["abbreviation"]),
            fraction_measured=float(values["fraction_measured"]),
            fallback_ranges={
                str(unit): (float(bounds[0]), float(bounds[1]))
                for unit, bounds in values.get("fallback_ranges", {}).items()
            },
        )


@dataclass(frozen=True)
class FeatureMatrix:
    """Normalised features of a set of patients.

    Attributes
    ----------
    X : ndarray of shape (n_patients, n_features), float32
        Basic features first (those enabled, in ``BASIC_FEATURE_NAMES`` order), then CFs.
    feature_names : list of str
        Column names of ``X``.
    patient_ids : ndarray of shape (n_patients,), int64
        Internal patient key of each row, in the order of the patients frame.
    n_cfs_measured : ndarray of shape (n_patients,), int64
        CF columns of each row holding a measured value (the others hold
        ``policy.missing_value``); empty when the matrix was built without this count.
    """

    X: np.ndarray
    feature_names: list[str]
    patient_ids: np.ndarray
    n_cfs_measured: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _check_columns(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise InputError(
            f"The {what} frame lacks the columns {missing}; build it with "
            f"ictcf.db.queries.load_{what}()."
        )


def _measured_range(low: Any, high: Any) -> tuple[float, float] | None:
    """Return (Min, Max) of a printed range, reading ``<X`` and ``>X`` as (0, X)."""
    low_value = float(low) if low is not None and pd.notna(low) else None
    high_value = float(high) if high is not None and pd.notna(high) else None
    if low_value is not None and high_value is not None:
        if high_value > low_value:
            return (low_value, high_value)
        return None
    limit = high_value if high_value is not None else low_value
    if limit is not None and limit > 0:
        return (0.0, limit)
    return None


def _range_columns(measurements: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return per-row Min and Max arrays (NaN where the row has no usable range)."""
    low = pd.to_numeric(measurements["range_low"], errors="coerce").to_numpy(dtype=float)
    high = pd.to_numeric(measurements["range_high"], errors="coerce").to_numpy(dtype=float)
    minimum = np.full(len(measurements), np.nan)
    maximum = np.full(len(measurements), np.nan)

    both = ~np.isnan(low) & ~np.isnan(high) & (high > low)
    minimum[both] = low[both]
    maximum[both] = high[both]

    only_high = np.isnan(low) & ~np.isnan(high) & (high > 0)
    minimum[only_high] = 0.0
    maximum[only_high] = high[only_high]

    only_low = ~np.isnan(low) & np.isnan(high) & (low > 0)
    minimum[only_low] = 0.0
    maximum[only_low] = low[only_low]
    return minimum, maximum


def _unit_key(unit: Any) -> str:
    return str(unit) if unit is not None and pd.notna(unit) else ""


def select_features(
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    *,
    policy: NormalisationPolicy,
) -> list[CFFeature]:
    """Choose the CF columns from training data.

    Parameters
    ----------
    patients : DataFrame
        Training patients (columns of ``load_patients``; ``patient_id`` is used).
    measurements : DataFrame
        Measurements in long layout (columns of ``load_measurements``); rows of patients not in
        ``patients`` are ignored.
    policy : NormalisationPolicy
        ``min_fraction`` decides which CFs enter.

    Returns
    -------
    list of CFFeature
        CFs measured in at least ``policy.min_fraction`` of ``patients``, sorted by
        abbreviation, each with the fallback ranges seen in the training data.

    Raises
    ------
    InputError
        If a frame lacks required columns or ``patients`` is empty.
    """
    _check_columns(patients, ("patient_id",), "patients")
    _check_columns(measurements, REQUIRED_MEASUREMENT_COLUMNS, "measurements")
    n_patients = len(patients)
    if n_patients == 0:
        raise InputError("Cannot choose CF features from an empty set of training patients.")

    training = measurements[measurements["patient_id"].isin(patients["patient_id"])]
    per_cf = training.groupby("abbreviation")["patient_id"].nunique()
    fractions = per_cf / n_patients
    chosen = sorted(str(name) for name in fractions.index[fractions >= policy.min_fraction])

    minimum, maximum = _range_columns(training)
    with_range = training.assign(_min=minimum, _max=maximum, _unit=training["unit"].map(_unit_key))
    with_range = with_range[with_range["_min"].notna()]

    features = []
    for abbreviation in chosen:
        rows = with_range[with_range["abbreviation"] == abbreviation]
        fallback: dict[str, tuple[float, float]] = {}
        if len(rows):
            counts = rows.groupby(["_unit", "_min", "_max"]).size().reset_index(name="n")
            counts = counts.sort_values(["n", "_min", "_max"], ascending=[False, True, True])
            for unit, group in counts.groupby("_unit", sort=True):
                top = group.iloc[0]
                fallback[str(unit)] = (float(top["_min"]), float(top["_max"]))
            overall = counts.iloc[0]
            fallback.setdefault("", (float(overall["_min"]), float(overall["_max"])))
        features.append(
            CFFeature(
                abbreviation=abbreviation,
                fraction_measured=float(fractions[abbreviation]),
                fallback_ranges=fallback,
            )
        )
    logger.info(
        "%d of %d CFs measured in at least %.0f%% of %d training patients",
        len(features),
        len(fractions),
        100 * policy.min_fraction,
        n_patients,
    )
    return features


def _scale(values: np.ndarray, bounds: tuple[float, float], missing: float) -> np.ndarray:
    low, high = bounds
    scaled = (values - low) / (high - low)
    return np.where(np.isnan(values), missing, scaled)


def _basic_columns(
    patients: pd.DataFrame, policy: NormalisationPolicy
) -> tuple[list[np.ndarray], list[str]]:
    columns: list[np.ndarray] = []
    names: list[str] = []
    missing = policy.missing_value
    if policy.include_sex:
        sex = patients["sex"].astype(str).str.lower()
        columns.append(np.where(sex == "male", 1.0, np.where(sex == "female", 0.0, missing)))
        names.append("sex_male")
    if policy.include_underlying_disease:
        flag = patients["has_underlying_disease"]
        columns.append(
            np.where(flag.isna(), missing, flag.fillna(False).astype(bool).astype(float))
        )
        names.append("underlying_disease")
    if policy.include_age:
        age = pd.to_numeric(patients["age"], errors="coerce").to_numpy(dtype=float)
        columns.append(_scale(age, AGE_RANGE_YEARS, missing))
        names.append("age")
    if policy.include_body_temperature:
        temperature = pd.to_numeric(patients["body_temperature"], errors="coerce").to_numpy(
            dtype=float
        )
        columns.append(_scale(temperature, BODY_TEMPERATURE_RANGE_CELSIUS, missing))
        names.append("body_temperature")
    return columns, names


def normalise_measurements(
    measurements: pd.DataFrame,
    *,
    policy: NormalisationPolicy,
    features: Sequence[CFFeature] = (),
) -> np.ndarray:
    """Normalise each measurement by its own normal range.

    Parameters
    ----------
    measurements : DataFrame
        Long layout (columns of ``load_measurements``).
    policy : NormalisationPolicy
        Censoring and out-of-range handling.
    features : sequence of CFFeature, optional
        Source of fallback ranges for rows printed without a usable range.

    Returns
    -------
    ndarray of shape (n_rows,), float
        F = (f - Min) / (Max - Min) per row, after censoring and clipping; NaN where neither
        the row nor its feature's fallback gives a range.
    """
    values = pd.to_numeric(measurements["value"], errors="coerce").to_numpy(dtype=float)
    censoring = measurements["censoring"].astype(object).to_numpy()
    if policy.censored_below == "half_limit":
        below = np.array([flag == "<" for flag in censoring], dtype=bool)
        values = np.where(below, values / 2.0, values)

    minimum, maximum = _range_columns(measurements)
    needs_fallback = np.isnan(minimum)
    if needs_fallback.any() and features:
        fallback_by_cf = {feature.abbreviation: feature.fallback_ranges for feature in features}
        abbreviations = measurements["abbreviation"].to_numpy()
        units = measurements["unit"].to_numpy()
        for index in np.flatnonzero(needs_fallback):
            ranges = fallback_by_cf.get(str(abbreviations[index]))
            if not ranges:
                continue
            bounds = ranges.get(_unit_key(units[index])) or ranges.get("")
            if bounds is not None:
                minimum[index], maximum[index] = bounds

    normalised = (values - minimum) / (maximum - minimum)
    if policy.out_of_range == "clip":
        low, high = policy.clip_bounds
        normalised = np.where(np.isnan(normalised), np.nan, np.clip(normalised, low, high))
    return normalised


def build_feature_matrix(
    patients: pd.DataFrame,
    measurements: pd.DataFrame,
    *,
    features: Sequence[CFFeature] | None = None,
    policy: NormalisationPolicy,
) -> FeatureMatrix:
    """Build the normalised feature matrix of ``patients``.

    Parameters
    ----------
    patients : DataFrame
        One row per patient (columns of ``ictcf.db.queries.load_patients``).
    measurements : DataFrame
        Long layout (columns of ``ictcf.db.queries.load_measurements``); rows of other
        patients and of CFs outside ``features`` are ignored.
    features : sequence of CFFeature, optional
        The CF columns, normally chosen by :func:`select_features` on the training patients.
        Default: chosen from ``patients`` themselves (only right when ``patients`` are the
        training set).
    policy : NormalisationPolicy
        Normalisation choices.

    Returns
    -------
    FeatureMatrix
        ``X`` of shape (n_patients, n_basic + n_cf), float32, rows in the order of
        ``patients``. A CF not measured for a patient, or measured without any usable range,
        is ``policy.missing_value``.

    Raises
    ------
    InputError
        If a frame lacks required columns or ``patient_id`` repeats in ``patients``.
    """
    _check_columns(patients, REQUIRED_PATIENT_COLUMNS, "patients")
    _check_columns(measurements, REQUIRED_MEASUREMENT_COLUMNS, "measurements")
    if patients["patient_id"].duplicated().any():
        repeated = patients.loc[patients["patient_id"].duplicated(), "patient_id"].iloc[0]
        raise InputError(
            f"patient_id {repeated} appears more than once in the patients frame; "
            "pass one row per patient."
        )
    if features is None:
        features = select_features(patients, measurements, policy=policy)

    basic, names = _basic_columns(patients, policy)
    patient_ids = patients["patient_id"].to_numpy(dtype=np.int64)
    cf_names = [feature.abbreviation for feature in features]
    cf_block = np.full((len(patients), len(cf_names)), policy.missing_value, dtype=float)
    measured = np.zeros(cf_block.shape, dtype=bool)

    if cf_names and len(patients):
        rows = measurements[
            measurements["patient_id"].isin(patient_ids)
            & measurements["abbreviation"].isin(cf_names)
        ]
        if len(rows):
            normalised = normalise_measurements(rows, policy=policy, features=features)
            row_of_patient = {int(pid): index for index, pid in enumerate(patient_ids)}
            column_of_cf = {name: index for index, name in enumerate(cf_names)}
            row_index = rows["patient_id"].map(row_of_patient).to_numpy(dtype=np.int64)
            column_index = rows["abbreviation"].map(column_of_cf).to_numpy(dtype=np.int64)
            usable = ~np.isnan(normalised)
            cf_block[row_index[usable], column_index[usable]] = normalised[usable]
            measured[row_index[usable], column_index[usable]] = True
            n_unusable = int((~usable).sum())
            if n_unusable:
                logger.warning(
                    "%d measurements without a usable normal range were treated as missing",
                    n_unusable,
                )

    blocks = [*(column.reshape(-1, 1) for column in basic), cf_block]
    X = np.hstack(blocks).astype(np.float32) if blocks else np.zeros((len(patients), 0))
    return FeatureMatrix(
        X=X,
        feature_names=[*names, *cf_names],
        patient_ids=patient_ids,
        n_cfs_measured=measured.sum(axis=1).astype(np.int64),
    )
