"""Progress bars for long steps; the CLI turns them off with ``--no-progress``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(
    iterable: Iterable[T],
    *,
    enabled: bool,
    description: str,
    total: int | None = None,
    unit: str = "it",
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when ``enabled``; otherwise yield it unchanged."""
    if not enabled:
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
