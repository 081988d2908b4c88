"""The ``ictcf`` console command."""

from __future__ import annotations

import importlib
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

__all__ = ["LAZY_COMMANDS", "cli", "configure_logging", "main"]

#: Command name, then the module and attribute that define it. A module is imported only when
#: its command runs or a help page lists it: the model commands load PyTorch and scikit-learn
#: (about 3 s and 400 MB), which `ictcf import`, `export` and `data` do not need.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("ictcf.cli.data_cmd", "data"),
    "import": ("ictcf.cli.import_cmd", "import_group"),
    "export": ("ictcf.cli.export_cmd", "export_group"),
    "cross-validate": ("ictcf.cli.model_cmd", "cross_validate_command"),
    "train": ("ictcf.cli.model_cmd", "train_command"),
    "predict": ("ictcf.cli.model_cmd", "predict_command"),
    "evaluate": ("ictcf.cli.model_cmd", "evaluate_command"),
    "demo": ("ictcf.cli.demo_cmd", "demo"),
    "stats": ("ictcf.cli.stats_cmd", "stats"),
}


class _LazyGroup(click.Group):
    """A command group that imports each command's module on first use."""

    def list_commands(self, context: click.Context) -> list[str]:
        return sorted({*super().list_commands(context), *LAZY_COMMANDS})

    def get_command(self, context: click.Context, name: str) -> click.Command | None:
        command = super().get_command(context, name)
        if command is not None or name not in LAZY_COMMANDS:
            return command
        module_name, attribute = LAZY_COMMANDS[name]
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command) or command.name != name:
            raise RuntimeError(f"{module_name}.{attribute} is not the command {name!r}")
        add_global_options(command)
        self.add_command(command)
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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
