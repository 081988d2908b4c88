"""Malformed and hostile DICOM headers: each file is excluded with a reason, never a traceback.

Every file here is built with pydicom (see ``tests.imaging.dicom_factory``); some are then
patched at the byte level to produce encodings that pydicom refuses to write. The marker
``19450317`` stands for a date or ID in a header value and must never reach a reason.
"""

from __future__ import annotations

import functools
import logging
import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag

from ictcf.cli.main import cli
from ictcf.db import open_database
from ictcf.errors import InputError
from ictcf.imaging import dicom_headers, dicom_series
from ictcf.imaging.dicom_headers import LONG_LENGTH_VRS, describe_error, redact_quoted_values
from ictcf.imaging.dicom_series import DicomScan, iter_hu_slices, plan_dicom_series
from tests.imaging.dicom_factory import ct_dataset, write
from tests.imaging.ingest_fixtures import database_text

#: Digits that stand for a birth date or patient ID hidden in a header value.
MARKER = "19450317"
#: Slice step (mm) of the small series built here.
STEP_MM = 2.0


def _set_raw(dataset: Dataset, tag: int, vr: str, value: bytes) -> None:
    """Store an element as raw bytes, so that pydicom writes it without validating it."""
    dataset._dict[BaseTag(tag)] = RawDataElement(
        BaseTag(tag), vr, len(value), value, 0, False, True
    )


def _slice(index: int) -> Dataset:
    stored = np.full((8, 8), 100 * index, dtype=np.int16)
    return ct_dataset(stored, position=(0.0, 0.0, STEP_MM * index), series_uid=_SERIES_UID)


_SERIES_UID = pydicom.uid.generate_uid()

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR IS:UserWarning")


def _plan_with_bad_slice(
    tmp_path: Path,
    mutate: Callable[[Dataset], None] | None = None,
    patch: Callable[[bytes], bytes] | None = None,
) -> tuple[DicomScan, Path]:
    """Write two good slices and a third one changed by ``mutate`` and ``patch``; plan them."""
    paths = [write(_slice(index), tmp_path / f"good{index}.dcm") for index in range(2)]
    bad = _slice(2)
    if mutate is not None:
        mutate(bad)
    bad_path = write(bad, tmp_path / "bad.dcm")
    if patch is not None:
        bad_path.write_bytes(patch(bad_path.read_bytes()))
    scan = plan_dicom_series([*paths, bad_path])
    return scan, bad_path


def _only_exclusion(scan: DicomScan, bad_path: Path) -> str:
    """Check that the good slices form one volume and the bad file alone is excluded."""
    assert len(scan.series) == 1
    assert len(scan.series[0].frames) == 2
    assert [item.path for item in scan.excluded] == [bad_path]
    reason = scan.excluded[0].reason
    assert MARKER not in reason
    assert "Traceback" not in reason
    return reason


def _patch_short_length(data: bytes, tag: int, length: int) -> bytes:
    """Set the 2-byte length of an explicit VR element with a short header."""
    position = data.index(struct.pack("<HH", tag >> 16, tag & 0xFFFF), 132)
    return data[: position + 6] + struct.pack("<H", length) + data[position + 8 :]


# --- values that cannot be converted --------------------------------------------------------


def test_acquisition_number_not_integer(tmp_path: Path) -> None:
    scan, bad = _plan_with_bad_slice(
        tmp_path, lambda ds: _set_raw(ds, 0x00200012, "IS", f"X{MARKER}".encode() + b" ")
    )
    assert _only_exclusion(scan, bad) == (
        "invalid (0020,0012) AcquisitionNumber: it must be one integer"
    )


def test_rows_with_three_byte_value(tmp_path: Path) -> None:
    scan, bad = _plan_with_bad_slice(
        tmp_path, patch=lambda data: _patch_short_length(data, 0x00280010, 3)
    )
    assert "invalid (0028,0010) Rows" in _only_exclusion(scan, bad)


def test_rows_with_length_ffff(tmp_path: Path) -> None:
    scan, bad = _plan_with_bad_slice(
        tmp_path, patch=lambda data: _patch_short_length(data, 0x00280010, 0xFFFF)
    )
    assert "invalid (0028,0010) Rows" in _only_exclusion(scan, bad)


