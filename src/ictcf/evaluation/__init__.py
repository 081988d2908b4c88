"""Evaluation of out-of-fold predictions: metrics, summaries over repeats and the report."""

from ictcf.evaluation.metrics import (
    METRIC_KEYS,
    RATE_METRICS,
    InvalidPredictionsError,
    UndefinedMetricWarning,
    binary_metrics,
    one_vs_rest_metrics,
    per_outcome_metrics,
    roc_points,
)
from ictcf.evaluation.summary import (
    MODEL_LABELS,
    PAPER_MODEL,
    TASK_CLASS_NAMES,
    TASK_POSITIVE_CLASS,
    EvaluationSummary,
    evaluate_predictions,
)

__all__ = [
    "METRIC_KEYS",
    "MODEL_LABELS",
    "PAPER_MODEL",
    "RATE_METRICS",
    "TASK_CLASS_NAMES",
    "TASK_POSITIVE_CLASS",
    "EvaluationSummary",
    "InvalidPredictionsError",
    "UndefinedMetricWarning",
    "binary_metrics",
    "evaluate_predictions",
    "one_vs_rest_metrics",
    "per_outcome_metrics",
    "roc_points",
]
