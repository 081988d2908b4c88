"""Group DICOM files into CT volumes and stream them as Hounsfield-unit slices.

Two steps, so that memory stays bounded for long series:

1. :func:`plan_dicom_series` reads headers only (``stop_before_pixels``). It drops files that
   cannot form an axial CT volume and records them in :attr:`DicomScan.excluded` with the
   reason. It groups the rest by (0020,000E) SeriesInstanceUID and splits a series whose
   frames do not form one volume. Then it orders the frames by their position along the
   slice normal and checks the spacing, duplicates and gantry tilt.
2. :func:`iter_hu_slices` decodes one frame at a time, applies the modality transform, replaces
   pixel padding with air and returns each slice in the canonical axial orientation described
   in :mod:`ictcf.imaging.geometry`.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import logging
import math
import os
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.pixels import apply_modality_lut
from pydicom.pixels import pixel_array as decode_pixel_array
from scipy import ndimage

from ictcf.errors import InputError
from ictcf.imaging import geometry as geo
from ictcf.imaging.dicom_headers import (
    LONG_LENGTH_VRS,
    FrameAttributes,
    MissingAttributeError,
    check_deflated_size,
    check_encapsulated_frame,
    describe_error,
    expected_pixel_bytes,
    frame_attributes,
    header_value,
    is_compressed_syntax,
    is_known_transfer_syntax,
    is_secondary_capture,
    localizer_reason,
    number_of_frames,
    redact_quoted_values,
    single_uid,
    transfer_syntax,
    unsupported_syntax_message,
)

logger = logging.getLogger(__name__)

#: Value (HU) written into pixels outside the reconstructed field of view and into voxels that
#: the gantry-tilt correction shifts in from outside the image: air.
PADDING_FILL_HU = -1000.0
#: Pixels below this value (HU) are treated as padding even without (0028,0120)
#: PixelPaddingValue: air is -1000 HU and noise in air stays within a few hundred HU, while
#: scanners write -2048 or -3024 outside the field of view.
IMPLICIT_PADDING_MAX_HU = -1500.0
#: Header elements larger than this (bytes) are read only when accessed (private blobs).
HEADER_DEFER_SIZE = "16 KB"
#: Modalities whose pixel values are Hounsfield units after the modality transform.
HU_MODALITIES = frozenset({"CT"})
#: Defined terms of (0008,0060) Modality (DICOM PS3.3 C.7.3.1.1.1). A reason names a Modality
#: only when it is one of these, because any other text may be patient data.
#: NOTE: a term the standard adds after this list was written is reported as unrecognised.
MODALITY_DEFINED_TERMS = frozenset(
    {"ANN", "AR", "ASMT", "AU", "BDUS", "BI", "BMD", "CFM", "CR", "CT", "CTPROTOCOL", "DG"}
    | {"DMS", "DOC", "DX", "ECG", "EEG", "EMG", "EOG", "EPS", "ES", "FID", "GM", "HC", "HD"}
    | {"IO", "IOL", "IVOCT", "IVUS", "KER", "KO", "LEN", "LS", "M3D", "MG", "MR", "NM", "OAM"}
    | {"OCT", "OP", "OPM", "OPT", "OPTBSV", "OPTENF", "OPV", "OSS", "OT", "PA", "PLAN", "POS"}
    | {"PR", "PT", "PX", "REG", "RESP", "RF", "RG", "RTDOSE", "RTIMAGE", "RTINTENT", "RTPLAN"}
    | {"RTRAD", "RTRECORD", "RTSEGANN", "RTSTRUCT", "RWV", "SEG", "SM", "SMR", "SR", "SRF"}
    | {"STAIN", "TEXTUREMAP", "TG", "US", "VA", "XA", "XAPROTOCOL", "XC"}
)
#: Defined terms of (0028,0004) PhotometricInterpretation (DICOM PS3.3 C.7.6.3.1.2, with the
#: retired ones), named in a reason for the same reason.
PHOTOMETRIC_DEFINED_TERMS = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "XYB"}
    | {"YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"}
)
#: Greyscale photometric interpretations, the only ones that form volumes.
GREYSCALE_PHOTOMETRIC = frozenset({"MONOCHROME1", "MONOCHROME2"})
#: Accepted (0028,0100) BitsAllocated values (bits): the sizes numpy reads natively.
BITS_ALLOCATED_VALUES = frozenset({8, 16, 32})
#: Largest |RescaleSlope| (HU per stored unit) accepted. CT usually writes 1, so a larger slope
#: is a header error, and with at most 32 stored bits it keeps HU far inside float32.
MAX_RESCALE_SLOPE = 1000.0
#: Largest |RescaleIntercept| (HU) accepted. CT usually writes -1024, and 100 000 HU is far
#: beyond any tissue or metal.
MAX_RESCALE_INTERCEPT_HU = 1.0e5
#: Pixel-data elements removed from the header handed out with each slice.
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

TiltPolicy = Literal["resample", "reject"]


@dataclass(frozen=True)
class ExcludedFile:
    """A file (or part of one) left out of every volume, and why.

    Attributes
    ----------
    path : Path
        The file.
    reason : str
        Why it was left out. It names tags and rules, never a header value, except a
        (0008,0060) Modality or (0028,0004) PhotometricInterpretation that is one of the
        standard's defined terms and a registered SOP class name.
    series_instance_uid : str
        (0020,000E) SeriesInstanceUID when the header was read, else empty. Callers use it to
        group exclusions by series without reading the file again (a file excluded as a
        possible deflate bomb must never be parsed).
    """

    path: Path
    reason: str
    series_instance_uid: str = ""


@dataclass(frozen=True)
class FrameRef:
    """One frame of a planned volume.

    Attributes
    ----------
    path : Path
        The file holding the frame.
    frame_index : int or None
        0-based frame of a multi-frame file, None for a single-frame file.
    sop_instance_uid : str
        (0008,0018) SOPInstanceUID of the file.
    position_mm : ndarray of shape (3,)
        Acquired (0020,0032) ImagePositionPatient, LPS mm.
    instance_number : int or None
        (0020,0013) InstanceNumber, None when absent (it is never used for ordering).
    rescale : (float, float) or None
        ``(slope, intercept)`` found in the header, or None (modality LUT or nothing).
    rescale_source : str
        Where ``rescale`` came from (see :func:`ictcf.imaging.dicom_headers.frame_rescale`).
    shift_px : (float, float)
        In-plane shift (rows, columns) of the acquired frame that undoes a gantry-tilt shear;
        (0, 0) for an orthogonal stack.
    """

    path: Path
    frame_index: int | None
    sop_instance_uid: str
    position_mm: NDArray[np.float64]
    instance_number: int | None
    rescale: tuple[float, float] | None = None
    rescale_source: str = "top-level"
    shift_px: tuple[float, float] = (0.0, 0.0)


@dataclass
class SeriesPlan:
    """One volume to be read: ordered frames, geometry and findings.

    Attributes
    ----------
    series_instance_uid : str
        (0020,000E) SeriesInstanceUID shared by the frames.
    split_index : int
        0 for the first (often only) volume of a series. A series whose files do not form
        one volume (orientation, kernel, matrix, or repeated positions) gives several plans.
    frames : list of FrameRef
        Ordered along the canonical slice normal (inferior to superior for axial CT).
    geometry : SeriesGeometry
        Geometry of the canonical grid that :func:`iter_hu_slices` produces.
    warnings : list of str
        Findings the volume survives (duplicates dropped, gaps, non-uniform spacing, tilt,
        missing rescale). Never contains patient data.
    image_type : tuple of str
        (0008,0008) ImageType of the first frame.
    modality : str
        (0008,0060) Modality.
    burned_in_annotation : str or None
        (0028,0301) BurnedInAnnotation as written (``"YES"`` if any file has YES).
    is_secondary_capture : bool
        Whether any file is a secondary capture.
    transfer_syntax_uid : str
        (0002,0010) TransferSyntaxUID shared by the files (the first one when they differ,
        with a warning).
    photometric_interpretation : str
        (0028,0004) of the first frame; MONOCHROME1 means renderings must invert grey levels.
    rows, columns : int
        Acquired matrix size ((0028,0010) Rows, (0028,0011) Columns).
    """

    series_instance_uid: str
    split_index: int
    frames: list[FrameRef]
    geometry: geo.SeriesGeometry
    warnings: list[str] = field(default_factory=list)
    image_type: tuple[str, ...] = ()
    modality: str = ""
    burned_in_annotation: str | None = None
    is_secondary_capture: bool = False
    transfer_syntax_uid: str = ""
    photometric_interpretation: str = "MONOCHROME2"
    rows: int = 0
    columns: int = 0
    # Headers read while planning, with their pixel-data offsets, handed out once by
    # iter_hu_slices so that single-frame files are not parsed twice.
    _header_cache: dict[Path, tuple[Dataset, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )


@dataclass
class DicomScan:
    """Result of :func:`plan_dicom_series`: the volumes and the files left out."""

    series: list[SeriesPlan] = field(default_factory=list)
    excluded: list[ExcludedFile] = field(default_factory=list)


@dataclass(frozen=True)
class HUSlice:
    """One decoded slice in Hounsfield units, in canonical axial orientation.

    Attributes
    ----------
    index : int
        Position in the plan's frame order (0 = most inferior for axial CT).
    hu : ndarray of float32, shape (rows, columns)
        Hounsfield units after the modality transform; padding replaced by
        :data:`PADDING_FILL_HU`. Shape is the canonical one (rows and columns swap when the
        acquired slice was transposed).
    header : pydicom.Dataset
        The file's header without pixel data, as acquired (its geometry tags describe the
        acquired grid). For a frame of a multi-frame file: a copy whose
        PerFrameFunctionalGroupsSequence holds only this frame's item.
    position_mm : ndarray of shape (3,)
        Centre of pixel [0, 0] of ``hu`` in LPS mm.
    pixel_spacing_mm : (float, float)
        (row spacing, column spacing) of ``hu``, mm.
    padding_mask : ndarray of bool, shape (rows, columns), or None
        Pixels that were padding (outside the field of view); None when there were none.
    photometric_interpretation : str
        MONOCHROME1 or MONOCHROME2. HU never depend on it; an 8-bit rendering of a
        MONOCHROME1 slice must invert grey levels (low stored value = white).
    frame : FrameRef
        The frame this slice came from.
    """

    index: int
    hu: NDArray[np.float32]
    header: Dataset
    position_mm: NDArray[np.float64]
    pixel_spacing_mm: tuple[float, float]
    padding_mask: NDArray[np.bool_] | None
    photometric_interpretation: str
    frame: FrameRef


# --------------------------------------------------------------------------------------------
# Header scan
# --------------------------------------------------------------------------------------------


@dataclass
class _Frame:
    path: Path
    frame_index: int | None
    attributes: FrameAttributes
    dataset: Dataset
    sop_instance_uid: str
    instance_number: int | None
    acquisition_number: int | None
    pixel_offset: int


class _ExcludedFileError(Exception):
    """Internal signal: the file goes to :attr:`DicomScan.excluded` with this reason.

    ``series_instance_uid`` is set when the header was read before the file was rejected.
    """

    series_instance_uid: str = ""


# pydicom raises many exception types on malformed files; these are the ones seen on
# truncated, non-DICOM and corrupt headers, on values of the wrong length
# (BytesLengthException) and on sequences nested past Python's recursion limit.
_HEADER_ERRORS = (
    InvalidDicomError,
    BytesLengthException,
    RecursionError,
    OverflowError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    NotImplementedError,
    struct.error,
)


def _looks_like_raw_dataset(head: bytes) -> bool:
    """Return whether a file without the DICM preamble starts like a group 0008 element."""
    return len(head) >= 4 and head[:2] == b"\x08\x00"


#: Bytes read at once at the start of a file to find the deflated transfer syntax UID in the
#: File Meta group. A group is usually far shorter, and a longer one is read on demand.
_META_PEEK_BYTES = 4096
#: Largest File Meta group (bytes) walked by :func:`_may_be_deflated`. A longer group is
#: implausible, so it is parsed with pydicom instead (slower, but only for such files).
_MAX_PEEKED_META_BYTES = 1024 * 1024
_DEFLATED_UID_BYTES = str(pydicom.uid.DeflatedExplicitVRLittleEndian).encode("ascii")
_ROWS_TAG = 0x00280010
_COLUMNS_TAG = 0x00280011


@contextlib.contextmanager
def _cyclic_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the headers of an upload are read.

    Planning keeps every header (about 250 container objects each, most of them pydicom
    tags and raw elements) until all files are read. The collector runs after every 700
    surviving container allocations and rescans the growing set of surviving headers in its
    older generations, which cost about 0.15 ms per slice in a 148-slice series and grows
    with the series. Reference counting still frees everything that is not part of a cycle
    while the collector is paused, and the collector's previous state is restored afterwards,
    also on error.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_header(path: Path) -> tuple[Dataset, int]:
    """Read a header without pixel data; return it with the byte offset where pixel data starts."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_META_PEEK_BYTES)
            if _may_be_deflated(handle, head):
                _check_deflated(path)
            handle.seek(0)
            try:
                dataset = pydicom.dcmread(
                    handle, stop_before_pixels=True, defer_size=HEADER_DEFER_SIZE
                )
            except InvalidDicomError:
                if not _looks_like_raw_dataset(head):
                    raise
                handle.seek(0)
                dataset = pydicom.dcmread(
                    handle, stop_before_pixels=True, defer_size=HEADER_DEFER_SIZE, force=True
                )
            pixel_offset = handle.tell()
            pixel_element = handle.read(12)
            file_size = os.fstat(handle.fileno()).st_size
    except InvalidDicomError as err:
        raise _ExcludedFileError("not a DICOM file (no DICM preamble)") from err
    except _HEADER_ERRORS as err:
        raise _ExcludedFileError(f"unreadable DICOM header ({describe_error(err)})") from err
    try:
        _check_native_length(dataset, pixel_offset, pixel_element, file_size)
    except _ExcludedFileError as err:
        err.series_instance_uid = _series_uid_or_empty(dataset)
        raise
    return dataset, pixel_offset


