"""Exception types shared across the package.

Every message follows one recipe: what failed, the offending value, where (file, line, tag or
internal patient key) and what to do next. Messages never contain names, dates of birth or
other identifying values; the internal patient key is the only patient reference allowed.
"""

from __future__ import annotations

from pathlib import Path


class IctcfError(Exception):
    """Base class of every error the CLI reports as a clean message rather than a traceback."""


class InputError(IctcfError):
    """A user-supplied file or value is invalid.

    Parameters
    ----------
    message : str
        What failed and what to do next.
    path : Path or str, optional
        The offending file (shown by name only, never with file contents).
    line : int, optional
        1-based line number inside ``path``.
    """

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path.name}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)


class ConflictError(IctcfError):
    """Imported data contradicts what the database already holds."""


class DataNotFoundError(IctcfError):
    """A required data file (such as the iCTCF export) is not available."""


class ModelError(IctcfError):
    """A model artefact is missing, invalid or incompatible with the data."""
