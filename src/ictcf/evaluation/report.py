"""The evaluation report: metrics.json, CSV tables, PNG figures, index.html and report.md.

Every table in the report names the data, the split and the number of repeats that produced
it, and shows the values published by Ning et al. 2020 beside the rows of the paper's model
(model kind ``"network"``) where the paper has one. Comparison models (gradient boosting,
logistic regression) get their own rows, sections and figures, without a paper value.
The report is written into a staging folder first and moved into place only when complete, so
an error leaves no half-written report behind.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePath
from typing import Any

import jinja2
import jsonschema
import numpy as np
import pandas as pd

from ictcf.errors import ConflictError, InputError
from ictcf.evaluation.figures import draw_confusion_figure, draw_roc_figure
from ictcf.evaluation.metrics import RATE_METRICS
from ictcf.evaluation.summary import (
    CONFIDENCE_LEVEL,
    INTERVAL_DEFINITION,
    MODEL_LABELS,
    PAPER_MODEL,
    EvaluationSummary,
    describe_decision_rule,
    frame_records,
)

logger = logging.getLogger(__name__)

#: Version of the metrics.json layout; bump it when a field changes meaning or is removed.
SCHEMA_VERSION = 1
#: Citation of the paper whose results are shown beside ours.
PAPER_CITATION = (
    "Ning et al., Open resource of clinical data from patients with pneumonia for the "
    "prediction of COVID-19 outcomes via deep learning, Nature Biomedical Engineering 4, "
    "1197–1207 (2020)"
)
#: Entries of the report folder that write_report owns and replaces on a rewrite.
REPORT_ENTRIES: tuple[str, ...] = ("metrics.json", "index.html", "report.md", "tables", "figures")
#: Software whose versions are recorded in metrics.json beside the caller's run_info.
RECORDED_PACKAGES: tuple[str, ...] = (
    "ictcf",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "matplotlib",
)
#: Reader-facing metric names, as in the paper's tables.
METRIC_LABELS: Mapping[str, str] = {
    "auc": "AUC",
    "sensitivity": "Sensitivity (Sn)",
    "specificity": "Specificity (Sp)",
    "accuracy": "Accuracy (Ac)",
    "ppv": "PPV",
    "npv": "NPV",
    "mcc": "MCC",
}
#: Metrics shown as percentages, like the paper; AUC and MCC are shown as decimals.
PERCENT_METRICS = frozenset({"sensitivity", "specificity", "accuracy", "ppv", "npv"})
#: Evaluations with at most this many folds per repeat get their per-fold table in the HTML page.
MAX_FOLDS_SHOWN_IN_PAGE = 12
#: Sections of the run information: accepted run_info keys (the first present one is shown) and
#: the heading. A section without any of its keys is shown as "not recorded".
RUN_INFO_SECTIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("data",), "Data"),
    (("split",), "Split settings"),
    (("model",), "Model configuration (including class weighting)"),
    (("normalisation", "normalisation_policy"), "Feature normalisation policy"),
    (("software",), "Software versions"),
    (("durations", "durations_s"), "Durations (seconds)"),
)


@dataclass(frozen=True)
class PaperResult:
    """One published value of the paper.

    Attributes
    ----------
    task : str
        ``"morbidity"`` or ``"mortality"``.
    evaluation : str
        The evaluation kind of ours it is compared with (``"cv"`` or ``"independent"``).
    class_name : str
        The class of the one-vs-rest row (``"deceased"`` for mortality).
    metric : str
        One of :data:`~ictcf.evaluation.metrics.RATE_METRICS`; rates are proportions.
    value : float
        The value as printed in the paper (percentages divided by 100).
    source : str
        Table and model of the paper, with its cohort, as reported by the paper.
    """

    task: str
    evaluation: str
    class_name: str
    metric: str
    value: float
    source: str


_TABLE_2_CF = (
    "Ning et al. 2020, Table 2, CF-based model, cohort 1 + cohort 2 cross-validation, as reported "
    "by the paper"
)
_TABLE_3_CF = (
    "Ning et al. 2020, Table 3, CF-based model, morbidity outcomes on data from cohort 2, as "
    "reported by the paper"
)

# NOTE: these four values are not yet checked against the published Table 2 (the Table 3 rows
# below were read from the journal's table page, s41551-020-00633-5/tables/3).
#: The paper's CF-based AUCs of Table 2 (cross-validation), as reported by the paper.
PAPER_CF_RESULTS: tuple[PaperResult, ...] = (
    PaperResult("morbidity", "cv", "control", "auc", 0.882, _TABLE_2_CF),
    PaperResult("morbidity", "cv", "type_i", "auc", 0.856, _TABLE_2_CF),
    PaperResult("morbidity", "cv", "type_ii", "auc", 0.879, _TABLE_2_CF),
    PaperResult("mortality", "cv", "deceased", "auc", 0.822, _TABLE_2_CF),
)


def _table_3_rows(class_name: str, values: Sequence[float]) -> tuple[PaperResult, ...]:
    return tuple(
        PaperResult("morbidity", "independent", class_name, metric, value, _TABLE_3_CF)
        for metric, value in zip(RATE_METRICS, values, strict=True)
    )


#: The paper's CF-based morbidity rows of Table 3 (cohort 2), in the order of RATE_METRICS:
#: AUC, Sn, Sp, Ac, PPV, NPV, MCC, as reported by the paper.
PAPER_CF_INDEPENDENT_RESULTS: tuple[PaperResult, ...] = (
    *_table_3_rows("control", (0.888, 0.5472, 0.9959, 0.8604, 0.9831, 0.8356, 0.6668)),
    *_table_3_rows("type_i", (0.834, 0.7253, 0.7870, 0.7550, 0.7857, 0.7268, 0.5124)),
    *_table_3_rows("type_ii", (0.845, 0.7163, 0.7882, 0.7749, 0.4245, 0.9265, 0.4200)),
)

#: Every published value the report compares with.
PAPER_REFERENCE_RESULTS: tuple[PaperResult, ...] = PAPER_CF_RESULTS + PAPER_CF_INDEPENDENT_RESULTS


def paper_value(task: str, evaluation: str, class_name: str, metric: str) -> PaperResult | None:
    """Return the paper's published value for one row of our results, or ``None``."""
    for result in PAPER_REFERENCE_RESULTS:
        if (result.task, result.evaluation, result.class_name, result.metric) == (
            task,
            evaluation,
            class_name,
            metric,
        ):
            return result
    return None


