"""``ictcf export slices``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ictcf.cli.common import CLIContext, database_url_option, pass_cli_context, resolve_database_url
from ictcf.db.session import open_database

if TYPE_CHECKING:
    from ictcf.imaging.export_slices import SliceExportReport


@click.command("slices", short_help="Write stored slices as PNG or NPZ with a label manifest.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="New (or empty) folder to write the slices and manifest.csv to.",
)
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["png", "npz"]),
    default="png",
    show_default=True,
    help="png: single-channel 8-bit, HU shown in the lung window (1500/-600 HU); npz: arrays.",
)
@click.option("--patient", "patient_key", default=None, metavar="KEY", help="Only this patient.")
@click.option(
    "--label",
    default=None,
    metavar="NiCT|pCT|nCT|none",
    help="Only slices with this label, in any letter case (none: unlabelled slices).",
)
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Slice store folder (default: 'store' beside the SQLite file, or $ICTCF_HOME/store).",
)
@database_url_option
@pass_cli_context
def export_slices_command(
    context: CLIContext,
    output: Path,
    export_format: str,
    patient_key: str | None,
    label: str | None,
    store: Path | None,
    database_url: str | None,
) -> None:
    """Export stored slices with manifest.csv (patient, series, slice index, label, window).

    The folder layout is patient-<id>/series-<id>/slice-<index>.png; ids are internal keys.
    """
    from ictcf.imaging.export_slices import export_slices

    factory = open_database(resolve_database_url(context, database_url), create=False)
    report = export_slices(
        factory,
        output,
        format=export_format,
        store=store,
        patient=patient_key,
        label=label,
        progress=context.progress,
    )
    click.echo(f"{report.n_slices} slices written to {report.output} ({_label_summary(report)}).")
    click.echo(f"Manifest: {report.manifest}")


def _label_summary(report: SliceExportReport) -> str:
    """Return such as ``"labelled NiCT 3, pCT 12; 148 without a label"``."""
    unlabelled = report.labels.get("none", 0)
    labelled = ", ".join(
        f"{name} {count}" for name, count in sorted(report.labels.items()) if name != "none"
    )
    parts = [f"labelled {labelled}"] if labelled else []
    if unlabelled:
        parts.append(f"{unlabelled} without a label")
    return "; ".join(parts) or "no slices"


COMMANDS: list[click.Command] = [export_slices_command]
