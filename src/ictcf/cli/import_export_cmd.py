"""``ictcf import ictcf-export``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from ictcf.cli.common import CLIContext, database_url_option, pass_cli_context, resolve_database_url
from ictcf.db import open_database
from ictcf.errors import IctcfError
from ictcf.ingest.importer import ImportReport, import_ictcf_export, plural

#: Folder under the ictcf home where import reports go when --report is not given.
REPORTS_FOLDER = "import-reports"


def default_report_path(context: CLIContext, report: ImportReport) -> Path:
    """Return ``<ictcf home>/import-reports/<UTC time>-<first 12 hex digits of SHA-256>.json``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return context.settings.home / REPORTS_FOLDER / f"{stamp}-{report.sha256[:12]}.json"


def write_report(report: ImportReport, path: Path) -> None:
    """Write the import report as indented JSON.

    Raises
    ------
    IctcfError
        If the file cannot be written. The message states whether the import itself is stored.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    except OSError as err:
        stored = (
            f"the import is stored (import run {report.import_run_id}, report kept in the database)"
            if report.changed
            else "nothing was changed in the database"
        )
        raise IctcfError(
            f"could not write the import report {path}: {err.strerror or err}; {stored}. "
            "Give a writable path with --report."
        ) from err


@click.command("ictcf-export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--cohort",
    default=None,
    metavar="NAME",
    help=(
        "Cohort of every imported patient. Default: the paper's split by patient number, "
        "cohort1 for Patient 1-1170 and cohort2 for Patient 1171-1521."
    ),
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="List malformed lines in the report and import the rest, instead of stopping.",
)
@database_url_option
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the import report (JSON) here. Default: import-reports/ in the ictcf home folder.",
)
@pass_cli_context
def import_ictcf_export_command(
    context: CLIContext,
    file: Path,
    cohort: str | None,
    skip_invalid: bool,
    database_url: str | None,
    report_path: Path | None,
) -> None:
    """Import the iCTCF patient export FILE into the database, in one transaction.

    Importing the same file again changes nothing. A patient already stored with different
    content stops the import with an error and leaves the database unchanged.
    """
    factory = open_database(resolve_database_url(context, database_url))
    report = import_ictcf_export(
        factory, file, cohort=cohort, skip_invalid=skip_invalid, progress=context.progress
    )
    report_path = report_path or default_report_path(context, report)
    write_report(report, report_path)

    skipped = plural(len(report.skipped), "line")
    if report.changed:
        click.echo(
            f"Imported {file.name}: {plural(report.patients_added, 'patient')} added, "
            f"{report.patients_unchanged} unchanged, {skipped} skipped; "
            f"{plural(report.measurements_added, 'CF value')} in {report.elapsed_s:.1f} s "
            f"(import run {report.import_run_id})."
        )
    elif report.patients_unchanged == 1:
        click.echo(
            f"Nothing changed: the one patient of {file.name} is already stored "
            f"({skipped} skipped)."
        )
    elif report.patients_unchanged:
        click.echo(
            f"Nothing changed: all {report.patients_unchanged} patients of {file.name} are "
            f"already stored ({skipped} skipped)."
        )
    else:
        click.echo(
            f"Nothing imported: {file.name} has no valid patient line "
            f"({skipped} skipped; see the report)."
        )
    if report.warnings:
        click.echo(f"{plural(len(report.warnings), 'warning')}; see the report.")
    click.echo(f"Report: {report_path}")


COMMANDS: list[click.Command] = [import_ictcf_export_command]