def _may_be_deflated(handle: Any, head: bytes) -> bool:
    """Return whether the File Meta group may name the deflated transfer syntax.

    ``head`` is the start of the file open as ``handle``. The (0002,xxxx) elements are walked
    by their tag, VR and length alone, reading past ``head`` only for a group longer than it,
    so an ordinary file costs a few byte comparisons and no pydicom parse. True is also
    returned when the walk cannot decide (implicit VR, a group longer than
    :data:`_MAX_PEEKED_META_BYTES`, a file ending inside the group), so that the caller runs
    the full check, which parses the group with pydicom.
    """
    if len(head) < 132 or head[128:132] != b"DICM":
        # No preamble: pydicom reads such a file only as a raw dataset, without a meta group.
        return False
    deflated = False
    offset = 132
    while True:
        if offset + 12 > _MAX_PEEKED_META_BYTES:
            return True
        element = _bytes_at(handle, head, offset, 12)
        if len(element) < 8:
            return True
        if element[:2] != b"\x02\x00":
            return deflated
        vr = element[4:6]
        if vr in LONG_LENGTH_VRS:
            if len(element) < 12:
                return True
            length = int.from_bytes(element[8:12], "little")
            value_offset = offset + 12
        elif vr.isalpha() and vr.isupper():
            length = int.from_bytes(element[6:8], "little")
            value_offset = offset + 8
        else:
            return True
        if element[2:4] == b"\x10\x00" and length <= len(_DEFLATED_UID_BYTES) + 2:
            value = _bytes_at(handle, head, value_offset, length)
            deflated = deflated or value.rstrip(b"\x00 ") == _DEFLATED_UID_BYTES
        offset = value_offset + length