def paper_value_for(summary: EvaluationSummary, class_name: str, metric: str) -> PaperResult | None:
    """Return the paper's value beside one row of ``summary``: only the paper's model has one."""
    if summary.model != PAPER_MODEL:
        return None
    return paper_value(summary.task, summary.evaluation, class_name, metric)


def _model_order(model: str) -> int:
    kinds = list(MODEL_LABELS)
    return kinds.index(model) if model in kinds else len(kinds)


def write_report(
    output_dir: Path, summaries: Sequence[EvaluationSummary], run_info: Mapping[str, Any]
) -> Path:
    """Write the evaluation report and return the path of its ``index.html``.

    The folder receives ``metrics.json`` (validated against ``metrics.schema.json``),
    ``tables/*.csv``, ``figures/*.png``, ``index.html`` (self-contained: inline CSS, figures
    linked relatively) and ``report.md``.

    Parameters
    ----------
    output_dir : Path
        Report folder, created when missing. An existing folder must be empty or contain an
        earlier report. The report's own files are then replaced and other files are kept.
    summaries : sequence of EvaluationSummary
        One per model kind, task and evaluation kind, each at most once.
    run_info : mapping
        Run id (``run_id``), creation time (``created``), ``data`` (file name, SHA-256,
        published or not, patients per cohort), ``split`` (folds, repeats, seed), ``model``
        (configuration, including class weighting), ``normalisation``, ``software``,
        ``durations`` and an optional ``notes`` list of strings. Values must be JSON-like:
        str, numbers, bool, None, lists, dicts, plus paths, dates and enums (written as text).

    Returns
    -------
    Path
        ``output_dir / "index.html"``.

    Raises
    ------
    InputError
        When ``summaries`` is empty or repeats a model, task and evaluation kind, ``run_info`` holds a
        value that cannot be written to JSON or ``notes`` is not a list of strings, or
        ``output_dir`` is a file.
    ConflictError
        When ``output_dir`` holds other files and no earlier report.
    """
    output_dir = Path(output_dir).absolute()
    checked = _check_summaries(summaries)
    run_data = _check_run_info(run_info)
    _check_output_dir(output_dir)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    try:
        _write_report_files(staging, checked, run_data)
        _move_into_place(staging, output_dir)
    finally:
        # After a successful move the staging folder is gone or empty. After an error it contains
        # the partial report, which is discarded.
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("evaluation report written to %s (%d evaluations)", output_dir, len(checked))
    return output_dir / "index.html"


