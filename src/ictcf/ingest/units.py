"""Units of clinical-feature (CF) values: spelling normalisation and conversion.

The iCTCF export writes the same unit in several spellings: ``umol/L``, ``umol/l`` and the
mojibake ``渭mol/L`` are all µmol/L. It also reports a few CFs in different units at the two
hospitals, such as prealbumin in g/L at Union Hospital and in mg/L at Liyuan Hospital. The
importer stores every CF in one catalogue unit, so one CF never mixes units:

1. :func:`normalise_unit` maps each spelling to one canonical spelling.
2. :data:`CF_UNIT_CORRECTIONS` fixes unit strings that are wrong for one CF.
3. :data:`SEPARATE_QUANTITY` moves values that measure a different quantity under the same
   abbreviation to their own catalogue entry.
4. :func:`conversion_factor` converts between units of one dimension with
   :data:`UNIT_SCALE`; units of different or unknown dimensions cannot be converted.
"""

from __future__ import annotations

import re
import unicodedata

#: MICRO SIGN (U+00B5), the spelling used for every micro prefix in stored units.
MICRO = "\u00b5"

#: Prefixes written for "micro" in the export and elsewhere: ASCII ``u``, Greek small letter mu.
_MICRO_SPELLINGS = ("u", "\u03bc", MICRO)

#: Litre denominators in any case, mapped to the SI spelling (capital L for litre).
_LITRE_SPELLINGS = {
    "l": "L",
    "dl": "dL",
    "ml": "mL",
    "ul": f"{MICRO}L",
    "\u03bcl": f"{MICRO}L",
    f"{MICRO}l": f"{MICRO}L",
    "nl": "nL",
}

#: Whole-unit spellings that the litre and micro rules do not cover.
_UNIT_ALIASES = {
    "fl": "fL",
    "FL": "fL",
    "mosm/L": "mOsm/L",
    "iu/L": "IU/L",
    "iu/mL": "IU/mL",
    "u/L": "U/L",
    "mm/hr": "mm/h",
    "sec": "s",
}

_FRACTION = re.compile(r"^(?P<numerator>[^/\s]*)/(?P<denominator>[^/\s]+)(?P<suffix>\s.*)?$")


def normalise_unit(text: str | None) -> str | None:
    """Return the canonical spelling of a unit, or None for a dimensionless value.

    Parameters
    ----------
    text : str or None
        Unit as written after the normal range, such as ``umol/l``, ``g/l`` or ``mg/L FEU``.

    Returns
    -------
    str or None
        ``µmol/L``, ``g/L``, ``mg/L FEU``; the micro prefix is always MICRO SIGN (U+00B5),
        litre always ``L``. Unknown units come back unchanged apart from whitespace, so a
        later conversion step can reject them by name. None for an empty unit.
    """
    if text is None:
        return None
    unit = unicodedata.normalize("NFC", text).replace("\u00a0", " ")
    unit = " ".join(unit.split())
    if not unit:
        return None
    match = _FRACTION.match(unit)
    if match is not None:
        numerator = match.group("numerator")
        denominator = _LITRE_SPELLINGS.get(
            match.group("denominator").lower(), match.group("denominator")
        )
        for spelling in _MICRO_SPELLINGS:
            if numerator[:1] == spelling and numerator[1:] in {"mol", "g", "kat"}:
                numerator = MICRO + numerator[1:]
        unit = f"{numerator}/{denominator}{match.group('suffix') or ''}"
    return _UNIT_ALIASES.get(unit, unit)


#: Unit strings that are wrong for one CF, keyed by (abbreviation, normalised unit).
#: Apolipoprotein B is written ``G/L`` (giga per litre, a cell-count unit) where grams per litre
#: is meant: its normal range 0.6-1.1 is a mass concentration in g/L.
CF_UNIT_CORRECTIONS: dict[tuple[str, str], str] = {
    ("APOB", "G/L"): "g/L",
}

#: Values reported under one abbreviation that measure another quantity, keyed by
#: (abbreviation, normalised unit), mapped to (abbreviation, full name) of their own catalogue
#: entry. Platelet distribution width is a dimensionless index in % at Union Hospital but a
#: width in fL at Liyuan Hospital, and no conversion exists between the two.
SEPARATE_QUANTITY: dict[tuple[str, str], tuple[str, str]] = {
    ("PDW", "fL"): ("PDW-fL", "Platelet distribution width (fL)"),
}

#: Dimension and scale of each known unit: value_in_base = value * scale. The bases are g/L
#: (mass concentration), mol/L (substance concentration), 1/L (number concentration),
#: U/L (catalytic activity; IU and U are the same unit), L (volume), s (time) and % (fraction).
UNIT_SCALE: dict[str, tuple[str, float]] = {
    "g/L": ("mass concentration", 1.0),
    "g/dL": ("mass concentration", 10.0),
    "mg/dL": ("mass concentration", 1e-2),
    "mg/L": ("mass concentration", 1e-3),
    f"{MICRO}g/mL": ("mass concentration", 1e-3),
    f"{MICRO}g/L": ("mass concentration", 1e-6),
    "ng/mL": ("mass concentration", 1e-6),
    "ng/L": ("mass concentration", 1e-9),
    "pg/mL": ("mass concentration", 1e-9),
    "mol/L": ("substance concentration", 1.0),
    "mmol/L": ("substance concentration", 1e-3),
    f"{MICRO}mol/L": ("substance concentration", 1e-6),
    "nmol/L": ("substance concentration", 1e-9),
    "T/L": ("number concentration", 1e12),
    "G/L": ("number concentration", 1e9),
    f"/{MICRO}L": ("number concentration", 1e6),
    "/L": ("number concentration", 1.0),
    "U/L": ("catalytic activity", 1.0),
    "IU/L": ("catalytic activity", 1.0),
    "IU/mL": ("catalytic activity", 1e3),
    "U/mL": ("catalytic activity", 1e3),
    "fL": ("volume", 1e-15),
    "pL": ("volume", 1e-12),
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "%": ("fraction", 1e-2),
}


def conversion_factor(from_unit: str | None, to_unit: str | None) -> float | None:
    """Return the factor that converts a value in ``from_unit`` to ``to_unit``.

    Parameters
    ----------
    from_unit, to_unit : str or None
        Normalised units (see :func:`normalise_unit`); None for dimensionless.

    Returns
    -------
    float or None
        1.0 for equal units (known or not); the ratio of the two scales in
        :data:`UNIT_SCALE` for units of one dimension; None when the units cannot be converted
        (different dimensions, one unit unknown, or one side dimensionless).
    """
    if from_unit == to_unit:
        return 1.0
    if from_unit is None or to_unit is None:
        return None
    source = UNIT_SCALE.get(from_unit)
    target = UNIT_SCALE.get(to_unit)
    if source is None or target is None or source[0] != target[0]:
        return None
    return source[1] / target[1]