def _bytes_at(handle: Any, head: bytes, offset: int, size: int) -> bytes:
    """Return up to ``size`` bytes of the file at ``offset``, from ``head`` where it has them."""
    if offset + size <= len(head):
        return head[offset : offset + size]
    handle.seek(offset)
    data: bytes = handle.read(size)
    return data


def _check_deflated(path: Path) -> None:
    """Exclude a deflated file whose body inflates beyond the size limit or is corrupt."""
    try:
        check_deflated_size(path)
    except InvalidDicomError:
        # No file meta group: dcmread reports the file as not DICOM.
        pass
    except (ValueError, EOFError, zlib.error) as err:
        raise _ExcludedFileError(
            f"unreadable deflated DICOM: {redact_quoted_values(str(err))}"
        ) from err
    except _HEADER_ERRORS as err:
        raise _ExcludedFileError(f"unreadable DICOM header ({describe_error(err)})") from err


def _check_native_length(
    dataset: Dataset, pixel_offset: int, pixel_element: bytes, file_size: int
) -> None:
    """Exclude a file whose transfer syntax is unknown or whose native pixel data is invalid.

    ``pixel_element`` is up to 12 bytes read at ``pixel_offset``: the header of the element
    that follows the header read (the (7FE0,0010) PixelData element in an image).
    """
    syntax = transfer_syntax(dataset)
    if not is_known_transfer_syntax(syntax):
        raise _ExcludedFileError(
            "(0002,0010) TransferSyntaxUID is not a known transfer syntax, so the pixel data "
            "cannot be read: convert the file to a standard transfer syntax"
        )
    if is_compressed_syntax(syntax) or _ROWS_TAG not in dataset:
        return
    if syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        return
    _check_image_size(dataset)
    implicit = syntax == pydicom.uid.ImplicitVRLittleEndian
    element_header = 8 if implicit else 12
    if pixel_element[:4] in (_PIXEL_DATA_TAG, _PIXEL_DATA_TAG_BIG_ENDIAN):
        length = pixel_element[4:8] if implicit else pixel_element[8:12]
        if length == b"\xff\xff\xff\xff":
            raise _ExcludedFileError(
                "(7FE0,0010) PixelData has undefined length, which an uncompressed transfer "
                "syntax does not allow: the file is damaged"
            )
    available = file_size - pixel_offset - element_header
    expected = expected_pixel_bytes(dataset)
    if available < 0:
        raise _ExcludedFileError("no pixel data: (7FE0,0010) PixelData is missing")
    if available < expected:
        raise _ExcludedFileError(
            f"truncated: pixel data needs {expected} bytes but only {available} remain in the file"
        )


#: Attributes of the Image Pixel module that must each hold one positive integer:
#: (tag, label for messages).
_IMAGE_SIZE_TAGS = ((_ROWS_TAG, "(0028,0010) Rows"), (_COLUMNS_TAG, "(0028,0011) Columns"))


def _check_image_size(dataset: Dataset) -> None:
    """Exclude a file whose Rows or Columns is not one positive integer."""
    for tag, label in _IMAGE_SIZE_TAGS:
        value = _single_integer(dataset, tag, label)
        if value is None or value < 1:
            raise _ExcludedFileError(f"invalid {label}: it must be one positive integer")


def _single_integer(dataset: Dataset, keyword: str | int, label: str) -> int | None:
    """Return an IS or US attribute as an int, None when absent or empty.

    Raises _ExcludedFileError (naming ``label``, never the value) when the value cannot be
    read, has several values or is not a whole number.
    """
    try:
        value = header_value(dataset, keyword)
    except _HEADER_ERRORS as err:
        raise _ExcludedFileError(f"invalid {label}: it must be one integer") from err
    if type(value) is int:
        return value  # The common case (US values), checked first because it is per file.
    if value is None or value == "":
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or int(value) != value
    ):
        raise _ExcludedFileError(f"invalid {label}: it must be one integer")
    return int(value)


