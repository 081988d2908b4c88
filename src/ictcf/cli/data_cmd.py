"""``ictcf data``: obtain the iCTCF patient export."""

from __future__ import annotations

from pathlib import Path

import click

from ictcf.cli.common import CLIContext, pass_cli_context
from ictcf.ingest.fetch import ENV_EXPORT_URL, cache_local_export, locate_export


@click.group("data")
def data() -> None:
    """Download, verify and cache the iCTCF patient export."""


@data.command("fetch")
@click.option(
    "--from",
    "from_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=(
        "Use this local copy instead of downloading (also $ICTCF_EXPORT). It must be UTF-8 "
        "text whose lines start with 'Patient N' and a tab. A copy identical to the "
        "published export is stored in the cache; any other file is used in place."
    ),
)
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help=f"Download from this URL (also ${ENV_EXPORT_URL}). Default: the published copy.",
)
@pass_cli_context
def fetch(context: CLIContext, from_path: Path | None, url: str | None) -> None:
    """Locate or download the iCTCF export and verify its SHA-256.

    Prints the path to import, its SHA-256 and whether it is the published export.
    """
    export = locate_export(
        context.settings, from_path=from_path, url=url, progress=context.progress
    )
    export = cache_local_export(context.settings, export)
    click.echo(f"Path: {export.path}")
    click.echo(f"SHA-256: {export.sha256}")
    if export.published:
        click.echo("Published export: yes (1,521 patients)")
    else:
        click.echo("Published export: no (a different file; its hash is recorded on import)")