def test_samples_per_pixel_zero(tmp_path: Path) -> None:
    scan, bad = _plan_with_bad_slice(tmp_path, lambda ds: setattr(ds, "SamplesPerPixel", 0))
    assert "(0028,0002) SamplesPerPixel" in _only_exclusion(scan, bad)


def test_conversion_error_reason_has_no_value(tmp_path: Path) -> None:
    """A NumberOfFrames that pydicom cannot convert: the reason keeps no quoted value."""
    scan, bad = _plan_with_bad_slice(
        tmp_path, lambda ds: _set_raw(ds, 0x00280008, "IS", f"X{MARKER}".encode() + b" ")
    )
    reason = _only_exclusion(scan, bad)
    assert reason.startswith("invalid DICOM header (")
    assert "<value>" in reason


# --- geometry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"nan\\0\\0 ", "(0020,0032) ImagePositionPatient is not finite"),
        (b"0\\0\\inf ", "(0020,0032) ImagePositionPatient is not finite"),
        (b"0\\0\\1e308 ", "(0020,0032) ImagePositionPatient is not finite"),
    ],
)
def test_non_finite_position_excluded(tmp_path: Path, raw: bytes, message: str) -> None:
    scan, bad = _plan_with_bad_slice(tmp_path, lambda ds: _set_raw(ds, 0x00200032, "DS", raw))
    reason = _only_exclusion(scan, bad)
    assert reason.startswith(f"no geometry: {message}")
    assert all(math.isfinite(v) for v in scan.series[0].geometry.origin_mm)


@pytest.mark.parametrize(
    "raw",
    [
        b"0\\0\\0\\0\\0\\0 ",
        b"nan\\0\\0\\0\\1\\0 ",
        b"1\\0\\0\\0.7\\0.7\\0 ",
        b"2\\0\\0\\0\\2\\0 ",
    ],
    ids=["zeros", "nan", "not-perpendicular", "not-unit"],
)
def test_degenerate_orientation_excluded(tmp_path: Path, raw: bytes) -> None:
    scan, bad = _plan_with_bad_slice(tmp_path, lambda ds: _set_raw(ds, 0x00200037, "DS", raw))
    assert _only_exclusion(scan, bad).startswith(
        "no geometry: (0020,0037) ImageOrientationPatient is degenerate"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"1 ", "(0028,0030) PixelSpacing is missing, not numeric or not 2 values"),
        (b"inf\\1 ", "(0028,0030) PixelSpacing is not finite and positive"),
        (b"0\\1 ", "(0028,0030) PixelSpacing is not finite and positive"),
        (b"nan\\1 ", "(0028,0030) PixelSpacing is not finite and positive"),
    ],
)
def test_bad_pixel_spacing_excluded(tmp_path: Path, raw: bytes, message: str) -> None:
    scan, bad = _plan_with_bad_slice(tmp_path, lambda ds: _set_raw(ds, 0x00280030, "DS", raw))
    assert _only_exclusion(scan, bad) == f"no geometry: {message}"


def test_empty_per_frame_sequence(tmp_path: Path) -> None:
    scan, bad = _plan_with_bad_slice(
        tmp_path, lambda ds: ds.add_new(0x52009230, "SQ", DicomSequence([]))
    )
    assert _only_exclusion(scan, bad).startswith(
        "(5200,9230) PerFrameFunctionalGroupsSequence has 0 items for 1 frames"
    )


# --- encoding -------------------------------------------------------------------------------


def test_transfer_syntax_not_a_transfer_syntax(tmp_path: Path) -> None:
    fake = f"1.2.{MARKER}.5551234".encode()
    explicit = str(pydicom.uid.ExplicitVRLittleEndian).encode() + b"\x00"
    assert len(fake) == len(explicit)
    scan, bad = _plan_with_bad_slice(tmp_path, patch=lambda data: data.replace(explicit, fake))
    assert _only_exclusion(scan, bad).startswith(
        "(0002,0010) TransferSyntaxUID is not a known transfer syntax"
    )


def test_native_pixel_data_undefined_length(tmp_path: Path) -> None:
    def undefined_length(data: bytes) -> bytes:
        position = data.rindex(b"\xe0\x7f\x10\x00OW")
        return data[: position + 8] + b"\xff\xff\xff\xff" + data[position + 12 :]

    scan, bad = _plan_with_bad_slice(tmp_path, patch=undefined_length)
    assert _only_exclusion(scan, bad).startswith("(7FE0,0010) PixelData has undefined length")
    assert sum(1 for _ in iter_hu_slices(scan.series[0])) == 2


