"""Longitudinal dates kept by a per-patient shift (Modified Dates Option) and date parsing."""

from __future__ import annotations

from datetime import datetime, timedelta
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_dict

from ictcf.imaging.annex_e import BASIC_PROFILE
from ictcf.imaging.date_shift import (
    shift_date,
    shift_date_and_time,
    shift_datetime,
    shift_time,
)
from ictcf.imaging.deidentify import (
    DATE_SHIFT_MAX_DAYS,
    DATE_SHIFT_MIN_DAYS,
    Deidentifier,
)
from tests.imaging.deidentify_fixtures import (
    PSEUDONYM,
    SECRET,
    assert_absent,
    item,
    make_ct,
    reread,
    sequence,
    to_bytes,
)

OFFSET = timedelta(days=-400, seconds=3600 * 15)


def _instant(date_text: str, time_text: str) -> datetime:
    whole, _, fraction = time_text.partition(".")
    parsed = datetime.strptime(date_text + whole.ljust(6, "0"), "%Y%m%d%H%M%S")
    return parsed + timedelta(microseconds=int(fraction.ljust(6, "0")) if fraction else 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200526", "20190422"),
        ("2020.05.26", "20190422"),
        ("20200229", "20190125"),
        ("2020-05-26", None),
        ("20201340", None),
        ("", None),
    ],
)
def test_shift_date(value: str, expected: str | None) -> None:
    assert shift_date(value, OFFSET) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", "01"),
        ("1015", "0115"),
        ("101530", "011530"),
        ("101530.12", "011530.12"),
        ("101530.123456", "011530.123456"),
        ("10:15:30", "011530"),
        ("235960", "145959"),
        ("2515", None),
        ("1015.5", None),
    ],
)
def test_shift_time_keeps_precision(value: str, expected: str | None) -> None:
    assert shift_time(value, OFFSET) == expected


def test_shift_date_and_time_crosses_midnight() -> None:
    assert shift_date_and_time("20200526", "101530", OFFSET) == ("20190423", "011530")
    assert shift_date_and_time("20200526", "081530", OFFSET) == ("20190422", "231530")
    assert shift_date_and_time("20200526", "99", OFFSET) is None
    assert shift_date_and_time("00010101", "000000", timedelta(days=-1)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200526101530", "20190423011530"),
        ("20200526101530.5+0800", "20190423011530.5+0800"),
        ("202005", "201903"),
        ("2020", "2018"),
        ("20200526T1015", None),
        ("2020.5", None),
    ],
)
def test_shift_datetime(value: str, expected: str | None) -> None:
    assert shift_datetime(value, OFFSET) == expected


def test_dates_shift_consistently() -> None:
    dataset = make_ct()
    original = {
        "study": _instant(dataset.StudyDate, dataset.StudyTime),
        "series": _instant(dataset.SeriesDate, dataset.SeriesTime),
        "content": _instant(dataset.ContentDate, dataset.ContentTime),
    }
    dataset.ReferencedSeriesSequence = sequence(
        item(
            SeriesInstanceUID="1.2.3.4",
            ReferencedInstanceSequence=sequence(
                item(InstanceCreationDate="20200526", InstanceCreationTime="101530.123")
            ),
        )
    )

    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=True).deidentify(
        dataset
    )
    data = to_bytes(dataset)
    assert_absent(data, ["20200526", "19600412", "101530"])
    result = dcmread(BytesIO(data))

    shift = _instant(result.StudyDate, result.StudyTime) - original["study"]
    assert -timedelta(days=DATE_SHIFT_MAX_DAYS) <= shift <= -timedelta(days=DATE_SHIFT_MIN_DAYS - 1)
    assert _instant(result.SeriesDate, result.SeriesTime) - original["series"] == shift
    assert _instant(result.ContentDate, result.ContentTime) - original["content"] == shift
    acquisition = datetime.strptime(result.AcquisitionDateTime, "%Y%m%d%H%M%S.%f")
    assert acquisition - datetime(2020, 5, 26, 10, 20, 10, 500000) == shift
    nested = result.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    nested_instant = _instant(nested.InstanceCreationDate, nested.InstanceCreationTime)
    assert nested_instant - original["study"] == shift

    assert result.PatientBirthDate == ""
    assert result.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [code.CodeValue for code in result.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107"]
    assert record.replaced["StudyDate"] == 1


def test_shift_depends_on_pseudonym() -> None:
    shifted = {}
    for pseudonym in ("P1", "P1", "P2"):
        dataset = make_ct()
        Deidentifier(patient_pseudonym=pseudonym, secret=SECRET, keep_dates=True).deidentify(
            dataset
        )
        shifted.setdefault(pseudonym, set()).add(reread(dataset).StudyDate)
    assert len(shifted["P1"]) == 1
    assert shifted["P1"] != shifted["P2"]


@pytest.mark.parametrize("keep_dates", [False, True])
def test_multivalued_calibration_dates(keep_dates: bool) -> None:
    dataset = make_ct()
    dataset.DateOfLastCalibration = ["19900101", "19900101"]
    dataset.TimeOfLastCalibration = ["010000.000000", "010000.000000"]

    Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=keep_dates).deidentify(
        dataset
    )
    result = reread(dataset)
    assert_absent(to_bytes(dataset), ["19900101", "010000.000000"])
    if not keep_dates:
        assert "DateOfLastCalibration" not in result
        assert "TimeOfLastCalibration" not in result
        return

    dates = list(result.DateOfLastCalibration)
    times = list(result.TimeOfLastCalibration)
    assert len(dates) == len(times) == 2
    assert dates[0] == dates[1]
    assert times[0] == times[1]
    study_shift = _instant(result.StudyDate, result.StudyTime) - _instant("20200526", "101530.123")
    calibration_shift = _instant(dates[0], times[0]) - _instant("19900101", "010000.000000")
    assert calibration_shift == study_shift


def test_invalid_date_emptied_with_warning() -> None:
    dataset = make_ct()
    with pytest.warns(UserWarning, match="Invalid value for VR DA"):
        dataset.StudyDate = "26/05/2020"
    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=True).deidentify(
        dataset
    )
    result = reread(dataset)
    assert result.StudyDate == ""
    assert any("(0008,0020) StudyDate" in warning for warning in record.warnings)
    assert not any("26/05" in warning for warning in record.warnings)


def test_unlisted_date_removed_or_shifted() -> None:
    unlisted = next(
        keyword
        for keyword, tag in sorted(keyword_dict.items())
        if tag not in BASIC_PROFILE
        and tag >> 16 not in (0x0002, 0x0010)
        and dictionary_VR(tag) == "DA"
        and "Retired" not in keyword
    )
    for keep_dates in (False, True):
        dataset = make_ct()
        setattr(dataset, unlisted, "20200526")
        Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=keep_dates).deidentify(
            dataset
        )
        result = reread(dataset)
        assert_absent(to_bytes(dataset), ["20200526"])
        if keep_dates:
            assert len(getattr(result, unlisted)) == 8
        else:
            assert unlisted not in result


def test_vocabulary_versions_not_shifted() -> None:
    dataset = make_ct()
    dataset.AnatomicRegionSequence = sequence(
        item(
            CodeValue="39607008",
            CodingSchemeDesignator="SCT",
            CodeMeaning="Lung",
            ContextGroupVersion="20200526",
        )
    )
    Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=True).deidentify(dataset)
    region = reread(dataset).AnatomicRegionSequence[0]
    assert region.ContextGroupVersion == "20200526"
    assert region.CodeMeaning == "Lung"