def _image_exclusion(dataset: Dataset) -> str | None:
    """Return why an image cannot form a CT volume, or None. The reason never quotes free text."""
    if _ROWS_TAG not in dataset or _COLUMNS_TAG not in dataset:
        sop_class = pydicom.uid.UID(single_uid(dataset, "SOPClassUID"))
        # UID.name is the UID itself for one pydicom does not register, and an unregistered
        # UID may carry any digits (a date, an ID), so only registered names are quoted.
        registered = bool(sop_class) and sop_class.name != str(sop_class)
        name = sop_class.name if registered else "an unrecognised SOP class"
        return f"not an image ({name}): (0028,0010) Rows and (0028,0011) Columns are missing"
    modality = _upper_text(header_value(dataset, "Modality", ""))
    if modality != "" and modality not in HU_MODALITIES:
        named = (
            f"modality {modality}"
            if modality in MODALITY_DEFINED_TERMS
            else "(0008,0060) Modality has an unrecognised value and"
        )
        return f"{named} is not CT, so its values are not Hounsfield units"
    sop_class_value = header_value(dataset, "SOPClassUID")
    if sop_class_value is not None and not isinstance(sop_class_value, str):
        return "invalid (0008,0016) SOPClassUID: it must be one UID"
    samples = _single_integer(dataset, "SamplesPerPixel", "(0028,0002) SamplesPerPixel")
    if samples is not None and samples < 1:
        return "invalid (0028,0002) SamplesPerPixel: it must be 1 for greyscale CT"
    if samples is not None and samples != 1:
        return f"colour image ({samples} samples per pixel): only greyscale CT forms volumes"
    photometric = _upper_text(header_value(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric not in GREYSCALE_PHOTOMETRIC:
        named = (
            f"photometric interpretation {photometric}"
            if photometric in PHOTOMETRIC_DEFINED_TERMS
            else "(0028,0004) PhotometricInterpretation has an unrecognised value and"
        )
        return f"{named} is not greyscale (MONOCHROME1 or MONOCHROME2)"
    return _pixel_description_exclusion(dataset)


def _upper_text(value: Any) -> str | None:
    """Return a one-value text attribute in upper case, None for several values or a non-text."""
    return value.upper() if isinstance(value, str) else None


def _pixel_description_exclusion(dataset: Dataset) -> str | None:
    """Return why the Image Pixel module cannot describe CT values, or None."""
    allocated = _single_integer(dataset, "BitsAllocated", "(0028,0100) BitsAllocated")
    if allocated is not None and allocated not in BITS_ALLOCATED_VALUES:
        return "invalid (0028,0100) BitsAllocated: it must be 8, 16 or 32"
    stored = _single_integer(dataset, "BitsStored", "(0028,0101) BitsStored")
    if stored is not None and not 1 <= stored <= (allocated or 16):
        return "invalid (0028,0101) BitsStored: it must be 1 to (0028,0100) BitsAllocated"
    high_bit = _single_integer(dataset, "HighBit", "(0028,0102) HighBit")
    if high_bit is not None and stored is not None and high_bit != stored - 1:
        return "invalid (0028,0102) HighBit: it must be (0028,0101) BitsStored minus 1"
    representation = _single_integer(
        dataset, "PixelRepresentation", "(0028,0103) PixelRepresentation"
    )
    if representation is not None and representation not in (0, 1):
        return "invalid (0028,0103) PixelRepresentation: it must be 0 (unsigned) or 1 (signed)"
    frames = _single_integer(dataset, "NumberOfFrames", "(0028,0008) NumberOfFrames")
    if frames is not None and frames < 1:
        return "invalid (0028,0008) NumberOfFrames: it must be a positive integer"
    return None


def _rescale_exclusion(rescale: tuple[float, float] | None) -> str | None:
    """Return why a (slope, intercept) pair cannot give Hounsfield units, or None."""
    if rescale is None:
        return None
    slope, intercept = rescale
    if not (math.isfinite(slope) and 0.0 < abs(slope) <= MAX_RESCALE_SLOPE):
        return (
            "invalid (0028,1053) RescaleSlope: it must be one finite, non-zero number of at "
            f"most {MAX_RESCALE_SLOPE:g} in magnitude"
        )
    if not (math.isfinite(intercept) and abs(intercept) <= MAX_RESCALE_INTERCEPT_HU):
        return (
            "invalid (0028,1052) RescaleIntercept: it must be one finite number of at most "
            f"{MAX_RESCALE_INTERCEPT_HU:g} HU in magnitude"
        )
    return None


def _frames_of(path: Path, dataset: Dataset, pixel_offset: int) -> list[_Frame]:
    count = number_of_frames(dataset)
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    multi = count > 1 or per_frame is not None
    if per_frame is not None and len(per_frame) != count:
        raise _ExcludedFileError(
            f"(5200,9230) PerFrameFunctionalGroupsSequence has {len(per_frame)} items for "
            f"{count} frames ((0028,0008) NumberOfFrames): it must have one item per frame"
        )
    try:
        instance = _single_integer(dataset, "InstanceNumber", "(0020,0013) InstanceNumber")
    except _ExcludedFileError:
        # InstanceNumber only breaks ties in the order, so an invalid one is ignored.
        instance = None
    acquisition = _single_integer(dataset, "AcquisitionNumber", "(0020,0012) AcquisitionNumber")
    frames = []
    for index in range(count):
        frame_index = index if multi else None
        try:
            attributes = frame_attributes(dataset, frame_index)
        except MissingAttributeError as err:
            where = f"frame {index + 1}: " if multi else ""
            raise _ExcludedFileError(f"no geometry: {where}{err}") from err
        rescale_reason = _rescale_exclusion(attributes.rescale)
        if rescale_reason is not None:
            where = f"frame {index + 1}: " if multi else ""
            raise _ExcludedFileError(f"{where}{rescale_reason}")
        frames.append(
            _Frame(
                path=path,
                frame_index=frame_index,
                attributes=attributes,
                dataset=dataset,
                sop_instance_uid=single_uid(dataset, "SOPInstanceUID"),
                instance_number=instance,
                acquisition_number=acquisition,
                pixel_offset=pixel_offset,
            )
        )
    return frames


# --------------------------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------------------------


def _volume_key(frame: _Frame) -> tuple[Any, ...]:
    """Attributes that must agree for frames to share one volume (orientation is clustered apart)."""
    attributes = frame.attributes
    dataset = frame.dataset
    return (
        int(header_value(dataset, "Rows")),
        int(header_value(dataset, "Columns")),
        round(attributes.pixel_spacing_mm[0], 3),
        round(attributes.pixel_spacing_mm[1], 3),
        attributes.kernel,
    )


def _split_by_key(frames: list[_Frame]) -> list[tuple[str, list[_Frame]]]:
    """Split frames by matrix, spacing, kernel and orientation; return (reason, frames) pairs."""
    groups: list[tuple[tuple[Any, ...], NDArray[np.float64], list[_Frame]]] = []
    for frame in frames:
        key = _volume_key(frame)
        for group_key, orientation, members in groups:
            if group_key == key and geo.same_orientation(orientation, frame.attributes.orientation):
                members.append(frame)
                break
        else:
            groups.append((key, frame.attributes.orientation, [frame]))
    if len(groups) == 1:
        return [("", groups[0][2])]
    # (0018,1210) ConvolutionKernel is free text, so parts name a kernel by its number.
    kernels = list(dict.fromkeys(key[4] for key, _, _ in groups if key[4]))
    result = []
    for key, orientation, members in groups:
        rows, columns, row_spacing, column_spacing, kernel = key
        kernel_text = f"{kernels.index(kernel) + 1} of {len(kernels)}" if kernel else "not given"
        reason = (
            f"series split by matrix, pixel spacing, kernel and orientation: this part has "
            f"{rows}x{columns} pixels at {row_spacing}x{column_spacing} mm, kernel "
            f"{kernel_text}, orientation {np.round(orientation, 3).tolist()}"
        )
        result.append((reason, members))
    return result


def _pixel_digest(frame: _Frame) -> str | None:
    """SHA-256 of a single-frame file's PixelData bytes, None for multi-frame or unreadable."""
    if frame.frame_index is not None:
        return None
    try:
        dataset = pydicom.dcmread(frame.path, specific_tags=["PixelData"])
    except _HEADER_ERRORS:
        return None
    data = dataset.get("PixelData")
    if data is None:
        return None
    return hashlib.sha256(bytes(data)).hexdigest()


def _project(frames: list[_Frame], normal: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray([float(np.dot(frame.attributes.position_mm, normal)) for frame in frames])


def _ordering_key(frame: _Frame, projection: float) -> tuple[Any, ...]:
    return (
        projection,
        frame.acquisition_number or 0,
        frame.instance_number or 0,
        str(frame.path),
        frame.frame_index or 0,
    )


def _resolve_repeats(
    frames: list[_Frame], normal: NDArray[np.float64]
) -> tuple[list[list[_Frame]], list[str]]:
    """Drop exact duplicates at one position and split stacks whose positions repeat.

    Returns the stacks (each with unique positions) and the warnings.
    """
    projections = _project(frames, normal)
    order = sorted(
        range(len(frames)), key=lambda i: _ordering_key(frames[i], float(projections[i]))
    )
    buckets: list[list[int]] = []
    for index in order:
        if (
            buckets
            and abs(projections[index] - projections[buckets[-1][0]]) <= geo.POSITION_TOLERANCE_MM
        ):
            buckets[-1].append(index)
        else:
            buckets.append([index])
    warnings: list[str] = []
    position_buckets: list[list[int]] = []
    duplicates = 0
    for bucket in buckets:
        if len(bucket) == 1:
            position_buckets.append(bucket)
            continue
        digests = [_pixel_digest(frames[i]) for i in bucket]
        unique: list[int] = []
        seen: set[str] = set()
        for index, digest in zip(bucket, digests, strict=True):
            if digest is not None and digest in seen:
                duplicates += 1
                continue
            if digest is not None:
                seen.add(digest)
            unique.append(index)
        position_buckets.append(unique)
    if duplicates:
        warnings.append(
            f"{duplicates} duplicate slice{'s' if duplicates != 1 else ''} dropped "
            "(same position and identical pixel data as a kept slice)"
        )
    depth = max(len(bucket) for bucket in position_buckets)
    if depth == 1:
        return [[frames[bucket[0]] for bucket in position_buckets]], warnings

    # Positions repeat with different pixel data: several volumes share the series UID.
    acquisition_stacks = _stacks_by_acquisition(
        [frames[i] for bucket in position_buckets for i in bucket], normal
    )
    if acquisition_stacks is not None:
        stacks = acquisition_stacks
        split_rule = "(0020,0012) AcquisitionNumber"
    else:
        stacks = [
            [frames[bucket[level]] for bucket in position_buckets if len(bucket) > level]
            for level in range(depth)
        ]
        split_rule = "order of appearance at each position"
    warnings.append(
        f"slice positions repeat with different pixel data: split into {len(stacks)} volumes "
        f"by {split_rule}"
    )
    return stacks, warnings


def _stacks_by_acquisition(
    frames: list[_Frame], normal: NDArray[np.float64]
) -> list[list[_Frame]] | None:
    by_acquisition: dict[int | None, list[_Frame]] = defaultdict(list)
    for frame in frames:
        by_acquisition[frame.acquisition_number].append(frame)
    if len(by_acquisition) < 2:
        return None
    for members in by_acquisition.values():
        projections = np.sort(_project(members, normal))
        if np.any(np.diff(projections) <= geo.POSITION_TOLERANCE_MM):
            return None
    return [
        by_acquisition[key] for key in sorted(by_acquisition, key=lambda k: (k is None, k or 0))
    ]


# --------------------------------------------------------------------------------------------
# Geometry of one stack
# --------------------------------------------------------------------------------------------


def _stack_geometry(
    frames: list[_Frame], normal: NDArray[np.float64], reorientation: geo.InPlaneReorientation
) -> tuple[list[_Frame], geo.SeriesGeometry, list[tuple[float, float]], list[str]]:
    """Order one stack, undo a gantry-tilt shear and describe the canonical grid."""
    projections = _project(frames, normal)
    order = np.argsort(projections, kind="stable")
    frames = [frames[i] for i in order]
    projections = projections[order]
    first = frames[0]
    dataset = first.dataset
    acquired_direction = geo.orientation_matrix(first.attributes.orientation)
    row_spacing, column_spacing = first.attributes.pixel_spacing_mm
    warnings: list[str] = []

    # In-plane offset of each frame from the middle frame's grid (gantry-tilt shear).
    reference = frames[len(frames) // 2].attributes.position_mm
    offsets = np.asarray([frame.attributes.position_mm - reference for frame in frames])
    along_column = offsets @ acquired_direction[1]
    along_row = offsets @ acquired_direction[0]
    sheared = bool(
        np.max(np.abs(along_column), initial=0.0) > geo.SHEAR_TOLERANCE_MM
        or np.max(np.abs(along_row), initial=0.0) > geo.SHEAR_TOLERANCE_MM
    )
    shifts = [
        (float(dr / row_spacing), float(dc / column_spacing))
        for dr, dc in zip(along_column, along_row, strict=True)
    ]
    acquired_normal = acquired_direction[2]
    if not sheared:
        shifts = [(0.0, 0.0)] * len(frames)
    # Origin: the reference frame's in-plane grid carried along the normal to the first slice
    # (the first frame's own position when the stack is not sheared).
    origin_acquired = reference + acquired_normal * float(offsets[0] @ acquired_normal)

    origin, direction, pixel_spacing = geo.reoriented_frame(
        origin_acquired,
        acquired_direction,
        (row_spacing, column_spacing),
        (int(dataset.Rows), int(dataset.Columns)),
        reorientation,
    )
    # Distances along the canonical normal, which the sort above made increasing.
    slice_positions = (offsets - offsets[0]) @ direction[2]

    spacing = geo.check_slice_spacing(slice_positions)
    warnings.extend(spacing.warnings)
    slice_step = spacing.spacing_mm
    if len(frames) == 1:
        between = first.attributes.spacing_between_slices_mm
        slice_step = between if not math.isnan(between) else first.attributes.slice_thickness_mm
        warnings.append(
            "single-slice series: slice spacing taken from "
            + (
                "(0018,0088) SpacingBetweenSlices"
                if not math.isnan(between)
                else "(0018,0050) SliceThickness"
                if not math.isnan(slice_step)
                else "nothing (unknown, NaN)"
            )
        )
    tilt = geo.tilt_angle_deg(acquired_normal)
    shape = (len(frames), *_canonical_shape(int(dataset.Rows), int(dataset.Columns), reorientation))
    geometry = geo.SeriesGeometry(
        origin_mm=np.asarray(origin, dtype=np.float64),
        spacing_mm=(float(slice_step), float(pixel_spacing[0]), float(pixel_spacing[1])),
        direction=direction,
        slice_positions_mm=np.asarray(slice_positions, dtype=np.float64),
        shape=shape,
        uniform_spacing=spacing.uniform,
        reorientation=reorientation,
        gantry_tilt_deg=tilt,
        sheared=sheared,
    )
    return frames, geometry, shifts, warnings


def _canonical_shape(
    rows: int, columns: int, reorientation: geo.InPlaneReorientation
) -> tuple[int, int]:
    return (columns, rows) if reorientation.transpose else (rows, columns)


def _header_tilt(dataset: Dataset) -> float:
    value = dataset.get("GantryDetectorTilt")
    try:
        return float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def plan_dicom_series(
    files: Sequence[Path],
    *,
    gantry_tilt: TiltPolicy = "resample",
    check_decoders: bool = True,
) -> DicomScan:
    """Group DICOM files into axial CT volumes from their headers alone.

    Parameters
    ----------
    files : sequence of Path
        Candidate files in any order (file names and InstanceNumber never set the order).
    gantry_tilt : {"resample", "reject"}, default "resample"
        What to do with a stack whose slices are shifted in plane from one another (gantry
        tilt, seen as an IOP/IPP shear). ``"resample"`` shifts each slice in plane onto an
        orthogonal grid (linear interpolation, new pixels :data:`PADDING_FILL_HU`);
        ``"reject"`` moves the whole stack to ``excluded``.
    check_decoders : bool, default True
        Raise when a planned series uses a compressed transfer syntax that no installed
        decoder handles, so the upload fails at ingest rather than halfway through decoding.

    Returns
    -------
    DicomScan
        ``series`` is ordered by series UID and split index. ``excluded`` lists every file
        left out, with the reason: not DICOM, unreadable, truncated, not an image, not CT,
        colour, localizer, non-axial reconstruction, no geometry, or rejected tilt.

    Raises
    ------
    InputError
        If a planned series needs a decoder that is not installed (the message names the
        transfer syntax and the packages to install).
    """
    excluded: list[ExcludedFile] = []
    by_series: dict[str, list[_Frame]] = defaultdict(list)
    # Plane of each distinct (0020,0037) ImageOrientationPatient: a series repeats one value.
    planes: dict[tuple[float, ...], str] = {}
    # The headers stay in memory until the plan is complete: see _cyclic_collector_paused.
    with _cyclic_collector_paused():
        for raw_path in files:
            path = Path(raw_path)
            dataset = None
            try:
                dataset, pixel_offset = _read_header(path)
                reason = _image_exclusion(dataset)
                if reason is not None:
                    raise _ExcludedFileError(reason)
                frames = _frames_of(path, dataset, pixel_offset)
                series_uid = single_uid(dataset, "SeriesInstanceUID")
                localizer_reasons = [
                    localizer_reason(dataset, frame.attributes.frame_type) for frame in frames
                ]
            except (_ExcludedFileError, *_HEADER_ERRORS) as err:
                reason = (
                    str(err)
                    if isinstance(err, _ExcludedFileError)
                    else f"invalid DICOM header ({describe_error(err)})"
                )
                series_uid = _series_uid_or_empty(dataset) or getattr(
                    err, "series_instance_uid", ""
                )
                excluded.append(ExcludedFile(path, reason, series_uid))
                logger.info("file excluded from volumes: %s", reason)
                continue
            axial_frames = []
            for frame, reason in zip(frames, localizer_reasons, strict=True):
                if reason is None:
                    orientation_key = tuple(frame.attributes.orientation.tolist())
                    plane = planes.get(orientation_key)
                    if plane is None:
                        plane = geo.classify_plane(geo.slice_normal(frame.attributes.orientation))
                        planes[orientation_key] = plane
                    if plane != "axial":
                        reason = f"{plane} reconstruction: only axial slices form volumes"
                if reason is not None:
                    if frame.frame_index is not None and len(frames) > 1:
                        reason = f"frame {frame.frame_index + 1}: {reason}"
                    excluded.append(ExcludedFile(path, reason, series_uid))
                    logger.info("image excluded from volumes: %s", reason)
                    continue
                axial_frames.append(frame)
            if axial_frames:
                by_series[series_uid].extend(axial_frames)

    scan = DicomScan(excluded=excluded)
    for series_uid in sorted(by_series):
        split_index = 0
        for split_reason, members in _split_by_key(by_series[series_uid]):
            acquired_direction = geo.orientation_matrix(members[0].attributes.orientation)
            reorientation = geo.canonical_in_plane(acquired_direction)
            _, canonical_direction, _ = geo.reoriented_frame(
                np.zeros(3), acquired_direction, (1.0, 1.0), (2, 2), reorientation
            )
            stacks, repeat_warnings = _resolve_repeats(members, canonical_direction[2])
            for stack in stacks:
                plan = _build_plan(
                    series_uid,
                    split_index,
                    stack,
                    canonical_direction[2],
                    reorientation,
                    gantry_tilt,
                )
                split_index += 1
                if isinstance(plan, list):
                    scan.excluded.extend(plan)
                    continue
                plan.warnings[:0] = [w for w in (split_reason, *repeat_warnings) if w]
                scan.series.append(plan)
    if check_decoders:
        for plan in scan.series:
            message = unsupported_syntax_message(plan.transfer_syntax_uid)
            if message is not None:
                raise InputError(message, path=plan.frames[0].path)
    for number, plan in enumerate(scan.series, start=1):
        for warning in plan.warnings:
            logger.warning("volume %d of %d: %s", number, len(scan.series), warning)
    return scan


def _series_uid_or_empty(dataset: Dataset | None) -> str:
    """Return (0020,000E) SeriesInstanceUID of a header read before, empty when unreadable."""
    if dataset is None:
        return ""
    try:
        return single_uid(dataset, "SeriesInstanceUID")
    except _HEADER_ERRORS:
        return ""


def _build_plan(
    series_uid: str,
    split_index: int,
    stack: list[_Frame],
    normal: NDArray[np.float64],
    reorientation: geo.InPlaneReorientation,
    gantry_tilt: TiltPolicy,
) -> SeriesPlan | list[ExcludedFile]:
    frames, geometry, shifts, warnings = _stack_geometry(stack, normal, reorientation)
    first = frames[0].dataset
    header_tilt = _header_tilt(first)
    tilt_tag = (
        f"(0018,1120) GantryDetectorTilt {header_tilt:g} deg"
        if "GantryDetectorTilt" in first
        else "no (0018,1120) GantryDetectorTilt"
    )
    if geometry.sheared:
        row_spacing, column_spacing = frames[0].attributes.pixel_spacing_mm
        largest_mm = max(
            math.hypot(rows * row_spacing, columns * column_spacing) for rows, columns in shifts
        )
        if gantry_tilt == "reject":
            reason = (
                f"gantry tilt: slices are shifted in plane by up to {largest_mm:.2f} mm from "
                f"one another ({tilt_tag}); rejected because gantry_tilt='reject' (use "
                "'resample' to shift them onto an orthogonal grid)"
            )
            return [ExcludedFile(frame.path, reason, series_uid) for frame in frames]
        warnings.append(
            f"gantry tilt: slices shifted in plane by up to {largest_mm:.2f} mm onto an "
            f"orthogonal grid ({tilt_tag}, slice normal {geometry.gantry_tilt_deg:.1f} deg "
            f"from z); new pixels are {PADDING_FILL_HU:g} HU"
        )
    elif abs(header_tilt) > 0 or geometry.gantry_tilt_deg > 0.5:
        warnings.append(
            f"gantry tilt ({tilt_tag}, slice normal {geometry.gantry_tilt_deg:.1f} deg from z): "
            "the stack is orthogonal, so no resampling"
        )

    sources = {frame.attributes.rescale_source for frame in frames}
    if "missing" in sources:
        warnings.append(
            "(0028,1053) RescaleSlope and (0028,1052) RescaleIntercept are missing: "
            "slope 1 and intercept 0 assumed, so stored values are taken as Hounsfield units"
        )
    syntaxes = sorted({transfer_syntax(frame.dataset) for frame in frames})
    syntax = transfer_syntax(first)
    if len(syntaxes) > 1:
        warnings.append(f"files use {len(syntaxes)} transfer syntaxes: {', '.join(syntaxes)}")
    burned_in = [
        str(header_value(frame.dataset, "BurnedInAnnotation", "")).upper() for frame in frames
    ]
    burned_in_value = "YES" if "YES" in burned_in else (burned_in[0] or None)
    refs = [
        FrameRef(
            path=frame.path,
            frame_index=frame.frame_index,
            sop_instance_uid=frame.sop_instance_uid,
            position_mm=frame.attributes.position_mm,
            instance_number=frame.instance_number,
            rescale=frame.attributes.rescale,
            rescale_source=frame.attributes.rescale_source,
            shift_px=shift,
        )
        for frame, shift in zip(frames, shifts, strict=True)
    ]

    plan = SeriesPlan(
        series_instance_uid=series_uid,
        split_index=split_index,
        frames=refs,
        geometry=geometry,
        warnings=warnings,
        image_type=frames[0].attributes.frame_type,
        modality=str(first.get("Modality", "")),
        burned_in_annotation=burned_in_value,
        is_secondary_capture=any(is_secondary_capture(frame.dataset) for frame in frames),
        transfer_syntax_uid=syntax,
        photometric_interpretation=str(first.get("PhotometricInterpretation", "MONOCHROME2")),
        rows=int(first.Rows),
        columns=int(first.Columns),
    )
    for frame in frames:
        if frame.frame_index is None:
            plan._header_cache[frame.path] = (frame.dataset, frame.pixel_offset)
    return plan


# --------------------------------------------------------------------------------------------
# Pixel decoding
# --------------------------------------------------------------------------------------------

_DECODE_ERRORS = (
    ValueError,
    RuntimeError,
    EOFError,
    OSError,
    NotImplementedError,
    KeyError,
    struct.error,
    TypeError,
    IndexError,
    AttributeError,
    BytesLengthException,
)


def _decode_frame(
    frame: FrameRef, header_cache: dict[Path, Dataset], plan: SeriesPlan
) -> tuple[NDArray[Any], Dataset]:
    """Decode the stored values of one frame and return them with the header (no pixel data)."""
    path = frame.path
    try:
        if frame.frame_index is None:
            cached = plan._header_cache.pop(path, None)
            if cached is not None and is_compressed_syntax(transfer_syntax(cached[0])):
                return _decode_encapsulated_frame(path, *cached), cached[0]
            fast = _read_native_frame(path, cached)
            if fast is not None:
                return fast
            single = pydicom.dcmread(path)
            syntax = transfer_syntax(single)
            if pydicom.uid.UID(syntax).is_compressed:
                fragments = pydicom.encaps.generate_frames(single.PixelData, number_of_frames=1)
                check_encapsulated_frame(next(fragments), syntax)
            stored = single.pixel_array
            for keyword in _PIXEL_KEYWORDS:
                if keyword in single:
                    delattr(single, keyword)
            return stored, single
        dataset = header_cache.get(path)
        if dataset is None:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
            header_cache.clear()
            header_cache[path] = dataset
        syntax = transfer_syntax(dataset)
        if pydicom.uid.UID(syntax).is_compressed:
            with path.open("rb") as handle:
                pydicom.dcmread(handle, stop_before_pixels=True)
                handle.seek(8, 1)  # (7FE0,0010) tag, VR, reserved bytes
                handle.seek(4, 1)  # undefined length
                encoded = pydicom.encaps.get_frame(
                    handle, frame.frame_index, number_of_frames=number_of_frames(dataset)
                )
            check_encapsulated_frame(encoded, syntax)
        stored = decode_pixel_array(path, index=frame.frame_index)
    except _DECODE_ERRORS as err:
        raise InputError(
            f"pixel data could not be decoded ({describe_error(err)}); the file is "
            "damaged or truncated: replace it or remove it from the upload",
            path=path,
        ) from err
    return stored, _single_frame_header(dataset, frame.frame_index)


def _decode_encapsulated_frame(path: Path, header: Dataset, offset: int) -> NDArray[Any]:
    """Decode the compressed pixel data of a single-frame file whose header was read before.

    Only the elements from ``offset`` (where the planning read stopped) onwards are read, so
    the header is not parsed twice. The pixel data is attached to ``header`` for pydicom's
    decoder and removed again, with its decoded array, before returning.
    """
    with path.open("rb") as handle:
        handle.seek(offset)
        # Every compressed transfer syntax is explicit VR little endian (PS3.5 A.4).
        tail = read_dataset(handle, is_implicit_VR=False, is_little_endian=True)
    if _PIXEL_DATA_TAG_NUMBER not in tail:
        raise ValueError("(7FE0,0010) PixelData is missing after the header")
    syntax = transfer_syntax(header)
    header[_PIXEL_DATA_TAG_NUMBER] = tail[_PIXEL_DATA_TAG_NUMBER]
    try:
        fragments = pydicom.encaps.generate_frames(header.PixelData, number_of_frames=1)
        check_encapsulated_frame(next(fragments), syntax)
        stored: NDArray[Any] = header.pixel_array
    finally:
        del header[_PIXEL_DATA_TAG_NUMBER]
    return stored


#: Transfer syntaxes whose pixel data :func:`_read_native_frame` reads without pydicom's decoder.
_NATIVE_LITTLE_ENDIAN = frozenset(
    {str(pydicom.uid.ExplicitVRLittleEndian), str(pydicom.uid.ImplicitVRLittleEndian)}
)
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
_PIXEL_DATA_TAG_BIG_ENDIAN = b"\x7f\xe0\x00\x10"
_PIXEL_DATA_TAG_NUMBER = 0x7FE00010


def _read_native_frame(
    path: Path, cached: tuple[Dataset, int] | None = None
) -> tuple[NDArray[Any], Dataset] | None:
    """Read 16-bit single-frame little-endian pixel data straight from the file.

    This skips pydicom's pixel pipeline (about twice as fast for uncompressed CT) and gives
    the same values: unused high bits are cleared (unsigned) or sign-extended (signed) as
    pydicom does. ``cached`` is the header and pixel-data offset found while planning; without
    it the header is read again. Returns None when the file is not of that simple kind, so
    the caller falls back to pydicom.
    """
    dataset: Dataset
    with path.open("rb") as handle:
        if cached is None:
            dataset = pydicom.dcmread(handle, stop_before_pixels=True)
        else:
            dataset, offset = cached
            handle.seek(offset)
        syntax = transfer_syntax(dataset)
        if (
            syntax not in _NATIVE_LITTLE_ENDIAN
            or number_of_frames(dataset) != 1
            or int(header_value(dataset, "SamplesPerPixel", 1) or 1) != 1
            or int(header_value(dataset, "BitsAllocated", 0) or 0) != 16
        ):
            return None
        header = handle.read(8)
        if len(header) < 8 or header[:4] != _PIXEL_DATA_TAG:
            return None
        if syntax == pydicom.uid.ImplicitVRLittleEndian:
            length = int.from_bytes(header[4:8], "little")
        else:
            length = int.from_bytes(handle.read(4), "little")
        expected = expected_pixel_bytes(dataset)
        if length == 0xFFFFFFFF or length < expected:
            return None
        data = handle.read(expected)
    if len(data) < expected:
        raise ValueError(f"pixel data ends after {len(data)} of {expected} bytes")
    signed = int(header_value(dataset, "PixelRepresentation", 0) or 0) == 1
    stored = np.frombuffer(data, dtype="<i2" if signed else "<u2").reshape(
        int(header_value(dataset, "Rows")), int(header_value(dataset, "Columns"))
    )
    bits_stored = int(header_value(dataset, "BitsStored", 16) or 16)
    if bits_stored < 16:
        unused = 16 - bits_stored
        if signed:
            stored = (stored << unused) >> unused
        else:
            stored = stored & np.uint16((1 << bits_stored) - 1)
    return stored, dataset


def _single_frame_header(dataset: Dataset, frame_index: int) -> Dataset:
    """Copy a multi-frame header keeping only one frame's per-frame functional groups."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        return copy.deepcopy(dataset)
    del dataset.PerFrameFunctionalGroupsSequence
    try:
        header = copy.deepcopy(dataset)
    finally:
        dataset.PerFrameFunctionalGroupsSequence = per_frame
    header.PerFrameFunctionalGroupsSequence = [copy.deepcopy(per_frame[frame_index])]
    return header


def _padding_mask(stored: NDArray[Any], dataset: Dataset) -> NDArray[np.bool_] | None:
    value = header_value(dataset, "PixelPaddingValue")
    if value is None or isinstance(value, bytes):
        return None
    limit = header_value(dataset, "PixelPaddingRangeLimit")
    if limit is None or isinstance(limit, bytes):
        return np.asarray(stored == int(value))
    low, high = sorted((int(value), int(limit)))
    return np.asarray((stored >= low) & (stored <= high))


def _to_hu(stored: NDArray[Any], frame: FrameRef, dataset: Dataset) -> NDArray[np.float32]:
    """Apply the modality transform in float32 (a Modality LUT Sequence goes through pydicom)."""
    if frame.rescale_source == "modality-lut":
        return np.asarray(apply_modality_lut(stored, dataset), dtype=np.float32)
    hu = stored.astype(np.float32)
    if frame.rescale is not None:
        slope, intercept = frame.rescale
        if slope != 1.0:
            hu *= np.float32(slope)
        if intercept != 0.0:
            hu += np.float32(intercept)
    return hu


def iter_hu_slices(plan: SeriesPlan, *, fill_padding: bool = True) -> Iterator[HUSlice]:
    """Decode a planned series one slice at a time, in Hounsfield units.

    Parameters
    ----------
    plan : SeriesPlan
        From :func:`plan_dicom_series`.
    fill_padding : bool, default True
        Replace padding pixels by :data:`PADDING_FILL_HU`: those equal to (0028,0120)
        PixelPaddingValue (or within (0028,0121) PixelPaddingRangeLimit), compared on stored
        values, and those below :data:`IMPLICIT_PADDING_MAX_HU` after rescale. The mask is
        returned in :attr:`HUSlice.padding_mask` either way.

    Yields
    ------
    HUSlice
        In ``plan.frames`` order, each of shape ``plan.geometry.shape[1:]``; only one decoded
        slice is held at a time.

    Raises
    ------
    InputError
        If a frame cannot be decoded or decodes to an unexpected shape; the message names
        the file. A damaged frame is never returned as zeros.
    """
    header_cache: dict[Path, Dataset] = {}
    geometry = plan.geometry
    reorientation = geometry.reorientation
    expected_shape = (plan.rows, plan.columns)
    for index, frame in enumerate(plan.frames):
        stored, header = _decode_frame(frame, header_cache, plan)
        if stored.shape != expected_shape:
            raise InputError(
                f"pixel data decodes to shape {stored.shape}, expected {expected_shape} from "
                "(0028,0010) Rows and (0028,0011) Columns; the file is damaged",
                path=frame.path,
            )
        hu = _to_hu(stored, frame, header)
        mask = _padding_mask(stored, header)
        implicit = hu < IMPLICIT_PADDING_MAX_HU
        if implicit.any():
            mask = implicit if mask is None else (mask | implicit)
        if mask is not None and not mask.any():
            mask = None
        if fill_padding and mask is not None:
            hu[mask] = PADDING_FILL_HU
        if frame.shift_px != (0.0, 0.0):
            hu = ndimage.shift(hu, frame.shift_px, order=1, mode="constant", cval=PADDING_FILL_HU)
            outside = np.zeros(hu.shape, dtype=np.uint8) if mask is None else mask.astype(np.uint8)
            shifted = ndimage.shift(outside, frame.shift_px, order=0, mode="constant", cval=1)
            mask = shifted > 0 if shifted.any() else None
        hu = np.ascontiguousarray(reorientation.apply(hu), dtype=np.float32)
        if mask is not None:
            mask = np.ascontiguousarray(reorientation.apply(mask))
        yield HUSlice(
            index=index,
            hu=hu,
            header=header,
            position_mm=geometry.slice_origin_mm(index),
            pixel_spacing_mm=(geometry.spacing_mm[1], geometry.spacing_mm[2]),
            padding_mask=mask,
            photometric_interpretation=str(
                header_value(header, "PhotometricInterpretation", "MONOCHROME2")
            ),
            frame=frame,
        )


def load_hu_volume(plan: SeriesPlan, *, fill_padding: bool = True) -> NDArray[np.float32]:
    """Decode a whole planned series into one array.

    Returns
    -------
    ndarray of float32, shape ``plan.geometry.shape`` (slices, rows, columns)
        Hounsfield units in canonical axial orientation; memory is
        ``4 * slices * rows * columns`` bytes.

    Raises
    ------
    InputError
        As :func:`iter_hu_slices`.
    """
    volume = np.empty(plan.geometry.shape, dtype=np.float32)
    for item in iter_hu_slices(plan, fill_padding=fill_padding):
        volume[item.index] = item.hu
    return volume