def _nested_sequences(depth: int) -> bytes:
    """Explicit VR little endian (0008,9215) sequences nested ``depth`` deep, undefined lengths."""
    inner = struct.pack("<HH2sH", 0x0008, 0x1070, b"PN", 8) + MARKER.encode()
    for _ in range(depth):
        item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner
        item += struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
        inner = struct.pack("<HH2sHI", 0x0008, 0x9215, b"SQ", 0, 0xFFFFFFFF) + item
        inner += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return inner


def test_sequences_nested_past_recursion_limit(tmp_path: Path) -> None:
    def insert_nested(data: bytes) -> bytes:
        # (0010,0010) PatientName is the first element after (0008,9215) in tag order.
        position = data.index(b"\x10\x00\x10\x00PN", 132)
        return data[:position] + _nested_sequences(3000) + data[position:]

    scan, bad = _plan_with_bad_slice(tmp_path, patch=insert_nested)
    assert _only_exclusion(scan, bad).startswith("unreadable DICOM header (RecursionError")


def test_unknown_sop_class_not_quoted(tmp_path: Path) -> None:
    dataset = ct_dataset(np.zeros((8, 8), dtype=np.int16))
    dataset.SOPClassUID = f"1.2.3.{MARKER}.9"
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    del dataset.Rows, dataset.Columns, dataset.PixelData
    path = write(dataset, tmp_path / "object.dcm")
    reason = plan_dicom_series([path]).excluded[0].reason
    assert reason.startswith("not an image (an unrecognised SOP class)")
    assert MARKER not in reason


def test_registered_sop_class_named(tmp_path: Path) -> None:
    dataset = ct_dataset(np.zeros((8, 8), dtype=np.int16))
    del dataset.Rows, dataset.Columns, dataset.PixelData
    path = write(dataset, tmp_path / "object.dcm")
    reason = plan_dicom_series([path]).excluded[0].reason
    assert reason.startswith("not an image (CT Image Storage)")


def test_excluded_file_carries_series_uid(tmp_path: Path) -> None:
    scan, _ = _plan_with_bad_slice(tmp_path, lambda ds: _set_raw(ds, 0x00200032, "DS", b"nan"))
    assert scan.excluded[0].series_instance_uid == _SERIES_UID


# --- deflate bombs --------------------------------------------------------------------------

#: Inflated-size limit (bytes) used in these tests instead of the real one, to keep them fast.
_TEST_INFLATE_LIMIT = 1024 * 1024


def _explicit_element(tag: int, vr: bytes, value: bytes) -> bytes:
    if vr in LONG_LENGTH_VRS:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _deflated_bomb(
    path: Path, *, padding: int, stated_length: int | None = None, extra_meta: bytes = b""
) -> Path:
    """Write a deflated file whose body inflates to 4 MiB.

    (0002,0001) FileMetaInformationVersion carries ``padding`` extra bytes, and ``extra_meta``
    ends the File Meta group. ``stated_length`` overrides the group length.
    """
    meta = b"".join(
        [
            _explicit_element(0x00020001, b"OB", b"\x00\x01" + bytes(padding)),
            _explicit_element(0x00020002, b"UI", str(pydicom.uid.CTImageStorage).encode()),
            _explicit_element(0x00020003, b"UI", b"1.2.3.4\x00"),
            _explicit_element(
                0x00020010, b"UI", str(pydicom.uid.DeflatedExplicitVRLittleEndian).encode()
            ),
            extra_meta,
        ]
    )
    length = len(meta) if stated_length is None else stated_length
    group_length = _explicit_element(0x00020000, b"UL", struct.pack("<I", length))
    size = 4 * 1024 * 1024
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(_explicit_element(0x00080060, b"CS", b"CT"))
    body += compressor.compress(struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, size))
    body += compressor.compress(bytes(size)) + compressor.flush()
    path.write_bytes(bytes(128) + b"DICM" + group_length + meta + body)
    return path


@pytest.fixture
def small_inflate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        dicom_series,
        "check_deflated_size",
        functools.partial(dicom_series.check_deflated_size, limit_bytes=_TEST_INFLATE_LIMIT),
    )