def build_metrics_document(
    summaries: Sequence[EvaluationSummary],
    run_info: Mapping[str, Any],
    *,
    files: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """Build the metrics.json document of a report (see docs/report.md for its layout).

    Parameters
    ----------
    summaries : sequence of EvaluationSummary
        The evaluations to include.
    run_info : mapping
        Run information, as for :func:`write_report`.
    files : mapping, optional
        Per evaluation key (``"<task>_<evaluation>"``, plus ``"_<model>"`` for a model other
        than the paper's network), the report's file paths.

    Raises
    ------
    InputError
        As :func:`write_report` for ``summaries`` and ``run_info``.
    """
    checked = _check_summaries(summaries)
    run_data = _check_run_info(run_info)
    evaluations = []
    for summary in checked:
        entry = summary.to_dict()
        if files is not None and _evaluation_key(summary) in files:
            entry["files"] = dict(files[_evaluation_key(summary)])
        evaluations.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated": {
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "software": _software_versions(),
        },
        "run_info": run_data,
        "paper_reference": {
            "citation": PAPER_CITATION,
            "results": [
                {
                    "task": result.task,
                    "evaluation": result.evaluation,
                    "class": result.class_name,
                    "metric": result.metric,
                    "value": result.value,
                    "source": result.source,
                }
                for result in PAPER_REFERENCE_RESULTS
            ],
        },
        "evaluations": evaluations,
    }


