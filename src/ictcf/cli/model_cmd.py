"""``ictcf cross-validate``, ``train``, ``predict`` and ``evaluate``."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
