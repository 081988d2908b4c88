"""``ictcf stats``: cohort statistics (group comparisons of CFs, Table 1, figures, report)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from ictcf.cli.common import (
    CLIContext,
    database_url_option,
    output_option,
    pass_cli_context,
    resolve_database_url,
)
from ictcf.db.session import open_database, session_scope
from ictcf.errors import InputError
from ictcf.stats.groups import DEFAULT_ALPHA_ADJUSTED, DEFAULT_USER_ALPHA, parse_comparison


def _parse_probability(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise InputError(f"{what} {text!r} is not a number; write for example 1e-5.") from err
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise InputError(f"{what} {text!r} must be a probability in (0, 1].")
    return value


def _parse_thresholds(items: tuple[str, ...]) -> dict[str, float]:
    thresholds = {}
    for item in items:
        name, sign, value = item.partition("=")
        if not sign or not name.strip():
            raise InputError(
                f"--threshold {item!r} must be NAME=P, for example type_ii_vs_type_i=1e-9."
            )
        thresholds[name.strip()] = _parse_probability(value.strip(), f"--threshold {name.strip()}")
    return thresholds


@click.command("stats")
@database_url_option
@output_option
@click.option(
    "--compare",
    "compare_specs",
    multiple=True,
    metavar="'[NAME:] A vs B'",
    help=(
        "Add a comparison of two patient groups; repeatable. Each group is FIELD=V1,V2 "
        "conditions joined by '&' (numeric fields also take <, <=, >, >=), for example "
        "'older: age>=60 vs age<60' or 'sex=male vs sex=female'. Default raw P threshold "
        f"{DEFAULT_USER_ALPHA:g}."
    ),
)
@click.option(
    "--threshold",
    "threshold_items",
    multiple=True,
    metavar="NAME=P",
    help=(
        "Raw P threshold of one comparison; repeatable. Defaults: covid_vs_control=1e-5, "
        "type_ii_vs_type_i=1e-9, deceased_vs_cured=1e-5."
    ),
)
@click.option(
    "--adjusted-threshold",
    default=str(DEFAULT_ALPHA_ADJUSTED),
    show_default=True,
    metavar="P",
    help="Benjamini-Hochberg adjusted P threshold of every comparison.",
)
@click.option(
    "--censored",
    type=click.Choice(["limit", "half-limit", "exclude"]),
    default="limit",
    show_default=True,
    help=(
        "How censored CF values such as <0.13 enter the tests: at the reported limit, '<' "
        "values at half the limit, or left out."
    ),
)
@click.option("--cohort", default=None, metavar="NAME", help="Use only this cohort's patients.")
@click.option(
    "--no-paper", is_flag=True, help="Skip the paper's three comparisons (needs --compare)."
)
@click.option("--no-figures", is_flag=True, help="Write tables and the report without figures.")
@pass_cli_context
def stats(
    context: CLIContext,
    database_url: str | None,
    output: Path | None,
    compare_specs: tuple[str, ...],
    threshold_items: tuple[str, ...],
    adjusted_threshold: str,
    censored: str,
    cohort: str | None,
    no_paper: bool,
    no_figures: bool,
) -> None:
    """Compare clinical features between patient groups and write Table 1 and figures.

    Runs the comparisons of Ning et al. 2020 (COVID-19 vs control, type II vs type I, deceased
    vs cured)
    and any --compare, then writes CSV and JSON tables, PNG and SVG figures and report.html
    to --output.

    A comparison with fewer than 3 patients in a group, or with no testable row, is omitted
    with a warning. When every comparison is omitted, the command writes nothing and exits
    with an error.
    """
    from ictcf.stats.report import write_stats_report

    if output is None:
        raise click.UsageError("--output is required: the folder to write the report to.")
    alpha_adjusted = _parse_probability(adjusted_threshold, "--adjusted-threshold")
    thresholds = _parse_thresholds(threshold_items)
    specs = [parse_comparison(text) for text in compare_specs]

    factory = open_database(resolve_database_url(context, database_url), create=False)
    with session_scope(factory) as session:
        report = write_stats_report(
            session,
            output,
            comparisons=specs,
            include_paper=not no_paper,
            thresholds=thresholds,
            alpha_adjusted=alpha_adjusted,
            censored="half_limit" if censored == "half-limit" else censored,  # type: ignore[arg-type]
            cohort=cohort,
            figures=not no_figures,
        )

    summary = report.summary
    click.echo(f"{summary['n_patients']} patients, {summary['n_features']} CFs.")
    for result in report.results.values():
        spec = result.spec
        if result.omitted_reason is not None:
            click.secho(
                f"warning: comparison {spec.name} omitted: {result.omitted_reason}",
                err=True,
                fg="yellow",
            )
            continue
        click.echo(
            f"{spec.name}: {result.n_a} {spec.group_a.label} vs {result.n_b} {spec.group_b.label}, "
            f"{result.n_tests} tests ({result.n_not_testable} not testable), "
            f"P < {result.alpha:g} and adjusted P < {result.alpha_adjusted:g}: "
            f"{result.n_higher} CFs higher and {result.n_lower} lower in {spec.group_a.label}"
        )
    for name, reason in report.omitted.items():
        if not name.startswith("comparison_"):
            click.echo(f"omitted {name}: {reason}")
    click.echo(f"Report: {report.html_path}")
