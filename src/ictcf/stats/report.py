"""Write the cohort statistics to a folder: CSV and JSON tables, figures and an HTML report.

The files are first written to a staging folder beside the output folder and moved in only when
everything succeeded, so a failed run leaves no half-written report behind.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from ictcf import __version__
from ictcf.errors import DataNotFoundError, InputError
from ictcf.stats.analysis import (
    CensoredPolicy,
    CohortData,
    ComparisonResult,
    load_cohort,
    run_comparisons,
)
from ictcf.stats.figures import (
    plot_form_counts,
    plot_outcome_counts,
    plot_significance_summary,
    plot_slice_counts,
    plot_top_features,
    save_figure,
)
from ictcf.stats.groups import DEFAULT_ALPHA_ADJUSTED, PAPER_COMPARISONS, ComparisonSpec
from ictcf.stats.table_one import TableOneResult, build_table_one

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"

#: Statements of Ning et al. (Nat. Biomed. Eng. 4, 1197–1207, 2020) on both cohorts
#: (1,521 patients), set beside our numbers: (comparison, quantity, paper's value).
PAPER_STATEMENTS: tuple[tuple[str, str, str], ...] = (
    ("covid_vs_control", "mean body temperature (°C), A vs B", "37.9 vs 37.1"),
    ("covid_vs_control", "mean age (years), A vs B", "56.6 vs 51.1"),
    ("covid_vs_control", "significant CFs higher / lower in A", "4 / 14"),
    ("type_ii_vs_type_i", "mean age (years), A vs B", "63.6 vs 53.1"),
    ("type_ii_vs_type_i", "significant CFs higher / lower in A", "24 / 14"),
    ("deceased_vs_cured", "significant CFs higher / lower in A", "16 / 8"),
)
PAPER_COHORT_NOTE = (
    "The paper's numbers come from both iCTCF cohorts together (1,521 patients: 1,170 in "
    "cohort 1 and 351 in cohort 2); this database may hold cohort 1 only, so counts of "
    "significant CFs are expected to differ, mostly downwards, because smaller groups give "
    "larger P values."
)


@dataclass
class StatsReport:
    """Results and files written by ``write_stats_report``.

    Attributes
    ----------
    output_dir : Path
        The report folder.
    results : dict of str to ComparisonResult
        Every comparison, keyed by name.
    table_ones : dict of str to TableOneResult
        Table 1 by ``morbidity_type`` and by ``outcome``.
    files : list of Path
        Every file written, relative to ``output_dir``.
    omitted : dict of str to str
        Figures or tables left out, with the reason.
    """

    output_dir: Path
    results: dict[str, ComparisonResult]
    table_ones: dict[str, TableOneResult]
    files: list[Path] = field(default_factory=list)
    omitted: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def html_path(self) -> Path:
        """Path of the HTML report."""
        return self.output_dir / "report.html"


def count_ct_slices(session: Session) -> pd.DataFrame | None:
    """Count stored CT slices per slice label and morbidity type, or None without imaging tables.

    Returns
    -------
    DataFrame or None
        Columns ``label`` (``NiCT``, ``pCT``, ``nCT`` or ``unlabelled``), ``morbidity_type``
        and ``n_slices``; None when the database has no ``ct_slice`` table or no slices.
    """
    bind = session.get_bind()
    if not inspect(bind).has_table("ct_slice"):
        return None
    rows = session.execute(
        text(
            "SELECT s.label, p.morbidity_type, COUNT(*) FROM ct_slice s "
            "JOIN ct_series c ON s.series_id = c.id JOIN patient p ON c.patient_id = p.id "
            "GROUP BY s.label, p.morbidity_type"
        )
    ).all()
    if not rows:
        return None
    return pd.DataFrame(
        [(label or "unlabelled", morbidity_type, int(n)) for label, morbidity_type, n in rows],
        columns=["label", "morbidity_type", "n_slices"],
    )


#: Note written beside a JSON key whose value is infinite, because JSON has no infinity and
#: the value is written as null. A NaN is written as null without a note: it means undefined or
#: not available, and the row's ``status`` and ``reason`` give the cause.
INFINITE_NOTES = {math.inf: "infinite", -math.inf: "negative infinite"}


def _json_value(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA:
        return None
    return value


def _records(table: pd.DataFrame, index_name: str) -> list[dict[str, Any]]:
    frame = table.reset_index().rename(columns={"index": index_name})
    # Values stay raw here so that _json_ready can note infinities beside their keys.
    return [
        {str(key): value for key, value in row.items()} for row in frame.to_dict(orient="records")
    ]


def _json_ready(payload: Any) -> Any:
    """Return ``payload`` with NaN and infinities as None, numpy scalars as Python ones.

    An infinite value under a mapping key ``k`` also gets a ``k_note`` entry ("infinite" or
    "negative infinite") unless the mapping already has one, which then states the meaning.
    """
    if isinstance(payload, Mapping):
        ready: dict[str, Any] = {}
        for key, value in payload.items():
            ready[str(key)] = _json_ready(value)
            is_float = isinstance(value, float | np.floating)
            note_key = f"{key}_note"
            if is_float and math.isinf(value) and not payload.get(note_key):
                ready[note_key] = INFINITE_NOTES[float(value)]
        return ready
    if isinstance(payload, list | tuple):
        return [_json_ready(item) for item in payload]
    return _json_value(payload)


def _write_json(path: Path, payload: Any) -> None:
    text = json.dumps(_json_ready(payload), indent=2, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n")


def _paper_rows(results: Mapping[str, ComparisonResult]) -> list[dict[str, str]]:
    rows = []
    for name, quantity, paper in PAPER_STATEMENTS:
        result = results.get(name)
        if result is None:
            continue
        ours = "not available"
        if result.omitted_reason is not None:
            ours = f"not available (comparison omitted: {result.omitted_reason})"
        elif quantity.startswith("significant"):
            ours = f"{result.n_higher} / {result.n_lower}"
        else:
            feature = "age" if "age" in quantity else "body_temperature"
            if feature in result.table.index:
                row = result.table.loc[feature]
                if not (math.isnan(row["mean_a"]) or math.isnan(row["mean_b"])):
                    ours = f"{row['mean_a']:.1f} vs {row['mean_b']:.1f}"
        rows.append(
            {
                "comparison": result.spec.title,
                "group_a": result.spec.group_a.label,
                "quantity": quantity,
                "paper": paper,
                "ours": ours,
                "n": f"{result.n_a} vs {result.n_b}",
            }
        )
    return rows


def _figure_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _format_p(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def _format_number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _stage_outputs(
    staging: Path,
    data: CohortData,
    results: dict[str, ComparisonResult],
    table_ones: dict[str, TableOneResult],
    slice_counts: pd.DataFrame | None,
    *,
    figures: bool,
) -> tuple[list[Path], dict[str, str], dict[str, Path]]:
    files: list[Path] = []
    omitted: dict[str, str] = {}
    figure_files: dict[str, Path] = {}
    comparisons_dir = staging / "comparisons"
    comparisons_dir.mkdir()

    for name, result in results.items():
        for suffix, table in (("cfs", result.table), ("diseases", result.diseases)):
            csv_path = comparisons_dir / f"{name}_{suffix}.csv"
            table.to_csv(csv_path, index_label="feature")
            json_path = comparisons_dir / f"{name}_{suffix}.json"
            _write_json(
                json_path,
                {"comparison": result.summary(), "rows": _records(table, "feature")},
            )
            files += [csv_path, json_path]

    for by, result_one in table_ones.items():
        table_path = staging / f"table_one_{by}.csv"
        result_one.table.to_csv(table_path)
        availability_path = staging / f"table_one_{by}_availability.csv"
        result_one.availability.to_csv(availability_path, index_label="variable")
        files += [table_path, availability_path]

    if not figures:
        omitted["figures"] = "figures were turned off (--no-figures)"
        return files, omitted, figure_files

    figures_dir = staging / "figures"
    drawn = {
        "form_counts": plot_form_counts(data.patients),
        "outcome_counts": plot_outcome_counts(data.patients),
    }
    if slice_counts is None:
        omitted["slice_counts"] = (
            "the database holds no CT slices (import them with ictcf import dicom, nifti, jpeg "
            "or labelled-slices); the figure of CT slices per class is omitted"
        )
    else:
        drawn["slice_counts"] = plot_slice_counts(slice_counts)
    tested = {name: result for name, result in results.items() if result.omitted_reason is None}
    drawn["significance_summary"] = plot_significance_summary(tested)
    for name, result in tested.items():
        figure = plot_top_features(result, data.features, data.patients)
        if figure is None:
            omitted[f"top_features_{name}"] = f"no significant row in {name}; no box plots drawn"
        else:
            drawn[f"top_features_{name}"] = figure
    for stem, figure in drawn.items():
        paths = save_figure(figure, figures_dir, stem)
        files += paths
        figure_files[stem] = paths[0]
    return files, omitted, figure_files


def _render_html(
    staging: Path,
    summary: dict[str, Any],
    results: dict[str, ComparisonResult],
    table_ones: dict[str, TableOneResult],
    figure_files: dict[str, Path],
) -> Path:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["p"] = _format_p
    environment.filters["num"] = _format_number
    template = environment.get_template("report.html.j2")
    html = template.render(
        summary=summary,
        results=results,
        table_ones=table_ones,
        figures={stem: _figure_uri(path) for stem, path in figure_files.items()},
        paper_note=PAPER_COHORT_NOTE,
    )
    path = staging / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def _move_into(staging: Path, output_dir: Path) -> None:
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    for entry in staging.iterdir():
        target = output_dir / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entry.rename(target)
    staging.rmdir()


def write_stats_report(
    session: Session,
    output_dir: Path,
    *,
    comparisons: Iterable[ComparisonSpec] = (),
    include_paper: bool = True,
    thresholds: Mapping[str, float] | None = None,
    alpha_adjusted: float = DEFAULT_ALPHA_ADJUSTED,
    censored: CensoredPolicy = "limit",
    cohort: str | None = None,
    figures: bool = True,
) -> StatsReport:
    """Run the comparisons and Table 1 and write every output to ``output_dir``.

    Parameters
    ----------
    session : Session
        Open database session (read only).
    output_dir : Path
        Report folder; created if missing. Files of an earlier report with the same names are
        replaced, other files are kept.
    comparisons : iterable of ComparisonSpec
        User comparisons to run after (or, with ``include_paper=False``, instead of) the paper's.
    include_paper : bool, default True
        Run the paper's three comparisons.
    thresholds : mapping of str to float, optional
        Raw P thresholds by comparison name.
    alpha_adjusted : float, default 1e-3
        Benjamini–Hochberg adjusted P threshold of every comparison.
    censored : {"limit", "half_limit", "exclude"}, default "limit"
        How censored CF values enter the tests.
    cohort : str, optional
        Restrict to one cohort.
    figures : bool, default True
        Draw figures (PNG and SVG).

    Returns
    -------
    StatsReport

    A comparison in which a group has no patients, or no row could be tested, is omitted: its
    tables are still written (every row gives the reason it is not testable), and ``omitted``, the
    summary and the HTML report state the reason.

    Raises
    ------
    InputError
        If ``output_dir`` is a file, no comparison is requested, a comparison is invalid, or
        every comparison is omitted (nothing is written then).
    DataNotFoundError
        If the database contains no patients.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"output path {output_dir} is a file; give a folder for --output.")
    specs = [*(PAPER_COMPARISONS if include_paper else ()), *comparisons]
    if not specs:
        raise InputError("no comparison requested; keep the paper's comparisons or add --compare.")

    data = load_cohort(session, cohort=cohort, censored=censored)
    results = run_comparisons(data, specs, thresholds=thresholds, alpha_adjusted=alpha_adjusted)
    omitted_comparisons = {
        f"comparison_{name}": f"comparison omitted: {result.omitted_reason}"
        for name, result in results.items()
        if result.omitted_reason is not None
    }
    if len(omitted_comparisons) == len(results):
        reasons = "; ".join(f"{name}: {result.omitted_reason}" for name, result in results.items())
        raise InputError(
            f"every requested comparison is omitted, so no report was written ({reasons}); "
            "change the groups so that each has patients with recorded values, or import "
            "more patients."
        )
    table_ones: dict[str, TableOneResult] = {}
    omitted_tables: dict[str, str] = {}
    for by in ("morbidity_type", "outcome"):
        try:
            table_ones[by] = build_table_one(data, by=by)
        except DataNotFoundError as err:
            logger.warning("Table 1 by %s omitted: %s", by, err)
            omitted_tables[f"table_one_{by}"] = str(err)
    slice_counts = count_ct_slices(session)

    patients = data.patients
    summary: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "ictcf_version": __version__,
        "cohort_filter": cohort,
        "n_patients": len(patients),
        "patients_per_cohort": {
            str(k): int(v) for k, v in patients["cohort"].value_counts().items()
        },
        "patients_per_morbidity_type": {
            str(k): int(v) for k, v in patients["morbidity_type"].value_counts().items()
        },
        "n_features": int(data.features.values.shape[1]),
        "methods": {
            "normality": (
                "Shapiro-Wilk per group (D'Agostino-Pearson above 5,000 values); a CF is normal "
                "only if every group is normal at P >= 0.05; groups with fewer than 3 values, "
                "fewer than 3 distinct values or (nearly) constant values count as not normal"
            ),
            "normal_cfs": "two-sided Welch's t-test (unequal variances)",
            "other_cfs": "two-sided Mann-Whitney U test",
            "underlying_diseases": (
                "2x2 chi-squared test with Yates' correction; Fisher's exact test when an "
                "expected count is below 5"
            ),
            "correction": (
                "Benjamini-Hochberg over the testable rows of each comparison (CFs, age and "
                "body temperature form one family; underlying diseases another)"
            ),
            "censored_values": {
                "limit": "entered at the reported limit",
                "half_limit": "'<' values entered at half the limit, '>' values at the limit",
                "exclude": "left out",
            }[censored],
            "excluded_patients": "patients of unknown morbidity type (created from images only)",
        },
        "comparisons": {name: result.summary() for name, result in results.items()},
        "paper_statements": _paper_rows(results),
        "paper_note": PAPER_COHORT_NOTE,
    }

    parent = output_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=parent))
    # mkdtemp creates the folder with mode 0700; give the report folder the usual mode.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        files, omitted, figure_files = _stage_outputs(
            staging, data, results, table_ones, slice_counts, figures=figures
        )
        summary["omitted"] = omitted_comparisons | omitted_tables | omitted
        summary["files"] = [
            *sorted(str(path.relative_to(staging)) for path in files),
            "report.html",
            "summary.json",
        ]
        files.append(_render_html(staging, summary, results, table_ones, figure_files))
        summary_path = staging / "summary.json"
        _write_json(summary_path, summary)
        files.append(summary_path)
        relative = [path.relative_to(staging) for path in files]
        _move_into(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("statistics report written to %s (%d files)", output_dir, len(relative))
    return StatsReport(
        output_dir=output_dir,
        results=results,
        table_ones=table_ones,
        files=relative,
        omitted=summary["omitted"],
        summary=summary,
    )
