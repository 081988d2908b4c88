"""``ictcf demo``: the main job end to end."""

from __future__ import annotations

import click


@click.command("demo")
def demo() -> None:
    """Fetch or locate the iCTCF export, import it, cross-validate the CF models and report."""
    raise click.ClickException("ictcf demo is not available yet in this checkout.")
