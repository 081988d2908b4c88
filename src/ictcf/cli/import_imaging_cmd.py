"""``ictcf import dicom|jpeg|nifti|labelled-slices`` and ``ictcf import prune-store``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ictcf.cli.common import CLIContext, database_url_option, pass_cli_context, resolve_database_url
from ictcf.db.session import open_database
from ictcf.imaging.ingest_report import CTImportReport

PATIENT_HELP = (
    "Patient the images belong to: iCTCF number (17 or 'Patient 17'), internal key (id:5), "
    "or with --create-patient the pseudonymous key of a new image-only patient."
)


def _store_option(function: Any) -> Any:
    return click.option(
        "--store",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=(
            "Slice store folder. Default: 'store' beside the SQLite database file, or "
            "$ICTCF_HOME/store for PostgreSQL."
        ),
    )(function)


def _report_option(function: Any) -> Any:
    return click.option(
        "--report",
        "report_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the import and de-identification report as JSON to this file.",
    )(function)


def _lung_option(function: Any) -> Any:
    return click.option(
        "--lung-extraction/--no-lung-extraction",
        default=True,
        show_default=True,
        help="Compute lung masks, 200x200 lung crops and lung-area QC for every slice.",
    )(function)


def _path_argument(function: Any) -> Any:
    return click.argument("path", type=click.Path(exists=True, path_type=Path), metavar="PATH")(
        function
    )


def _finish(report: CTImportReport, report_path: Path | None) -> None:
    for line in report.summary_lines():
        click.echo(line)
    click.echo(
        f"{report.n_series_imported} series and {report.n_slices_stored} slices stored in "
        f"{report.store_root} ({report.elapsed_s:.1f} s)."
    )
    if report_path is not None:
        report.write_json(report_path)
        click.echo(f"Report written to {report_path}.")


def _single_patient_command(
    name: str, short_help: str, help_text: str, importer_name: str
) -> click.Command:
    @click.command(name, short_help=short_help, help=help_text)
    @_path_argument
    @click.option("--patient", "patient_key", required=True, metavar="KEY", help=PATIENT_HELP)
    @click.option(
        "--create-patient",
        is_flag=True,
        help="Create an image-only patient when KEY matches none (KEY must not be a number).",
    )
    @_store_option
    @_report_option
    @_lung_option
    @database_url_option
    @pass_cli_context
    def command(
        context: CLIContext,
        path: Path,
        patient_key: str,
        create_patient: bool,
        store: Path | None,
        report_path: Path | None,
        lung_extraction: bool,
        database_url: str | None,
        **extra: Any,
    ) -> None:
        from ictcf.imaging import ingest_ct

        importer: Callable[..., CTImportReport] = getattr(ingest_ct, importer_name)
        factory = open_database(resolve_database_url(context, database_url))
        report = importer(
            factory,
            path,
            patient=patient_key,
            store=store,
            create_patient=create_patient,
            extract_lungs=lung_extraction,
            progress=context.progress,
            **extra,
        )
        _finish(report, report_path)

    return command


import_dicom_command = _single_patient_command(
    "dicom",
    "Import DICOM CT series of one patient (de-identified on import).",
    """Import the CT series in PATH (a folder, a zip archive or one file) for one patient.

    Files are grouped into series and ordered along the slice normal. Localizers, non-axial
    and non-image files are excluded and reported. Every header is de-identified with the
    DICOM PS3.15 Basic Profile (with --keep-dates, dates are kept but shifted per patient).
    Slices are converted to Hounsfield units and stored with lung masks and lung- and
    mediastinal-window renderings. Importing the same files again stores nothing.

    An upload whose series have different PatientID or PatientName is rejected, unless
    --allow-mixed-patients says that they are one person.
    """,
    "import_dicom",
)
import_dicom_command = click.option(
    "--keep-dates",
    is_flag=True,
    help=(
        "Keep dates in de-identified headers, shifted by one offset per patient "
        "(default: remove them as the DICOM Basic Profile prescribes)."
    ),
)(import_dicom_command)
import_dicom_command = click.option(
    "--allow-mixed-patients",
    is_flag=True,
    help=(
        "Import an upload whose series have different PatientID or PatientName, all for "
        "--patient KEY, and add a warning to the report (default: reject the upload)."
    ),
)(import_dicom_command)

import_jpeg_command = _single_patient_command(
    "jpeg",
    "Import a series of 8-bit JPEG/PNG slices of one patient.",
    """Import the JPEG or PNG slices in PATH (a folder or zip) as one series of one patient.

    Slices are ordered by the numbers in their file names (IMG-0001-00088.jpg) and converted
    to one grey channel. JPEG pixels cannot be checked for burned-in text, so the series is
    flagged for review.
    """,
    "import_jpeg_series",
)

import_nifti_command = _single_patient_command(
    "nifti",
    "Import NIfTI CT volumes in Hounsfield units of one patient.",
    """Import the NIfTI volumes in PATH (.nii or .nii.gz, a file, folder or zip) for one patient.

    Each volume becomes one series. A volume is not in Hounsfield units when its values are
    scaled to 0-1 or 0-255, or when no voxel lies below -200 HU (lung masks). Such volumes are
    excluded with the reason and the others imported. A single such file is rejected.
    """,
    "import_nifti",
)


@click.command("labelled-slices", short_help="Import labelled slices (NiCT/, pCT/, nCT/ folders).")
@_path_argument
@click.option(
    "--patient",
    "patient_key",
    default=None,
    metavar="KEY",
    help="Patient of slices that lie directly in the label folders. " + PATIENT_HELP,
)
@click.option(
    "--create-patients",
    is_flag=True,
    help="Create image-only patients for folder names that match no patient.",
)
@click.option(
    "--label-source",
    default="hust19-download",
    show_default=True,
    help="Where the labels come from, stored with every slice.",
)
@_store_option
@_report_option
@_lung_option
@database_url_option
@pass_cli_context
def import_labelled_slices_command(
    context: CLIContext,
    path: Path,
    patient_key: str | None,
    create_patients: bool,
    label_source: str,
    store: Path | None,
    report_path: Path | None,
    lung_extraction: bool,
    database_url: str | None,
) -> None:
    """Import labelled slices in the HUST-19 download layout from PATH (folder or zip).

    PATH contains the folders NiCT/, pCT/ and nCT/ (non-informative, positive and negative
    CT). Each contains slice files, or per-patient subfolders named by the patient key
    ('Patient 17', '17', 'id:5'). The labels are stored with each slice.
    """
    from ictcf.imaging.ingest_ct import import_labelled_slices

    factory = open_database(resolve_database_url(context, database_url))
    report = import_labelled_slices(
        factory,
        path,
        patient=patient_key,
        store=store,
        create_patients=create_patients,
        extract_lungs=lung_extraction,
        label_source=label_source,
        progress=context.progress,
    )
    _finish(report, report_path)


@click.command("prune-store", short_help="Delete slice store files that no database row uses.")
@_store_option
@click.option(
    "--min-age",
    "min_age_s",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Only delete files older than this many seconds (protects imports still running).",
)
@click.option("--dry-run", is_flag=True, help="Count the unreferenced files; delete nothing.")
@database_url_option
@pass_cli_context
def prune_store_command(
    context: CLIContext,
    store: Path | None,
    min_age_s: float,
    dry_run: bool,
    database_url: str | None,
) -> None:
    """Delete store blobs left by failed or killed imports (no slice row references them)."""
    from ictcf.imaging.ingest_ct import collect_garbage

    factory = open_database(resolve_database_url(context, database_url))
    result = collect_garbage(factory, store, min_age_s=min_age_s, dry_run=dry_run)
    action = "would be deleted" if dry_run else "deleted"
    deleted = result.n_unreferenced if dry_run else result.n_deleted
    click.echo(
        f"{result.n_blobs} store files, {result.n_referenced} in use, {result.n_unreferenced} "
        f"unused; {deleted} {action} ({result.bytes_deleted / 1e6:.1f} MB freed, "
        f"{result.n_temp_files_deleted} stale temporary files removed)."
    )


COMMANDS: list[click.Command] = [
    import_dicom_command,
    import_jpeg_command,
    import_nifti_command,
    import_labelled_slices_command,
    prune_store_command,
]
