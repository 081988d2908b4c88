"""Unit spelling normalisation and conversion factors."""

from __future__ import annotations

import pytest

from ictcf.ingest.catalogue import KNOWN_CF_UNITS
from ictcf.ingest.units import UNIT_SCALE, conversion_factor, normalise_unit


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("umol/L", "µmol/L"),
        ("umol/l", "µmol/L"),
        ("\u03bcmol/L", "µmol/L"),
        ("µmol/L", "µmol/L"),
        ("g/l", "g/L"),
        ("fl", "fL"),
        ("pg/ml", "pg/mL"),
        ("ng/ml", "ng/mL"),
        ("ug/l", "µg/L"),
        ("/ul", "/µL"),
        ("IU/ml", "IU/mL"),
        ("mg/L FEU", "mg/L FEU"),
        ("G/L", "G/L"),
        ("U/L", "U/L"),
        ("/LPF", "/LPF"),
        ("  mmol/L ", "mmol/L"),
        ("", None),
        (None, None),
    ],
)
def test_normalise_unit(written: str | None, canonical: str | None) -> None:
    assert normalise_unit(written) == canonical


@pytest.mark.parametrize(
    ("source", "target", "factor"),
    [
        ("mg/L", "g/L", 1e-3),
        ("g/L", "mg/L", 1e3),
        ("mg/dL", "mg/L", 10.0),
        ("µmol/L", "mmol/L", 1e-3),
        ("IU/L", "U/L", 1.0),
        ("/µL", "G/L", 1e-3),
        ("mm/h", "mm/h", 1.0),
    ],
)
def test_conversion_factor(source: str, target: str, factor: float) -> None:
    assert conversion_factor(source, target) == pytest.approx(factor)


@pytest.mark.parametrize(
    ("source", "target"),
    [("fL", "%"), ("mg/L", "mmol/L"), ("furlong/L", "g/L"), (None, "g/L"), ("g/L", None)],
)
def test_conversion_impossible(source: str | None, target: str | None) -> None:
    assert conversion_factor(source, target) is None


def test_catalogue_units_are_canonical() -> None:
    assert len(KNOWN_CF_UNITS) == 121
    for unit in KNOWN_CF_UNITS.values():
        assert unit == normalise_unit(unit)


def test_scale_table_units_are_canonical() -> None:
    for unit in UNIT_SCALE:
        assert normalise_unit(unit) == unit
