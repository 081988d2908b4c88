"""ROC and confusion-matrix figures of an evaluation summary, drawn with matplotlib's Agg backend.

The figures are built with :class:`matplotlib.figure.Figure` directly instead of ``pyplot``, so
drawing them changes no global matplotlib state and needs no display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ictcf.evaluation.summary import (
    CONFIDENCE_LEVEL,
    MIN_VALUES_FOR_PERCENTILE_INTERVAL,
    EvaluationSummary,
)

#: Resolution of the PNG files, in dots per inch; 120 keeps labels sharp at about 100 KB a figure.
FIGURE_DPI = 120
#: Width and height of one ROC panel, in inches.
ROC_PANEL_SIZE_INCHES = 4.2
#: False-positive rates at which per-repeat ROC curves are interpolated for the spread band.
ROC_GRID = np.linspace(0.0, 1.0, 201)


def draw_roc_figure(summary: EvaluationSummary, path: Path, paper_auc: dict[str, float]) -> None:
    """Draw one ROC panel per reported class and save it as a PNG file.

    Each panel shows the ROC curve of the pooled predictions of all repeats. The legend gives
    the pooled AUC and the mean AUC over repeats (or folds). With several repeats, a band shows
    the spread of the per-repeat curves. The published AUC of Ning et al. 2020 is
    listed in the legend when ``paper_auc`` has it. An undefined curve is drawn as an empty panel that says so.

    Parameters
    ----------
    summary : EvaluationSummary
        The evaluation to draw.
    path : Path
        Output PNG file.
    paper_auc : dict of str to float
        The paper's AUC per class, as reported by the paper; classes without one are left out.
    """
    classes = summary.reported_classes
    figure = Figure(figsize=(ROC_PANEL_SIZE_INCHES * len(classes), ROC_PANEL_SIZE_INCHES + 0.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(classes), squeeze=False)[0]
    for ax, class_name in zip(axes, classes, strict=True):
        _draw_roc_panel(ax, summary, class_name, paper_auc.get(class_name))
    figure.suptitle(
        f"{summary.task}, {summary.evaluation_label}, {summary.model}: ROC curves (one-vs-rest)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=FIGURE_DPI)


def draw_confusion_figure(summary: EvaluationSummary, path: Path) -> None:
    """Draw the confusion matrix as counts and as row-normalised fractions and save it as PNG.

    Counts are summed over repeats, so with R repeats every patient is counted R times. A row
    whose true class is absent has no fractions and shows a dash.
    """
    counts = summary.confusion.to_numpy(dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(totals > 0, counts / totals, np.nan)
    size = 1.0 + 1.1 * len(summary.class_names)
    figure = Figure(figsize=(2 * size + 1.5, size + 0.8))
    FigureCanvasAgg(figure)
    count_axes, fraction_axes = figure.subplots(1, 2)
    repeats = "repeat" if summary.n_repeats == 1 else f"{summary.n_repeats} repeats"
    _draw_matrix(
        count_axes,
        counts,
        summary.class_names,
        f"counts (summed over {repeats})",
        as_fraction=False,
    )
    _draw_matrix(
        fraction_axes,
        fractions,
        summary.class_names,
        "row-normalised (fraction of true class)",
        as_fraction=True,
    )
    figure.suptitle(
        f"{summary.task}, {summary.evaluation_label}, {summary.model}: confusion matrix"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=FIGURE_DPI)


def _draw_roc_panel(
    ax: Axes, summary: EvaluationSummary, class_name: str, paper_auc: float | None
) -> None:
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.6", linewidth=1, label="chance")
    curve = summary.roc.get(class_name)
    if curve is None or curve.empty:
        ax.text(
            0.5,
            0.5,
            "AUC undefined:\nthe true labels hold one class only",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    else:
        _draw_repeat_band(ax, summary, class_name)
        label = f"pooled over {_repeat_words(summary.n_repeats)}: AUC {summary.pooled_auc[class_name]:.3f}"
        ax.plot(curve["fpr"], curve["tpr"], color="C0", linewidth=2, label=label)
    row = summary.summary_row(class_name, "auc")
    if row is not None:
        ax.plot([], [], " ", label=_mean_auc_label(row))
    if paper_auc is not None:
        ax.plot([], [], " ", label=f"paper (as reported): AUC {paper_auc:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − specificity (false-positive rate)")
    ax.set_ylabel("sensitivity (true-positive rate)")
    ax.set_title(f"{class_name} vs rest" if summary.positive_class is None else class_name)
    ax.legend(loc="lower right", fontsize="x-small")


def _draw_repeat_band(ax: Axes, summary: EvaluationSummary, class_name: str) -> None:
    per_repeat = summary.roc_per_repeat.get(class_name)
    if per_repeat is None or summary.n_repeats < 2:
        return
    curves = []
    for _, curve in per_repeat.groupby("repeat"):
        if len(curve) >= 2:
            curves.append(np.interp(ROC_GRID, curve["fpr"].to_numpy(), curve["tpr"].to_numpy()))
    if len(curves) < 2:
        return
    stacked = np.vstack(curves)
    if len(curves) >= MIN_VALUES_FOR_PERCENTILE_INTERVAL:
        tail = 100.0 * (1.0 - CONFIDENCE_LEVEL) / 2.0
        low, high = np.percentile(stacked, [tail, 100.0 - tail], axis=0)
        band = f"per-repeat curves, {tail:g}th–{100 - tail:g}th percentile ({len(curves)} repeats)"
    else:
        low, high = stacked.min(axis=0), stacked.max(axis=0)
        band = f"per-repeat curves, min–max ({len(curves)} repeats)"
    ax.fill_between(ROC_GRID, low, high, color="C0", alpha=0.2, linewidth=0, label=band)


def _mean_auc_label(row: Mapping[str, Any]) -> str:
    over = str(row["over"])
    n_undefined = int(row["n_undefined"])
    total = int(row["n_defined"]) + n_undefined
    mean = float(row["mean"])
    if math.isnan(mean):
        return f"AUC undefined in {total} of {total} {over}"
    label = f"mean over {over}: {mean:.3f}"
    low, high = float(row["ci_low"]), float(row["ci_high"])
    if not math.isnan(low):
        label += f" ({low:.3f}–{high:.3f})"
    else:
        n_defined = int(row["n_defined"])
        unit = over if n_defined != 1 else over.removesuffix("s")
        label += f" (no interval from {n_defined} {unit})"
    if n_undefined:
        label += f", undefined in {n_undefined} of {total}"
    return label


def _draw_matrix(
    ax: Axes, values: np.ndarray, names: tuple[str, ...], title: str, *, as_fraction: bool
) -> None:
    filled = np.nan_to_num(values, nan=0.0)
    upper = 1.0 if as_fraction else max(float(filled.max()), 1.0)
    ax.imshow(filled, cmap="Blues", vmin=0.0, vmax=upper)
    for row in range(len(names)):
        for column in range(len(names)):
            value = values[row, column]
            if math.isnan(value):
                text = "–"
            elif as_fraction:
                text = f"{value:.2f}"
            else:
                text = f"{int(value)}"
            dark = not math.isnan(value) and value / upper > 0.6
            ax.text(column, row, text, ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(len(names)), labels=names)
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize="medium")


def _repeat_words(n_repeats: int) -> str:
    return "1 repeat" if n_repeats == 1 else f"{n_repeats} repeats"
