"""Two-group comparisons of clinical features, with the test behind every P value stated.

The procedure follows Ning et al., Nat. Biomed. Eng. 4, 1197–1207 (2020): a CF whose values
look normal in both groups is compared with a two-sided unpaired t-test, any other CF with a
two-sided Mann–Whitney U test. The t-test is Welch's (unequal variances), which keeps its size
when the group variances differ. P values of one comparison are adjusted by the
Benjamini–Hochberg procedure over the rows that could be tested.

A row that cannot be tested (too few values, (nearly) constant values, a P that cannot be
computed) says "not testable" and why, carries NaN as its P value and takes no part in the
adjustment.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from ictcf.errors import InputError

logger = logging.getLogger(__name__)

#: Shapiro–Wilk P below this value means "not normal" (the usual 5 % level).
NORMALITY_ALPHA = 0.05
#: Fewest values a group needs for a test; Shapiro–Wilk is undefined below 3 values.
MIN_GROUP_SIZE = 3
#: Fewest distinct values a group needs for its normality to be assessed; with fewer, the
#: values are mostly ties and Shapiro–Wilk's P describes the ties rather than the distribution.
MIN_DISTINCT_VALUES = 3
#: scipy documents Shapiro–Wilk's P as approximate above this many values; larger groups are
#: assessed with D'Agostino and Pearson's K² test instead.
SHAPIRO_MAX_N = 5000
#: Values whose range is below this fraction of their largest magnitude count as nearly
#: constant (dimensionless). Lab values are reported with at most a few significant digits, so
#: a relative spread of 1e-6 is below any real measurement difference.
NEAR_CONSTANT_RTOL = 1e-6
#: Expected cell count below which a 2x2 table is tested with Fisher's exact test instead of
#: the chi-squared test (Cochran's rule).
MIN_EXPECTED_COUNT = 5.0

WELCH_T_TEST = "Welch's t-test"
MANN_WHITNEY_U = "Mann-Whitney U"
CHI_SQUARED = "chi-squared (Yates)"
FISHER_EXACT = "Fisher's exact"

TESTED = "tested"
NOT_TESTABLE = "not testable"

#: Placeholder strings that mean "no value" in user-supplied frames ('' included).
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "none", "null", "-", "--"})


@dataclass(frozen=True)
class NormalityResult:
    """Outcome of a normality check of one group of values.

    Attributes
    ----------
    n : int
        Number of non-missing values.
    method : str
        ``"Shapiro-Wilk"``, ``"D'Agostino-Pearson"`` or ``""`` when not assessed.
    statistic : float
        Test statistic, NaN when not assessed.
    p_value : float
        P value in [0, 1], NaN when not assessed.
    normal : bool or None
        True when P >= alpha, False when P < alpha, None when normality could not be assessed.
    note : str
        Why normality was not assessed, or ``""``.
    """

    n: int
    method: str
    statistic: float
    p_value: float
    normal: bool | None
    note: str = ""


def is_near_constant(values: npt.ArrayLike, *, rtol: float = NEAR_CONSTANT_RTOL) -> bool:
    """Return True when the range of ``values`` is at most ``rtol`` times their largest magnitude.

    All-zero and single-valued arrays are constant; an empty array counts as constant too.
    """
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return True
    spread = float(np.ptp(array))
    scale = float(np.max(np.abs(array)))
    return spread <= rtol * scale


def assess_normality(
    values: npt.ArrayLike,
    *,
    alpha: float = NORMALITY_ALPHA,
    min_size: int = MIN_GROUP_SIZE,
) -> NormalityResult:
    """Test one group of values for normality.

    Shapiro–Wilk is used up to ``SHAPIRO_MAX_N`` values, D'Agostino and Pearson's K² test above,
    where scipy's Shapiro–Wilk P is approximate. Normality is not assessed (``normal`` is None)
    with fewer than ``min_size`` values, fewer than ``MIN_DISTINCT_VALUES`` distinct values,
    nearly constant values (see ``is_near_constant``), or a P value that is not a finite number
    in [0, 1]. Callers treat "not assessed" as "not normal", so an invalid P never selects the
    t-test.

    Parameters
    ----------
    values : array_like of shape (n,)
        Values of one group; NaN entries are dropped first.
    alpha : float, default 0.05
        P below ``alpha`` means not normal.
    min_size : int, default 3
        Fewest values for an assessment.

    Returns
    -------
    NormalityResult
    """
    array = np.asarray(values, dtype=float)
    array = array[~np.isnan(array)]
    n = int(array.size)
    if n < min_size:
        return NormalityResult(n, "", math.nan, math.nan, None, f"fewer than {min_size} values")
    if is_near_constant(array):
        return NormalityResult(n, "", math.nan, math.nan, None, "values (nearly) constant")
    n_distinct = int(np.unique(array).size)
    if n_distinct < MIN_DISTINCT_VALUES:
        return NormalityResult(
            n, "", math.nan, math.nan, None, f"only {n_distinct} distinct values"
        )

    if n > SHAPIRO_MAX_N:
        method = "D'Agostino-Pearson"
        statistic, p_value = scipy_stats.normaltest(array)
    else:
        method = "Shapiro-Wilk"
        with warnings.catch_warnings():
            # The near-constant case that scipy warns about is handled above.
            warnings.simplefilter("ignore", UserWarning)
            statistic, p_value = scipy_stats.shapiro(array)
    statistic = float(statistic)
    p_value = float(p_value)
    if not (math.isfinite(p_value) and 0.0 <= p_value <= 1.0):
        return NormalityResult(n, method, statistic, math.nan, None, f"invalid P ({p_value!r})")
    return NormalityResult(n, method, statistic, p_value, p_value >= alpha)


def adjust_p_values(p_values: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], int]:
    """Adjust P values by the Benjamini–Hochberg procedure over the finite entries only.

    NaN entries stay NaN and are not counted: ``[0.01, nan, 0.04, 0.20]`` becomes
    ``[0.03, nan, 0.06, 0.20]`` over 3 tests.

    Parameters
    ----------
    p_values : array_like of shape (n,)
        Raw P values in [0, 1] or NaN.

    Returns
    -------
    adjusted : ndarray of shape (n,)
        Adjusted P values (NaN where the input is NaN).
    n_tests : int
        Number of P values that entered the adjustment.

    Raises
    ------
    InputError
        If a P value is infinite or outside [0, 1].
    """
    array = np.asarray(p_values, dtype=float).reshape(-1)
    finite = ~np.isnan(array)
    invalid = finite & ~((array >= 0.0) & (array <= 1.0))
    if invalid.any():
        bad = array[invalid][0]
        raise InputError(
            f"P value {bad!r} is outside [0, 1]; pass raw P values or NaN for untestable rows."
        )
    adjusted = np.full(array.shape, np.nan)
    n_tests = int(finite.sum())
    if n_tests:
        adjusted[finite] = multipletests(array[finite], method="fdr_bh")[1]
    return adjusted, n_tests


def summarise_values(values: npt.ArrayLike) -> dict[str, float]:
    """Return n, mean, SD (ddof=1), median, Q1 and Q3 of the non-missing ``values``.

    Statistics that need more values than given are NaN (SD needs 2, the others 1).
    Quartiles use linear interpolation (numpy's default).
    """
    array = np.asarray(values, dtype=float)
    array = array[~np.isnan(array)]
    n = int(array.size)
    if n == 0:
        return {k: math.nan for k in ("mean", "sd", "median", "q1", "q3")} | {"n": 0}
    q1, median, q3 = np.percentile(array, [25, 50, 75])
    return {
        "n": n,
        "mean": float(array.mean()),
        "sd": float(array.std(ddof=1)) if n >= 2 else math.nan,
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
    }


def _not_testable(reason: str) -> dict[str, Any]:
    return {
        "status": NOT_TESTABLE,
        "reason": reason,
        "test": "",
        "statistic": math.nan,
        "p_value": math.nan,
        "mean_difference": math.nan,
        "probability_a_greater": math.nan,
        "direction": "",
    }


def _direction(shift: float) -> str:
    if not math.isfinite(shift) or shift == 0.0:
        return "no shift"
    return "higher" if shift > 0 else "lower"


def two_sample_test(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    normality_alpha: float = NORMALITY_ALPHA,
    min_group_size: int = MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """Compare two independent samples: Welch's t-test if both look normal, else Mann–Whitney U.

    Each group is tested for normality separately (``assess_normality``); the t-test is chosen
    only when both groups are assessed as normal. Both tests are two-sided. The Mann–Whitney U
    test uses scipy's default method (exact for small samples without ties, otherwise the normal
    approximation with tie and continuity corrections).

    Parameters
    ----------
    a, b : array_like of shape (n_a,), (n_b,)
        Values of group A and group B; NaN entries are dropped.
    normality_alpha : float, default 0.05
        Shapiro–Wilk level for the choice of test.
    min_group_size : int, default 3
        Fewest values per group; smaller groups make the row "not testable".

    Returns
    -------
    dict
        ``status`` (``"tested"`` or ``"not testable"``), ``reason``, ``test``, ``statistic``,
        ``p_value`` (NaN when not testable), ``mean_difference`` (mean A − mean B),
        ``probability_a_greater`` (U_A / (n_A n_B), the probability that a random value of A
        exceeds one of B, ties counted half), ``direction`` of A relative to B (``"higher"``,
        ``"lower"`` or ``"no shift"``; ``""`` when not testable), and ``normality_a``,
        ``normality_b`` (NormalityResult).
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x = x[~np.isnan(x)]
    y = y[~np.isnan(y)]
    normality_a = assess_normality(x, alpha=normality_alpha, min_size=min_group_size)
    normality_b = assess_normality(y, alpha=normality_alpha, min_size=min_group_size)
    row: dict[str, Any] = {"normality_a": normality_a, "normality_b": normality_b}

    if x.size == 0 and y.size == 0:
        return row | _not_testable("insufficient data: no values in either group")
    if x.size < min_group_size or y.size < min_group_size:
        sizes = f"n_a={x.size}, n_b={y.size}"
        return row | _not_testable(
            f"insufficient data: fewer than {min_group_size} values in a group ({sizes})"
        )
    if is_near_constant(np.concatenate([x, y])):
        return row | _not_testable("all values (nearly) identical in both groups")

    mean_difference = float(x.mean() - y.mean())
    mann_whitney = scipy_stats.mannwhitneyu(x, y, alternative="two-sided")
    probability_a_greater = float(mann_whitney.statistic) / (x.size * y.size)

    if normality_a.normal and normality_b.normal:
        test = WELCH_T_TEST
        result = scipy_stats.ttest_ind(x, y, equal_var=False, alternative="two-sided")
        statistic, p_value = float(result.statistic), float(result.pvalue)
        direction = _direction(mean_difference)
    else:
        test = MANN_WHITNEY_U
        statistic, p_value = float(mann_whitney.statistic), float(mann_whitney.pvalue)
        direction = _direction(probability_a_greater - 0.5)

    if not (math.isfinite(p_value) and 0.0 <= p_value <= 1.0):
        return row | _not_testable(f"{test} returned no valid P value ({p_value!r})")
    return row | {
        "status": TESTED,
        "reason": "",
        "test": test,
        "statistic": statistic,
        "p_value": p_value,
        "mean_difference": mean_difference,
        "probability_a_greater": probability_a_greater,
        "direction": direction,
    }


