"""``ictcf export``: write database contents back out."""

from __future__ import annotations

import click

from ictcf.cli import export_cfs_cmd, export_slices_cmd


@click.group("export")
def export_group() -> None:
    """Export database contents to files."""


for _command in export_cfs_cmd.COMMANDS + export_slices_cmd.COMMANDS:
    export_group.add_command(_command)
