"""Parse the iCTCF plain-text patient export, one line per patient.

A line has ten tab-separated fields::

    Patient N, age, gender, PCR result, CT evidence, age band, outcome, morbidity form,
    hospital, blob

and the blob contains three blocks::

    &basic_info&hospital$age$gender$temperature$diseases$PCR$CT$form$outcome&basic_info&
    &ct&<series folder>$<5 preview paths joined by @>&ct&        (empty for patients without CT)
    &cf&$#$Panel$entry$entry...$#$Next panel$...&cf&

where a CF entry is ``Full name@ABBR@value@range unit``. The header's PCR and morbidity fields
are coarse (``Negative``, ``Control``). The basic_info block contains the detailed strings
(``Negative; Positive (Confirmed later)``, ``Control (Community-acquired pneumonia)``), so the
parser uses those after checking that both agree.

The file is UTF-8, but some characters went through a GBK mix-up before export (``渭mol/L`` for
µmol/L, ``纬-glutamyltransferase`` for γ-glutamyltransferase, ``聽`` for a non-breaking space).
:func:`repair_mojibake` undoes that generically.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ictcf.db.enums import (
    MORBIDITY_TYPE_OF_FORM,
    Censoring,
    CTEvidence,
    Flag,
    MorbidityForm,
    MorbidityType,
    Outcome,
    PCRResult,
    Sex,
)
from ictcf.errors import InputError
from ictcf.ingest.units import normalise_unit

logger = logging.getLogger(__name__)

EnumT = TypeVar("EnumT")

#: Number of tab-separated fields of one patient line.
FIELD_COUNT = 10
#: Number of ``$``-separated fields of the basic_info block.
BASIC_INFO_FIELD_COUNT = 9
#: Number of ``@``-separated parts of one CF entry: full name, abbreviation, value, range+unit.
CF_ENTRY_PART_COUNT = 4

#: Cell texts that mean "no value" (compared case-insensitively after stripping).
MISSING_MARKERS = frozenset({"", "n/a", "na", "--", "-", "none", "null", "nan"})

#: HTML entities and characters the export appends to a value outside its normal range.
ARROW_FLAGS = {"&#8595;": Flag.LOW, "&#8593;": Flag.HIGH, "\u2193": Flag.LOW, "\u2191": Flag.HIGH}

#: Plausible body temperature at admission in °C; values outside get a warning, not an error.
BODY_TEMPERATURE_PLAUSIBLE_C = (34.0, 43.0)

#: Age bands of the export: under 40, 40 to 60 inclusive, over 60 (years).
AGE_BAND_LIMITS_YEARS = (40.0, 60.0)

SEX_OF_TEXT = {"male": Sex.MALE, "female": Sex.FEMALE}
PCR_OF_TEXT = {
    "positive": PCRResult.POSITIVE,
    "negative": PCRResult.NEGATIVE,
    "negative; positive (confirmed later)": PCRResult.NEGATIVE_POSITIVE_LATER,
}
#: Coarse header spelling of each detailed PCR result.
PCR_HEADER_OF_RESULT = {
    PCRResult.POSITIVE: "positive",
    PCRResult.NEGATIVE: "negative",
    PCRResult.NEGATIVE_POSITIVE_LATER: "negative",
}
CT_OF_TEXT = {"positive": CTEvidence.POSITIVE, "negative": CTEvidence.NEGATIVE}
FORM_OF_TEXT = {
    "mild": MorbidityForm.MILD,
    "regular": MorbidityForm.REGULAR,
    "severe": MorbidityForm.SEVERE,
    "critically ill": MorbidityForm.CRITICALLY_ILL,
    "control": MorbidityForm.CONTROL,
    "control (community-acquired pneumonia)": MorbidityForm.CONTROL_CAP,
    "suspected": MorbidityForm.SUSPECTED,
    "suspected (covid-19-confirmed later)": MorbidityForm.SUSPECTED_CONFIRMED_LATER,
}
#: Coarse header spelling of each detailed morbidity form.
FORM_HEADER_OF_FORM = {
    MorbidityForm.MILD: "mild",
    MorbidityForm.REGULAR: "regular",
    MorbidityForm.SEVERE: "severe",
    MorbidityForm.CRITICALLY_ILL: "critically ill",
    MorbidityForm.CONTROL: "control",
    MorbidityForm.CONTROL_CAP: "control",
    MorbidityForm.SUSPECTED: "suspected",
    MorbidityForm.SUSPECTED_CONFIRMED_LATER: "suspected",
}
OUTCOME_OF_TEXT = {"cured": Outcome.CURED, "deceased": Outcome.DECEASED, "unknown": Outcome.UNKNOWN}
AGE_BANDS = ("40", "40to60", "60")

_SOURCE_ID = re.compile(r"Patient (?P<number>[1-9][0-9]*)")
_BLOB = re.compile(
    r"&basic_info&(?P<basic>.*?)&basic_info&&ct&(?P<ct>.*?)&ct&&cf&(?P<cf>.*?)&cf&", re.DOTALL
)
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_VALUE = re.compile(rf"(?P<censoring>[<>])?\s*(?P<number>{_NUMBER})")
_DECIMAL_COMMA = re.compile(r"^[<>]?\s*[+-]?[0-9]+,[0-9]+")
_ENTITY = re.compile(r"&#[0-9]+;")
_RANGE_AND_UNIT = re.compile(
    rf"(?P<range>(?P<open>[<>])\s*(?P<limit>{_NUMBER})"
    rf"|(?P<low>{_NUMBER})\s*[-~]\s*(?P<high>{_NUMBER}))(?:\s+(?P<unit>.*))?"
)
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


@dataclass(frozen=True)
class CFEntry:
    """One CF entry of a patient line, parsed but not yet converted to the catalogue unit."""

    panel: str
    full_name: str
    abbreviation: str
    #: The entry as written (after mojibake repair).
    raw_entry: str
    #: The value field as written, such as ``1.00&#8595;`` or ``<0.13``.
    raw_value: str
    #: Numeric value; the limit for a censored value; None for a missing-value marker.
    value: float | None
    censoring: Censoring | None
    flag_given: Flag | None
    #: Normal range as written (``1.1-3.2``, ``<0.06``); None when the entry gives none.
    range_text: str | None
    range_low: float | None
    range_high: float | None
    #: Normalised unit (see :func:`ictcf.ingest.units.normalise_unit`); None if dimensionless.
    unit: str | None


@dataclass(frozen=True)
class ExportRecord:
    """One patient line of the export, parsed and checked."""

    line_number: int
    source_id: str
    source_number: int
    hospital: str
    age: float | None
    age_band: str | None
    sex: Sex
    body_temperature: float | None
    pcr_result: PCRResult
    pcr_result_raw: str
    ct_evidence: CTEvidence
    ct_evidence_raw: str
    morbidity_form: MorbidityForm
    morbidity_form_raw: str
    morbidity_type: MorbidityType
    outcome: Outcome
    outcome_raw: str
    diseases: tuple[str, ...]
    ct_series_ref: str | None
    ct_preview_refs: tuple[str, ...]
    entries: tuple[CFEntry, ...]
    #: SHA-256 of the repaired line text: equal content gives an equal hash.
    content_sha256: str
    #: Anomalies the record survives (implausible temperature, age band not matching age).
    warnings: tuple[str, ...] = field(default=())


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 text that was decoded as GBK, and normalise the repaired characters.

    Each run of non-ASCII characters is encoded as GBK and decoded as UTF-8; a run for which
    that fails (genuine Chinese text, for example) is left unchanged. Afterwards the text is
    NFC-normalised, a non-breaking space becomes a normal space and GREEK SMALL LETTER MU in a
    unit is left to :func:`ictcf.ingest.units.normalise_unit`.

    Parameters
    ----------
    text : str
        A decoded line, such as ``Creatinine@CREA@74.30@44.0-133.0 渭mol/L``.

    Returns
    -------
    str
        The repaired text, such as ``Creatinine@CREA@74.30@44.0-133.0 µmol/L``.
    """

    def repair_run(match: re.Match[str]) -> str:
        run = match.group(0)
        try:
            return run.encode("gbk").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return run

    repaired = _NON_ASCII_RUN.sub(repair_run, text)
    return unicodedata.normalize("NFC", repaired).replace("\u00a0", " ")