@pytest.mark.usefixtures("small_inflate_limit")
@pytest.mark.parametrize(
    ("padding", "stated_length"),
    [(0, None), (8192, None), (8192, 40), (8192, 2**31)],
    ids=["plain", "padded-meta", "short-group-length", "huge-group-length"],
)
def test_deflate_bomb_found_behind_padding(
    tmp_path: Path, padding: int, stated_length: int | None
) -> None:
    bomb = _deflated_bomb(tmp_path / "bomb.dcm", padding=padding, stated_length=stated_length)
    scan = plan_dicom_series([bomb])
    assert scan.series == []
    assert len(scan.excluded) == 1
    assert "possible deflate bomb" in scan.excluded[0].reason
    # Nothing was parsed, so callers have no reason to read the file again.
    assert scan.excluded[0].series_instance_uid == ""


#: A (0002,0099) UV element of 0x403 zero bytes. Its 4-byte length field, 03 04 00 00, is
#: itself a valid empty raw deflate stream (BFINAL, fixed Huffman codes, end of block). A
#: walker that read a 2-byte length for UV would inflate nothing there and pass the file.
_UV_META_ELEMENT = _explicit_element(0x00020099, b"UV", bytes(0x403))


@pytest.mark.usefixtures("small_inflate_limit")
@pytest.mark.parametrize("vr", [b"UV", b"SV", b"OV"])
def test_deflate_bomb_behind_64_bit_vr(tmp_path: Path, vr: bytes) -> None:
    extra = _UV_META_ELEMENT[:4] + vr + _UV_META_ELEMENT[6:]
    bomb = _deflated_bomb(tmp_path / "bomb.dcm", padding=0, extra_meta=extra)
    scan = plan_dicom_series([bomb])
    assert scan.series == []
    assert [item.reason for item in scan.excluded] == [
        "unreadable deflated DICOM: deflated dataset inflates to more than 1 MiB; the file is "
        "rejected as a possible deflate bomb"
    ]


@pytest.mark.usefixtures("small_inflate_limit")
def test_deflate_bomb_behind_invalid_meta_vr(tmp_path: Path) -> None:
    """A File Meta element without a valid VR makes the body's offset unknown: rejected."""
    extra = struct.pack("<HH", 0x0002, 0x0099) + b"\x01\x02" + struct.pack("<H", 0)
    bomb = _deflated_bomb(tmp_path / "bomb.dcm", padding=0, extra_meta=extra)
    scan = plan_dicom_series([bomb])
    assert scan.series == []
    assert len(scan.excluded) == 1
    assert scan.excluded[0].reason.startswith("unreadable")


def test_skip_to_dataset_reads_uv_length(tmp_path: Path) -> None:
    """The File Meta walk ends where pydicom's does, with a UV element in the group."""
    bomb = _deflated_bomb(tmp_path / "bomb.dcm", padding=0, extra_meta=_UV_META_ELEMENT)
    with bomb.open("rb") as handle:
        pydicom.filereader.read_preamble(handle, False)
        pydicom.filereader._read_file_meta_info(handle)
        expected = handle.tell()
        handle.seek(0)
        dicom_headers._skip_to_dataset(handle)
        assert handle.tell() == expected


# --- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "invalid literal for int() with base 10: 'AB'",
            "invalid literal for int() with base 10: '<value>'",
        ),
        ('Unknown encoding "DOE_JOHN"', 'Unknown encoding "<value>"'),
        ("value b'1945' and 'x' here", "value b'<value>' and '<value>' here"),
        ("unclosed 'DOE^JOHN 19450317", "unclosed '<value>'"),
        ("no quotes at all", "no quotes at all"),
    ],
)
def test_redact_quoted_values(text: str, expected: str) -> None:
    assert redact_quoted_values(text) == expected


def test_describe_error_names_type() -> None:
    assert describe_error(ValueError(f"bad value '{MARKER}'")) == "ValueError: bad value '<value>'"


def test_decode_error_message_redacted(tmp_path: Path) -> None:
    """An error at decoding becomes an InputError naming the file, without quoted values."""
    dataset = ct_dataset(np.zeros((8, 8), dtype=np.int16))
    path = write(dataset, tmp_path / "slice.dcm")
    plan = plan_dicom_series([path]).series[0]
    plan._header_cache.clear()
    path.write_bytes(path.read_bytes().replace(b"\xe0\x7f\x10\x00OW", b"\xe0\x7f\x11\x00OW"))
    with pytest.raises(InputError, match=r"slice\.dcm: pixel data could not be decoded") as info:
        next(iter_hu_slices(plan))
    assert "'" not in str(info.value).replace("'<value>'", "")