def two_by_two_test(a_yes: int, a_total: int, b_yes: int, b_total: int) -> dict[str, Any]:
    """Test a 2x2 table (group A/B by yes/no): chi-squared, or Fisher's exact for small counts.

    The chi-squared test is scipy's ``chi2_contingency`` with Yates' continuity correction (its
    default for 2x2 tables). Fisher's exact test (two-sided) runs instead when any expected count
    is below ``MIN_EXPECTED_COUNT``. A table with an empty group, or where every patient falls
    in the same column, is "not testable".

    Returns
    -------
    dict
        ``status``, ``reason``, ``test``, ``statistic`` (chi-squared or the odds ratio, which
        is 0 or infinite when a cell of the table is zero), ``statistic_note`` (what such an
        odds ratio means, else ``""``), ``p_value``, ``min_expected`` and ``direction`` of A's
        proportion relative to B's.
    """
    table = np.array([[a_yes, a_total - a_yes], [b_yes, b_total - b_yes]], dtype=float)
    if (table < 0).any():
        raise InputError(
            f"2x2 table has a negative count ({table.tolist()}); yes counts cannot exceed totals."
        )
    row: dict[str, Any] = {"min_expected": math.nan, "statistic_note": ""}
    if a_total == 0 or b_total == 0:
        return row | _not_testable(
            f"insufficient data: a group has no patients (n_a={a_total}, n_b={b_total})"
        )
    column_totals = table.sum(axis=0)
    if (column_totals == 0).any():
        return row | _not_testable("every patient falls in the same category")

    expected = np.outer(table.sum(axis=1), column_totals) / table.sum()
    min_expected = float(expected.min())
    statistic_note = ""
    if min_expected < MIN_EXPECTED_COUNT:
        test = FISHER_EXACT
        result = scipy_stats.fisher_exact(table, alternative="two-sided")
        statistic, p_value = float(result.statistic), float(result.pvalue)
        statistic_note = _odds_ratio_note(table, statistic)
    else:
        test = CHI_SQUARED
        chi2 = scipy_stats.chi2_contingency(table, correction=True)
        statistic, p_value = float(chi2.statistic), float(chi2.pvalue)
    proportion_difference = a_yes / a_total - b_yes / b_total
    return {
        "status": TESTED,
        "reason": "",
        "test": test,
        "statistic": statistic,
        "statistic_note": statistic_note,
        "p_value": min(max(p_value, 0.0), 1.0),
        "min_expected": min_expected,
        "direction": _direction(proportion_difference),
    }


