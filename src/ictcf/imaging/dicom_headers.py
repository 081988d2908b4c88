"""Attribute extraction from DICOM headers: per-frame geometry, rescale, image type, encoding.

This module turns a :class:`pydicom.Dataset` into plain values (numpy arrays, floats, strings)
so that :mod:`ictcf.imaging.geometry` can stay free of DICOM. Enhanced multi-frame objects are
read from their functional groups: a value in (5200,9230) PerFrameFunctionalGroupsSequence
overrides the one in (5200,9229) SharedFunctionalGroupsSequence, which overrides the top-level
attribute.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom import uid as dicom_uid
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from ictcf.imaging.upload_files import scrub_quoted_values

logger = logging.getLogger(__name__)

#: ImageType (0008,0008) values that mark a projection scout rather than a cross-section
#: (LOCALIZER is the standard term; TOPOGRAM is Siemens, SCOUT GE, SURVIEW Philips,
#: SCANOGRAM Toshiba/Canon).
LOCALIZER_IMAGE_TYPES = frozenset({"LOCALIZER", "TOPOGRAM", "SCOUT", "SURVIEW", "SCANOGRAM"})
#: SOP classes of secondary-capture images, which often carry burned-in text and no geometry.
SECONDARY_CAPTURE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
#: Largest inflated size (bytes) of a Deflated Explicit VR Little Endian file. 256 MiB fits a
#: 512-frame 512x512 16-bit enhanced CT, and a deflate bomb stops here.
MAX_INFLATED_DICOM_BYTES = 256 * 1024 * 1024
#: Chunk (bytes) read from and inflated out of a deflated file per step, so memory stays bounded.
INFLATE_CHUNK_BYTES = 1024 * 1024

#: Largest deviation of a (0020,0037) ImageOrientationPatient direction vector's length from 1,
#: and of the row and column vectors' dot product from 0. Scanners usually write the cosines
#: with 6 or more digits, so real headers stay far inside it. Zero, NaN or skewed cosines do not.
ORIENTATION_UNIT_TOLERANCE = 0.01
#: Largest absolute (0020,0032) ImagePositionPatient coordinate (mm) accepted. 1 km is far
#: beyond any scanner, and smaller values keep position differences free of float overflow.
MAX_POSITION_MM = 1.0e6
#: Range (mm) of an accepted (0028,0030) PixelSpacing value. Clinical CT pixels are about
#: 0.2-2 mm, so this reader treats values outside 0.01-50 mm as header errors.
MIN_PIXEL_SPACING_MM = 0.01
MAX_PIXEL_SPACING_MM = 50.0
#: Largest (0018,0050) SliceThickness or (0018,0088) SpacingBetweenSlices (mm) taken from a
#: header. Clinical CT slices are at most about 10 mm thick, so a larger, non-positive or
#: non-finite value is ignored as if absent.
MAX_SLICE_SPACING_MM = 100.0

#: Explicit VRs whose element header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2,
#: Table 7.1-1). Every walker of the File Meta group uses this one set, so that they agree on
#: where the group ends.
LONG_LENGTH_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)

#: Decoder packages to suggest per compressed transfer syntax when pydicom has no decoder.
_DECODER_HINTS = {
    dicom_uid.JPEGBaseline8Bit: "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    dicom_uid.JPEGExtended12Bit: "pylibjpeg and pylibjpeg-libjpeg",
    dicom_uid.JPEGLossless: "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    dicom_uid.JPEGLosslessSV1: "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    dicom_uid.JPEGLSLossless: "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    dicom_uid.JPEGLSNearLossless: "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    dicom_uid.JPEG2000Lossless: "pylibjpeg and pylibjpeg-openjpeg (or python-gdcm)",
    dicom_uid.JPEG2000: "pylibjpeg and pylibjpeg-openjpeg (or python-gdcm)",
    dicom_uid.RLELossless: "pylibjpeg-rle",
}


#: VRs whose value pydicom converts from the bytes alone (not the character set or other
#: attributes), so :func:`header_value` may convert a repeated raw value once.
BYTE_DETERMINED_VRS = frozenset(
    {"AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "SL", "SS", "SV", "TM", "UI", "UL"}
    | {"US", "UV"}
)
#: Raw values longer than this (bytes) are converted in place rather than cached, which bounds
#: the cache's memory at about ``_CONVERTED_VALUE_CACHE_SIZE`` times this.
_CONVERTED_VALUE_MAX_BYTES = 256
#: Distinct raw values kept converted; a CT series repeats a few dozen per header.
_CONVERTED_VALUE_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=4096)
def _tag_of(keyword: str) -> int | None:
    return tag_for_keyword(keyword)


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


#: Converted values of raw elements by (tag, VR as read, implicit VR, little endian, bytes).
#: A plain dict cleared when full: cheaper to look up than ``functools.lru_cache`` keyed by the
#: element, and a series needs far fewer entries than the limit.
_converted_values: dict[tuple[int, str | None, bool, bool, bytes], Any] = {}


def header_value(dataset: Dataset, keyword: str | int, default: Any = None) -> Any:
    """Return an attribute value as ``dataset.get(keyword, default)`` does, converting less.

    ``keyword`` is a DICOM keyword or a tag as an integer (0x00280010 for Rows).

    A header read from file contains raw elements that pydicom converts on first access. For a
    public attribute of a VR in ``BYTE_DETERMINED_VRS`` the converted value is cached by
    tag, VR, encoding and bytes, so the same value in the next file of a series is not
    converted again, and the element stays raw in ``dataset``. Other elements are converted
    in place as ``Dataset.get`` does. The returned object may be shared between datasets,
    so callers must not modify it.
    """
    tag = keyword if isinstance(keyword, int) else _tag_of(keyword)
    if tag is None:
        return dataset.get(keyword, default)
    element = dataset.get_item(tag)
    if element is None:
        return default
    if isinstance(element, RawDataElement):
        value = element.value
        if (
            isinstance(value, bytes)
            and len(value) <= _CONVERTED_VALUE_MAX_BYTES
            and (element.VR or _dictionary_vr(tag)) in BYTE_DETERMINED_VRS
        ):
            # value_tell (where the value sat in its file) plays no part in the conversion.
            key = (tag, element.VR, element.is_implicit_VR, element.is_little_endian, value)
            try:
                return _converted_values[key]
            except KeyError:
                pass
            converted = convert_raw_data_element(element, encoding=default_encoding).value
            if len(_converted_values) >= _CONVERTED_VALUE_CACHE_SIZE:
                _converted_values.clear()
            _converted_values[key] = converted
            return converted
    return dataset[tag].value


def header_text(dataset: Dataset, keyword: str | int, default: Any = None) -> Any:
    """Return a text attribute value as :func:`header_value` does, reading plain ASCII directly.

    A raw value of plain ASCII bytes (no ESC byte, which starts ISO 2022 code switching)
    decodes the same under every character set pydicom maps a DICOM declaration to. Such a
    value is decoded without pydicom's character set handling: one value is returned as ``str`` with
    trailing spaces and NULs removed, several as a list. Other values go through
    :func:`header_value`.
    """
    tag = keyword if isinstance(keyword, int) else _tag_of(keyword)
    element = dataset.get_item(tag) if tag is not None else None
    if isinstance(element, RawDataElement):
        value = element.value
        if isinstance(value, bytes) and value.isascii() and b"\x1b" not in value:
            parts = [part.rstrip(" \x00") for part in value.decode("ascii").split("\\")]
            return parts[0] if len(parts) == 1 else parts
    return header_value(dataset, keyword, default)


def single_uid(dataset: Dataset, keyword: str | int) -> str:
    """Return a UID attribute as text, empty when absent, without converting a raw element.

    A raw value is decoded as pydicom decodes UI values; other values are converted. A value
    that is not one string (several values, or a sequence read under the wrong VR) gives an
    empty string, so the text of nested items never becomes a UID.
    """
    tag = keyword if isinstance(keyword, int) else _tag_of(keyword)
    element = dataset.get_item(tag) if tag is not None else None
    if element is None:
        return ""
    if isinstance(element, RawDataElement) and element.VR in (None, "UI"):
        value = element.value
        if isinstance(value, bytes) and b"\\" not in value:
            return value.decode(default_encoding).strip(" \x00")
    converted = dataset[tag].value if tag is not None else ""
    return str(converted) if isinstance(converted, str) else ""


class MissingAttributeError(ValueError):
    """A header lacks an attribute needed to place a frame in space."""


def redact_quoted_values(text: str) -> str:
    """Replace every quoted part of an exception text by ``'<value>'`` (or ``"<value>"``).

    pydicom and Python quote the offending value in conversion errors, for example
    ``invalid literal for int() with base 10: 'AB'``. Reasons and warnings that are stored
    in the database or in reports go through this function so that a header value (a name,
    an ID, a date) never reaches them. An opening quote without a closing one hides the
    rest of the text. The rules are those of the reader warnings
    (:func:`ictcf.imaging.upload_files.scrub_quoted_values`).
    """
    return scrub_quoted_values(text, close_open_quote=True)


def describe_error(error: BaseException) -> str:
    """Return ``"TypeName: message"`` for an exception, with quoted values redacted."""
    return f"{type(error).__name__}: {redact_quoted_values(str(error))}"


@dataclass(frozen=True)
class FrameAttributes:
    """Geometry and value transform of one frame.

    Attributes
    ----------
    position_mm : ndarray of shape (3,)
        (0020,0032) ImagePositionPatient.
    orientation : ndarray of shape (6,)
        (0020,0037) ImageOrientationPatient.
    pixel_spacing_mm : (float, float)
        (0028,0030) PixelSpacing as (row spacing, column spacing).
    slice_thickness_mm : float
        (0018,0050) SliceThickness, NaN when absent or not in (0, MAX_SLICE_SPACING_MM].
    spacing_between_slices_mm : float
        (0018,0088) SpacingBetweenSlices, NaN when absent or not in (0, MAX_SLICE_SPACING_MM].
    rescale : (float, float) or None
        ``(slope, intercept)``; None when neither (0028,1053) RescaleSlope nor (0028,1052)
        RescaleIntercept is present at any level.
    rescale_source : str
        ``"per-frame"``, ``"shared"``, ``"top-level"``, ``"modality-lut"`` or ``"missing"``.
    frame_type : tuple of str
        (0008,9007) FrameType for enhanced objects, else (0008,0008) ImageType.
    kernel : str
        (0018,1210) ConvolutionKernel joined with ``\\``, empty when absent.
    """

    position_mm: NDArray[np.float64]
    orientation: NDArray[np.float64]
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float
    spacing_between_slices_mm: float
    rescale: tuple[float, float] | None
    rescale_source: str
    frame_type: tuple[str, ...]
    kernel: str


def number_of_frames(dataset: Dataset) -> int:
    """Return (0028,0008) NumberOfFrames, 1 when absent or empty."""
    value = header_value(dataset, "NumberOfFrames")
    if value in (None, ""):
        return 1
    return max(1, int(value))


def _first_item(container: Dataset | None, keyword: str) -> Dataset | None:
    if container is None:
        return None
    sequence = container.get(keyword)
    if not sequence:
        return None
    item: Dataset = sequence[0]
    return item


_TRANSFER_SYNTAX_UID_TAG = 0x00020010
_SHARED_FUNCTIONAL_GROUPS_TAG = 0x52009229
_PER_FRAME_FUNCTIONAL_GROUPS_TAG = 0x52009230
_MODALITY_LUT_SEQUENCE_TAG = 0x00283000
_RESCALE_INTERCEPT_TAG = 0x00281052
_RESCALE_SLOPE_TAG = 0x00281053


def _functional_groups(
    dataset: Dataset, frame_index: int | None
) -> tuple[Dataset | None, Dataset | None]:
    if (
        _SHARED_FUNCTIONAL_GROUPS_TAG not in dataset
        and _PER_FRAME_FUNCTIONAL_GROUPS_TAG not in dataset
    ):
        # A single-frame image (the common case) has no functional groups.
        return None, None
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = None
    sequence = dataset.get("PerFrameFunctionalGroupsSequence")
    if sequence and frame_index is not None and frame_index < len(sequence):
        per_frame = sequence[frame_index]
    return per_frame, shared


def _macro_value(
    dataset: Dataset,
    groups: tuple[Dataset | None, Dataset | None],
    macro: str,
    keyword: str,
) -> tuple[Any, str]:
    """Find ``keyword`` in a functional-group macro (per-frame, then shared), then at top level."""
    if groups != (None, None):
        for level, group in zip(("per-frame", "shared"), groups, strict=True):
            item = _first_item(group, macro)
            if item is not None and keyword in item and item[keyword].value not in (None, ""):
                return item[keyword].value, level
    value = header_value(dataset, keyword)
    if value not in (None, ""):
        return value, "top-level"
    return None, "missing"


def _optional_spacing(value: Any) -> float:
    """Return an optional slice spacing (mm), NaN when absent or outside (0, MAX_SLICE_SPACING_MM]."""
    number = _float_or_nan(value)
    return number if 0.0 < number <= MAX_SLICE_SPACING_MM else math.nan


def _float_or_nan(value: Any) -> float:
    if value in (None, ""):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def frame_attributes(dataset: Dataset, frame_index: int | None = None) -> FrameAttributes:
    """Extract the geometry and rescale of one frame from a header.

    Parameters
    ----------
    dataset : pydicom.Dataset
        A header read with or without pixel data.
    frame_index : int or None
        0-based frame of an enhanced multi-frame object; None for a single-frame image.

    Returns
    -------
    FrameAttributes

    Raises
    ------
    MissingAttributeError
        If the position, orientation or pixel spacing is missing, has the wrong number of
        values, or is not a usable geometry: a non-finite position or one beyond
        :data:`MAX_POSITION_MM`, direction vectors that are not unit length and perpendicular
        within :data:`ORIENTATION_UNIT_TOLERANCE`, or a spacing that is not finite and
        positive. The message names the tag and never quotes the value.
    """
    groups = _functional_groups(dataset, frame_index)
    position, _ = _macro_value(dataset, groups, "PlanePositionSequence", "ImagePositionPatient")
    orientation, _ = _macro_value(
        dataset, groups, "PlaneOrientationSequence", "ImageOrientationPatient"
    )
    spacing, _ = _macro_value(dataset, groups, "PixelMeasuresSequence", "PixelSpacing")
    position_mm = _checked_position(_as_floats(position))
    orientation_cosines = _checked_orientation(_as_floats(orientation))
    spacing_mm = _checked_spacing(_as_floats(spacing))
    thickness, _ = _macro_value(dataset, groups, "PixelMeasuresSequence", "SliceThickness")
    between, _ = _macro_value(dataset, groups, "PixelMeasuresSequence", "SpacingBetweenSlices")

    rescale, source = _frame_rescale(dataset, groups)

    frame_type_value, level = _macro_value(dataset, groups, "CTImageFrameTypeSequence", "FrameType")
    if level == "top-level" or frame_type_value is None:
        frame_type_value = header_value(dataset, "ImageType")
    frame_type = _as_strings(frame_type_value)
    if groups == (None, None):
        kernel_value = header_text(dataset, "ConvolutionKernel")
    else:
        kernel_value, _ = _macro_value(
            dataset, groups, "CTReconstructionSequence", "ConvolutionKernel"
        )
    kernel = "\\".join(_as_strings(kernel_value))

    return FrameAttributes(
        position_mm=np.asarray(position_mm, dtype=np.float64),
        orientation=np.asarray(orientation_cosines, dtype=np.float64),
        pixel_spacing_mm=spacing_mm,
        slice_thickness_mm=_optional_spacing(thickness),
        spacing_between_slices_mm=_optional_spacing(between),
        rescale=rescale,
        rescale_source=source,
        frame_type=frame_type,
        kernel=kernel,
    )


def _as_floats(value: Any) -> list[float] | None:
    """Convert a DS value (one number or several) to floats; None if absent or not numeric."""
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, str | bytes | int | float) else value
    try:
        return [float(item) for item in items]
    except (TypeError, ValueError, OverflowError):
        return None


def _checked_position(values: list[float] | None) -> list[float]:
    if values is None or len(values) != 3:
        raise MissingAttributeError(
            "(0020,0032) ImagePositionPatient is missing, not numeric or not 3 values"
        )
    if not all(math.isfinite(v) and abs(v) <= MAX_POSITION_MM for v in values):
        raise MissingAttributeError(
            f"(0020,0032) ImagePositionPatient is not finite or lies beyond {MAX_POSITION_MM:g} mm"
        )
    return values


def _checked_orientation(values: list[float] | None) -> list[float]:
    if values is None or len(values) != 6:
        raise MissingAttributeError(
            "(0020,0037) ImageOrientationPatient is missing, not numeric or not 6 values"
        )
    row, column = values[:3], values[3:]
    row_length = math.sqrt(sum(v * v for v in row))
    column_length = math.sqrt(sum(v * v for v in column))
    dot = sum(a * b for a, b in zip(row, column, strict=True))
    # NaN fails every comparison below, so a NaN cosine is rejected too.
    if not (
        abs(row_length - 1.0) <= ORIENTATION_UNIT_TOLERANCE
        and abs(column_length - 1.0) <= ORIENTATION_UNIT_TOLERANCE
        and abs(dot) <= ORIENTATION_UNIT_TOLERANCE
    ):
        raise MissingAttributeError(
            "(0020,0037) ImageOrientationPatient is degenerate: the row and column direction "
            "cosines are not finite unit vectors perpendicular to each other"
        )
    return values


def _checked_spacing(values: list[float] | None) -> tuple[float, float]:
    if values is None or len(values) != 2:
        raise MissingAttributeError(
            "(0028,0030) PixelSpacing is missing, not numeric or not 2 values"
        )
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise MissingAttributeError("(0028,0030) PixelSpacing is not finite and positive")
    if not all(MIN_PIXEL_SPACING_MM <= v <= MAX_PIXEL_SPACING_MM for v in values):
        raise MissingAttributeError(
            f"(0028,0030) PixelSpacing lies outside {MIN_PIXEL_SPACING_MM:g}-"
            f"{MAX_PIXEL_SPACING_MM:g} mm"
        )
    return values[0], values[1]


def frame_rescale(
    dataset: Dataset, frame_index: int | None = None
) -> tuple[tuple[float, float] | None, str]:
    """Find the rescale slope and intercept that apply to one frame.

    Returns
    -------
    rescale : (float, float) or None
        ``(slope, intercept)``. A missing slope with a present intercept (or the reverse)
        takes 1 or 0 for the missing value. A present value that is not one number is NaN,
        so callers can reject it. None when the frame has a (0028,3000)
        ModalityLUTSequence (apply it with :func:`pydicom.pixels.apply_modality_lut`) or no
        rescale at all.
    source : str
        Where the values came from: ``"per-frame"``, ``"shared"``, ``"top-level"``,
        ``"modality-lut"`` or ``"missing"``.
    """
    return _frame_rescale(dataset, _functional_groups(dataset, frame_index))


def _frame_rescale(
    dataset: Dataset, groups: tuple[Dataset | None, Dataset | None]
) -> tuple[tuple[float, float] | None, str]:
    if groups != (None, None):
        for level, group in zip(("per-frame", "shared"), groups, strict=True):
            item = _first_item(group, "PixelValueTransformationSequence")
            if item is not None and ("RescaleSlope" in item or "RescaleIntercept" in item):
                return _slope_intercept(item), level
    if _MODALITY_LUT_SEQUENCE_TAG in dataset and dataset.get("ModalityLUTSequence"):
        return None, "modality-lut"
    if _RESCALE_SLOPE_TAG in dataset or _RESCALE_INTERCEPT_TAG in dataset:
        return _slope_intercept(dataset), "top-level"
    return None, "missing"


def _slope_intercept(item: Dataset) -> tuple[float, float]:
    slope = header_value(item, "RescaleSlope")
    intercept = header_value(item, "RescaleIntercept")
    return (
        1.0 if slope in (None, "") else _float_or_nan(slope),
        0.0 if intercept in (None, "") else _float_or_nan(intercept),
    )


def _as_strings(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str | bytes):
        return (str(value).strip().upper(),)
    return tuple(str(part).strip().upper() for part in value)


def localizer_reason(dataset: Dataset, frame_type: tuple[str, ...]) -> str | None:
    """Return why an image is a localizer (scout), or None for a cross-sectional image."""
    marked = LOCALIZER_IMAGE_TYPES.intersection(frame_type)
    if marked:
        return f"localizer: (0008,0008) ImageType contains {sorted(marked)[0]}"
    description = str(header_text(dataset, "SeriesDescription", "")).upper()
    for word in sorted(LOCALIZER_IMAGE_TYPES):
        if word in description:
            return f"localizer: (0008,103E) SeriesDescription contains {word}"
    return None


def is_secondary_capture(dataset: Dataset) -> bool:
    """Return whether the SOP class is one of the secondary-capture classes."""
    return str(header_value(dataset, "SOPClassUID", "")) in SECONDARY_CAPTURE_SOP_CLASSES


def transfer_syntax(dataset: Dataset) -> str:
    """Return (0002,0010) TransferSyntaxUID, or Implicit VR Little Endian when absent."""
    meta = getattr(dataset, "file_meta", None)
    value = header_value(meta, _TRANSFER_SYNTAX_UID_TAG) if meta is not None else None
    return str(value) if value else str(dicom_uid.ImplicitVRLittleEndian)


@functools.lru_cache(maxsize=64)
def is_known_transfer_syntax(transfer_syntax_uid: str) -> bool:
    """Return whether pydicom registers ``transfer_syntax_uid`` as a transfer syntax."""
    return dicom_uid.UID(transfer_syntax_uid).is_transfer_syntax


@functools.lru_cache(maxsize=64)
def is_compressed_syntax(transfer_syntax_uid: str) -> bool:
    """Return whether pixel data in this transfer syntax are encapsulated (compressed)."""
    return dicom_uid.UID(transfer_syntax_uid).is_compressed


def unsupported_syntax_message(transfer_syntax_uid: str) -> str | None:
    """Explain why pixel data in ``transfer_syntax_uid`` cannot be decoded, or return None.

    The message names the syntax and the packages to install.
    """
    syntax = dicom_uid.UID(transfer_syntax_uid)
    name = syntax.name if syntax.is_valid and syntax.name != transfer_syntax_uid else "unknown"
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return (
            f"compressed transfer syntax {name} ({transfer_syntax_uid}) is not supported: "
            "no pixel decoder exists for it in pydicom; convert the files to an uncompressed "
            "or JPEG/JPEG 2000/RLE syntax (for example with dcmdjpeg or gdcmconv)"
        )
    if decoder.is_available:
        return None
    hint = _DECODER_HINTS.get(syntax, ", ".join(decoder.missing_dependencies) or "a decoder")
    return (
        f"compressed transfer syntax {name} ({transfer_syntax_uid}) is not supported: "
        f"install {hint}"
    )


def expected_pixel_bytes(dataset: Dataset) -> int:
    """Return the length in bytes of native (uncompressed) pixel data described by the header."""
    rows = int(header_value(dataset, "Rows", 0))
    columns = int(header_value(dataset, "Columns", 0))
    samples = int(header_value(dataset, "SamplesPerPixel", 1) or 1)
    bits = int(header_value(dataset, "BitsAllocated", 16) or 16)
    total_bits = rows * columns * samples * number_of_frames(dataset) * bits
    return (total_bits + 7) // 8


def check_deflated_size(path: Path, limit_bytes: int = MAX_INFLATED_DICOM_BYTES) -> None:
    """Inflate the body of a Deflated Explicit VR Little Endian file in chunks and check its size.

    Memory stays near :data:`INFLATE_CHUNK_BYTES` whatever the inflated size.

    Raises
    ------
    ValueError
        If the body inflates beyond ``limit_bytes`` or is not a valid deflate stream.
    """
    meta = pydicom.filereader.read_file_meta_info(path)
    if str(meta.get("TransferSyntaxUID", "")) != dicom_uid.DeflatedExplicitVRLittleEndian:
        return
    with path.open("rb") as handle:
        _skip_to_dataset(handle)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        for chunk in _read_chunks(handle):
            data = inflater.decompress(chunk, INFLATE_CHUNK_BYTES)
            while True:
                total += len(data)
                if total > limit_bytes:
                    raise ValueError(
                        f"deflated dataset inflates to more than {limit_bytes // (1024 * 1024)} "
                        "MiB; the file is rejected as a possible deflate bomb"
                    )
                if not inflater.unconsumed_tail:
                    break
                data = inflater.decompress(inflater.unconsumed_tail, INFLATE_CHUNK_BYTES)
            if inflater.eof:
                break


def _read_chunks(handle: Any) -> Iterator[bytes]:
    while True:
        chunk = handle.read(INFLATE_CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


def _skip_to_dataset(handle: Any) -> None:
    """Position ``handle`` after the preamble and the (0002,xxxx) file meta group.

    Raises
    ------
    ValueError
        If an element of the group has no valid explicit VR or the file ends inside the
        group, so the offset of the deflated body cannot be known.
    """
    preamble = handle.read(132)
    if preamble[128:132] != b"DICM":
        handle.seek(0)
    while True:
        start = handle.tell()
        header = handle.read(8)
        if len(header) < 8:
            raise ValueError("file ends inside the file meta information")
        group = struct.unpack("<H", header[:2])[0]
        if group != 0x0002:
            handle.seek(start)
            return
        vr = header[4:6]
        if vr in LONG_LENGTH_VRS:
            length_bytes = handle.read(4)
            if len(length_bytes) < 4:
                raise ValueError("file ends inside the file meta information")
            length = struct.unpack("<I", length_bytes)[0]
        elif vr.isalpha() and vr.isupper():
            length = struct.unpack("<H", header[6:8])[0]
        else:
            raise ValueError(
                "the file meta information has an element without a valid explicit VR, "
                "so the start of the deflated dataset is unknown"
            )
        handle.seek(length, 1)


#: JPEG 2000 codestream start (SOC + SIZ markers) and JP2 file signature box.
_J2K_STARTS = (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")
_JPEG_START = b"\xff\xd8"
#: End-of-image (JPEG, JPEG-LS) and end-of-codestream (JPEG 2000) marker.
_END_MARKER = b"\xff\xd9"


def check_encapsulated_frame(frame: bytes, transfer_syntax_uid: str) -> None:
    """Check that a compressed frame is complete before it is decoded.

    Decoders may return a partly decoded image for a truncated codestream. This check rejects
    JPEG, JPEG-LS and JPEG 2000 frames without their start and end markers, and RLE frames
    whose segment offsets point outside the frame.

    Raises
    ------
    ValueError
        With the reason.
    """
    syntax = dicom_uid.UID(transfer_syntax_uid)
    body = frame.rstrip(b"\x00")
    if syntax == dicom_uid.RLELossless:
        if len(frame) < 64:
            raise ValueError(f"RLE frame of {len(frame)} bytes is shorter than its 64-byte header")
        segments = struct.unpack("<16I", frame[:64])
        count = segments[0]
        if not 1 <= count <= 15:
            raise ValueError(f"RLE header declares {count} segments (1-15 allowed)")
        offsets = segments[1 : count + 1]
        if offsets[0] != 64 or any(b <= a for a, b in itertools.pairwise(offsets)):
            raise ValueError("RLE segment offsets are not increasing from 64")
        if offsets[-1] >= len(frame):
            raise ValueError("RLE segment offsets point past the end of the frame (truncated)")
        return
    if syntax in (dicom_uid.JPEG2000Lossless, dicom_uid.JPEG2000) or syntax.name.startswith(
        "High-Throughput JPEG 2000"
    ):
        if not body.startswith(_J2K_STARTS):
            raise ValueError("JPEG 2000 frame does not start with an SOC marker or JP2 signature")
        if not body.endswith(_END_MARKER):
            raise ValueError("JPEG 2000 codestream has no EOC marker at its end (truncated)")
        return
    if syntax.is_compressed and syntax.name.startswith(("JPEG", "JPEG-LS")):
        if not body.startswith(_JPEG_START):
            raise ValueError("JPEG frame does not start with an SOI marker")
        if not body.endswith(_END_MARKER):
            raise ValueError("JPEG frame has no EOI marker at its end (truncated)")
