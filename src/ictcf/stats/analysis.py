"""Run group comparisons on the patient database: CFs and underlying diseases.

Censored values (reported as ``<0.13`` or ``>1000``) enter the tests at their reported limit by
default (``censored="limit"``). ``"half_limit"`` takes half the limit for ``<`` values (the
common LOD/2 substitution; ``>`` values stay at their limit) and ``"exclude"`` leaves censored
values out. Each comparison row counts the censored values that entered it.

A CF reported in more than one unit is compared in its most frequent unit only. The row states
the unit and how many values in other units were left out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from ictcf.db.queries import load_measurements, load_patients
from ictcf.errors import DataNotFoundError, InputError
from ictcf.stats.comparisons import MIN_GROUP_SIZE, TESTED, compare_binary, compare_groups
from ictcf.stats.groups import (
    DEFAULT_ALPHA_ADJUSTED,
    PAPER_COMPARISONS,
    ComparisonSpec,
    check_values_present,
)

logger = logging.getLogger(__name__)

CensoredPolicy = Literal["limit", "half_limit", "exclude"]
CENSORED_POLICIES: tuple[str, ...] = ("limit", "half_limit", "exclude")

#: An underlying disease gets its own row when at least this many patients of the database
#: have it. Rarer ones are only counted in "any underlying disease", because a 2x2 test on
#: fewer patients has almost no power.
MIN_DISEASE_PATIENTS = 10
ANY_DISEASE = "any underlying disease"

#: Patient fields compared like CFs (numerical, from the basic information block). They share
#: the Benjamini–Hochberg family of the CFs but are not counted as significant CFs.
PATIENT_NUMERIC_FIELDS = ("age", "body_temperature")
BASIC_KIND = "basic"
CF_KIND = "CF"


@dataclass(frozen=True)
class FeatureMatrix:
    """CF values in wide layout, ready for ``compare_groups``.

    Attributes
    ----------
    values : DataFrame of shape (n_patients, n_features)
        Float values indexed by ``patient_id``, NaN where not measured.
    censoring : DataFrame of shape (n_patients, n_features)
        '<', '>' or None for each value that entered ``values``.
    units : dict of str to str
        Unit of each CF column ('' where none is reported).
    excluded_other_unit : dict of str to int
        Values left out of a CF because they were reported in a less frequent unit.
    censored_policy : str
        How censored values were entered.
    """

    values: pd.DataFrame
    censoring: pd.DataFrame
    units: dict[str, str]
    excluded_other_unit: dict[str, int]
    censored_policy: str


def normalise_unit(unit: Any) -> str:
    """Return a comparable spelling of a unit (case, spaces and the micro sign folded)."""
    if unit is None or (isinstance(unit, float) and np.isnan(unit)):
        return ""
    text = str(unit).strip().replace("\u00b5", "u").replace("\u03bc", "u").replace("渭", "u")
    return re.sub(r"\s+", " ", text).casefold()


def build_feature_matrix(
    measurements: pd.DataFrame,
    patient_ids: Iterable[int],
    *,
    censored: CensoredPolicy = "limit",
) -> FeatureMatrix:
    """Pivot long measurements into one row per patient and one column per CF.

    Parameters
    ----------
    measurements : DataFrame
        Long layout of ``ictcf.db.queries.load_measurements``.
    patient_ids : iterable of int
        Rows of the result, in this order (patients without measurements get NaN rows).
    censored : {"limit", "half_limit", "exclude"}, default "limit"
        How censored values enter (see the module docstring).

    Returns
    -------
    FeatureMatrix

    Raises
    ------
    InputError
        If ``censored`` is not one of the policies.
    """
    if censored not in CENSORED_POLICIES:
        raise InputError(
            f"unknown censored-value policy {censored!r}; use one of: {', '.join(CENSORED_POLICIES)}."
        )
    index = pd.Index(list(patient_ids), name="patient_id")
    frame = measurements[["patient_id", "abbreviation", "value", "censoring", "unit"]].copy()
    frame["unit_key"] = frame["unit"].map(normalise_unit)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)

    if censored == "exclude":
        frame = frame[frame["censoring"].isna()]
    elif censored == "half_limit":
        below = frame["censoring"] == "<"
        frame.loc[below, "value"] = frame.loc[below, "value"] / 2.0

    units: dict[str, str] = {}
    excluded: dict[str, int] = {}
    keep = pd.Series(True, index=frame.index)
    for abbreviation, rows in frame.groupby("abbreviation", sort=True):
        counts = rows["unit_key"].value_counts()
        main_key = str(counts.index[0]) if len(counts) else ""
        spelled = rows.loc[rows["unit_key"] == main_key, "unit"].dropna()
        units[str(abbreviation)] = str(spelled.mode().iloc[0]) if len(spelled) else ""
        other = rows["unit_key"] != main_key
        excluded[str(abbreviation)] = int(other.sum())
        if other.any():
            logger.info(
                "CF %s: %d value(s) in other units than %r left out",
                abbreviation,
                int(other.sum()),
                units[str(abbreviation)],
            )
            keep[rows.index[other]] = False
    frame = frame[keep]

    values = frame.pivot(index="patient_id", columns="abbreviation", values="value")
    censoring = frame.pivot(index="patient_id", columns="abbreviation", values="censoring")
    columns = sorted(units)
    values = values.reindex(index=index, columns=columns).astype(float)
    censoring = censoring.reindex(index=index, columns=columns)
    return FeatureMatrix(values, censoring, units, excluded, censored)


def disease_indicators(
    patients: pd.DataFrame, *, min_patients: int = MIN_DISEASE_PATIENTS
) -> pd.DataFrame:
    """Return one boolean column per frequent underlying disease, plus "any underlying disease".

    Names are matched case-insensitively; the column takes the most frequent spelling.
    """
    index = pd.Index(patients["patient_id"], name="patient_id")
    folded = patients["underlying_diseases"].map(lambda names: {str(n).casefold() for n in names})
    counts: dict[str, int] = {}
    spelling: dict[str, dict[str, int]] = {}
    for names in patients["underlying_diseases"]:
        for name in {str(n) for n in names}:
            key = name.casefold()
            counts[key] = counts.get(key, 0) + 1
            spelling.setdefault(key, {})
            spelling[key][name] = spelling[key].get(name, 0) + 1
    columns: dict[str, Any] = {ANY_DISEASE: patients["has_underlying_disease"].astype(bool).values}
    for key, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count < min_patients:
            continue
        label = max(spelling[key].items(), key=lambda item: item[1])[0]
        columns[label] = np.array([key in names for names in folded], dtype=bool)
    return pd.DataFrame(columns, index=index)


@dataclass
class ComparisonResult:
    """The result of one comparison: CF table, underlying-disease table and what went in.

    ``table`` comes from ``compare_groups`` with extra columns ``unit`` and
    ``excluded_other_unit``; ``diseases`` from ``compare_binary``. Directions are those of
    group A relative to group B.
    """

    spec: ComparisonSpec
    table: pd.DataFrame
    diseases: pd.DataFrame
    n_a: int
    n_b: int
    alpha: float
    alpha_adjusted: float
    censored_policy: str
    notes: list[str] = field(default_factory=list)

    @property
    def significant(self) -> pd.DataFrame:
        """Significant rows (age and body temperature included), most significant first."""
        rows = self.table[self.table["significant"].eq(True)]
        return rows.sort_values(["p_adjusted", "p_value"])

    @property
    def significant_cfs(self) -> pd.DataFrame:
        """Significant laboratory CF rows only (``kind == "CF"``), most significant first."""
        rows = self.significant
        return rows[rows["kind"] == CF_KIND]

    @property
    def n_higher(self) -> int:
        """Number of significant laboratory CFs higher in group A."""
        return int((self.significant_cfs["direction"] == "higher").sum())

    @property
    def n_lower(self) -> int:
        """Number of significant laboratory CFs lower in group A."""
        return int((self.significant_cfs["direction"] == "lower").sum())

    @property
    def n_tests(self) -> int:
        """Number of tests (rows) that entered the Benjamini–Hochberg adjustment."""
        return int((self.table["status"] == TESTED).sum())

    @property
    def n_not_testable(self) -> int:
        """Number of CF rows reported as not testable."""
        return int((self.table["status"] != TESTED).sum())

    @property
    def n_disease_tests(self) -> int:
        """Number of underlying-disease rows that could be tested."""
        return int((self.diseases["status"] == TESTED).sum())

    @property
    def omitted_reason(self) -> str | None:
        """Why the comparison has no result, or None when it has one.

        A comparison is omitted when a group has fewer than ``MIN_GROUP_SIZE`` (3) patients,
        the fewest any CF test accepts, or when no CF, age, body temperature or
        underlying-disease row could be tested.
        """
        sizes = ((self.spec.group_a.label, self.n_a), (self.spec.group_b.label, self.n_b))
        small = [
            f"group {label!r} has {n} patient{'' if n == 1 else 's'}"
            for label, n in sizes
            if n < MIN_GROUP_SIZE
        ]
        if small:
            return (
                f"{' and '.join(small)}; every test needs at least {MIN_GROUP_SIZE} patients "
                "per group"
            )
        if self.n_tests == 0 and self.n_disease_tests == 0:
            reasons = self.table["reason"].value_counts()
            common = f"; most common reason: {reasons.index[0]}" if len(reasons) else ""
            return (
                f"none of the {len(self.table)} feature rows and {len(self.diseases)} "
                f"underlying-disease rows could be tested{common}"
            )
        return None

    def summary(self) -> dict[str, Any]:
        """Return the headline numbers as a JSON-ready dict."""
        return {
            "name": self.spec.name,
            "title": self.spec.title,
            "group_a": {"label": self.spec.group_a.label, "definition": str(self.spec.group_a)},
            "group_b": {"label": self.spec.group_b.label, "definition": str(self.spec.group_b)},
            "n_a": self.n_a,
            "n_b": self.n_b,
            "alpha": self.alpha,
            "alpha_adjusted": self.alpha_adjusted,
            "significance_rule": (
                f"P < {self.alpha:g} and Benjamini-Hochberg adjusted P < {self.alpha_adjusted:g}"
            ),
            "censored_values": self.censored_policy,
            "n_features": len(self.table),
            "n_tests": self.n_tests,
            "n_not_testable": self.n_not_testable,
            "n_significant": len(self.significant),
            "n_significant_cfs": len(self.significant_cfs),
            "n_cfs_higher_in_a": self.n_higher,
            "n_cfs_lower_in_a": self.n_lower,
            "censored_values_used": int(
                self.table["censored_a"].sum() + self.table["censored_b"].sum()
            ),
            "notes": list(self.notes),
            "omitted": self.omitted_reason,
        }


def run_comparison(
    patients: pd.DataFrame,
    features: FeatureMatrix,
    spec: ComparisonSpec,
    *,
    alpha: float | None = None,
    alpha_adjusted: float = DEFAULT_ALPHA_ADJUSTED,
    min_disease_patients: int = MIN_DISEASE_PATIENTS,
) -> ComparisonResult:
    """Compare every CF, age, body temperature and the underlying diseases for one comparison.

    Parameters
    ----------
    patients : DataFrame
        Output of ``ictcf.db.queries.load_patients``.
    features : FeatureMatrix
        Output of ``build_feature_matrix`` on the same patients.
    spec : ComparisonSpec
        The two groups.
    alpha : float, optional
        Raw P threshold; default ``spec.alpha``.
    alpha_adjusted : float, default 1e-3
        Adjusted P threshold.
    min_disease_patients : int, default 10
        Patients needed for an underlying disease to get its own row.

    Returns
    -------
    ComparisonResult

    Raises
    ------
    InputError
        If a free-text value of ``spec`` does not occur in ``patients``.
    """
    check_values_present(spec, patients)
    alpha = spec.alpha if alpha is None else alpha
    index = pd.Index(patients["patient_id"], name="patient_id")
    mask_a = pd.Series(spec.group_a.select(patients).to_numpy(), index=index)
    mask_b = pd.Series(spec.group_b.select(patients).to_numpy(), index=index)

    notes = list(spec.notes)
    n_a, n_b = int(mask_a.sum()), int(mask_b.sum())
    for label, n in ((spec.group_a.label, n_a), (spec.group_b.label, n_b)):
        if n == 0:
            message = f"group {label!r} has no patients in this database; nothing is testable"
            logger.warning("comparison %s: %s", spec.name, message)
            notes.append(message + ".")

    values = features.values.reindex(index)
    censoring = features.censoring.reindex(index)
    for name in reversed(PATIENT_NUMERIC_FIELDS):
        values.insert(0, name, pd.to_numeric(patients[name], errors="coerce").to_numpy(float))
        censoring.insert(0, name, None)
    table = compare_groups(
        values,
        mask_a,
        mask_b,
        censoring=censoring,
        alpha=alpha,
        alpha_adjusted=alpha_adjusted,
    )
    units = {"age": "years", "body_temperature": "°C"} | features.units
    table.insert(0, "unit", [units.get(str(f), "") for f in table.index])
    table.insert(
        0, "kind", [BASIC_KIND if f in PATIENT_NUMERIC_FIELDS else CF_KIND for f in table.index]
    )
    table["excluded_other_unit"] = [
        features.excluded_other_unit.get(str(f), 0) for f in table.index
    ]

    indicators = disease_indicators(patients, min_patients=min_disease_patients)
    diseases = compare_binary(
        indicators, mask_a, mask_b, alpha=alpha, alpha_adjusted=alpha_adjusted
    )
    logger.info(
        "comparison %s: %d vs %d patients, %d CF tests",
        spec.name,
        n_a,
        n_b,
        int((table["status"] == TESTED).sum()),
    )
    return ComparisonResult(
        spec=spec,
        table=table,
        diseases=diseases,
        n_a=n_a,
        n_b=n_b,
        alpha=alpha,
        alpha_adjusted=alpha_adjusted,
        censored_policy=features.censored_policy,
        notes=notes,
    )


@dataclass(frozen=True)
class CohortData:
    """Patients and their feature matrix, loaded once for several comparisons."""

    patients: pd.DataFrame
    features: FeatureMatrix
    measurements: pd.DataFrame


def load_cohort(
    session: Session, *, cohort: str | None = None, censored: CensoredPolicy = "limit"
) -> CohortData:
    """Load patients and measurements from the database for the comparisons.

    Raises
    ------
    DataNotFoundError
        If the database (or the requested cohort) contains no patients.
    """
    patients = load_patients(session, cohort=cohort)
    if patients.empty and cohort is not None:
        known = sorted(str(name) for name in load_patients(session)["cohort"].dropna().unique())
        raise DataNotFoundError(
            f"cohort {cohort!r} contains no patients; cohorts in the database: "
            f"{', '.join(known) or 'none'}. Pass one of them to --cohort."
        )
    if patients.empty:
        raise DataNotFoundError(
            "the database contains no patients; import the iCTCF export first with "
            "`ictcf import ictcf-export FILE`."
        )
    # Filtered here rather than with an IN list, which SQLite caps at 32,766 parameters.
    measurements = load_measurements(session)
    measurements = measurements[measurements["patient_id"].isin(patients["patient_id"])]
    features = build_feature_matrix(measurements, patients["patient_id"], censored=censored)
    return CohortData(patients, features, measurements)


def run_comparisons(
    data: CohortData,
    specs: Iterable[ComparisonSpec],
    *,
    thresholds: Mapping[str, float] | None = None,
    alpha_adjusted: float = DEFAULT_ALPHA_ADJUSTED,
) -> dict[str, ComparisonResult]:
    """Run several comparisons on loaded data; ``thresholds`` overrides raw P thresholds by name.

    Raises
    ------
    InputError
        If two comparisons share a name, or ``thresholds`` names an unknown comparison.
    """
    specs = list(specs)
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(
            f"comparison name {duplicates[0]!r} is used twice; give each --compare its own "
            "name (NAME: A vs B)."
        )
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(names))
    if unknown:
        raise InputError(
            f"--threshold names unknown comparison {unknown[0]!r}; known: {', '.join(names)}."
        )
    return {
        spec.name: run_comparison(
            data.patients,
            data.features,
            spec,
            alpha=thresholds.get(spec.name),
            alpha_adjusted=alpha_adjusted,
        )
        for spec in specs
    }


def paper_comparisons(
    session: Session,
    *,
    cohort: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    alpha_adjusted: float = DEFAULT_ALPHA_ADJUSTED,
    censored: CensoredPolicy = "limit",
) -> dict[str, ComparisonResult]:
    """Run the three comparisons of Ning et al., Nat. Biomed. Eng. 4, 1197–1207 (2020).

    COVID-19 (type I + II) vs control and deceased vs cured use P < 1e-5, type II vs type I
    uses P < 1e-9, each with Benjamini–Hochberg adjusted P < ``alpha_adjusted``.

    Parameters
    ----------
    session : Session
        Open database session.
    cohort : str, optional
        Restrict to one cohort.
    thresholds : mapping of str to float, optional
        Raw P thresholds by comparison name (``covid_vs_control``, ``type_ii_vs_type_i``,
        ``deceased_vs_cured``).
    alpha_adjusted : float, default 1e-3
        Adjusted P threshold.
    censored : {"limit", "half_limit", "exclude"}, default "limit"
        How censored values enter.

    Returns
    -------
    dict of str to ComparisonResult
        Keyed by comparison name, in the paper's order.
    """
    data = load_cohort(session, cohort=cohort, censored=censored)
    return run_comparisons(
        data, PAPER_COMPARISONS, thresholds=thresholds, alpha_adjusted=alpha_adjusted
    )