def _odds_ratio_note(table: npt.NDArray[np.float64], odds_ratio: float) -> str:
    """Explain an odds ratio of 0, infinity or NaN, which a zero cell of the 2x2 table gives."""
    if not (table == 0).any():
        return ""
    if math.isinf(odds_ratio):
        return "odds ratio infinite (a zero cell in the 2x2 table)"
    if math.isnan(odds_ratio):
        return "odds ratio undefined (zero cells in the 2x2 table)"
    if odds_ratio == 0.0:
        return "odds ratio 0 (a zero cell in the 2x2 table)"
    return ""


def coerce_numeric(column: pd.Series) -> pd.Series:
    """Convert one column to float, reading '' and common missing markers as NaN.

    Raises
    ------
    InputError
        If a cell is text that is neither a number nor a missing marker.
    """
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    text = column.astype("string").str.strip()
    is_missing = column.isna() | text.str.lower().isin(MISSING_MARKERS).fillna(False)
    numbers = pd.to_numeric(text.where(~is_missing), errors="coerce")
    invalid = numbers.isna() & ~is_missing
    if invalid.any():
        first = text[invalid].iloc[0]
        raise InputError(
            f"column {column.name!r} holds a non-numeric value {first!r} in "
            f"{int(invalid.sum())} row(s); convert it to a number or leave the cell empty."
        )
    return numbers.astype(float)


