"""Tests of the two-group tests, the normality rule and the Benjamini–Hochberg adjustment.

Each statistic is checked against scipy or statsmodels and against a slow reference written
out from its textbook formula.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from ictcf.errors import InputError
from ictcf.stats.comparisons import (
    CHI_SQUARED,
    FISHER_EXACT,
    MANN_WHITNEY_U,
    NOT_TESTABLE,
    TESTED,
    WELCH_T_TEST,
    adjust_p_values,
    assess_normality,
    coerce_numeric,
    compare_binary,
    compare_groups,
    is_near_constant,
    summarise_values,
    two_by_two_test,
    two_sample_test,
)


def reference_bh(p_values: list[float]) -> list[float]:
    """Benjamini–Hochberg by its definition: min over j with p_j >= p_i of p_j * m / rank_j."""
    finite = [p for p in p_values if not math.isnan(p)]
    m = len(finite)
    ranked = sorted(finite)
    adjusted = []
    for p in p_values:
        if math.isnan(p):
            adjusted.append(math.nan)
            continue
        candidates = [ranked[j] * m / (j + 1) for j in range(m) if ranked[j] >= p]
        adjusted.append(min(1.0, min(candidates)))
    return adjusted


def reference_u(a: list[float], b: list[float]) -> float:
    """Mann–Whitney U of ``a`` by counting pairs, ties counted half."""
    total = 0.0
    for x, y in itertools.product(a, b):
        if x > y:
            total += 1.0
        elif x == y:
            total += 0.5
    return total


# Benjamini–Hochberg


def test_bh_keeps_nan_and_counts_tests() -> None:
    adjusted, n_tests = adjust_p_values([0.01, math.nan, 0.04, 0.20])
    assert n_tests == 3
    assert adjusted[0] == pytest.approx(0.03)
    assert math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.06)
    assert adjusted[3] == pytest.approx(0.20)


def test_bh_hand_computed_monotone_case() -> None:
    adjusted, n_tests = adjust_p_values([0.01, 0.04, 0.03, 0.20])
    assert n_tests == 4
    np.testing.assert_allclose(adjusted, [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.20])


def test_bh_matches_statsmodels_and_reference() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.uniform(0, 1, 15) ** 3
        p[rng.uniform(size=15) < 0.2] = np.nan
        adjusted, n_tests = adjust_p_values(p)
        finite = ~np.isnan(p)
        assert n_tests == int(finite.sum())
        expected = multipletests(p[finite], method="fdr_bh")[1]
        np.testing.assert_allclose(adjusted[finite], expected)
        np.testing.assert_allclose(adjusted, reference_bh(list(p)), equal_nan=True)


def test_bh_all_nan_and_empty() -> None:
    adjusted, n_tests = adjust_p_values([math.nan, math.nan])
    assert n_tests == 0
    assert np.isnan(adjusted).all()
    adjusted, n_tests = adjust_p_values([])
    assert n_tests == 0
    assert adjusted.size == 0


@pytest.mark.parametrize("bad", [1.5, -0.1, math.inf])
def test_bh_rejects_invalid_p(bad: float) -> None:
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        adjust_p_values([0.1, bad])


# Normality


def test_normality_three_values_two_distinct() -> None:
    result = assess_normality([0.6931471805599453, 0.0, 0.0])
    assert result.normal is None
    assert "2 distinct values" in result.note
    assert math.isnan(result.p_value)


def test_normality_box_cox_near_constant() -> None:
    transformed, _ = scipy_stats.boxcox(np.array([122500.0, 474400.0, 110400.0]))
    result = assess_normality(transformed)
    assert result.normal is None
    assert "constant" in result.note


def test_normality_constant_is_not_normal() -> None:
    # scipy's Shapiro–Wilk returns P = 1 for constant data; the rule must not take it.
    result = assess_normality([0.0] * 5)
    assert result.normal is None


def test_normality_matches_scipy_shapiro() -> None:
    values = np.random.default_rng(1).normal(size=40)
    result = assess_normality(values)
    expected = scipy_stats.shapiro(values)
    assert result.method == "Shapiro-Wilk"
    assert result.statistic == pytest.approx(float(expected.statistic))
    assert result.p_value == pytest.approx(float(expected.pvalue))
    assert result.normal is (float(expected.pvalue) >= 0.05)


def test_normality_large_sample_uses_dagostino() -> None:
    values = np.random.default_rng(2).normal(size=6000)
    result = assess_normality(values)
    assert result.method == "D'Agostino-Pearson"
    assert result.p_value == pytest.approx(float(scipy_stats.normaltest(values).pvalue))
    assert 0.0 <= result.p_value <= 1.0


def test_normality_drops_nan_and_needs_three() -> None:
    result = assess_normality([1.0, math.nan, 2.0])
    assert result.n == 2
    assert result.normal is None
    assert "fewer than 3" in result.note


def test_near_constant_rule() -> None:
    assert is_near_constant([0.0, 0.0])
    assert is_near_constant([])
    assert is_near_constant([5.0, 5.0 + 1e-9])
    assert not is_near_constant([0.0, 0.01])


# Two-sample tests


def test_welch_matches_formula_for_normal_groups() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(10, 1, 30)
    b = rng.normal(11, 2, 25)
    assert assess_normality(a).normal
    assert assess_normality(b).normal
    result = two_sample_test(a, b)
    assert result["test"] == WELCH_T_TEST
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    assert result["statistic"] == pytest.approx(t)
    assert result["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), df))
    assert result["direction"] == "lower"
    assert result["mean_difference"] == pytest.approx(a.mean() - b.mean())


def test_mann_whitney_for_skewed_groups() -> None:
    rng = np.random.default_rng(6)
    a = rng.lognormal(1.0, 1.0, 40)
    b = rng.lognormal(0.0, 1.0, 40)
    result = two_sample_test(a, b)
    assert result["test"] == MANN_WHITNEY_U
    expected = scipy_stats.mannwhitneyu(a, b, alternative="two-sided")
    assert result["statistic"] == pytest.approx(reference_u(list(a), list(b)))
    assert result["p_value"] == pytest.approx(float(expected.pvalue))
    assert result["direction"] == "higher"
    assert result["probability_a_greater"] == pytest.approx(expected.statistic / 1600)


def test_mann_whitney_with_ties() -> None:
    # Two distinct values per group: normality is not assessed, so Mann–Whitney U runs.
    a = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    b = [2.0, 2.0, 3.0, 3.0, 3.0]
    result = two_sample_test(a, b)
    assert result["test"] == MANN_WHITNEY_U
    assert result["statistic"] == pytest.approx(reference_u(a, b))
    expected = scipy_stats.mannwhitneyu(a, b, alternative="two-sided")
    assert result["p_value"] == pytest.approx(float(expected.pvalue))
    assert result["direction"] == "lower"


def test_empty_groups_are_insufficient_data() -> None:
    result = two_sample_test([], [])
    assert result["status"] == NOT_TESTABLE
    assert "insufficient data" in result["reason"]
    assert math.isnan(result["p_value"])


def test_two_values_in_a_group_not_testable() -> None:
    result = two_sample_test([1.0, 2.0], [1.0, 2.0, 3.0, 4.0])
    assert result["status"] == NOT_TESTABLE
    assert "fewer than 3 values" in result["reason"]
    assert result["direction"] == ""


def test_pairwise_constant_groups() -> None:
    values = pd.DataFrame({"x": [0.0] * 5 + [0.0] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0]})
    group_a, group_b, group_c = range(5), range(5, 10), range(10, 15)
    a_vs_b = compare_groups(values, list(group_a), list(group_b))
    assert a_vs_b.loc["x", "status"] == NOT_TESTABLE
    assert "identical" in a_vs_b.loc["x", "reason"]
    assert math.isnan(a_vs_b.loc["x", "p_value"])
    assert math.isnan(a_vs_b.loc["x", "p_adjusted"])
    assert a_vs_b.loc["x", "significant"] is None
    assert a_vs_b.loc["x", "n_tests"] == 0
    for first, second in ((group_a, group_c), (group_b, group_c)):
        table = compare_groups(values, list(first), list(second))
        expected = scipy_stats.mannwhitneyu([0.0] * 5, [1, 2, 3, 4, 5], alternative="two-sided")
        assert table.loc["x", "status"] == TESTED
        assert table.loc["x", "p_value"] == pytest.approx(float(expected.pvalue))
        assert table.loc["x", "p_adjusted"] == pytest.approx(float(expected.pvalue))
        assert table.loc["x", "direction"] == "lower"


# compare_groups on a frame


def make_frame() -> tuple[pd.DataFrame, list[int], list[int]]:
    rng = np.random.default_rng(11)
    n = 30
    frame = pd.DataFrame(
        {
            "normal": np.concatenate([rng.normal(5, 1, n), rng.normal(8, 1, n)]),
            "skewed": np.concatenate([rng.lognormal(0, 1, n), rng.lognormal(0, 1, n)]),
            "empty": np.nan,
            "rare": [1.0, 2.0] + [np.nan] * (2 * n - 2),
            "constant": 3.0,
        },
        index=pd.Index(range(100, 100 + 2 * n), name="patient_id"),
    )
    return frame, list(range(100, 100 + n)), list(range(100 + n, 100 + 2 * n))


def test_compare_groups_rows_and_correction() -> None:
    frame, a, b = make_frame()
    table = compare_groups(frame, a, b, alpha=0.05, alpha_adjusted=0.05)
    assert list(table.index) == ["normal", "skewed", "empty", "rare", "constant"]
    tested = table[table["status"] == TESTED]
    assert list(tested.index) == ["normal", "skewed"]
    assert (table["n_tests"] == 2).all()
    expected = multipletests(tested["p_value"].to_numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(tested["p_adjusted"].to_numpy(), expected)
    assert table.loc["normal", "test"] == WELCH_T_TEST
    assert table.loc["normal", "significant"] is True
    assert table.loc["normal", "direction"] == "lower"
    assert "no values in either group" in table.loc["empty", "reason"]
    assert "fewer than 3 values" in table.loc["rare", "reason"]
    assert "identical" in table.loc["constant", "reason"]
    for feature in ("empty", "rare", "constant"):
        assert table.loc[feature, "test"] == ""
        assert table.loc[feature, "significant"] is None


def test_compare_groups_group_summaries() -> None:
    frame, a, b = make_frame()
    table = compare_groups(frame, a, b)
    values = frame.loc[a, "skewed"].to_numpy()
    assert table.loc["skewed", "n_a"] == 30
    assert table.loc["skewed", "missing_a"] == 0
    assert table.loc["skewed", "mean_a"] == pytest.approx(values.mean())
    assert table.loc["skewed", "sd_a"] == pytest.approx(values.std(ddof=1))
    assert table.loc["skewed", "median_a"] == pytest.approx(np.median(values))
    assert table.loc["skewed", "q1_a"] == pytest.approx(np.percentile(values, 25))
    assert table.loc["skewed", "q3_a"] == pytest.approx(np.percentile(values, 75))
    assert table.loc["rare", "n_a"] == 2
    assert table.loc["rare", "missing_a"] == 28
    assert table.loc["empty", "missing_b"] == 30


def test_compare_groups_boolean_masks_and_censoring() -> None:
    frame, a, _ = make_frame()
    mask_a = pd.Series(frame.index.isin(a), index=frame.index)
    censoring = pd.DataFrame(None, index=frame.index, columns=frame.columns, dtype=object)
    censoring.loc[a[:4], "skewed"] = "<"
    censoring.loc[frame.index[-1], "skewed"] = ">"
    table = compare_groups(frame, mask_a, ~mask_a, censoring=censoring)
    assert table.loc["skewed", "censored_a"] == 4
    assert table.loc["skewed", "censored_b"] == 1
    assert table.loc["normal", "censored_a"] == 0


def test_compare_groups_rejects_overlap() -> None:
    frame, a, b = make_frame()
    with pytest.raises(InputError, match="share 1 patient"):
        compare_groups(frame, a, [*b, a[0]])


def test_compare_groups_rejects_unknown_keys() -> None:
    frame, a, _ = make_frame()
    with pytest.raises(InputError, match="not rows of the values frame"):
        compare_groups(frame, a, [999])


def test_empty_string_counted_as_missing() -> None:
    frame = pd.DataFrame(
        {"education": ["2", "1", "1", "", "1", "2", "3", " ", "NA", "2"]},
    )
    table = compare_groups(frame, [0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    assert table.loc["education", "n_a"] == 4
    assert table.loc["education", "missing_a"] == 1
    assert table.loc["education", "n_b"] == 3
    assert table.loc["education", "missing_b"] == 2


def test_non_numeric_text_rejected() -> None:
    frame = pd.DataFrame({"CRP": ["12.3", "high", "8.1"]})
    with pytest.raises(InputError, match="column 'CRP' holds a non-numeric value 'high'"):
        coerce_numeric(frame["CRP"])


def test_summary_of_empty_values() -> None:
    summary = summarise_values([])
    assert summary["n"] == 0
    assert math.isnan(summary["mean"])
    assert math.isnan(summarise_values([1.0])["sd"])


# 2x2 tables


def test_chi_squared_yates_matches_formula() -> None:
    result = two_by_two_test(40, 100, 20, 100)
    assert result["test"] == CHI_SQUARED
    observed = np.array([[40, 60], [20, 80]], dtype=float)
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    chi2 = float((((np.abs(observed - expected) - 0.5) ** 2) / expected).sum())
    assert result["statistic"] == pytest.approx(chi2)
    assert result["p_value"] == pytest.approx(float(scipy_stats.chi2.sf(chi2, 1)))
    assert result["direction"] == "higher"


def test_fisher_when_expected_below_five() -> None:
    result = two_by_two_test(3, 10, 0, 12)
    assert result["test"] == FISHER_EXACT
    assert result["min_expected"] < 5
    # Two-sided Fisher by summing hypergeometric tables no more likely than the observed one.
    distribution = scipy_stats.hypergeom(22, 3, 10)
    observed = distribution.pmf(3)
    p = sum(
        distribution.pmf(k) for k in range(0, 4) if distribution.pmf(k) <= observed * (1 + 1e-7)
    )
    assert result["p_value"] == pytest.approx(p)


def test_two_by_two_not_testable_cases() -> None:
    assert two_by_two_test(0, 0, 3, 10)["status"] == NOT_TESTABLE
    nobody = two_by_two_test(0, 10, 0, 12)
    assert nobody["status"] == NOT_TESTABLE
    assert "same category" in nobody["reason"]
    with pytest.raises(InputError, match="negative count"):
        two_by_two_test(11, 10, 0, 12)


def test_compare_binary_denominators_exclude_missing() -> None:
    indicators = pd.DataFrame(
        {"diabetes": [True, False, None, True, False, False, True, None]},
        dtype=object,
    )
    table = compare_binary(indicators, [0, 1, 2, 3], [4, 5, 6, 7])
    assert table.loc["diabetes", "yes_a"] == 2
    assert table.loc["diabetes", "n_a"] == 3
    assert table.loc["diabetes", "percent_a"] == pytest.approx(200 / 3)
    assert table.loc["diabetes", "n_b"] == 3
    assert table.loc["diabetes", "test"] == FISHER_EXACT
    assert table.loc["diabetes", "n_tests"] == 1
