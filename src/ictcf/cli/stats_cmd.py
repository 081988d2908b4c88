"""``ictcf stats``: cohort statistics."""

from __future__ import annotations

import click


@click.command("stats")
def stats() -> None:
    """Compare clinical features between patient groups and write Table 1 and figures."""
    raise click.ClickException("ictcf stats is not available yet in this checkout.")
