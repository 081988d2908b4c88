"""Each DICOM file is read once and repeated header values are converted once: the results
must match what a fresh read and a fresh de-identifier give."""

from __future__ import annotations

import gc
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid

from ictcf.errors import InputError
from ictcf.imaging.deidentify import Deidentifier
from ictcf.imaging.dicom_headers import header_text, header_value, single_uid
from ictcf.imaging.dicom_series import iter_hu_slices, plan_dicom_series
from tests.imaging.deidentify_fixtures import PSEUDONYM, SECRET, make_ct, to_bytes
from tests.imaging.dicom_factory import ct_dataset, write, write_axial_series

KEYWORDS = (
    "Rows",
    "Columns",
    "BitsAllocated",
    "PixelRepresentation",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "RescaleSlope",
    "RescaleIntercept",
    "ImageType",
    "SOPClassUID",
    "InstanceNumber",
    "Modality",
    "PatientName",
    "SmallestImagePixelValue",
    "NumberOfFrames",
)


def _series_file(folder: Path, *, implicit: bool) -> Path:
    stored = np.arange(16, dtype=np.int16).reshape(4, 4)
    dataset = ct_dataset(stored, SmallestImagePixelValue=-5)
    if implicit:
        dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return write(dataset, folder / ("implicit.dcm" if implicit else "explicit.dcm"))


@pytest.mark.parametrize("implicit", [False, True])
def test_header_value_matches_dataset_get(tmp_path: Path, implicit: bool) -> None:
    path = _series_file(tmp_path, implicit=implicit)
    cached = pydicom.dcmread(path, stop_before_pixels=True)
    reference = pydicom.dcmread(path, stop_before_pixels=True)
    for keyword in KEYWORDS:
        assert header_value(cached, keyword) == reference.get(keyword), keyword
        assert header_value(cached, keyword, "absent") == reference.get(keyword, "absent")
    assert header_value(cached, 0x00280010) == reference.Rows


def test_header_value_leaves_numbers_raw(tmp_path: Path) -> None:
    header = pydicom.dcmread(_series_file(tmp_path, implicit=False), stop_before_pixels=True)
    header_value(header, "Rows")
    header_value(header, "PatientName")
    assert isinstance(header.get_item(0x00280010), RawDataElement)
    # Text depends on the character set, so it is converted in place as Dataset.get does.
    assert not isinstance(header.get_item(0x00100010), RawDataElement)


def test_header_value_unknown_keyword_falls_back() -> None:
    dataset = Dataset()
    assert header_value(dataset, "NotADicomKeyword", 7) == 7


def _count_dcmread(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    original = pydicom.dcmread

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else kwargs.get("fp"))
        return original(*args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    return calls


@pytest.mark.parametrize("compressed", [False, True])
def test_slices_reuse_planned_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compressed: bool
) -> None:
    rng = np.random.default_rng(3)
    # Stored 0-2999 with intercept -1024: every value stays above the implicit padding limit.
    volume = rng.integers(0, 3000, size=(3, 8, 8), dtype=np.int16)
    paths = write_axial_series(tmp_path, volume, [0.0, 1.0, 2.0])
    if compressed:
        for path in paths:
            dataset = pydicom.dcmread(path)
            dataset.compress(RLELossless)
            dataset.save_as(path, enforce_file_format=True)
    scan = plan_dicom_series(paths)
    (plan,) = scan.series
    calls = _count_dcmread(monkeypatch)
    slices = list(iter_hu_slices(plan))
    assert calls == [], "a planned single-frame file was parsed a second time"
    for item in slices:
        full = pydicom.dcmread(item.frame.path)
        expected = np.asarray(apply_modality_lut(full.pixel_array, full), dtype=np.float32)
        np.testing.assert_array_equal(item.hu, expected)
        assert "PixelData" not in item.header
        assert item.header.SOPInstanceUID == full.SOPInstanceUID


def test_compressed_frame_without_pixel_data_is_input_error(tmp_path: Path) -> None:
    stored = np.arange(16, dtype=np.int16).reshape(4, 4)
    dataset = ct_dataset(stored)
    dataset.compress(RLELossless)
    path = write(dataset, tmp_path / "one.dcm")
    (plan,) = plan_dicom_series([path]).series
    header_end = len(to_bytes(_without_pixels(dataset)))
    path.write_bytes(path.read_bytes()[:header_end])
    with pytest.raises(InputError, match="PixelData is missing") as caught:
        list(iter_hu_slices(plan))
    assert "one.dcm" in str(caught.value)