def test_series_uid_as_sequence_not_used(tmp_path: Path) -> None:
    """A SeriesInstanceUID read as a sequence never turns its items' text into the UID."""
    item = Dataset()
    item.PatientID = MARKER
    dataset = _slice(0)
    dataset.add_new(0x0020000E, "SQ", DicomSequence([item]))
    scan = plan_dicom_series([write(dataset, tmp_path / "slice.dcm")])
    assert len(scan.series) == 1
    assert scan.series[0].series_instance_uid == ""


# --- header text kept out of reasons and warnings -------------------------------------------

#: Free text planted in Modality, PhotometricInterpretation and ConvolutionKernel.
TEXT_MARKER = f"LEAKMARK{MARKER}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            TEXT_MARKER.encode(),
            "(0008,0060) Modality has an unrecognised value and is not CT, so its values are "
            "not Hounsfield units",
        ),
        (
            "ÇT".encode("latin-1") + b" ",
            "(0008,0060) Modality has an unrecognised value and is not CT, so its values are "
            "not Hounsfield units",
        ),
        (b"MR", "modality MR is not CT, so its values are not Hounsfield units"),
    ],
    ids=["marker", "non-ascii", "defined-term"],
)
def test_modality_value_named_only_if_defined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes, expected: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        scan, bad = _plan_with_bad_slice(tmp_path, lambda ds: _set_raw(ds, 0x00080060, "CS", raw))
    assert _only_exclusion(scan, bad) == expected
    assert TEXT_MARKER not in caplog.text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            TEXT_MARKER.encode(),
            "(0028,0004) PhotometricInterpretation has an unrecognised value and is not "
            "greyscale (MONOCHROME1 or MONOCHROME2)",
        ),
        (
            b"RGB ",
            "photometric interpretation RGB is not greyscale (MONOCHROME1 or MONOCHROME2)",
        ),
    ],
    ids=["marker", "defined-term"],
)
def test_photometric_value_named_only_if_defined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes, expected: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        scan, bad = _plan_with_bad_slice(tmp_path, lambda ds: _set_raw(ds, 0x00280004, "CS", raw))
    assert _only_exclusion(scan, bad) == expected
    assert TEXT_MARKER not in caplog.text


def _kernel_series(folder: Path) -> list[Path]:
    """Write one series of 4 slices whose two halves have different free-text kernels."""
    folder.mkdir()
    paths = []
    for index in range(4):
        dataset = _slice(index % 2)
        # ConvolutionKernel is SH, at most 16 characters.
        dataset.ConvolutionKernel = f"K{MARKER}{'A' if index < 2 else 'B'}"
        dataset.SOPInstanceUID = pydicom.uid.generate_uid()
        paths.append(write(dataset, folder / f"slice{index}.dcm"))
    return paths


def test_kernel_split_numbers_kernels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        scan = plan_dicom_series(_kernel_series(tmp_path / "up"))
    assert len(scan.series) == 2
    first, second = (plan.warnings[0] for plan in scan.series)
    assert "kernel 1 of 2" in first
    assert "kernel 2 of 2" in second
    assert MARKER not in first + second
    assert MARKER not in caplog.text