def validate_metrics_document(document: Any, *, path: Path | None = None) -> None:
    """Check a metrics.json document against the packaged JSON Schema.

    Raises
    ------
    InputError
        Naming the first invalid field (as a JSON path) and what the schema expects.
    """
    validator = jsonschema.Draft202012Validator(metrics_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        location = "$" + "".join(f"[{part!r}]" for part in error.absolute_path)
        raise InputError(
            f"metrics document is invalid at {location}: {error.message}; it must follow "
            f"metrics.schema.json version {SCHEMA_VERSION}",
            path=path,
        )


@cache
def metrics_schema() -> dict[str, Any]:
    """Return the packaged JSON Schema of metrics.json."""
    text = resources.files("ictcf.evaluation").joinpath("metrics.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def format_headline_table(summaries: Sequence[EvaluationSummary]) -> str:
    """Format the AUCs of every task and class as a plain-text table for the terminal.

    One row per task, evaluation and class, with one column per model kind (the paper's network
    first, comparison models after it): the mean AUC with its 95 % interval. The AUC published
    by Ning et al. 2020 for the paper's model is shown beside them. The lines below the table
    name the data, split and repeats of each evaluation.

    Parameters
    ----------
    summaries : sequence of EvaluationSummary
        The evaluations to list.

    Returns
    -------
    str
        Lines separated by ``\\n``, without a trailing newline.
    """
    models = sorted({summary.model for summary in summaries}, key=_model_order)
    keys: list[tuple[str, str, str]] = []
    cells: dict[tuple[str, str, str, str], str] = {}
    labels: dict[tuple[str, str, str], tuple[str, str]] = {}
    for summary in summaries:
        for class_name in summary.reported_classes:
            key = (summary.task, summary.evaluation, class_name)
            if key not in labels:
                keys.append(key)
                labels[key] = (summary.evaluation_label, summary.interval_over)
            row = summary.summary_row(class_name, "auc")
            cells[(*key, summary.model)] = (
                format_summary_cell(row, "auc") if row is not None else "not computed"
            )
    header = (
        "Task",
        "Evaluation",
        "Class",
        *(f"{model} AUC (95% interval)" for model in models),
        "Interval over",
        "Paper AUC (as reported)",
    )
    rows: list[tuple[str, ...]] = []
    for task, evaluation, class_name in keys:
        paper = paper_value(task, evaluation, class_name, "auc")
        evaluation_label, interval_over = labels[(task, evaluation, class_name)]
        rows.append(
            (
                task,
                evaluation_label,
                class_name,
                *(cells.get((task, evaluation, class_name, model), "—") for model in models),
                interval_over,
                f"{paper.value:.3f}" if paper is not None else "—",
            )
        )
    widths = [max(len(line[column]) for line in (header, *rows)) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for summary in summaries:
        lines.append(
            f"{summary.task}, {summary.evaluation_label}, {summary.model}: {_provenance(summary)}"
        )
    if models != [PAPER_MODEL]:
        lines.append(
            "Models: "
            + "; ".join(f"{model} = {MODEL_LABELS.get(model, model)}" for model in models)
            + ". The paper reports AUCs for its network only."
        )
    if any(paper_value(task, evaluation, name, "auc") for task, evaluation, name in keys):
        lines.append(f"Paper: {PAPER_CITATION}.")
    return "\n".join(lines)


def format_summary_cell(row: Mapping[str, Any], metric: str) -> str:
    """Format a summary row as ``mean (low–high)``, marking undefined values.

    A metric undefined in some repeats reads ``0.812 (0.790–0.833); undefined in 2 of 10
    repeats``; undefined in all of them it reads ``undefined (10 of 10 repeats)``. With too few
    defined values for an interval it reads ``0.847 (n/a: 2 hospitals)``.
    """
    n_undefined = int(row["n_undefined"])
    total = int(row["n_defined"]) + n_undefined
    over = str(row["over"])
    mean = _float_or_nan(row["mean"])
    if math.isnan(mean):
        return f"undefined ({n_undefined} of {total} {over})"
    text = format_metric_value(metric, mean)
    low, high = _float_or_nan(row["ci_low"]), _float_or_nan(row["ci_high"])
    if not math.isnan(low) and not math.isnan(high):
        # An en dash after a minus sign is hard to read, so negative bounds are joined by "to".
        separator = " to " if low < 0 else "–"
        text += (
            f" ({format_metric_value(metric, low)}{separator}{format_metric_value(metric, high)})"
        )
    else:
        text += f" (n/a: {count_noun(int(row['n_defined']), over)})"
    if n_undefined:
        text += f"; undefined in {n_undefined} of {total} {over}"
    return text


def format_metric_value(metric: str, value: float) -> str:
    """Format one metric value: percentages with one decimal for rates, three decimals otherwise."""
    if math.isnan(value):
        return "undefined"
    if metric in PERCENT_METRICS:
        return f"{100.0 * value:.1f}%"
    return f"{value:.3f}"


def _write_report_files(
    folder: Path, summaries: Sequence[EvaluationSummary], run_info: dict[str, Any]
) -> None:
    (folder / "tables").mkdir()
    (folder / "figures").mkdir()
    files: dict[str, dict[str, str]] = {}
    for summary in summaries:
        key = _evaluation_key(summary)
        paths = {
            "summary_csv": f"tables/{key}_summary.csv",
            "per_repeat_csv": f"tables/{key}_per_repeat.csv",
            "per_fold_csv": f"tables/{key}_per_fold.csv",
            "confusion_csv": f"tables/{key}_confusion.csv",
            "roc_csv": f"tables/{key}_roc.csv",
            "roc_png": f"figures/{key}_roc.png",
            "confusion_png": f"figures/{key}_confusion.png",
        }
        _write_tables(folder, summary, paths)
        paper_auc = {
            class_name: result.value
            for class_name in summary.reported_classes
            if (result := paper_value_for(summary, class_name, "auc")) is not None
        }
        draw_roc_figure(summary, folder / paths["roc_png"], paper_auc)
        draw_confusion_figure(summary, folder / paths["confusion_png"])
        files[key] = paths

    document = build_metrics_document(summaries, run_info, files=files)
    validate_metrics_document(document)
    (folder / "metrics.json").write_text(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )

    context = _template_context(summaries, run_info, files, document["generated"])
    (folder / "index.html").write_text(
        _render("report.html.j2", context, autoescape=True), encoding="utf-8"
    )
    (folder / "report.md").write_text(
        _render("report.md.j2", context, autoescape=False), encoding="utf-8"
    )


def _write_tables(folder: Path, summary: EvaluationSummary, paths: Mapping[str, str]) -> None:
    provenance: dict[str, str | int] = {
        "model": summary.model,
        "task": summary.task,
        "evaluation": summary.evaluation,
        "data": summary.description["data"],
        "split": summary.description["split"],
        "n_repeats": summary.n_repeats,
    }
    for frame, key in (
        (summary.summary, "summary_csv"),
        (summary.per_repeat, "per_repeat_csv"),
        (summary.per_fold, "per_fold_csv"),
    ):
        table = frame.copy()
        for offset, (column, value) in enumerate(provenance.items()):
            table.insert(offset, column, value)
        table.to_csv(folder / paths[key], index=False)
    summary.confusion.to_csv(folder / paths["confusion_csv"])
    curves = [curve.assign(**{"class": name}) for name, curve in summary.roc.items()]
    roc = pd.concat(curves, ignore_index=True)
    roc[["class", "fpr", "tpr", "threshold"]].to_csv(folder / paths["roc_csv"], index=False)


def _template_context(
    summaries: Sequence[EvaluationSummary],
    run_info: Mapping[str, Any],
    files: Mapping[str, Mapping[str, str]],
    generated: Mapping[str, Any],
) -> dict[str, Any]:
    sections = [_evaluation_view(summary, files[_evaluation_key(summary)]) for summary in summaries]
    headline = [row for section in sections for row in section["headline"]]
    headline_tables = []
    for task in dict.fromkeys(row["task"] for row in headline):
        task_rows = sorted(
            (row for row in headline if row["task"] == task),
            key=lambda row: (row["evaluation_order"], _model_order(row["model"])),
        )
        headline_tables.append({"task": task, "rows": task_rows})
    models = sorted({summary.model for summary in summaries}, key=_model_order)
    decision_rules = sorted(
        {
            (summary.task, describe_decision_rule(summary.class_names, summary.positive_class))
            for summary in summaries
        }
    )
    run_sections = []
    known = {"run_id", "created", "notes"}
    for keys, title in RUN_INFO_SECTIONS:
        present = [key for key in keys if key in run_info]
        text = json.dumps(run_info[present[0]], indent=2, ensure_ascii=False) if present else ""
        run_sections.append({"title": title, "recorded": bool(present), "text": text})
        known.update(keys)
    other_info = {key: value for key, value in run_info.items() if key not in known}
    return {
        "run_id": str(run_info.get("run_id", "not recorded")),
        "created": str(run_info.get("created", "not recorded")),
        "generated": generated,
        "notes": list(run_info.get("notes", [])),
        "headline": headline,
        "headline_tables": headline_tables,
        "models": [
            {"kind": model, "label": MODEL_LABELS.get(model, model), "paper": model == PAPER_MODEL}
            for model in models
        ],
        "sections": sections,
        "decision_rules": decision_rules,
        "model_text": json.dumps(run_info["model"], indent=2, ensure_ascii=False)
        if "model" in run_info
        else None,
        "interval_definition": INTERVAL_DEFINITION,
        "confidence_percent": f"{100 * CONFIDENCE_LEVEL:g}",
        "run_sections": run_sections,
        "other_info_text": json.dumps(other_info, indent=2, ensure_ascii=False)
        if other_info
        else None,
        "paper_citation": PAPER_CITATION,
        "paper_sources": sorted({result.source for result in PAPER_REFERENCE_RESULTS}),
    }


def _evaluation_view(summary: EvaluationSummary, paths: Mapping[str, str]) -> dict[str, Any]:
    key = _evaluation_key(summary)
    classes = list(summary.reported_classes)
    caption = _provenance(summary)
    metric_rows = []
    for metric in RATE_METRICS:
        cells = []
        for class_name in classes:
            row = summary.summary_row(class_name, metric)
            paper = paper_value_for(summary, class_name, metric)
            cells.append(
                {
                    "ours": format_summary_cell(row, metric) if row is not None else "not computed",
                    "undefined": row is not None and int(row["n_undefined"]) > 0,
                    "paper": format_metric_value(metric, paper.value) if paper is not None else "—",
                }
            )
        metric_rows.append({"label": METRIC_LABELS[metric], "cells": cells})

    headline = []
    for class_name in classes:
        row = summary.summary_row(class_name, "auc")
        paper = paper_value_for(summary, class_name, "auc")
        headline.append(
            {
                "task": summary.task,
                "evaluation": summary.evaluation_label,
                "evaluation_order": _evaluation_order(summary.evaluation),
                "model": summary.model,
                "model_label": summary.model_label,
                "class": class_name,
                "ours": format_summary_cell(row, "auc") if row is not None else "not computed",
                "pooled": format_metric_value("auc", summary.pooled_auc.get(class_name, math.nan)),
                "paper": f"{paper.value:.3f}" if paper is not None else "—",
                "data": summary.description["data"],
                "split": summary.description["split"],
                "repeats": summary.n_repeats,
                "anchor": key,
            }
        )

    confusion_rows = [
        {"true": str(true_class), "counts": [int(count) for count in counts]}
        for true_class, counts in zip(
            summary.confusion.index, summary.confusion.to_numpy(), strict=True
        )
    ]
    undefined_notes = [
        f"{METRIC_LABELS[row['metric']]} undefined for {row['class']} in {row['n_undefined']} of "
        f"{row['n_defined'] + row['n_undefined']} {row['over']}"
        for row in summary.summary.to_dict(orient="records")
        if row["n_undefined"] > 0
    ]
    fold_rows: list[dict[str, Any]] = []
    per_fold_count = summary.per_fold.groupby("repeat")["fold"].nunique().max()
    if summary.n_repeats == 1 and per_fold_count <= MAX_FOLDS_SHOWN_IN_PAGE:
        for record in frame_records(summary.per_fold):
            fold_rows.append(
                {
                    "fold_label": record["fold_label"],
                    "class": record["class"],
                    "n_patients": record["n_patients"],
                    "n_positive": record["n_positive"],
                    "values": [
                        format_metric_value(
                            metric, math.nan if record[metric] is None else float(record[metric])
                        )
                        for metric in RATE_METRICS
                    ],
                }
            )
    return {
        "key": key,
        "title": f"{summary.task.capitalize()}: {summary.evaluation_label}, {summary.model_label}",
        "model_label": summary.model_label,
        "paper_model": summary.model == PAPER_MODEL,
        "caption": caption,
        "description": list(summary.description.items()),
        "n_patients": summary.n_patients,
        "n_repeats": summary.n_repeats,
        "n_folds": summary.n_folds,
        "class_counts": ", ".join(
            f"{name} {count}" for name, count in summary.class_counts.items()
        ),
        "decision_rule": summary.decision_rule,
        "interval_over": summary.interval_over,
        "classes": classes,
        "all_classes": list(summary.class_names),
        "metric_rows": metric_rows,
        "headline": headline,
        "confusion_rows": confusion_rows,
        "fold_rows": fold_rows,
        "undefined_notes": undefined_notes,
        "metric_labels": [METRIC_LABELS[metric] for metric in RATE_METRICS],
        "files": paths,
    }


def count_noun(count: int, plural: str) -> str:
    """Return ``"<count> <noun>"`` with the noun singular for one: ``count_noun(1, "folds")``
    is ``"1 fold"``. ``plural`` is a plural ending in ``s``, such as ``"repeats"``."""
    return f"{count} {plural.removesuffix('s') if count == 1 else plural}"


def _provenance(summary: EvaluationSummary) -> str:
    return (
        f"data: {summary.description['data']}; split: {summary.description['split']}; "
        f"{count_noun(summary.n_repeats, 'repeats')}, {count_noun(summary.n_folds, 'folds')}, "
        f"{count_noun(summary.n_patients, 'patients')}"
    )


def _render(template_name: str, context: Mapping[str, Any], *, autoescape: bool) -> str:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("ictcf.evaluation", "templates"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = _escape_markdown_cell
    return environment.get_template(template_name).render(**context)


def _escape_markdown_cell(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return re.sub(r"([<*`\[\]])", r"\\\1", text)


def _check_summaries(summaries: Sequence[EvaluationSummary]) -> list[EvaluationSummary]:
    checked = list(summaries)
    if not checked:
        raise InputError("no evaluation summaries were given; the report needs at least one")
    seen: set[tuple[str, str, str]] = set()
    for summary in checked:
        if not isinstance(summary, EvaluationSummary):
            raise InputError(
                f"summaries must be EvaluationSummary objects from evaluate_predictions, got "
                f"{type(summary).__name__}"
            )
        identity = (summary.model, summary.task, summary.evaluation)
        if identity in seen:
            raise InputError(
                f"the {summary.task} {summary.evaluation} evaluation of the {summary.model} model "
                "is given twice; pass each model, task and evaluation kind once"
            )
        seen.add(identity)
    return checked


def _check_run_info(run_info: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(run_info, Mapping):
        raise InputError(f"run_info must be a mapping, got {type(run_info).__name__}")
    converted: dict[str, Any] = {}
    for key, value in run_info.items():
        if not isinstance(key, str):
            raise InputError(f"run_info has the key {key!r}; keys must be strings")
        converted[key] = _to_json_value(value, f"run_info[{key!r}]")
    notes = converted.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise InputError("run_info['notes'] must be a list of strings")
    return converted


def _to_json_value(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, enum.Enum):
        return _to_json_value(value.value, where)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (PurePath, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(
                    f"{where} has the key {key!r}; keys must be strings to be written to JSON"
                )
            result[key] = _to_json_value(item, f"{where}[{key!r}]")
        return result
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
        return [_to_json_value(item, f"{where}[{index}]") for index, item in enumerate(items)]
    raise InputError(
        f"{where} is a {type(value).__name__}, which cannot be written to JSON; pass text, "
        "numbers, booleans, None, lists or dicts"
    )


def _check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(
            "the report output path exists and is not a folder; choose a folder", path=output_dir
        )
    if output_dir.is_dir():
        entries = {entry.name for entry in output_dir.iterdir()}
        if entries and "metrics.json" not in entries:
            raise ConflictError(
                f"report folder {output_dir} is not empty and contains no earlier report "
                "(metrics.json); choose an empty or new folder so no other file is overwritten"
            )


def _move_into_place(staging: Path, output_dir: Path) -> None:
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    for name in REPORT_ENTRIES:
        target = output_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(staging / name, target)


def _evaluation_key(summary: EvaluationSummary) -> str:
    # The paper's model keeps the plain "<task>_<evaluation>" names of earlier reports.
    name = f"{summary.task}_{summary.evaluation}"
    if summary.model != PAPER_MODEL:
        name += f"_{summary.model}"
    return re.sub(r"[^a-z0-9_]+", "-", name.lower()).strip("-")


def _evaluation_order(evaluation: str) -> int:
    order = ("cv", "loho", "independent")
    return order.index(evaluation) if evaluation in order else len(order)


def _software_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _float_or_nan(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)
