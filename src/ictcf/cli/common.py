"""Options and context shared by every subcommand."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ictcf.settings import Settings


@dataclass
class CLIContext:
    """State set by the top-level options and handed to every subcommand."""

    settings: Settings = field(default_factory=Settings)
    progress: bool = True
    verbose: int = 0


pass_cli_context = click.make_pass_decorator(CLIContext, ensure=True)

#: Help of the options accepted both before and after the command name.
VERBOSE_HELP = "Log decisions (-v) or every step (-vv) to stderr."
NO_PROGRESS_HELP = "Do not draw progress bars (they are drawn only on a terminal anyway)."
#: Option names of the global options, which may also follow any command.
GLOBAL_OPTION_NAMES = frozenset({"-v", "--verbose", "--no-progress"})


def configure_logging(verbose: int) -> None:
    """Send ictcf's log records to stderr: WARNING by default, INFO with -v, DEBUG with -vv."""
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("ictcf")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False


def _late_verbose(context: click.Context, _parameter: click.Parameter, value: int) -> None:
    """Add a subcommand's -v count to the global one and reconfigure logging."""
    if not value:
        return
    state = context.ensure_object(CLIContext)
    state.verbose += value
    configure_logging(state.verbose)


def _late_no_progress(context: click.Context, _parameter: click.Parameter, value: bool) -> None:
    """Turn progress bars off when --no-progress follows the command name."""
    if value:
        context.ensure_object(CLIContext).progress = False


def add_global_options(command: click.Command) -> None:
    """Accept ``-v/--verbose`` and ``--no-progress`` after ``command`` and all its subcommands.

    The options behave as when given before the command name: ``-v`` counts add up and
    ``--no-progress`` turns the bars off. A command that already defines one of these option
    names keeps its own.
    """
    taken = {name for parameter in command.params for name in parameter.opts}
    if not taken & GLOBAL_OPTION_NAMES:
        command.params.append(
            click.Option(
                ["-v", "--verbose"],
                count=True,
                expose_value=False,
                callback=_late_verbose,
                help=VERBOSE_HELP,
            )
        )
        command.params.append(
            click.Option(
                ["--no-progress"],
                is_flag=True,
                expose_value=False,
                callback=_late_no_progress,
                help=NO_PROGRESS_HELP,
            )
        )
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            add_global_options(subcommand)


def database_url_option(function: Any) -> Any:
    """Add ``--database-url`` to a command that touches the database."""
    return click.option(
        "--database-url",
        envvar="ICTCF_DATABASE_URL",
        default=None,
        metavar="URL",
        help=(
            "SQLAlchemy URL of the patient database, e.g. sqlite:///ictcf.sqlite3 or "
            "postgresql+psycopg://user@127.0.0.1/ictcf. Default: ictcf.sqlite3 in the "
            "ictcf home folder ($ICTCF_HOME or the user data directory)."
        ),
    )(function)


def output_option(function: Any, *, help_text: str = "Folder to write the output files to.") -> Any:
    """Add ``--output`` to a command that writes files."""
    return click.option(
        "--output",
        "-o",
        type=click.Path(path_type=Path),
        default=None,
        help=help_text,
    )(function)


def resolve_database_url(context: CLIContext, database_url: str | None) -> str:
    """Return the command's ``--database-url`` or the settings' default."""
    return database_url or context.settings.database_url
