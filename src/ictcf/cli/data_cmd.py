"""``ictcf data``: obtain the iCTCF patient export."""

from __future__ import annotations

import click


@click.group("data")
def data() -> None:
    """Download, verify and cache the iCTCF patient export."""
