"""``ictcf import dicom|jpeg|nifti|labelled-slices``."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
