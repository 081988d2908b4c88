"""Cohort statistics: CF group comparisons, Table 1, figures and the statistics report.

Typical notebook use::

    from ictcf.db.session import open_database, session_scope
    from ictcf.stats import paper_comparisons

    with session_scope(open_database(url)) as session:
        results = paper_comparisons(session)
    results["covid_vs_control"].significant
"""

from ictcf.stats.analysis import (
    CohortData,
    ComparisonResult,
    FeatureMatrix,
    build_feature_matrix,
    disease_indicators,
    load_cohort,
    paper_comparisons,
    run_comparison,
    run_comparisons,
)
from ictcf.stats.comparisons import (
    adjust_p_values,
    assess_normality,
    compare_binary,
    compare_groups,
    two_by_two_test,
    two_sample_test,
)
from ictcf.stats.groups import PAPER_COMPARISONS, ComparisonSpec, GroupSpec, parse_comparison
from ictcf.stats.report import StatsReport, write_stats_report
from ictcf.stats.table_one import TableOneResult, build_table_one, table_one

__all__ = [
    "PAPER_COMPARISONS",
    "CohortData",
    "ComparisonResult",
    "ComparisonSpec",
    "FeatureMatrix",
    "GroupSpec",
    "StatsReport",
    "TableOneResult",
    "adjust_p_values",
    "assess_normality",
    "build_feature_matrix",
    "build_table_one",
    "compare_binary",
    "compare_groups",
    "disease_indicators",
    "load_cohort",
    "paper_comparisons",
    "parse_comparison",
    "run_comparison",
    "run_comparisons",
    "table_one",
    "two_by_two_test",
    "two_sample_test",
    "write_stats_report",
]