def _without_pixels(dataset: Dataset) -> Dataset:
    copy = pydicom.dcmread(BytesIO(to_bytes(dataset)))
    del copy.PixelData
    return copy


# ---------------------------------------------------------------------------------------
# De-identification of a series with one Deidentifier (caches warm) against a fresh one per
# header (caches cold)


def _series_headers(
    character_set: str | None, manufacturer: str, *, implicit: bool = False
) -> list[bytes]:
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    headers = []
    for index in range(4):
        dataset = make_ct(character_set=character_set)
        if implicit:
            dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        dataset.StudyInstanceUID = study
        dataset.SeriesInstanceUID = series
        dataset.FrameOfReferenceUID = frame_of_reference
        dataset.Manufacturer = manufacturer
        dataset.InstanceNumber = index + 1
        dataset.ImagePositionPatient = ["0", "0", str(index)]
        dataset.SliceLocation = str(index)
        reference = Dataset()
        reference.ReferencedSOPClassUID = dataset.SOPClassUID
        reference.ReferencedSOPInstanceUID = generate_uid()
        dataset.ReferencedImageSequence = Sequence([reference])
        headers.append(to_bytes(dataset))
    return headers


def _read_all(files: list[bytes]) -> list[Dataset]:
    return [pydicom.dcmread(BytesIO(data)) for data in files]


@pytest.mark.parametrize(
    ("character_set", "manufacturer"),
    [
        (None, "SIEMENS"),
        ("ISO_IR 100", "SIEMENS"),
        ("ISO_IR 100", "Müller Medizintechnik"),
        ("ISO_IR 192", "Müller Medizintechnik"),
    ],
)
@pytest.mark.parametrize("keep_dates", [False, True])
@pytest.mark.parametrize("implicit", [False, True])
def test_deidentify_series_equals_fresh_instances(
    character_set: str | None, manufacturer: str, keep_dates: bool, implicit: bool
) -> None:
    files = _series_headers(character_set, manufacturer, implicit=implicit)
    warm = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=keep_dates)
    warm_headers = _read_all(files)
    warm_records = [warm.deidentify(header) for header in warm_headers]
    cold_headers = _read_all(files)
    cold_records = [
        Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=keep_dates).deidentify(
            header
        )
        for header in cold_headers
    ]
    for warm_header, cold_header in zip(warm_headers, cold_headers, strict=True):
        assert to_bytes(warm_header) == to_bytes(cold_header)
        assert warm_header == cold_header
    assert warm_records == cold_records
    assert warm.report().n_datasets == len(files)


def test_deidentify_non_ascii_text_declares_utf8() -> None:
    files = _series_headers("ISO_IR 100", "Müller Medizintechnik")
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    for header in _read_all(files):
        deidentifier.deidentify(header)
        written = pydicom.dcmread(BytesIO(to_bytes(header)))
        assert written.SpecificCharacterSet == "ISO_IR 192"
        assert written.Manufacturer == "Müller Medizintechnik"


def test_deidentify_ascii_text_drops_character_set() -> None:
    files = _series_headers("ISO_IR 100", "SIEMENS")
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    for header in _read_all(files):
        deidentifier.deidentify(header)
        written = pydicom.dcmread(BytesIO(to_bytes(header)))
        assert "SpecificCharacterSet" not in written
        assert written.Manufacturer == "SIEMENS"


def test_deidentify_unreadable_value_removed_each_time() -> None:
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    for _ in range(2):
        header = make_ct()
        # (0028,0102) HighBit is US: three bytes cannot be read as 16-bit values.
        header[0x00280102] = RawDataElement(
            BaseTag(0x00280102), "US", 3, b"\x01\x02\x03", 0, False, True, True, False
        )
        record = deidentifier.deidentify(header)
        assert "HighBit" not in header
        assert record.removed.get("HighBit") == 1
        assert any("(0028,0102) HighBit" in warning for warning in record.warnings)