def test_header_text_not_in_database_or_report(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Kernel, Modality and PhotometricInterpretation text stays out of every import output."""
    upload = tmp_path / "up"
    _kernel_series(upload)
    odd_modality = _slice(5)
    _set_raw(odd_modality, 0x00080060, "CS", TEXT_MARKER.encode())
    write(odd_modality, upload / "modality.dcm")
    odd_photometric = _slice(6)
    _set_raw(odd_photometric, 0x00280004, "CS", TEXT_MARKER.encode())
    write(odd_photometric, upload / "photometric.dcm")
    report = tmp_path / "report.json"

    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(
            cli,
            [
                "--no-progress",
                "-vv",
                "import",
                "dicom",
                str(upload),
                "--patient",
                "P1",
                "--create-patient",
                "--no-lung-extraction",
                "--report",
                str(report),
                "--database-url",
                database_url,
            ],
            catch_exceptions=False,
        )

    assert result.exit_code == 0, result.output
    report_text = report.read_text(encoding="utf-8")
    assert "kernel 1 of 2" in report_text
    assert "(0008,0060) Modality has an unrecognised value" in report_text
    assert "(0028,0004) PhotometricInterpretation has an unrecognised value" in report_text
    assert MARKER not in report_text
    assert MARKER not in database_text(open_database(database_url))
    assert MARKER not in result.output
    assert MARKER not in caplog.text


# --- impossible pixel descriptions and value transforms -------------------------------------


@pytest.mark.parametrize(
    ("tag", "vr", "raw", "expected"),
    [
        (0x00281052, "DS", b"1e308 ", "invalid (0028,1052) RescaleIntercept"),
        (0x00281052, "DS", b"nan ", "invalid (0028,1052) RescaleIntercept"),
        (0x00281053, "DS", b"inf ", "invalid (0028,1053) RescaleSlope"),
        (0x00281053, "DS", b"nan ", "invalid (0028,1053) RescaleSlope"),
        (0x00281053, "DS", b"0 ", "invalid (0028,1053) RescaleSlope"),
        (0x00281053, "DS", b"1e300 ", "invalid (0028,1053) RescaleSlope"),
        (0x00281053, "DS", b"1\\2 ", "invalid (0028,1053) RescaleSlope"),
        (0x00280103, "US", struct.pack("<H", 7), "invalid (0028,0103) PixelRepresentation"),
        (0x00280101, "US", struct.pack("<H", 0), "invalid (0028,0101) BitsStored"),
        (0x00280101, "US", struct.pack("<H", 40), "invalid (0028,0101) BitsStored"),
        (0x00280102, "US", struct.pack("<H", 40), "invalid (0028,0102) HighBit"),
        (0x00280100, "US", struct.pack("<H", 12), "invalid (0028,0100) BitsAllocated"),
        (0x00280008, "IS", b"0 ", "invalid (0028,0008) NumberOfFrames"),
        (0x00080016, "UI", b"1.2.3\\1.2.4 ", "invalid (0008,0016) SOPClassUID"),
        (0x00280030, "DS", b"1e-300\\1 ", "(0028,0030) PixelSpacing lies outside 0.01-50 mm"),
        (0x00280030, "DS", b"1e300\\1 ", "(0028,0030) PixelSpacing lies outside 0.01-50 mm"),
    ],
    ids=[
        "intercept-1e308",
        "intercept-nan",
        "slope-inf",
        "slope-nan",
        "slope-0",
        "slope-1e300",
        "slope-2-values",
        "pixel-representation-7",
        "bits-stored-0",
        "bits-stored-40",
        "high-bit-40",
        "bits-allocated-12",
        "frames-0",
        "sop-class-2-values",
        "spacing-1e-300",
        "spacing-1e300",
    ],
)
def test_impossible_value_excluded(
    tmp_path: Path, tag: int, vr: str, raw: bytes, expected: str
) -> None:
    scan, bad = _plan_with_bad_slice(tmp_path, lambda ds: _set_raw(ds, tag, vr, raw))
    reason = _only_exclusion(scan, bad)
    assert expected in reason
    for value in raw.decode("latin-1").strip().split("\\"):
        if len(value) > 2:
            assert value not in reason


@pytest.mark.parametrize("raw", [b"-5 ", b"0 ", b"nan ", b"inf ", b"1e300 "])
def test_invalid_slice_thickness_ignored(tmp_path: Path, raw: bytes) -> None:
    dataset = _slice(0)
    _set_raw(dataset, 0x00180050, "DS", raw)
    scan = plan_dicom_series([write(dataset, tmp_path / "one.dcm")])
    assert scan.excluded == []
    (plan,) = scan.series
    assert math.isnan(plan.geometry.spacing_mm[0])
    assert any("slice spacing taken from nothing (unknown, NaN)" in w for w in plan.warnings)


def test_valid_slice_thickness_used(tmp_path: Path) -> None:
    dataset = _slice(0)
    _set_raw(dataset, 0x00180050, "DS", b"5 ")
    scan = plan_dicom_series([write(dataset, tmp_path / "one.dcm")])
    (plan,) = scan.series
    assert plan.geometry.spacing_mm[0] == 5.0
