"""Figures of the cohort statistics (matplotlib, no display needed), after Figure 1 of
Ning et al., Nat. Biomed. Eng. 4, 1197–1207 (2020).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot, so nothing depends
on the interactive backend; ``save_figure`` writes it as PNG and SVG.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ictcf.stats.analysis import ComparisonResult, FeatureMatrix

logger = logging.getLogger(__name__)

#: Resolution of PNG files, in dots per inch.
PNG_DPI = 150
#: Colours of CFs higher (red) and lower (blue) in group A.
HIGHER_COLOUR = "#c0392b"
LOWER_COLOUR = "#2e6fa7"
#: Smallest adjusted P drawn; smaller values (down to 0 in floating point) are drawn at this
#: value so that −log10 stays finite.
MIN_DRAWN_P = 1e-300
#: Number of CFs shown in the box plots of one comparison.
TOP_FEATURES = 6

FORM_ORDER = (
    "control",
    "control_cap",
    "mild",
    "regular",
    "severe",
    "critically_ill",
    "suspected",
    "suspected_confirmed_later",
    "unknown",
)


def save_figure(figure: Figure, folder: Path, stem: str) -> list[Path]:
    """Write ``figure`` to ``folder/stem.png`` and ``folder/stem.svg``; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.svg"]
    figure.savefig(paths[0], dpi=PNG_DPI, bbox_inches="tight")
    figure.savefig(paths[1], bbox_inches="tight")
    return paths


def _label_bars(axis: object, bars: object) -> None:
    axis.bar_label(bars, fontsize=7, padding=1)  # type: ignore[attr-defined]


def plot_form_counts(patients: pd.DataFrame) -> Figure:
    """Draw patients per morbidity form, one bar group per cohort (Figure 1a)."""
    counts = patients.groupby(["morbidity_form", "cohort"]).size().unstack(fill_value=0)
    order = [form for form in FORM_ORDER if form in counts.index]
    order += sorted(set(counts.index) - set(order))
    counts = counts.reindex(order)
    figure = Figure(figsize=(7.5, 3.8))
    axis = figure.add_subplot()
    width = 0.8 / max(len(counts.columns), 1)
    positions = np.arange(len(counts.index))
    for i, cohort in enumerate(counts.columns):
        bars = axis.bar(positions + i * width, counts[cohort], width, label=str(cohort))
        _label_bars(axis, bars)
    axis.set_xticks(positions + width * (len(counts.columns) - 1) / 2)
    axis.set_xticklabels(
        [str(form).replace("_", " ") for form in counts.index], rotation=30, ha="right"
    )
    axis.set_ylabel("patients")
    axis.set_title("Patients per morbidity form")
    axis.legend(title="cohort", fontsize=8)
    return figure


def plot_outcome_counts(patients: pd.DataFrame) -> Figure:
    """Draw patients per outcome within each morbidity type (Figure 1b)."""
    counts = patients.groupby(["morbidity_type", "outcome"]).size().unstack(fill_value=0)
    figure = Figure(figsize=(6.5, 3.8))
    axis = figure.add_subplot()
    bottom = np.zeros(len(counts.index))
    for outcome in counts.columns:
        bars = axis.bar(
            [str(t).replace("_", " ") for t in counts.index],
            counts[outcome],
            bottom=bottom,
            label=str(outcome),
        )
        _label_bars(axis, bars)
        bottom += counts[outcome].to_numpy()
    axis.set_ylabel("patients")
    axis.set_title("Outcome per morbidity type")
    axis.legend(title="outcome", fontsize=8)
    return figure


def plot_slice_counts(slice_counts: pd.DataFrame) -> Figure:
    """Draw CT slices per slice class and morbidity type (Figure 1c).

    ``slice_counts`` has columns ``label``, ``morbidity_type`` and ``n_slices``.
    """
    table = slice_counts.pivot_table(
        index="label", columns="morbidity_type", values="n_slices", aggfunc="sum", fill_value=0
    )
    figure = Figure(figsize=(6.5, 3.8))
    axis = figure.add_subplot()
    bottom = np.zeros(len(table.index))
    for morbidity_type in table.columns:
        bars = axis.bar(
            [str(label) for label in table.index],
            table[morbidity_type],
            bottom=bottom,
            label=str(morbidity_type).replace("_", " "),
        )
        _label_bars(axis, bars)
        bottom += table[morbidity_type].to_numpy()
    axis.set_ylabel("CT slices")
    axis.set_title("CT slices per class")
    axis.legend(title="morbidity type", fontsize=8)
    return figure


