"""Clean enumerations for the categorical fields of the iCTCF export.

Each enumeration keeps the export's own spelling in the patient row's ``*_raw`` column, so no
original text is lost when a string is mapped to a member.
"""

from __future__ import annotations

import enum


class Sex(enum.StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


class PCRResult(enum.StrEnum):
    """SARS-CoV-2 nucleic acid test result."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    #: Negative at admission, confirmed positive by a later test.
    NEGATIVE_POSITIVE_LATER = "negative_positive_later"
    UNKNOWN = "unknown"


class CTEvidence(enum.StrEnum):
    """Whether the chest CT showed pneumonia; ``NOT_AVAILABLE`` where no CT was taken."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    NOT_AVAILABLE = "not_available"


class MorbidityForm(enum.StrEnum):
    """The morbidity form as recorded by the hospitals.

    The iCTCF export uses exactly the first eight members. ``UNKNOWN`` is for patients that are
    created from images alone (DICOM, JPEG or NIfTI imports) and have no clinical record.
    """

    MILD = "mild"
    REGULAR = "regular"
    SEVERE = "severe"
    CRITICALLY_ILL = "critically_ill"
    CONTROL = "control"
    #: Control patient with community-acquired pneumonia.
    CONTROL_CAP = "control_cap"
    SUSPECTED = "suspected"
    #: Suspected at admission, COVID-19 confirmed later.
    SUSPECTED_CONFIRMED_LATER = "suspected_confirmed_later"
    #: No clinical record: the patient was created from images only, never from the export.
    UNKNOWN = "unknown"


class MorbidityType(enum.StrEnum):
    """The grouping used by the HUST-19 paper (Ning et al., Nat. Biomed. Eng. 2020)."""

    CONTROL = "control"
    #: Type I: mild and regular.
    TYPE_I = "type_i"
    #: Type II: severe and critically ill.
    TYPE_II = "type_ii"
    SUSPECTED = "suspected"
    #: No morbidity form known (patients created from images only).
    UNKNOWN = "unknown"


class Outcome(enum.StrEnum):
    """Mortality outcome."""

    CURED = "cured"
    DECEASED = "deceased"
    UNKNOWN = "unknown"


class Censoring(enum.StrEnum):
    """Censoring of a measured value: the true value is below or above the reported limit."""

    BELOW = "<"
    ABOVE = ">"


class Flag(enum.StrEnum):
    """High/low flag of a measurement relative to its normal range."""

    HIGH = "high"
    LOW = "low"
    NORMAL = "normal"


MORBIDITY_TYPE_OF_FORM: dict[MorbidityForm, MorbidityType] = {
    MorbidityForm.MILD: MorbidityType.TYPE_I,
    MorbidityForm.REGULAR: MorbidityType.TYPE_I,
    MorbidityForm.SEVERE: MorbidityType.TYPE_II,
    MorbidityForm.CRITICALLY_ILL: MorbidityType.TYPE_II,
    MorbidityForm.CONTROL: MorbidityType.CONTROL,
    MorbidityForm.CONTROL_CAP: MorbidityType.CONTROL,
    MorbidityForm.SUSPECTED: MorbidityType.SUSPECTED,
    MorbidityForm.SUSPECTED_CONFIRMED_LATER: MorbidityType.SUSPECTED,
    MorbidityForm.UNKNOWN: MorbidityType.UNKNOWN,
}
