"""Patient groups for comparisons: the paper's three comparisons and user-defined ones.

"The paper" here and below is Ning et al., Nat. Biomed. Eng. 4, 1197–1207 (2020).

A user comparison is written ``[NAME:] SIDE vs SIDE``. Each side is one or more conditions
joined by ``&``. A condition is ``FIELD=V1,V2`` (any of the values), ``FIELD!=V1,V2`` (none of
them) or, for numeric fields, ``FIELD<X``, ``FIELD<=X``, ``FIELD>X``, ``FIELD>=X``. Examples::

    outcome=deceased vs outcome=cured
    elderly: age>=60 & morbidity_type=type_i,type_ii vs age<60 & morbidity_type=type_i,type_ii
    underlying_diseases=Hypertension vs has_underlying_disease=false
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ictcf.db.enums import CTEvidence, MorbidityForm, MorbidityType, Outcome, PCRResult, Sex
from ictcf.errors import InputError

#: Raw P threshold of the paper for COVID-19 vs control and deceased vs cured.
PAPER_ALPHA = 1e-5
#: Raw P threshold of the paper for type II vs type I.
PAPER_ALPHA_TYPE_II = 1e-9
#: Benjamini–Hochberg adjusted P threshold applied to every comparison by default.
DEFAULT_ALPHA_ADJUSTED = 1e-3
#: Raw P threshold of a user-defined comparison unless ``--threshold NAME=P`` sets another.
DEFAULT_USER_ALPHA = 0.05

#: Morbidity types that never enter a group comparison: patients created from images only.
EXCLUDED_TYPES = frozenset({MorbidityType.UNKNOWN.value})

#: Patient fields a condition may use, with the allowed values of categorical ones (None means
#: "values observed in the data", and "numeric" marks a numeric field).
ENUM_FIELDS: dict[str, frozenset[str]] = {
    "sex": frozenset(member.value for member in Sex),
    "pcr_result": frozenset(member.value for member in PCRResult),
    "ct_evidence": frozenset(member.value for member in CTEvidence),
    "morbidity_form": frozenset(member.value for member in MorbidityForm),
    "morbidity_type": frozenset(member.value for member in MorbidityType),
    "outcome": frozenset(member.value for member in Outcome),
    "has_underlying_disease": frozenset({"true", "false"}),
}
TEXT_FIELDS = frozenset({"cohort", "hospital", "age_band", "underlying_diseases"})
NUMERIC_FIELDS = frozenset({"age", "body_temperature", "n_measurements"})
GROUP_FIELDS = sorted(set(ENUM_FIELDS) | TEXT_FIELDS | NUMERIC_FIELDS)

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|!=|<|>|=)\s*(.+?)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Condition:
    """One condition on a patient field, such as ``morbidity_type = type_i, type_ii``."""

    field: str
    operator: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{','.join(self.values)}"

    def select(self, patients: pd.DataFrame) -> pd.Series:
        """Return a boolean mask of the patients that meet the condition (missing never does)."""
        column = patients[self.field]
        if self.field in NUMERIC_FIELDS:
            limit = float(self.values[0])
            numbers = pd.to_numeric(column, errors="coerce")
            return _OPERATORS[self.operator](numbers, limit).fillna(False).astype(bool)
        wanted = {value.casefold() for value in self.values}
        if self.field == "underlying_diseases":
            hit = column.map(lambda names: any(str(n).casefold() in wanted for n in names))
        else:
            hit = column.map(
                lambda value: (
                    value is not None
                    and not (isinstance(value, float) and math.isnan(value))
                    and str(value).casefold() in wanted
                )
            )
        known = column.map(
            lambda value: value is not None and not (isinstance(value, float) and math.isnan(value))
        )
        if self.operator == "!=":
            return (known & ~hit).astype(bool)
        return hit.astype(bool)


@dataclass(frozen=True)
class GroupSpec:
    """One group: a label and the conditions its patients meet (all of them)."""

    label: str
    conditions: tuple[Condition, ...]

    def __str__(self) -> str:
        return " & ".join(str(condition) for condition in self.conditions)

    def select(self, patients: pd.DataFrame) -> pd.Series:
        """Return a boolean mask over ``patients`` (excluded morbidity types never match)."""
        mask = ~patients["morbidity_type"].isin(EXCLUDED_TYPES)
        for condition in self.conditions:
            mask &= condition.select(patients)
        return mask.astype(bool)


@dataclass(frozen=True)
class ComparisonSpec:
    """A comparison of group A against group B with its raw P threshold ``alpha``."""

    name: str
    title: str
    group_a: GroupSpec
    group_b: GroupSpec
    alpha: float
    #: Whether the comparison is one the paper reports (Figure 1d, Supplementary Data 3).
    from_paper: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def _enum_condition(field_name: str, *members: str) -> Condition:
    return Condition(field_name, "=", tuple(members))


COVID_VS_CONTROL = ComparisonSpec(
    name="covid_vs_control",
    title="COVID-19 (type I + II) vs control",
    group_a=GroupSpec(
        "COVID-19",
        (_enum_condition("morbidity_type", MorbidityType.TYPE_I, MorbidityType.TYPE_II),),
    ),
    group_b=GroupSpec("control", (_enum_condition("morbidity_type", MorbidityType.CONTROL),)),
    alpha=PAPER_ALPHA,
    from_paper=True,
)
TYPE_II_VS_TYPE_I = ComparisonSpec(
    name="type_ii_vs_type_i",
    title="Type II (severe, critically ill) vs type I (mild, regular)",
    group_a=GroupSpec("type II", (_enum_condition("morbidity_type", MorbidityType.TYPE_II),)),
    group_b=GroupSpec("type I", (_enum_condition("morbidity_type", MorbidityType.TYPE_I),)),
    alpha=PAPER_ALPHA_TYPE_II,
    from_paper=True,
)
DECEASED_VS_CURED = ComparisonSpec(
    name="deceased_vs_cured",
    title="Deceased vs cured (COVID-19 patients)",
    group_a=GroupSpec(
        "deceased",
        (
            _enum_condition("outcome", Outcome.DECEASED),
            _enum_condition("morbidity_type", MorbidityType.TYPE_I, MorbidityType.TYPE_II),
        ),
    ),
    group_b=GroupSpec(
        "cured",
        (
            _enum_condition("outcome", Outcome.CURED),
            _enum_condition("morbidity_type", MorbidityType.TYPE_I, MorbidityType.TYPE_II),
        ),
    ),
    alpha=PAPER_ALPHA,
    from_paper=True,
    notes=(
        "Restricted to COVID-19 patients (type I + II); in the iCTCF export every deceased "
        "or cured patient is of type I or II.",
    ),
)
PAPER_COMPARISONS: tuple[ComparisonSpec, ...] = (
    COVID_VS_CONTROL,
    TYPE_II_VS_TYPE_I,
    DECEASED_VS_CURED,
)


def _parse_condition(text: str, source: str) -> Condition:
    match = _CONDITION.match(text)
    if match is None:
        raise InputError(
            f"invalid condition {text.strip()!r} in --compare {source!r}; write FIELD=VALUE[,VALUE] "
            "or, for numeric fields, FIELD<X, FIELD<=X, FIELD>X or FIELD>=X."
        )
    field_name, op, raw_values = match.groups()
    field_name = field_name.lower()
    if field_name not in GROUP_FIELDS:
        raise InputError(
            f"unknown field {field_name!r} in --compare {source!r}; use one of: "
            f"{', '.join(GROUP_FIELDS)}."
        )
    values = tuple(value.strip() for value in raw_values.split(",") if value.strip())
    if not values:
        raise InputError(f"condition {text.strip()!r} in --compare {source!r} has no value.")

    if field_name in NUMERIC_FIELDS:
        if op in ("=", "!=") or len(values) != 1:
            raise InputError(
                f"numeric field {field_name!r} in --compare {source!r} takes one number with "
                "<, <=, > or >= (for example age>=60)."
            )
        try:
            number = float(values[0])
        except ValueError as err:
            raise InputError(
                f"{values[0]!r} in --compare {source!r} is not a number; write for example "
                f"{field_name}>=60."
            ) from err
        if not math.isfinite(number):
            raise InputError(f"limit {values[0]!r} in --compare {source!r} must be finite.")
        return Condition(field_name, op, values)

    if op not in ("=", "!="):
        raise InputError(
            f"field {field_name!r} in --compare {source!r} is categorical; use = or != "
            f"(for example {field_name}=VALUE)."
        )
    allowed = ENUM_FIELDS.get(field_name)
    if allowed is not None:
        lowered = tuple(value.lower() for value in values)
        unknown = [value for value in lowered if value not in allowed]
        if unknown:
            raise InputError(
                f"unknown {field_name} value {unknown[0]!r} in --compare {source!r}; use one "
                f"of: {', '.join(sorted(allowed))}."
            )
        values = lowered
    return Condition(field_name, op, values)


def _parse_side(text: str, source: str) -> GroupSpec:
    parts = [part for part in text.split("&")]
    if not text.strip() or any(not part.strip() for part in parts):
        raise InputError(
            f"empty group or condition in --compare {source!r}; write conditions joined by '&'."
        )
    conditions = tuple(_parse_condition(part, source) for part in parts)
    return GroupSpec(" & ".join(str(c) for c in conditions), conditions)


#: Words for comparison operators in generated comparison names; two-character operators
#: come first so that '>=' is not read as '>' followed by '='.
OPERATOR_WORDS = (("<=", "le"), (">=", "ge"), ("<", "lt"), (">", "gt"))


def parse_comparison(text: str, *, alpha: float = DEFAULT_USER_ALPHA) -> ComparisonSpec:
    """Parse a user comparison ``[NAME:] SIDE vs SIDE`` (see the module docstring).

    Parameters
    ----------
    text : str
        The comparison, for example ``"sex=male vs sex=female"``.
    alpha : float, default 0.05
        Raw P threshold of the comparison.

    Returns
    -------
    ComparisonSpec
        Named ``NAME`` when given, otherwise a name built from the conditions.

    Raises
    ------
    InputError
        If the text does not follow the syntax, names an unknown field or value, or both sides
        are the same.
    """
    source = text.strip()
    name = ""
    body = source
    head, colon, rest = source.partition(":")
    if colon and _NAME.match(head.strip()) and " vs " not in head:
        name, body = head.strip(), rest
    sides = re.split(r"\s+vs\s+", body.strip(), flags=re.IGNORECASE)
    if len(sides) != 2:
        raise InputError(
            f"--compare {source!r} must contain exactly one ' vs ' between two groups, for "
            "example 'outcome=deceased vs outcome=cured'."
        )
    group_a = _parse_side(sides[0], source)
    group_b = _parse_side(sides[1], source)
    if group_a == group_b:
        raise InputError(f"--compare {source!r} compares a group with itself.")
    if not name:
        spelled = f"{group_a}_vs_{group_b}"
        # Operators become words so that 'age>=60 vs age<60' does not yield age_60_vs_age_60.
        for operator, word in OPERATOR_WORDS:
            spelled = spelled.replace(operator, f"_{word}_")
        name = re.sub(r"[^A-Za-z0-9]+", "_", spelled).strip("_").lower()
    return ComparisonSpec(
        name=name,
        title=f"{group_a.label} vs {group_b.label}",
        group_a=group_a,
        group_b=group_b,
        alpha=alpha,
    )


def check_values_present(spec: ComparisonSpec, patients: pd.DataFrame) -> None:
    """Check that every free-text value of ``spec`` occurs in ``patients``.

    Raises
    ------
    InputError
        If a ``cohort``, ``hospital``, ``age_band`` or ``underlying_diseases`` value never
        occurs, naming the values that do (these are category names, never patient data).
    """
    for group in (spec.group_a, spec.group_b):
        for condition in group.conditions:
            if condition.field not in TEXT_FIELDS:
                continue
            column = patients[condition.field]
            if condition.field == "underlying_diseases":
                observed = {str(n) for names in column for n in names}
            else:
                observed = {str(v) for v in column.dropna()}
            folded = {value.casefold() for value in observed}
            for value in condition.values:
                if value.casefold() not in folded:
                    listing = ", ".join(sorted(observed)[:20])
                    more = " ..." if len(observed) > 20 else ""
                    raise InputError(
                        f"no patient has {condition.field} {value!r} (comparison "
                        f"{spec.name!r}); values in the database: {listing}{more}."
                    )