def test_deidentify_repeated_uids_replaced_consistently() -> None:
    files = _series_headers(None, "SIEMENS")
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    headers = _read_all(files)
    originals = [str(header.StudyInstanceUID) for header in headers]
    for header in headers:
        deidentifier.deidentify(header)
    replaced = {str(header.StudyInstanceUID) for header in headers}
    assert replaced == {deidentifier.replace_uid(originals[0])}
    assert originals[0] not in replaced
    assert all(str(header.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.2" for header in headers)


def test_deidentified_headers_share_no_mutable_values() -> None:
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    first, second = _read_all(_series_headers(None, "SIEMENS"))[:2]
    deidentifier.deidentify(first)
    deidentifier.deidentify(second)
    before = to_bytes(second)
    first.DeidentificationMethodCodeSequence[0].CodeMeaning = "changed"
    first.DeidentificationMethod = "changed"
    first.PatientIdentityRemoved = "NO"
    first.StudyInstanceUID = "1.2.3"
    first.AccessionNumber = "changed"
    first.file_meta.ImplementationVersionName = "changed"
    assert to_bytes(second) == before
    assert second.DeidentificationMethodCodeSequence[0].CodeMeaning == (
        "Basic Application Confidentiality Profile"
    )
    assert second.PatientIdentityRemoved == "YES"
    assert second.AccessionNumber == ""


@pytest.mark.parametrize("implicit", [False, True])
def test_deidentified_header_written_in_either_encoding(implicit: bool) -> None:
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=True)
    header = _read_all(_series_headers(None, "SIEMENS", implicit=implicit))[1]
    original_study = str(header.StudyInstanceUID)
    deidentifier.deidentify(header)
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        header.file_meta.TransferSyntaxUID = syntax
        written = pydicom.dcmread(BytesIO(to_bytes(header)))
        assert written.PatientIdentityRemoved == "YES"
        assert written.LongitudinalTemporalInformationModified == "MODIFIED"
        assert [item.CodeValue for item in written.DeidentificationMethodCodeSequence] == [
            "113100",
            "113107",
        ]
        assert written.StudyInstanceUID == deidentifier.replace_uid(original_study)
        assert written.AccessionNumber == ""
        assert written.PatientName == PSEUDONYM


def test_header_text_reads_ascii_raw_values_like_pydicom(tmp_path: Path) -> None:
    dataset = make_ct(character_set="ISO_IR 100")
    dataset.ConvolutionKernel = ["FC08", "AXIAL "]
    dataset.SeriesDescription = "THORAX 1.0 B70f"
    dataset.InstitutionName = "Klinikum Müller"
    raw = pydicom.dcmread(BytesIO(to_bytes(dataset)))
    reference = pydicom.dcmread(BytesIO(to_bytes(dataset)))
    assert header_text(raw, "ConvolutionKernel") == list(reference.ConvolutionKernel)
    assert header_text(raw, "SeriesDescription") == reference.SeriesDescription
    assert header_text(raw, "InstitutionName") == "Klinikum Müller"
    assert header_text(raw, "StudyComments", "absent") == "absent"
    assert isinstance(raw.get_item(0x0008103E), RawDataElement)


def test_single_uid_matches_converted_value() -> None:
    dataset = make_ct()
    raw = pydicom.dcmread(BytesIO(to_bytes(dataset)))
    assert single_uid(raw, "SOPInstanceUID") == str(dataset.SOPInstanceUID)
    assert isinstance(raw.get_item(0x00080018), RawDataElement)
    assert single_uid(raw, "IrradiationEventUID") == ""
    assert single_uid(dataset, "StudyInstanceUID") == str(dataset.StudyInstanceUID)


@pytest.mark.parametrize("enabled", [True, False])
def test_planning_restores_the_garbage_collector(tmp_path: Path, enabled: bool) -> None:
    volume = np.zeros((3, 4, 4), dtype=np.int16)
    files = write_axial_series(tmp_path, volume, [0.0, 1.0, 2.0])
    was_enabled = gc.isenabled()
    try:
        if enabled:
            gc.enable()
        else:
            gc.disable()
        scan = plan_dicom_series(files)
        assert gc.isenabled() is enabled
    finally:
        if was_enabled:
            gc.enable()
        else:
            gc.disable()
    assert len(scan.series) == 1
