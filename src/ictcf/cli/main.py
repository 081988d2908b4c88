"""The ``ictcf`` console command."""

from __future__ import annotations

import logging
import sys

import click

from ictcf import __version__
from ictcf.cli.common import (
    NO_PROGRESS_HELP,
    VERBOSE_HELP,
    CLIContext,
    add_global_options,
    configure_logging,
)
from ictcf.errors import IctcfError

logger = logging.getLogger("ictcf")

__all__ = ["cli", "configure_logging", "main", "register_commands"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="ictcf")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.option("--no-progress", is_flag=True, help=NO_PROGRESS_HELP)
@click.pass_context
def cli(context: click.Context, verbose: int, no_progress: bool) -> None:
    """Chest CT and clinical-feature resource for pneumonia and COVID-19, with HUST-19 models.

    Start with `ictcf demo`: it fetches (or takes) the iCTCF patient export, imports it,
    cross-validates the clinical-feature models and writes a report.

    -v/--verbose and --no-progress may also follow any command name.
    """
    configure_logging(verbose)
    context.obj = CLIContext(progress=not no_progress, verbose=verbose)


def register_commands() -> None:
    """Attach every command group; each lives in its own module."""
    from ictcf.cli import data_cmd, demo_cmd, export_cmd, import_cmd, model_cmd, stats_cmd

    cli.add_command(data_cmd.data)
    cli.add_command(import_cmd.import_group)
    cli.add_command(export_cmd.export_group)
    for command in model_cmd.COMMANDS:
        cli.add_command(command)
    cli.add_command(demo_cmd.demo)
    cli.add_command(stats_cmd.stats)
    for command in cli.commands.values():
        add_global_options(command)


register_commands()


def main() -> None:
    """Run the CLI, turning package errors into a one-line message and exit status 1."""
    try:
        status = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except IctcfError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
    if isinstance(status, int):
        sys.exit(status)
