"""Progress bars for long steps; the CLI turns them off with ``--no-progress``.

A bar is drawn only where someone can watch it: on a terminal, or in a Jupyter notebook
(where ``tqdm.auto`` draws a widget). When stderr is redirected to a file or a pipe, bars are
left out, so logs do not fill with redrawn bar frames.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm as text_tqdm
from tqdm.auto import tqdm
from tqdm.autonotebook import tqdm as chosen_tqdm

T = TypeVar("T")


def stderr_is_interactive() -> bool:
    """Return whether a progress bar on stderr would be seen: a terminal or a notebook."""
    if chosen_tqdm is not text_tqdm:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except (OSError, ValueError):
        return False


def progress_bar(
    iterable: Iterable[T],
    *,
    enabled: bool,
    description: str,
    total: int | None = None,
    unit: str = "it",
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when wanted and visible.

    Parameters
    ----------
    iterable : Iterable
        The items to yield, unchanged.
    enabled : bool
        False turns the bar off (``--no-progress``).
    description : str
        Label written before the bar.
    total : int, optional
        Number of items, when ``iterable`` has no length.
    unit : str, default "it"
        Name of one item.

    Yields
    ------
    The items of ``iterable``. A bar is drawn only when ``enabled`` and stderr is a terminal
    or a notebook (see :func:`stderr_is_interactive`).
    """
    if not enabled or not stderr_is_interactive():
        yield from iterable
        return
    yield from tqdm(
        iterable,
        desc=description,
        total=total,
        unit=unit,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
