"""Parsing of export lines: real lines of the shared export and hand-built bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ictcf.db.enums import (
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
from ictcf.ingest.ictcf_export import (
    decode_export,
    parse_export_line,
    parse_range_and_unit,
    parse_value,
    repair_mojibake,
)
from tests.ingest.conftest import cf_block, make_line


@pytest.fixture(scope="module")
def real_lines(cohort1_export: Path) -> dict[int, str]:
    return dict(decode_export(cohort1_export.read_bytes(), path=cohort1_export))


def parse(line: str, number: int = 1):  # type: ignore[no-untyped-def]
    return parse_export_line(line, line_number=number, path="export.txt")


# Real lines of the shared cohort-1 export.


def test_real_line_one(real_lines: dict[int, str]) -> None:
    record = parse(real_lines[1])
    assert record.source_id == "Patient 1"
    assert record.source_number == 1
    assert record.age == 81
    assert record.age_band == "60"
    assert record.sex is Sex.MALE
    assert record.body_temperature == 36.6
    assert record.diseases == ("Hypertension", "Thyroidectomy")
    assert record.hospital == "Union"
    assert record.morbidity_form is MorbidityForm.REGULAR
    assert record.morbidity_type is MorbidityType.TYPE_I
    assert record.outcome is Outcome.CURED
    assert record.ct_series_ref == "P2/2020_2_17_9_01_22"
    assert len(record.ct_preview_refs) == 5
    assert record.ct_preview_refs[0] == "P2/2020_2_17_9_01_22/IMG-0001-00088.jpg"


def test_real_line_one_cf_entries(real_lines: dict[int, str]) -> None:
    entries = {entry.abbreviation: entry for entry in parse(real_lines[1]).entries}
    lymphocytes = entries["LY"]
    assert lymphocytes.value == 1.0
    assert lymphocytes.flag_given is Flag.LOW
    assert (lymphocytes.range_low, lymphocytes.range_high) == (1.1, 3.2)
    assert lymphocytes.unit == "G/L"
    assert lymphocytes.panel == "Routine Blood Test"
    procalcitonin = entries["PCT"]
    assert procalcitonin.value == 0.13
    assert procalcitonin.censoring is Censoring.BELOW
    assert procalcitonin.range_high == 0.5
    assert procalcitonin.range_low is None
    assert procalcitonin.unit == "ng/mL"
    assert entries["CREA"].unit == "µmol/L"
    assert entries["GGT"].full_name == "γ-glutamyltransferase"
    assert entries["TP"].full_name == "Serum total protein"
    assert entries["INR"].unit is None
    assert entries["DD"].unit == "mg/L FEU"


def test_real_line_liyuan_units(real_lines: dict[int, str]) -> None:
    record = parse(real_lines[778], 778)
    assert record.source_id == "Patient 778"
    assert record.hospital == "Liyuan"
    assert record.diseases == ()
    assert record.body_temperature is None
    entries = {entry.abbreviation: entry for entry in record.entries}
    assert (entries["PA"].value, entries["PA"].unit, entries["PA"].range_text) == (
        96.5,
        "mg/L",
        "180-350",
    )
    assert entries["PA"].flag_given is Flag.LOW
    assert entries["PDW"].unit == "fL"
    assert entries["HC"].unit == "µmol/L"
    assert (entries["ALB"].range_low, entries["ALB"].range_high) == (40.0, 55.0)


def test_real_line_without_ct(real_lines: dict[int, str]) -> None:
    record = parse(real_lines[7], 7)
    assert record.ct_series_ref is None
    assert record.ct_preview_refs == ()
    assert record.ct_evidence is CTEvidence.NOT_AVAILABLE
    assert record.ct_evidence_raw == "N/A"
    assert len(record.entries) == 50


def test_real_line_confirmed_later(real_lines: dict[int, str]) -> None:
    record = parse(real_lines[24], 24)
    assert record.pcr_result is PCRResult.NEGATIVE_POSITIVE_LATER
    assert record.morbidity_form is MorbidityForm.SUSPECTED_CONFIRMED_LATER
    assert record.morbidity_type is MorbidityType.SUSPECTED
    assert record.age_band == "40"
    assert record.body_temperature == 38.6


def test_real_line_without_cf_values(real_lines: dict[int, str]) -> None:
    record = parse(real_lines[572], 572)
    assert record.entries == ()
    assert record.morbidity_form is MorbidityForm.CONTROL


def test_real_line_censored_above(real_lines: dict[int, str]) -> None:
    entries = {entry.abbreviation: entry for entry in parse(real_lines[21], 21).entries}
    d_dimer = entries["DD"]
    assert (d_dimer.value, d_dimer.censoring, d_dimer.range_high) == (8.0, Censoring.ABOVE, 0.5)
    assert d_dimer.unit == "mg/L FEU"


def test_real_lines_detailed_strings(real_lines: dict[int, str]) -> None:
    records = [parse(text, number) for number, text in real_lines.items()]
    forms = {record.morbidity_form for record in records}
    assert forms == set(MorbidityForm) - {MorbidityForm.UNKNOWN}
    later = [r for r in records if r.pcr_result is PCRResult.NEGATIVE_POSITIVE_LATER]
    assert len(later) == 51
    assert all(r.pcr_result_raw == "Negative; Positive (Confirmed later)" for r in later)
    cap = [r for r in records if r.morbidity_form is MorbidityForm.CONTROL_CAP]
    assert len(cap) == 112
    no_ct = [r for r in records if r.ct_series_ref is None]
    assert all(r.ct_preview_refs == () for r in no_ct)
    assert {r.ct_evidence for r in no_ct} == {CTEvidence.NOT_AVAILABLE}


def test_real_lines_morbidity_type_counts(real_lines: dict[int, str]) -> None:
    records = [parse(text, number) for number, text in real_lines.items()]
    counts = {kind: sum(r.morbidity_type is kind for r in records) for kind in MorbidityType}
    assert counts[MorbidityType.CONTROL] == 222
    assert counts[MorbidityType.TYPE_I] == 438
    assert counts[MorbidityType.TYPE_II] == 211
    assert counts[MorbidityType.SUSPECTED] == 299
    assert counts[MorbidityType.UNKNOWN] == 0


def test_real_lines_have_no_mojibake_left(real_lines: dict[int, str]) -> None:
    text = "".join(real_lines.values())
    for garbled in ("渭", "纬", "伪", "尾", "聽", "\u00a0"):
        assert garbled not in text


# Mojibake repair and value parsing.


@pytest.mark.parametrize(
    ("garbled", "repaired"),
    [
        ("44.0-133.0 渭mol/L", "44.0-133.0 \u03bcmol/L"),  # Greek mu; units normalise it
        ("纬-glutamyltransferase", "γ-glutamyltransferase"),
        ("TNF-伪", "TNF-α"),
        ("Fungi (1-3)-尾-D-glucan", "Fungi (1-3)-β-D-glucan"),
        ("Serum聽total聽protein", "Serum total protein"),
        ("病人编号", "病人编号"),
    ],
)
def test_repair_mojibake(garbled: str, repaired: str) -> None:
    assert repair_mojibake(garbled) == repaired


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.00&#8595;", (1.0, None, Flag.LOW)),
        ("15.40&#8593;", (15.4, None, Flag.HIGH)),
        ("<0.13", (0.13, Censoring.BELOW, None)),
        (">8.00", (8.0, Censoring.ABOVE, None)),
        ("<0.05", (0.05, Censoring.BELOW, None)),
        ("-0.17&#8595;", (-0.17, None, Flag.LOW)),
        ("12", (12.0, None, None)),
        ("N/A", (None, None, None)),
        ("NA", (None, None, None)),
        ("n/a", (None, None, None)),
        ("--", (None, None, None)),
        ("-", (None, None, None)),
        ("", (None, None, None)),
    ],
)
def test_parse_value(raw: str, expected: tuple[object, object, object]) -> None:
    assert parse_value(raw) == expected


def test_parse_value_rejects_decimal_comma() -> None:
    with pytest.raises(ValueError, match=r"'0,02' uses a decimal comma"):
        parse_value("0,02")


def test_parse_value_rejects_text() -> None:
    with pytest.raises(ValueError, match=r"value 'abc' is not a number"):
        parse_value("abc")


def test_parse_value_rejects_unknown_entity() -> None:
    with pytest.raises(ValueError, match="unknown HTML entity"):
        parse_value("1.0&#9999;")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.1-3.2 G/L", ("1.1-3.2", 1.1, 3.2, "G/L")),
        ("<0.06 G/L", ("<0.06", None, 0.06, "G/L")),
        (">60 mL/min", (">60", 60.0, None, "mL/min")),
        ("0.80-1.31", ("0.80-1.31", 0.8, 1.31, None)),
        ("0-15.0 umol/l", ("0-15.0", 0.0, 15.0, "µmol/L")),
        ("<0.5 mg/L FEU", ("<0.5", None, 0.5, "mg/L FEU")),
        ("N/A", (None, None, None, None)),
    ],
)
def test_parse_range_and_unit(text: str, expected: tuple[object, ...]) -> None:
    assert parse_range_and_unit(text) == expected


def test_parse_range_rejects_reversed_limits() -> None:
    with pytest.raises(ValueError, match="lower limit above its upper limit"):
        parse_range_and_unit("5-1 g/L")


# Synthetic lines.


def test_synthetic_line_parses() -> None:
    record = parse(make_line(7))
    assert record.source_number == 7
    assert [entry.abbreviation for entry in record.entries] == [
        "LY",
        "WBC",
        "PCT",
        "ALB",
        "CREA",
        "GGT",
    ]
    assert record.warnings == ()


def test_missing_markers_in_patient_fields() -> None:
    record = parse(make_line(age="N/A", band="", gender="--", temperature="n/a", diseases="No"))
    assert record.age is None
    assert record.age_band is None
    assert record.sex is Sex.UNKNOWN
    assert record.body_temperature is None
    assert record.diseases == ()


def test_empty_ct_block_means_no_ct() -> None:
    record = parse(make_line(ct="N/A", ct_block=""))
    assert record.ct_series_ref is None
    assert record.ct_preview_refs == ()
    assert record.ct_evidence is CTEvidence.NOT_AVAILABLE


def test_empty_cf_block_gives_no_entries() -> None:
    assert parse(make_line(cf="$#$Basic Information")).entries == ()
    assert parse(make_line(cf="")).entries == ()


def test_detailed_strings_must_agree_with_header() -> None:
    record = parse(
        make_line(
            pcr_header="Negative",
            pcr="Negative; Positive (Confirmed later)",
            form_header="Suspected",
            form="Suspected (COVID-19-confirmed later)",
        )
    )
    assert record.pcr_result is PCRResult.NEGATIVE_POSITIVE_LATER
    assert record.morbidity_form is MorbidityForm.SUSPECTED_CONFIRMED_LATER
    assert record.morbidity_form_raw == "Suspected (COVID-19-confirmed later)"
    with pytest.raises(
        InputError, match=r"line 1: morbidity form differs between the header \('Severe'\)"
    ):
        parse(make_line(form_header="Severe", form="Control (Community-acquired pneumonia)"))
    with pytest.raises(InputError, match=r"PCR result differs between the header \('Positive'\)"):
        parse(make_line(pcr_header="Positive", pcr="Negative; Positive (Confirmed later)"))


def test_age_band_mismatch_is_a_warning() -> None:
    record = parse(make_line(age="30", band="60"))
    assert record.warnings == ("age band '60' does not match age 30",)


def test_implausible_temperature_is_a_warning() -> None:
    record = parse(make_line(temperature="3.66"))
    assert record.body_temperature == 3.66
    assert "body temperature 3.66 °C is outside" in record.warnings[0]


# Bad lines: each raises InputError naming file, line and the offending text.


def test_truncated_line() -> None:
    line = make_line()
    with pytest.raises(
        InputError,
        match=r"export.txt, line 3: patient blob is malformed, missing or unclosed block\(s\): &cf&",
    ):
        parse(line[: len(line) - 40], 3)


def test_missing_cf_block() -> None:
    line = make_line().replace("&cf&", "&xx&")
    with pytest.raises(InputError, match=r"missing or unclosed block\(s\): &cf&"):
        parse(line)


def test_wrong_number_of_tab_fields() -> None:
    with pytest.raises(InputError, match="expected 10 tab-separated fields, found 11"):
        parse(make_line() + "\textra")
    with pytest.raises(InputError, match="expected 10 tab-separated fields, found 1"):
        parse(make_line().replace("\t", " "))


def test_unknown_morbidity_form() -> None:
    with pytest.raises(InputError, match=r"unknown morbidity form 'Moderate'; expected one of"):
        parse(make_line(form_header="Moderate", form="Moderate"))


def test_unknown_outcome() -> None:
    with pytest.raises(InputError, match=r"unknown outcome 'Transferred'"):
        parse(make_line(outcome="Transferred"))


def test_unknown_pcr_result() -> None:
    with pytest.raises(InputError, match=r"unknown PCR result 'Weak'"):
        parse(make_line(pcr_header="Weak", pcr="Weak"))


def test_invalid_patient_id() -> None:
    with pytest.raises(InputError, match=r"patient id 'Pt 1' is not of the form 'Patient N'"):
        parse(make_line().replace("Patient 1", "Pt 1", 1))


def test_value_abc() -> None:
    cf = cf_block([("Inflammation", ["C-reactive protein@CRP@abc@<8.00 mg/L"])])
    with pytest.raises(InputError, match=r"line 1: CF 'CRP': value 'abc' is not a number"):
        parse(make_line(cf=cf))


def test_decimal_comma_value_is_rejected() -> None:
    cf = cf_block([("Inflammation", ["Procalcitonin@PCT@0,02@<0.5 ng/ml"])])
    with pytest.raises(InputError, match=r"CF 'PCT': value '0,02' uses a decimal comma"):
        parse(make_line(cf=cf))


def test_entry_with_wrong_part_count() -> None:
    cf = cf_block([("Inflammation", ["C-reactive protein@CRP@5.0"])])
    with pytest.raises(InputError, match=r"expected 4 '@'-separated parts .*, found 3"):
        parse(make_line(cf=cf))


def test_duplicate_cf_in_line() -> None:
    cf = cf_block([("Inflammation", ["C-reactive protein@CRP@5.0@<8 mg/L"] * 2)])
    with pytest.raises(InputError, match=r"CF 'CRP' appears twice"):
        parse(make_line(cf=cf))


def test_unparseable_range() -> None:
    cf = cf_block([("Inflammation", ["C-reactive protein@CRP@5.0@normal mg/L"])])
    with pytest.raises(
        InputError, match=r"CF 'CRP': normal range 'normal mg/L' is not of the form"
    ):
        parse(make_line(cf=cf))


# Whole-file decoding.


def test_decode_rejects_latin1_bytes() -> None:
    data = make_line().encode("utf-8") + b"\r\n" + "Patient 2\tâge".encode("latin-1")
    with pytest.raises(
        InputError, match=r"export.txt, line 2: invalid UTF-8 byte 0xe2 at byte offset \d+"
    ):
        decode_export(data, path="export.txt")


def test_decode_rejects_utf16() -> None:
    with pytest.raises(InputError, match="UTF-16 byte order mark"):
        decode_export(make_line().encode("utf-16"), path="export.txt")
    with pytest.raises(InputError, match=r"NUL byte at byte offset 1"):
        decode_export(make_line().encode("utf-16-le"), path="export.txt")


def test_decode_rejects_empty_file() -> None:
    with pytest.raises(InputError, match="contains no patient lines"):
        decode_export(b"", path="export.txt")
    with pytest.raises(InputError, match="contains no patient lines"):
        decode_export(b"\r\n \r\n", path="export.txt")


def test_decode_accepts_bom_and_lf() -> None:
    data = b"\xef\xbb\xbf" + (make_line(1) + "\n\n" + make_line(2) + "\n").encode("utf-8")
    lines = decode_export(data)
    assert [number for number, _ in lines] == [1, 3]
    assert lines[0][1].startswith("Patient 1\t")


@given(
    number=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    decimals=st.integers(min_value=0, max_value=4),
    prefix=st.sampled_from(["", "<", ">"]),
    arrow=st.sampled_from(["", "&#8595;", "&#8593;"]),
)
def test_parse_value_round_trip(number: float, decimals: int, prefix: str, arrow: str) -> None:
    text = f"{number:.{decimals}f}"
    value, censoring, flag = parse_value(prefix + text + arrow)
    assert value == float(text)
    assert censoring == (Censoring(prefix) if prefix else None)
    assert flag == {"": None, "&#8595;": Flag.LOW, "&#8593;": Flag.HIGH}[arrow]
