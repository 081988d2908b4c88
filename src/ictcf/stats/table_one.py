"""Table 1: the cohort by group, built with ``tableone`` and extended with availability counts.

``tableone`` (0.9.6) produces the summary rows, P values with the name of the test, and pairwise
standardised mean differences (SMD). This module extends it in three ways:

* normality of each continuous variable is decided by ``assess_normality`` in every group
  (Shapiro–Wilk, "not assessed" counts as not normal), and non-normal variables are passed to
  ``tableone`` as ``nonnormal`` (median [Q1, Q3], Kruskal–Wallis or Mann–Whitney U);
* categorical percentages are of patients with a recorded value, and a separate availability
  table states each denominator (recorded / patients in the group) per variable and group;
* censored CF values enter at their reported limit (see ``ictcf.stats.analysis``).

With two groups ``tableone`` uses Welch's t-test (``ttest_equal_var=False``) for normal
variables, and with three groups one-way ANOVA. Categorical variables get the chi-squared or
Fisher's exact test.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd
from tableone import TableOne

from ictcf.db.enums import MorbidityType, Outcome
from ictcf.errors import DataNotFoundError
from ictcf.stats.analysis import CohortData, disease_indicators
from ictcf.stats.comparisons import assess_normality

logger = logging.getLogger(__name__)

#: Main CFs of Table 1: the blood counts, inflammation, coagulation and organ-damage markers
#: Ning et al. (Nat. Biomed. Eng. 2020) discuss. CFs absent from a database are left out of its table.
DEFAULT_TABLE_ONE_CFS = (
    "WBC",
    "NE",
    "LY",
    "MO",
    "PLT",
    "HGB",
    "CRP",
    "PCT",
    "ESR",
    "IL-6",
    "DD",
    "FIB",
    "PT",
    "LDH",
    "ALB",
    "ALT",
    "AST",
    "CREA",
    "BUN",
    "CK",
    "TBIL",
)

#: Groupings of Table 1: column of the patient frame, the values that form groups in order,
#: and the label of each group.
GROUPINGS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "morbidity_type": (
        "morbidity_type",
        (
            (MorbidityType.CONTROL.value, "control"),
            (MorbidityType.TYPE_I.value, "type I"),
            (MorbidityType.TYPE_II.value, "type II"),
        ),
    ),
    "outcome": (
        "outcome",
        ((Outcome.CURED.value, "cured"), (Outcome.DECEASED.value, "deceased")),
    ),
}

GROUP_COLUMN = "group"
#: Most frequent underlying diseases shown in Table 1, after "any underlying disease".
TABLE_ONE_DISEASES = 5


@dataclass
class TableOneResult:
    """Table 1 for one grouping.

    Attributes
    ----------
    by : str
        Grouping name (``morbidity_type`` or ``outcome``).
    table : DataFrame
        ``tableone``'s table with flat string columns (``Missing``, ``Overall``, the groups,
        ``SMD (a,b)``..., ``P-Value``, ``Test``).
    availability : DataFrame
        Per variable (rows) and group (columns): recorded values / patients, as text.
    group_sizes : dict of str to int
        Patients per group.
    nonnormal : list of str
        Continuous variables summarised as median [Q1, Q3].
    """

    by: str
    table: pd.DataFrame
    availability: pd.DataFrame
    group_sizes: dict[str, int]
    nonnormal: list[str]
    tableone: TableOne


def _build_frame(
    data: CohortData, by: str, features: tuple[str, ...]
) -> tuple[pd.DataFrame, list[str], list[str], list[str]]:
    field_name, groups = GROUPINGS[by]
    patients = data.patients
    labels = dict(groups)
    keep = patients[field_name].isin(labels)
    if by == "outcome":
        keep &= patients["morbidity_type"].isin(
            [MorbidityType.TYPE_I.value, MorbidityType.TYPE_II.value]
        )
    selected = patients[keep]
    index = pd.Index(selected["patient_id"], name="patient_id")

    frame = pd.DataFrame(index=index)
    frame[GROUP_COLUMN] = selected[field_name].map(labels).to_numpy()
    frame["age"] = pd.to_numeric(selected["age"], errors="coerce").to_numpy(float)
    sex = selected["sex"].where(selected["sex"].isin(["male", "female"]))
    frame["sex"] = sex.to_numpy(object)
    frame["body_temperature"] = pd.to_numeric(
        selected["body_temperature"], errors="coerce"
    ).to_numpy(float)

    indicators = disease_indicators(patients).reindex(index)
    categorical = ["sex"]
    for column in indicators.columns[: 1 + TABLE_ONE_DISEASES]:
        frame[column] = indicators[column].map({True: "yes", False: "no"}).to_numpy(object)
        categorical.append(column)

    available = [cf for cf in features if cf in data.features.values.columns]
    cfs = [cf for cf in available if data.features.values[cf].reindex(index).notna().any()]
    for cf in cfs:
        unit = data.features.units.get(cf, "")
        name = f"{cf} ({unit})" if unit else cf
        frame[name] = data.features.values[cf].reindex(index).to_numpy(float)
    continuous = [c for c in frame.columns if c not in categorical and c != GROUP_COLUMN]
    order = [label for _, label in groups]
    frame[GROUP_COLUMN] = pd.Categorical(frame[GROUP_COLUMN], categories=order)
    return frame, categorical, continuous, order


def _nonnormal(frame: pd.DataFrame, continuous: list[str]) -> list[str]:
    result = []
    for column in continuous:
        per_group = [
            assess_normality(values.to_numpy(float)).normal
            for _, values in frame.groupby(GROUP_COLUMN, observed=True)[column]
        ]
        if not per_group or not all(per_group):
            result.append(column)
    return result


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _availability(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    rows = {}
    for column in frame.columns:
        if column == GROUP_COLUMN:
            continue
        row = {}
        for label in order:
            values = frame.loc[frame[GROUP_COLUMN] == label, column]
            row[label] = f"{int(values.notna().sum())}/{len(values)}"
        row["Overall"] = f"{int(frame[column].notna().sum())}/{len(frame)}"
        rows[column] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=[*order, "Overall"])


def build_table_one(
    data: CohortData,
    *,
    by: str = "morbidity_type",
    features: tuple[str, ...] = DEFAULT_TABLE_ONE_CFS,
    include_missing: bool = False,
) -> TableOneResult:
    """Build Table 1 of the cohort grouped by morbidity type or by outcome.

    Parameters
    ----------
    data : CohortData
        Loaded patients and features (``ictcf.stats.analysis.load_cohort``).
    by : {"morbidity_type", "outcome"}, default "morbidity_type"
        ``morbidity_type``: control / type I / type II. ``outcome``: cured / deceased among
        COVID-19 patients (type I + II).
    features : tuple of str
        CF abbreviations to include; those absent from the database are skipped.
    include_missing : bool, default False
        Show missing values of categorical variables as their own level, so that percentages
        are of all patients of the group. By default they are of patients with a recorded
        value, and ``availability`` states that denominator.

    Returns
    -------
    TableOneResult

    Raises
    ------
    ValueError
        If ``by`` is not a known grouping.
    DataNotFoundError
        If no patient belongs to any group of the grouping.
    """
    if by not in GROUPINGS:
        raise ValueError(f"unknown Table 1 grouping {by!r}; use one of: {', '.join(GROUPINGS)}")
    frame, categorical, continuous, order = _build_frame(data, by, features)
    if frame.empty:
        raise DataNotFoundError(
            f"no patient belongs to a group of Table 1 by {by} "
            f"({', '.join(order)}); this grouping needs patients of those groups."
        )
    nonnormal = _nonnormal(frame, continuous)
    present = [label for label in order if (frame[GROUP_COLUMN] == label).any()]
    # tableone pairs every category of the group column for its SMDs, so a group without
    # patients (a database without controls, say) must not remain a category.
    tableone_frame = frame.reset_index(drop=True)
    tableone_frame[GROUP_COLUMN] = tableone_frame[GROUP_COLUMN].cat.remove_unused_categories()
    with warnings.catch_warnings():
        # tableone warns about variables it considers possibly non-normal; our own
        # Shapiro–Wilk rule decides that and the docs state it.
        warnings.simplefilter("ignore")
        table = TableOne(
            tableone_frame,
            columns=[*[c for c in frame.columns if c != GROUP_COLUMN]],
            categorical=categorical,
            continuous=continuous,
            groupby=GROUP_COLUMN,
            nonnormal=nonnormal,
            pval=len(present) >= 2,
            htest_name=True,
            smd=len(present) >= 2,
            missing=True,
            include_null=include_missing,
            order={GROUP_COLUMN: present},
            ttest_equal_var=False,
            decimals=2,
        )
    flat = table.tableone.copy().map(_cell_text)
    flat.columns = [str(column[-1]) for column in flat.columns]
    flat.index = [
        f"{first}: {second}" if second else str(first) for first, second in flat.index.to_list()
    ]
    sizes = {label: int((frame[GROUP_COLUMN] == label).sum()) for label in order}
    return TableOneResult(
        by=by,
        table=flat,
        availability=_availability(frame, order),
        group_sizes=sizes,
        nonnormal=nonnormal,
        tableone=table,
    )


def table_one(
    session: Any,
    *,
    by: str = "morbidity_type",
    cohort: str | None = None,
    include_missing: bool = False,
) -> TableOneResult:
    """Load the database behind ``session`` and build Table 1 (see ``build_table_one``)."""
    from ictcf.stats.analysis import load_cohort

    return build_table_one(
        load_cohort(session, cohort=cohort), by=by, include_missing=include_missing
    )