def _mask(selector: Any, index: pd.Index, name: str) -> pd.Series:
    """Turn a group selector (boolean Series aligned on ``index`` or a list of keys) into a mask."""
    if isinstance(selector, pd.Series) and pd.api.types.is_bool_dtype(selector):
        mask = selector.reindex(index, fill_value=False).astype(bool)
    else:
        keys = pd.Index(list(selector))
        unknown = keys.difference(index)
        if len(unknown):
            raise InputError(
                f"group {name} names {len(unknown)} patient key(s) that are not rows of the "
                f"values frame (first: {unknown[0]!r}); pass keys from its index."
            )
        mask = pd.Series(index.isin(keys), index=index)
    return mask


def compare_groups(
    values: pd.DataFrame,
    group_a: Sequence[Any] | pd.Series,
    group_b: Sequence[Any] | pd.Series,
    *,
    censoring: pd.DataFrame | None = None,
    alpha: float = 0.05,
    alpha_adjusted: float = 0.05,
    normality_alpha: float = NORMALITY_ALPHA,
    min_group_size: int = MIN_GROUP_SIZE,
) -> pd.DataFrame:
    """Compare every numerical column of ``values`` between two groups of rows.

    Parameters
    ----------
    values : DataFrame of shape (n_patients, n_features)
        One row per patient (the index is the patient key), one column per CF. Text cells are
        read as numbers; '' and markers such as 'NA' count as missing.
    group_a, group_b : boolean Series aligned on ``values.index``, or sequence of patient keys
        Rows of group A and group B. The groups must not overlap.
    censoring : DataFrame, optional
        Same shape as ``values`` with '<', '>' or missing; only used to count censored values
        per group (the values themselves are taken as given).
    alpha : float, default 0.05
        A row is significant when its raw P is below ``alpha`` ...
    alpha_adjusted : float, default 0.05
        ... and its Benjamini–Hochberg adjusted P is below ``alpha_adjusted``.
    normality_alpha : float, default 0.05
        Shapiro–Wilk level used to choose between Welch's t-test and Mann–Whitney U.
    min_group_size : int, default 3
        Fewest values per group for a test.

    Returns
    -------
    DataFrame
        One row per column of ``values``, indexed by ``feature``, with ``status``, ``reason``,
        ``test``, ``statistic``, ``p_value``, ``p_adjusted``, ``n_tests`` (rows that entered the
        adjustment), ``significant`` (None when not testable), ``direction`` (group A relative
        to group B), ``mean_difference``, ``probability_a_greater``, the normality results
        ``normality_method``, ``shapiro_p_a``, ``shapiro_p_b``, ``normal_a``, ``normal_b``, and
        per group (suffix ``_a`` / ``_b``): ``n``, ``missing``, ``censored``, ``mean``, ``sd``,
        ``median``, ``q1``, ``q3``.

    Raises
    ------
    InputError
        If the groups overlap, name unknown rows, or a column holds non-numeric text.
    """
    mask_a = _mask(group_a, values.index, "A")
    mask_b = _mask(group_b, values.index, "B")
    overlap = int((mask_a & mask_b).sum())
    if overlap:
        raise InputError(
            f"groups A and B share {overlap} patient(s); define groups that do not overlap."
        )

    rows = []
    for feature in values.columns:
        column = coerce_numeric(values[feature])
        a = column[mask_a].to_numpy()
        b = column[mask_b].to_numpy()
        result = two_sample_test(
            a, b, normality_alpha=normality_alpha, min_group_size=min_group_size
        )
        normality_a: NormalityResult = result.pop("normality_a")
        normality_b: NormalityResult = result.pop("normality_b")
        row: dict[str, Any] = {"feature": feature} | result
        row["normality_method"] = normality_a.method or normality_b.method
        row["shapiro_p_a"] = normality_a.p_value
        row["shapiro_p_b"] = normality_b.p_value
        row["normal_a"] = normality_a.normal
        row["normal_b"] = normality_b.normal
        row["normality_note"] = "; ".join(
            f"{label}: {n.note}" for label, n in (("A", normality_a), ("B", normality_b)) if n.note
        )
        for suffix, mask, group_values in (("a", mask_a, a), ("b", mask_b, b)):
            summary = summarise_values(group_values)
            row[f"n_{suffix}"] = summary["n"]
            row[f"missing_{suffix}"] = int(mask.sum()) - summary["n"]
            censored = 0
            if censoring is not None and feature in censoring.columns:
                flags = censoring[feature].reindex(values.index)[mask]
                censored = int(flags.isin(["<", ">"]).sum())
            row[f"censored_{suffix}"] = censored
            for key in ("mean", "sd", "median", "q1", "q3"):
                row[f"{key}_{suffix}"] = summary[key]
        rows.append(row)

    table = pd.DataFrame.from_records(rows, columns=COMPARISON_COLUMNS)
    return _finish_table(table, alpha=alpha, alpha_adjusted=alpha_adjusted)