def plot_significance_summary(results: Mapping[str, ComparisonResult]) -> Figure:
    """Draw the significant CFs of each comparison as signed −log10 adjusted P (Figure 1d).

    Bars to the right (red) are CFs higher in group A, bars to the left (blue) lower.
    A comparison without significant CFs gets an empty panel with a note.
    """
    n_panels = max(len(results), 1)
    heights = [max(len(result.significant), 1) for result in results.values()] or [1]
    figure = Figure(figsize=(7.5, 1.2 + 0.22 * sum(heights) + 0.6 * n_panels))
    axes = figure.subplots(n_panels, 1, squeeze=False, height_ratios=heights)[:, 0]
    for axis, result in zip(axes, results.values(), strict=False):
        rows = result.significant
        title = (
            f"{result.spec.title}: {result.n_higher} CFs higher, {result.n_lower} lower "
            f"in {result.spec.group_a.label}"
        )
        axis.set_title(title, fontsize=9)
        if rows.empty:
            axis.text(
                0.5, 0.5, "no significant CF", ha="center", va="center", transform=axis.transAxes
            )
            axis.set_yticks([])
            axis.set_xticks([])
            continue
        rows = rows.iloc[::-1]
        scores = -np.log10(np.maximum(rows["p_adjusted"].to_numpy(float), MIN_DRAWN_P))
        signed = np.where(rows["direction"] == "higher", scores, -scores)
        colours = [HIGHER_COLOUR if s > 0 else LOWER_COLOUR for s in signed]
        axis.barh([str(f) for f in rows.index], signed, color=colours)
        axis.axvline(0, color="black", linewidth=0.6)
        axis.tick_params(axis="y", labelsize=7)
        limit = float(np.max(np.abs(signed))) * 1.05
        axis.set_xlim(-limit, limit)
    axes[-1].set_xlabel("−log10 adjusted P (right: higher in group A, left: lower)")
    figure.tight_layout()
    return figure


def plot_top_features(
    result: ComparisonResult,
    features: FeatureMatrix,
    patients: pd.DataFrame,
    *,
    n: int = TOP_FEATURES,
) -> Figure | None:
    """Draw box plots of the ``n`` most significant CFs of one comparison, or None if none are.

    Age and body temperature come from ``patients``; CFs from ``features``. Censored values are
    drawn as they entered the test.
    """
    rows = result.significant.head(n)
    if rows.empty:
        return None
    index = pd.Index(patients["patient_id"], name="patient_id")
    mask_a = result.spec.group_a.select(patients).to_numpy()
    mask_b = result.spec.group_b.select(patients).to_numpy()
    columns = min(len(rows), 3)
    lines = math.ceil(len(rows) / columns)
    figure = Figure(figsize=(3.0 * columns, 3.0 * lines))
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    for axis, (feature, row) in zip(axes, rows.iterrows(), strict=False):
        if feature in patients.columns:
            values = pd.to_numeric(patients[feature], errors="coerce").to_numpy(float)
        else:
            values = features.values[feature].reindex(index).to_numpy(float)
        group_values = [values[mask_a], values[mask_b]]
        group_values = [v[~np.isnan(v)] for v in group_values]
        axis.boxplot(group_values, showfliers=False)
        rng = np.random.default_rng(0)
        for position, v in enumerate(group_values, start=1):
            jitter = rng.uniform(-0.12, 0.12, v.size)
            axis.scatter(position + jitter, v, s=3, alpha=0.35, color="black")
        axis.set_xticks(
            [1, 2],
            [
                f"{result.spec.group_a.label}\n(n={group_values[0].size})",
                f"{result.spec.group_b.label}\n(n={group_values[1].size})",
            ],
            fontsize=7,
        )
        unit = f" ({row['unit']})" if row["unit"] else ""
        axis.set_title(
            f"{feature}{unit}\nadj. P = {row['p_adjusted']:.1e}, {row['test']}", fontsize=8
        )
    for axis in axes[len(rows) :]:
        axis.set_visible(False)
    figure.suptitle(result.spec.title, fontsize=9)
    figure.tight_layout()
    return figure
