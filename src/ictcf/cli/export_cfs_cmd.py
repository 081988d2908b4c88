"""``ictcf export cfs``."""

from __future__ import annotations

from pathlib import Path

import click

from ictcf.cli.common import CLIContext, database_url_option, pass_cli_context, resolve_database_url
from ictcf.db import open_database
from ictcf.exporting import ExportFormat, ExportLayout, export_cfs


@click.command("cfs")
@click.option(
    "--format",
    "file_format",
    type=click.Choice([member.value for member in ExportFormat]),
    default=None,
    help=(
        "File format. Default: from the suffix of --output (.csv or .parquet); a format that "
        "contradicts a .csv or .parquet suffix is an error."
    ),
)
@click.option(
    "--layout",
    type=click.Choice([member.value for member in ExportLayout]),
    default=ExportLayout.LONG.value,
    show_default=True,
    help="long: one row per CF value; wide: one row per patient, one column cf_<ABBR> per CF.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File to write (.csv or .parquet); an existing file is replaced.",
)
@click.option("--cohort", default=None, metavar="NAME", help="Export only this cohort.")
@database_url_option
@pass_cli_context
def export_cfs_command(
    context: CLIContext,
    file_format: str | None,
    layout: str,
    output: Path,
    cohort: str | None,
    database_url: str | None,
) -> None:
    """Export the clinical features (CFs) of the database to CSV or Parquet.

    The file is written completely or not at all, and replaces an existing file of that name.
    """
    factory = open_database(resolve_database_url(context, database_url), create=False)
    table = export_cfs(factory, output, file_format=file_format, layout=layout, cohort=cohort)
    click.echo(
        f"Wrote {len(table)} rows x {len(table.columns)} columns ({layout} layout) to {output}"
    )


COMMANDS: list[click.Command] = [export_cfs_command]