def _finish_table(table: pd.DataFrame, *, alpha: float, alpha_adjusted: float) -> pd.DataFrame:
    """Add adjusted P values and significance over the testable rows of one comparison."""
    adjusted, n_tests = adjust_p_values(table["p_value"].to_numpy(dtype=float))
    table["p_adjusted"] = adjusted
    table["n_tests"] = n_tests
    significant = (table["p_value"] < alpha) & (table["p_adjusted"] < alpha_adjusted)
    table["significant"] = pd.Series(
        [
            bool(flag) if status == TESTED else None
            for flag, status in zip(significant, table["status"], strict=True)
        ],
        index=table.index,
        dtype=object,
    )
    return table.set_index("feature")


SUMMARY_KEYS = ("n", "missing", "censored", "mean", "sd", "median", "q1", "q3")

COMPARISON_COLUMNS = [
    "feature",
    "status",
    "reason",
    "test",
    "statistic",
    "p_value",
    "p_adjusted",
    "n_tests",
    "significant",
    "direction",
    "mean_difference",
    "probability_a_greater",
    "normality_method",
    "shapiro_p_a",
    "shapiro_p_b",
    "normal_a",
    "normal_b",
    "normality_note",
    *(f"{key}_a" for key in SUMMARY_KEYS),
    *(f"{key}_b" for key in SUMMARY_KEYS),
]


