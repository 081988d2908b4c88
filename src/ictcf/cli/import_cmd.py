"""``ictcf import``: one subcommand per input format."""

from __future__ import annotations

import click

from ictcf.cli import import_export_cmd, import_imaging_cmd


@click.group("import")
def import_group() -> None:
    """Import data into the patient database."""


for _command in import_export_cmd.COMMANDS + import_imaging_cmd.COMMANDS:
    import_group.add_command(_command)
