"""``ictcf import ictcf-export``."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