def compare_binary(
    indicators: pd.DataFrame,
    group_a: Sequence[Any] | pd.Series,
    group_b: Sequence[Any] | pd.Series,
    *,
    alpha: float = 0.05,
    alpha_adjusted: float = 0.05,
) -> pd.DataFrame:
    """Compare yes/no columns (such as underlying diseases) between two groups of rows.

    Each column is tested with ``two_by_two_test``; missing cells (NaN or None) are left out of
    that column's denominators, which the output states as ``n_a`` and ``n_b``. Adjusted P
    values are Benjamini–Hochberg over the testable columns.

    Parameters
    ----------
    indicators : DataFrame of shape (n_patients, n_items)
        Boolean (or 0/1) columns, missing allowed, indexed by patient key.
    group_a, group_b : boolean Series or sequence of patient keys
        As in ``compare_groups``.
    alpha, alpha_adjusted : float
        As in ``compare_groups``.

    Returns
    -------
    DataFrame
        Indexed by ``feature``: ``yes_a``, ``n_a``, ``percent_a``, ``yes_b``, ``n_b``,
        ``percent_b``, ``status``, ``reason``, ``test``, ``statistic``, ``statistic_note``,
        ``p_value``, ``min_expected``, ``direction``, ``p_adjusted``, ``n_tests``, ``significant``.
    """
    mask_a = _mask(group_a, indicators.index, "A")
    mask_b = _mask(group_b, indicators.index, "B")
    if (mask_a & mask_b).any():
        raise InputError(
            f"groups A and B share {int((mask_a & mask_b).sum())} patient(s); "
            "define groups that do not overlap."
        )
    rows = []
    for feature in indicators.columns:
        column = indicators[feature]
        counts: dict[str, Any] = {}
        for suffix, mask in (("a", mask_a), ("b", mask_b)):
            present = column[mask].dropna().astype(bool)
            counts[f"yes_{suffix}"] = int(present.sum())
            counts[f"n_{suffix}"] = int(present.size)
            counts[f"percent_{suffix}"] = (
                100.0 * present.sum() / present.size if present.size else math.nan
            )
        result = two_by_two_test(counts["yes_a"], counts["n_a"], counts["yes_b"], counts["n_b"])
        result.pop("mean_difference", None)
        result.pop("probability_a_greater", None)
        rows.append({"feature": feature} | counts | result)
    columns = [
        "feature",
        "yes_a",
        "n_a",
        "percent_a",
        "yes_b",
        "n_b",
        "percent_b",
        "status",
        "reason",
        "test",
        "statistic",
        "statistic_note",
        "p_value",
        "min_expected",
        "direction",
    ]
    table = pd.DataFrame.from_records(rows, columns=columns)
    return _finish_table(table, alpha=alpha, alpha_adjusted=alpha_adjusted)