def decode_export(data: bytes, *, path: Path | str | None = None) -> list[tuple[int, str]]:
    """Decode the bytes of an export file into numbered, repaired lines.

    Parameters
    ----------
    data : bytes
        The whole file. A UTF-8 byte order mark is skipped; CRLF and LF line ends are accepted.
    path : Path or str, optional
        File name used in error messages.

    Returns
    -------
    list of (int, str)
        1-based line number and repaired text of every non-blank line.

    Raises
    ------
    InputError
        If the file is UTF-16, contains NUL bytes or bytes that are not valid UTF-8 (the message
        names the byte offset and line), or has no non-blank line.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            "the file starts with a UTF-16 byte order mark, but the iCTCF export is UTF-8. "
            "Save it as UTF-8 (without converting the text otherwise) and import it again.",
            path=path,
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(
            f"NUL byte at byte offset {nul}; the file looks like UTF-16 or binary data, but "
            "the iCTCF export is UTF-8 text. Check that the right file was given.",
            path=path,
            line=data.count(b"\n", 0, nul) + 1,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"invalid UTF-8 byte 0x{data[err.start]:02x} at byte offset {err.start} "
            f"(encoding is perhaps Latin-1 or GBK). The iCTCF export is UTF-8: re-download it "
            "or convert it to UTF-8.",
            path=path,
            line=data.count(b"\n", 0, err.start) + 1,
        ) from err
    lines = [
        (number, repair_mojibake(line.rstrip("\r")))
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]
    if not lines:
        raise InputError(
            "the file contains no patient lines. Check that it is the iCTCF patient export.",
            path=path,
        )
    return lines


def is_missing(text: str) -> bool:
    """Return whether ``text`` is a missing-value marker (see :data:`MISSING_MARKERS`)."""
    return text.strip().lower() in MISSING_MARKERS


def parse_number(text: str, *, field_name: str) -> float | None:
    """Parse a plain decimal number, or None for a missing-value marker.

    Raises
    ------
    ValueError
        If ``text`` is neither. The message names ``field_name`` and the text, and rejects a decimal
        comma explicitly because ``0,02`` must never become 2.
    """
    if is_missing(text):
        return None
    stripped = text.strip()
    if re.fullmatch(_NUMBER, stripped):
        return float(stripped)
    if _DECIMAL_COMMA.match(stripped):
        raise ValueError(
            f"{field_name} {stripped!r} uses a decimal comma; the export uses a decimal point. "
            "Replace the comma with a point."
        )
    raise ValueError(f"{field_name} {stripped!r} is not a number")


#: Distinct value and range texts remembered; the export repeats the same few hundred ranges.
PARSE_CACHE_SIZE = 1 << 16


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_value(raw_value: str) -> tuple[float | None, Censoring | None, Flag | None]:
    """Parse a CF value field into (value, censoring, flag given by the arrow).

    ``1.00&#8595;`` gives ``(1.0, None, LOW)``; ``<0.13`` gives ``(0.13, BELOW, None)``: a
    censored value keeps the reported limit as its value. A missing-value marker gives
    ``(None, None, None)``.

    Raises
    ------
    ValueError
        For any other text (``abc``, ``0,02``, an unknown HTML entity).
    """
    text = raw_value.strip()
    flag: Flag | None = None
    for arrow, arrow_flag in ARROW_FLAGS.items():
        if text.endswith(arrow):
            text = text[: -len(arrow)].rstrip()
            flag = arrow_flag
            break
    if _ENTITY.search(text):
        raise ValueError(f"value {raw_value!r} contains an unknown HTML entity")
    if is_missing(text):
        return None, None, flag
    match = _VALUE.fullmatch(text)
    if match is None:
        if _DECIMAL_COMMA.match(text):
            raise ValueError(
                f"value {raw_value!r} uses a decimal comma; the export uses a decimal point. "
                "Replace the comma with a point."
            )
        raise ValueError(f"value {raw_value!r} is not a number, a censored number or N/A")
    censoring = Censoring(match.group("censoring")) if match.group("censoring") else None
    return float(match.group("number")), censoring, flag


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_range_and_unit(
    text: str,
) -> tuple[str | None, float | None, float | None, str | None]:
    """Parse ``1.1-3.2 G/L``, ``<0.06 G/L`` or ``0.80-1.31`` into (text, low, high, unit).

    A missing-value marker gives no range and no unit.

    Raises
    ------
    ValueError
        If the text is not a range optionally followed by a unit.
    """
    stripped = " ".join(text.split())
    if is_missing(stripped):
        return None, None, None, None
    match = _RANGE_AND_UNIT.fullmatch(stripped)
    if match is None:
        raise ValueError(
            f"normal range {text!r} is not of the form 'low-high unit', '<limit unit' or "
            "'>limit unit'"
        )
    unit = normalise_unit(match.group("unit"))
    if match.group("open") == "<":
        return match.group("range"), None, float(match.group("limit")), unit
    if match.group("open") == ">":
        return match.group("range"), float(match.group("limit")), None, unit
    low, high = float(match.group("low")), float(match.group("high"))
    if low > high:
        raise ValueError(f"normal range {text!r} has its lower limit above its upper limit")
    return match.group("range"), low, high, unit


def parse_cf_block(block: str) -> list[CFEntry]:
    """Parse the content of a ``&cf&...&cf&`` block into entries, in the export's order.

    Raises
    ------
    ValueError
        If an entry does not have four ``@``-separated parts, has an empty abbreviation, an
        invalid value or range, or an abbreviation appears twice.
    """
    entries: list[CFEntry] = []
    if not block.strip():
        return entries
    if not block.startswith("$#$"):
        raise ValueError(f"CF block must start with a panel header '$#$', found {block[:20]!r}")
    seen: set[str] = set()
    for panel_text in block.split("$#$")[1:]:
        panel, *raw_entries = panel_text.split("$")
        panel = panel.strip()
        for raw_entry in raw_entries:
            if not raw_entry.strip():
                continue
            parts = raw_entry.split("@")
            if len(parts) != CF_ENTRY_PART_COUNT:
                raise ValueError(
                    f"CF entry {raw_entry[:60]!r} in panel {panel!r}: expected "
                    f"{CF_ENTRY_PART_COUNT} '@'-separated parts (full name@abbreviation@value@"
                    f"range unit), found {len(parts)}"
                )
            full_name, abbreviation, raw_value, range_unit = parts
            abbreviation = abbreviation.strip()
            raw_value = raw_value.strip()
            if not abbreviation:
                raise ValueError(f"CF entry {raw_entry[:60]!r} has an empty abbreviation")
            if abbreviation in seen:
                raise ValueError(f"CF {abbreviation!r} appears twice in the same patient line")
            seen.add(abbreviation)
            try:
                value, censoring, flag = parse_value(raw_value)
                range_text, low, high, unit = parse_range_and_unit(range_unit)
            except ValueError as err:
                raise ValueError(f"CF {abbreviation!r}: {err}") from err
            entries.append(
                CFEntry(
                    panel=panel,
                    full_name=" ".join(full_name.split())
                    if "  " in full_name
                    else full_name.strip(),
                    abbreviation=abbreviation,
                    raw_entry=raw_entry,
                    raw_value=raw_value,
                    value=value,
                    censoring=censoring,
                    flag_given=flag,
                    range_text=range_text,
                    range_low=low,
                    range_high=high,
                    unit=unit,
                )
            )
    return entries


def _lookup(table: Mapping[str, EnumT], text: str, what: str) -> EnumT:
    key = " ".join(text.split()).lower()
    if key not in table:
        known = ", ".join(repr(item) for item in table)
        raise ValueError(f"unknown {what} {text!r}; expected one of {known}")
    return table[key]


def _age_band_of(age: float) -> str:
    low, high = AGE_BAND_LIMITS_YEARS
    if age < low:
        return "40"
    if age <= high:
        return "40to60"
    return "60"


def _check_agreement(what: str, header: str, detailed: str) -> None:
    if " ".join(header.split()).lower() != " ".join(detailed.split()).lower():
        raise ValueError(
            f"{what} differs between the header ({header!r}) and the basic_info block "
            f"({detailed!r})"
        )


def parse_export_line(
    text: str, *, line_number: int, path: Path | str | None = None
) -> ExportRecord:
    """Parse one repaired patient line of the export.

    Parameters
    ----------
    text : str
        The line without its line end, after :func:`repair_mojibake`.
    line_number : int
        1-based line number, for messages.
    path : Path or str, optional
        File name, for messages.

    Returns
    -------
    ExportRecord

    Raises
    ------
    InputError
        If the line is malformed. Examples: wrong number of tab fields, an invalid
        ``Patient N`` id, a missing or truncated block, or an unknown morbidity form, PCR
        result, CT evidence, outcome or gender. Also for header fields that contradict the
        basic_info block and CF entries that cannot be parsed. The message names the file,
        line and the offending text.
    """
    try:
        return _parse_fields(text, line_number)
    except ValueError as err:
        raise InputError(f"{err}. Fix or remove this line.", path=path, line=line_number) from err


def _parse_fields(text: str, line_number: int) -> ExportRecord:
    fields = text.split("\t")
    if len(fields) != FIELD_COUNT:
        raise ValueError(
            f"expected {FIELD_COUNT} tab-separated fields, found {len(fields)} "
            "(is the line truncated or were tabs replaced?)"
        )
    (
        source_id,
        age_text,
        gender_text,
        pcr_header,
        ct_header,
        band_text,
        outcome_header,
        form_header,
        hospital_header,
        blob,
    ) = (value.strip() for value in fields)

    id_match = _SOURCE_ID.fullmatch(source_id)
    if id_match is None:
        raise ValueError(f"patient id {source_id[:40]!r} is not of the form 'Patient N'")

    blob_match = _BLOB.fullmatch(blob)
    if blob_match is None:
        missing = [
            name
            for name in ("basic_info", "ct", "cf")
            if blob.count(f"&{name}&") != 2  # each block has an opening and a closing marker
        ]
        detail = (
            f"missing or unclosed block(s): {', '.join('&' + name + '&' for name in missing)}"
            if missing
            else "blocks are not in the order &basic_info&, &ct&, &cf&"
        )
        raise ValueError(f"patient blob is malformed, {detail} (is the line truncated?)")

    basic = blob_match.group("basic").split("$")
    if len(basic) != BASIC_INFO_FIELD_COUNT:
        raise ValueError(
            f"basic_info block: expected {BASIC_INFO_FIELD_COUNT} '$'-separated fields, "
            f"found {len(basic)}"
        )
    (
        hospital,
        basic_age,
        basic_gender,
        temperature_text,
        diseases_text,
        pcr_text,
        ct_text,
        form_text,
        outcome_text,
    ) = (value.strip() for value in basic)

    warnings: list[str] = []
    if not hospital or is_missing(hospital):
        raise ValueError("hospital is missing from the basic_info block")
    _check_agreement("hospital", hospital_header, hospital)
    _check_agreement("age", age_text, basic_age)
    _check_agreement("gender", gender_text, basic_gender)
    _check_agreement("CT evidence", ct_header, ct_text)
    _check_agreement("outcome", outcome_header, outcome_text)

    age = parse_number(age_text, field_name="age")
    if age is not None and not 0 <= age <= 130:
        raise ValueError(f"age {age_text!r} is outside 0-130 years")
    age_band = None if is_missing(band_text) else band_text
    if age_band is not None and age_band not in AGE_BANDS:
        raise ValueError(f"unknown age band {band_text!r}; expected one of {AGE_BANDS}")
    if age is not None and age_band is not None and _age_band_of(age) != age_band:
        warnings.append(f"age band {age_band!r} does not match age {age:g}")

    sex = Sex.UNKNOWN if is_missing(gender_text) else _lookup(SEX_OF_TEXT, gender_text, "gender")
    temperature = parse_number(temperature_text, field_name="body temperature")
    low_c, high_c = BODY_TEMPERATURE_PLAUSIBLE_C
    if temperature is not None and not low_c <= temperature <= high_c:
        warnings.append(f"body temperature {temperature:g} °C is outside {low_c:g}-{high_c:g} °C")

    pcr = PCRResult.UNKNOWN
    if not is_missing(pcr_text):
        pcr = _lookup(PCR_OF_TEXT, pcr_text, "PCR result")
        _check_agreement("PCR result", pcr_header, PCR_HEADER_OF_RESULT[pcr])

    ct_evidence = CTEvidence.NOT_AVAILABLE
    if not is_missing(ct_text):
        ct_evidence = _lookup(CT_OF_TEXT, ct_text, "CT evidence")

    form = _lookup(FORM_OF_TEXT, form_text, "morbidity form")
    _check_agreement("morbidity form", form_header, FORM_HEADER_OF_FORM[form])
    outcome = _lookup(OUTCOME_OF_TEXT, outcome_text, "outcome")

    diseases: tuple[str, ...] = ()
    if not (is_missing(diseases_text) or diseases_text.lower() == "no"):
        diseases = tuple(name.strip() for name in diseases_text.split(",") if name.strip())

    ct_block = blob_match.group("ct").strip()
    series_ref: str | None = None
    previews: tuple[str, ...] = ()
    if ct_block:
        series_ref, _, preview_text = ct_block.partition("$")
        series_ref = series_ref.strip() or None
        previews = tuple(item.strip() for item in preview_text.split("@") if item.strip())

    entries = parse_cf_block(blob_match.group("cf"))
    return ExportRecord(
        line_number=line_number,
        source_id=source_id,
        source_number=int(id_match.group("number")),
        hospital=hospital,
        age=age,
        age_band=age_band,
        sex=sex,
        body_temperature=temperature,
        pcr_result=pcr,
        pcr_result_raw=pcr_text,
        ct_evidence=ct_evidence,
        ct_evidence_raw=ct_text,
        morbidity_form=form,
        morbidity_form_raw=form_text,
        morbidity_type=MORBIDITY_TYPE_OF_FORM[form],
        outcome=outcome,
        outcome_raw=outcome_text,
        diseases=diseases,
        ct_series_ref=series_ref,
        ct_preview_refs=previews,
        entries=tuple(entries),
        content_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        warnings=tuple(warnings),
    )
