"""Builders of small synthetic iCTCF export lines and a database snapshot helper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db.models import (
    CFDefinition,
    Hospital,
    ImportRun,
    Measurement,
    Patient,
    UnderlyingDisease,
)

DEFAULT_ENTRIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Routine Blood Test",
        (
            "Lymphocyte count@LY@1.00&#8595;@1.1-3.2 G/L",
            "White blood cell@WBC@5.20@3.5-9.5 G/L",
        ),
    ),
    ("Inflammation", ("Procalcitonin@PCT@<0.13@<0.5 ng/ml",)),
    (
        "Biochemical Test",
        (
            "Albumin@ALB@34.70&#8595;@35-55 g/L",
            "Creatinine@CREA@74.30@44.0-133.0 渭mol/L",
            "纬-glutamyltransferase@GGT@21.00@11-50 U/L",
        ),
    ),
)


def cf_block(panels: Sequence[tuple[str, Sequence[str]]] = DEFAULT_ENTRIES) -> str:
    """Build the inside of a ``&cf&`` block from (panel, entries) pairs."""
    text = "$#$Basic Information"
    for panel, entries in panels:
        text += "$#$" + panel + "".join("$" + entry for entry in entries)
    return text


def make_line(
    number: int = 1,
    *,
    age: str = "55",
    gender: str = "Male",
    pcr_header: str = "Positive",
    pcr: str = "Positive",
    ct: str = "Positive",
    band: str = "40to60",
    outcome: str = "Cured",
    form_header: str = "Regular",
    form: str = "Regular",
    hospital: str = "Union",
    temperature: str = "36.6",
    diseases: str = "Hypertension, Diabetes",
    ct_block: str | None = None,
    cf: str | None = None,
) -> str:
    """Build one valid export line (without line end); keyword arguments change one field."""
    if ct_block is None:
        folder = f"P{number}/2020_2_17_9_01_22"
        ct_block = folder + "$" + "@".join(f"{folder}/IMG-0001-{i:05d}.jpg" for i in range(88, 93))
    basic = "$".join([hospital, age, gender, temperature, diseases, pcr, ct, form, outcome])
    blob = f"&basic_info&{basic}&basic_info&&ct&{ct_block}&ct&&cf&{cf if cf is not None else cf_block()}&cf&"
    return "\t".join(
        [
            f"Patient {number}",
            age,
            gender,
            pcr_header,
            ct,
            band,
            outcome,
            form_header,
            hospital,
            blob,
        ]
    )


def write_export(folder: Path, lines: Sequence[str], name: str = "export.txt") -> Path:
    """Write lines with CRLF line ends, UTF-8, as the real export is."""
    path = folder / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def table_counts(factory: sessionmaker[Session]) -> dict[str, int]:
    """Row count of every table the importer writes."""
    with factory() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (
                ImportRun,
                Hospital,
                Patient,
                UnderlyingDisease,
                CFDefinition,
                Measurement,
            )
        }


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder
