"""Options and context shared by every subcommand."""

from __future__ import annotations

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
