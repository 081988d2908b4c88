"""De-identification of DICOM headers by the PS3.15 Annex E Basic Application Level
Confidentiality Profile.

One ``Deidentifier`` serves one upload (one patient). It replaces every UID by a keyed hash,
so references between the files of the upload still resolve. It writes the caller's
pseudonym into PatientName and PatientID, applies Table E.1-1 (``annex_e``) at any sequence
depth, removes private attributes, curves and overlays, and rebuilds the File Meta
Information. Optionally it keeps longitudinal dates by a per-patient shift (Retain
Longitudinal Temporal Information Modified Dates Option) and patient characteristics such
as age and sex (Retain Patient Characteristics Option).

Attributes that Table E.1-1 does not list are kept unless their VR can carry free text,
names, dates or identifiers: PN, LO, SH, ST, LT, UT, UC, AE and UR attributes are removed
unless ``KEPT_TEXT_KEYWORDS`` lists them, DA, TM and DT attributes are removed (or shifted
when dates are kept), UIDs are replaced unless the standard registers them, and attributes
outside the data dictionary or of unknown VR are removed. A kept attribute whose VR in the
file differs from the data dictionary's is removed with a warning.

The profile covers headers only. Text burned into the pixel data cannot be detected from
headers; ``burned_in_text_risk`` names the header evidence that an image may carry such text
so the image can be reviewed, and nothing here claims that pixel data are clean.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import re
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any, Final, NamedTuple

from pydicom import config
from pydicom.charset import default_encoding, python_encoding
from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRLittleEndian

from ictcf import __version__
from ictcf.errors import InputError
from ictcf.imaging._element_values import ELEMENT_CONVERSION_ERRORS, as_list, element_value
from ictcf.imaging.annex_e import BASIC_PROFILE, TABLE_EDITION
from ictcf.imaging.date_shift import (
    shift_date,
    shift_date_and_time,
    shift_datetime,
    shift_time,
)
from ictcf.imaging.deidentification_report import DeidentificationRecord, DeidentificationReport
from ictcf.imaging.dicom_headers import BYTE_DETERMINED_VRS, header_value
from ictcf.imaging.pseudonyms import (
    SECRET_LENGTH_BYTES,
    load_or_create_secret,
    normalise_person_name,
    patient_lookup_key,
)

__all__ = [
    "SECRET_LENGTH_BYTES",
    "DeidentificationRecord",
    "DeidentificationReport",
    "Deidentifier",
    "burned_in_text_risk",
    "load_or_create_secret",
    "normalise_person_name",
    "patient_lookup_key",
]

logger = logging.getLogger(__name__)

PROFILE_NAME: Final = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"

# CID 7050 "De-identification Method" codes (DICOM PS3.16, coding scheme DCM).
BASIC_PROFILE_CODE: Final = ("113100", "Basic Application Confidentiality Profile")
MODIFIED_DATES_OPTION_CODE: Final = (
    "113107",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)
PATIENT_CHARACTERISTICS_OPTION_CODE: Final = ("113108", "Retain Patient Characteristics Option")

# Context group UIDs of PS3.16: the root, "6.1." and the group's number (no leading zeros, as
# PS3.5 9.1 requires of every UID component).
CONTEXT_GROUP_UID: Final = re.compile(r"1\.2\.840\.10008\.6\.1\.[1-9][0-9]{0,5}")
# UUID-derived UIDs (ISO/IEC 9834-8) need no registered organisation root.
DEFAULT_UID_ROOT: Final = "2.25."
# PS3.5 6.2: a UI value is at most 64 characters long.
MAX_UID_LENGTH: Final = 64
# A custom root must leave room for at least this many hash digits (about 66 bits).
MIN_UID_HASH_DIGITS: Final = 20

# Shift of dates into the past, in whole days, when longitudinal dates are kept: at least a
# year so a shifted date never equals a recent real one, at most about ten years.
DATE_SHIFT_MIN_DAYS: Final = 366
DATE_SHIFT_MAX_DAYS: Final = 3652
SECONDS_PER_DAY: Final = 86_400

# PS3.5 6.2: LO values (PatientID) and PN component groups are at most 64 characters long.
MAX_PSEUDONYM_LENGTH: Final = 64
# Sequences nest a few levels deep in real files. Deeper nesting is treated as a malformed
# file instead of risking Python's recursion limit.
MAX_SEQUENCE_DEPTH: Final = 32

# SOP Classes 1.2.840.10008.5.1.4.1.1.7 and 1.2.840.10008.5.1.4.1.1.7.1-7.4 are the
# Secondary Capture Image Storage family (screenshots, scanned documents, film digitisers).
SECONDARY_CAPTURE_SOP_CLASS: Final = "1.2.840.10008.5.1.4.1.1.7"

# Fixed dummy values for the action D, by VR. Dates point at 1900-01-01 so that they cannot
# be mistaken for real events.
DUMMY_VALUES: Final[dict[str, Any]] = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": "ANONYMOUS",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": "ANONYMOUS",
    "LT": "ANONYMOUS",
    "PN": "ANONYMOUS",
    "SH": "ANONYMOUS",
    "ST": "ANONYMOUS",
    "TM": "000000",
    "UC": "ANONYMOUS",
    "UR": "urn:x-ictcf:anonymous",
    "UT": "ANONYMOUS",
}
# Binary VRs get two zero bytes (D requires a non-empty value of even length).
_DUMMY_BYTES: Final = b"\x00\x00"

TEMPORAL_VRS: Final = frozenset({"DA", "DT", "TM"})
# VRs that can carry names, free text, addresses or identifiers.
TEXT_VRS: Final = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "AE", "UR"})
# Defined terms of (0008,0005) SpecificCharacterSet (PS3.3 C.12.1.1.2) whose code points
# 0x00-0x7F are ASCII. Not listed: ISO_IR 13 (JIS X 0201 puts the yen sign at 0x5C) and the
# ISO 2022 code extension terms. An empty term is the default repertoire.
ASCII_SUPERSET_CHARACTER_SETS: Final = frozenset(
    {
        "",
        "ISO_IR 6",
        "ISO_IR 100",
        "ISO_IR 101",
        "ISO_IR 109",
        "ISO_IR 110",
        "ISO_IR 126",
        "ISO_IR 127",
        "ISO_IR 138",
        "ISO_IR 144",
        "ISO_IR 148",
        "ISO_IR 166",
        "ISO_IR 192",
        "ISO_IR 203",
        "GB18030",
        "GBK",
    }
)
# A kept raw element is converted in every header unless its VR is outside these: text VRs
# decode under the character set and are inspected when it is normalised, sequences are
# cleaned item by item, and UN is never kept.
_ALWAYS_CONVERTED_VRS: Final = TEXT_VRS | {"SQ", "UN"}
# Kept raw values up to this many bytes are remembered once converted, so an identical value
# in a later header of the upload is not converted again. The limit (bytes) bounds the memory
# of that cache: a CT header holds a few dozen short values that change from slice to slice.
MAX_VALIDATED_RAW_BYTES: Final = 1024
# Raw elements whose cleaning result is remembered (see ``Deidentifier._remember_outcome``).
# A CT header has about a hundred elements and a series repeats most of them, so this limit
# covers the repeated ones of several series. Beyond it the memory is cleared and refilled.
MAX_REMEMBERED_OUTCOMES: Final = 20_000
# Actions whose result depends only on the element itself.
_REMEMBERED_ACTIONS: Final = frozenset({"keep", "remove", "empty", "dummy", "uid"})
# Distinct (name, ID, character set) values whose lookup key is remembered. An upload contains
# one patient, so more values mean a mixed upload, and clearing bounds the memory.
MAX_CACHED_LOOKUP_KEYS: Final = 64
# Bytes per value of the binary number VRs (PS3.5 Table 6.2-1).
_BINARY_VALUE_BYTES: Final = {
    "FD": 8,
    "FL": 4,
    "SL": 4,
    "SS": 2,
    "SV": 8,
    "UL": 4,
    "US": 2,
    "UV": 8,
}

# Text attributes outside Table E.1-1 that describe the equipment, the reconstruction or a
# coded concept, and that the lung pipeline or the IOD needs. All other text attributes
# outside the table are removed.
KEPT_TEXT_KEYWORDS: Final = frozenset(
    {
        "CodeMeaning",
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "ContrastBolusRoute",
        "ConvolutionKernel",
        "FilterType",
        "LongCodeValue",
        "Manufacturer",
        "ManufacturerModelName",
        "PixelSpacingCalibrationDescription",
        "PositionReferenceIndicator",
        "RescaleType",
        "SecondaryCaptureDeviceManufacturer",
        "SecondaryCaptureDeviceManufacturerModelName",
        "SecondaryCaptureDeviceSoftwareVersions",
        "SoftwareVersions",
        "URNCodeValue",
        "WindowCenterWidthExplanation",
    }
)
# Coded-vocabulary release dates: not events in the patient's record, so the Modified Dates
# Option keeps them unchanged rather than shifting them (a value of similar meaning that is
# known not to identify anyone, as PS3.15 defines C).
VOCABULARY_VERSION_KEYWORDS: Final = frozenset(
    {"ContextGroupVersion", "ContextGroupLocalVersion", "TemplateVersion", "TemplateLocalVersion"}
)
# Written by the de-identifier itself after cleaning; any earlier value is dropped.
_WRITTEN_KEYWORDS: Final = frozenset(
    {
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
    }
)
_PSEUDONYM_KEYWORDS: Final = frozenset({"PatientName", "PatientID"})

_SPECIFIC_CHARACTER_SET_TAG: Final = 0x00080005
# PatientName, PatientID and SpecificCharacterSet: the raw values the lookup key depends on.
_LOOKUP_KEY_TAGS: Final = (0x00100010, 0x00100020, _SPECIFIC_CHARACTER_SET_TAG)
_PATIENT_IDENTITY_REMOVED_TAG: Final = 0x00120062
_DEIDENTIFICATION_METHOD_TAG: Final = 0x00120063
_DEIDENTIFICATION_METHOD_CODE_SEQUENCE_TAG: Final = 0x00120064
_TEMPORAL_INFORMATION_MODIFIED_TAG: Final = 0x00280303
_CODE_VALUE_TAG: Final = 0x00080100
_META_VERSION_TAG: Final = 0x00020001
_SOP_CLASS_UID_TAG: Final = 0x00080016
_SOP_INSTANCE_UID_TAG: Final = 0x00080018
_MEDIA_STORAGE_SOP_INSTANCE_UID_TAG: Final = 0x00020003
_STUDY_INSTANCE_UID_TAG: Final = 0x0020000D
_SERIES_INSTANCE_UID_TAG: Final = 0x0020000E
_IMPLEMENTATION_CLASS_UID_TAG: Final = 0x00020012
_IMPLEMENTATION_VERSION_NAME_TAG: Final = 0x00020013
_CODING_SCHEME_DESIGNATOR_TAG: Final = 0x00080102
_CODE_MEANING_TAG: Final = 0x00080104
_FILE_META_GROUP: Final = 0x0002
_CURVE_GROUPS: Final = range(0x5000, 0x5100)
_OVERLAY_GROUPS: Final = range(0x6000, 0x6100)
# Overlay Rows and Overlay Data elements of a repeating overlay group.
_OVERLAY_ROWS_ELEMENT: Final = 0x0010
_OVERLAY_DATA_ELEMENT: Final = 0x3000

# Implementation Class UID of the File Meta Information this product writes (PS3.7 D.3.3.2).
ICTCF_IMPLEMENTATION_CLASS_UID: Final = "2.25." + str(
    uuid.uuid5(uuid.NAMESPACE_URL, "urn:ictcf:dicom-implementation").int
)
# PS3.5 6.2: ImplementationVersionName is SH, at most 16 characters.
ICTCF_IMPLEMENTATION_VERSION_NAME: Final = f"ICTCF_{__version__}"[:16]


# ---------------------------------------------------------------------------------------
# Burned-in text


def burned_in_text_risk(dataset: Dataset) -> str | None:
    """Name the header evidence that an image may carry text burned into its pixels.

    Header de-identification cannot remove such text, and headers cannot prove its absence:
    ``None`` means only that no header attribute points to it.

    Parameters
    ----------
    dataset : pydicom.Dataset
        An image header, before or after de-identification.

    Returns
    -------
    str or None
        The reasons, joined by ``"; "``: BurnedInAnnotation (0028,0301) is YES, the SOP Class
        is a Secondary Capture, ImageType (0008,0008) value 1 is DERIVED or value 2 is
        SECONDARY, or an overlay plane is stored in unused pixel bits. None when no reason
        applies.
    """
    reasons = []
    burned_in = element_value(dataset, 0x00280301)
    if burned_in is not None and str(burned_in).strip().upper() == "YES":
        reasons.append("BurnedInAnnotation (0028,0301) is YES")

    sop_class = element_value(dataset, 0x00080016)
    if not sop_class:
        file_meta = getattr(dataset, "file_meta", None)
        sop_class = file_meta.get("MediaStorageSOPClassUID") if file_meta is not None else None
    sop_class_text = str(sop_class or "").strip(" \x00")
    if sop_class_text == SECONDARY_CAPTURE_SOP_CLASS or sop_class_text.startswith(
        SECONDARY_CAPTURE_SOP_CLASS + "."
    ):
        # A registered class is named; a made-up UID under the class's root is not copied.
        named = (
            f"SOP Class {sop_class_text} ({UID(sop_class_text).name})"
            if _is_registered_uid(sop_class_text)
            else "The SOP Class"
        )
        reasons.append(
            f"{named} is a secondary capture, which often contains screenshots with burned-in text"
        )

    image_type = element_value(dataset, 0x00080008)
    if image_type:
        # Only the defined terms are named: the other values of ImageType are free to the
        # vendor and are not copied into the stored reason.
        values = [str(item).strip().upper() for item in as_list(image_type)]
        if values[:1] == ["DERIVED"]:
            reasons.append("ImageType (0008,0008) value 1 is DERIVED")
        if values[1:2] == ["SECONDARY"]:
            reasons.append("ImageType (0008,0008) value 2 is SECONDARY")

    # One pass over the tags instead of two membership tests for each of the 64 even groups
    # (iterating the Dataset itself would convert every raw element).
    overlay_tags = {
        int(tag)
        for tag in dataset.keys()  # noqa: SIM118
        if _OVERLAY_GROUPS.start <= tag >> 16 < _OVERLAY_GROUPS.stop
    }
    overlay_groups = sorted({tag >> 16 for tag in overlay_tags if (tag >> 16) % 2 == 0})
    for group in overlay_groups:
        has_rows = (group << 16 | _OVERLAY_ROWS_ELEMENT) in overlay_tags
        if has_rows and (group << 16 | _OVERLAY_DATA_ELEMENT) not in overlay_tags:
            reasons.append(
                f"overlay plane ({group:04X},xxxx) is stored in unused pixel data bits, "
                "which header de-identification does not clear"
            )
    return "; ".join(reasons) or None


# ---------------------------------------------------------------------------------------
# The de-identifier


class _Rule(NamedTuple):
    """How ``Deidentifier`` treats an attribute of one tag and VR as read."""

    action: str
    vr: str | None
    name: str
    # Whether a raw value may be remembered once converted (see ``_keep_raw``).
    cacheable: bool


@dataclass
class _DatasetLog:
    removed: Counter[str] = field(default_factory=Counter)
    replaced: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)


class Deidentifier:
    """Apply the Basic Application Level Confidentiality Profile to the datasets of one upload.

    Parameters
    ----------
    patient_pseudonym : str
        The internal patient key; written into PatientName (0010,0010) and
        PatientID (0010,0020) and, with ``keep_dates``, the seed of the date shift.
    secret : bytes
        Per-installation secret (``load_or_create_secret``), at least
        ``SECRET_LENGTH_BYTES`` long. It keys the UID hash, so the same original UID gets
        the same replacement in every upload of the installation.
    keep_dates : bool, default False
        Apply the Retain Longitudinal Temporal Information Modified Dates Option: every DA,
        TM and DT value is shifted by one offset per patient (366-3652 days into the past
        plus a time of day) instead of being removed or emptied. PatientBirthDate is still
        emptied, as the option prescribes.
    uid_root : str, default "2.25."
        Root of the replacement UIDs. The default derives UUID-based UIDs
        (``2.25.<128-bit integer>``); an organisation root must end with a dot and leave
        room for ``MIN_UID_HASH_DIGITS`` digits within 64 characters.
    keep_patient_characteristics : bool, default False
        Apply the Retain Patient Characteristics Option: PatientAge, PatientSex,
        PatientSize, PatientWeight and the other attributes Table E.1-1 marks are kept.

    Raises
    ------
    ValueError
        If the pseudonym is empty, longer than ``MAX_PSEUDONYM_LENGTH`` characters or
        contains a backslash or control character, if the secret is too short, or if
        ``uid_root`` is not a valid root.
    """

    def __init__(
        self,
        *,
        patient_pseudonym: str,
        secret: bytes,
        keep_dates: bool = False,
        uid_root: str = DEFAULT_UID_ROOT,
        keep_patient_characteristics: bool = False,
    ) -> None:
        _check_pseudonym(patient_pseudonym)
        if len(secret) < SECRET_LENGTH_BYTES:
            raise ValueError(
                f"the de-identification secret has {len(secret)} bytes; at least "
                f"{SECRET_LENGTH_BYTES} are required (use load_or_create_secret)"
            )
        _check_uid_root(uid_root)
        self.patient_pseudonym = patient_pseudonym
        self.keep_dates = keep_dates
        self.keep_patient_characteristics = keep_patient_characteristics
        self.uid_root = uid_root
        self._secret = bytes(secret)
        self._uid_map: dict[str, str] = {}
        # The action of an attribute depends only on its tag, its VR and the options above,
        # so it is chosen once per (tag, VR as read) and reused for every header of the upload.
        self._rules: dict[tuple[int, str | None], _Rule] = {}
        # Raw elements of charset-independent VRs whose conversion already succeeded and
        # passed the checks of ``_keep`` (see ``_keep_raw``).
        self._validated_raw: set[tuple[Any, ...]] = set()
        # Raw UI values seen before: whether they were replaced, and the values written.
        self._uid_values: dict[tuple[Any, ...], tuple[bool, tuple[str, ...]]] = {}
        self._date_shift = _date_shift_for(self._secret, patient_pseudonym)
        self._patient_keys: set[str] = set()
        # Attributes written into every header, encoded once as raw elements per encoding
        # of the headers read (see ``_encoded_once``), and the constant File Meta elements per
        # SOP class and transfer syntax.
        self._lookup_keys: dict[tuple[Any, ...], str | None] = {}
        # What cleaning did to a raw element (tag, VR, encoding, bytes), see
        # ``_remember_outcome``.
        self._outcomes: dict[tuple[Any, ...], tuple[str, str, RawDataElement | None]] = {}
        self._identity_elements: dict[tuple[Any, Any], dict[BaseTag, Any]] = {}
        self._meta_elements: dict[tuple[str | None, str | None], dict[BaseTag, Any]] = {}

        method_codes = [BASIC_PROFILE_CODE]
        if keep_dates:
            method_codes.append(MODIFIED_DATES_OPTION_CODE)
        if keep_patient_characteristics:
            method_codes.append(PATIENT_CHARACTERISTICS_OPTION_CODE)
        self._report = DeidentificationReport(
            profile=PROFILE_NAME,
            table_edition=TABLE_EDITION,
            method_codes=method_codes,
            dates_shifted=keep_dates,
        )

    # -- public API --------------------------------------------------------------------

    def replace_uid(self, uid: str) -> str:
        """Return the replacement of an original UID, as ``deidentify`` writes it.

        The DICOM standard's own UIDs (SOP classes, transfer syntaxes, coding schemes, context
        groups, well-known frames of reference) name a class, never an instance, and are
        returned unchanged. Every other UID is replaced, also a vendor's class UID and an
        instance UID made up under the DICOM root ``1.2.840.10008.`` (see
        ``_is_registered_uid``). An empty value stays empty.
        """
        original = str(uid).strip(" \x00")
        if not original or _is_registered_uid(original):
            return original
        replacement = self._uid_map.get(original)
        if replacement is None:
            digest = hmac.new(
                self._secret,
                b"uid\x00" + original.encode("utf-8", "surrogatepass"),
                hashlib.sha256,
            ).digest()
            replacement = _uid_from_digest(digest, self.uid_root)
            self._uid_map[original] = replacement
        return replacement

    def deidentify(self, dataset: Dataset) -> DeidentificationRecord:
        """De-identify one dataset in place.

        Applies Table E.1-1 with this product's resolution of the compound actions at every
        sequence depth, removes private attributes, curves and overlays, writes the
        pseudonym, PatientIdentityRemoved (0012,0062) = YES, DeidentificationMethod
        (0012,0063), DeidentificationMethodCodeSequence (0012,0064) and
        LongitudinalTemporalInformationModified (0028,0303), re-encodes text as ASCII or
        UTF-8 (SpecificCharacterSet ``ISO_IR 192``), and replaces the File Meta Information
        and preamble. Pixel data are not changed.

        Parameters
        ----------
        dataset : pydicom.Dataset
            A header or a whole file as pydicom reads it; modified in place.

        Returns
        -------
        DeidentificationRecord

        Raises
        ------
        InputError
            If sequences nest deeper than ``MAX_SEQUENCE_DEPTH`` levels. The dataset is then
            partly cleaned and must be discarded.
        """
        log = _DatasetLog()
        charset_warning = _character_set_warning(dataset)
        if charset_warning is not None:
            log.warnings.append(charset_warning)
            logger.warning("patient %s: %s", self.patient_pseudonym, charset_warning)
        risk = burned_in_text_risk(dataset)
        lookup_key = self._lookup_key(dataset)
        original_meta = getattr(dataset, "file_meta", None)
        source_path = getattr(dataset, "filename", None)

        self._clean(dataset, log, depth=0, source_path=source_path)
        self._write_identity_attributes(dataset, log)
        _normalise_character_set(dataset)
        self._replace_file_meta(dataset, original_meta)

        record = DeidentificationRecord(
            sop_instance_uid=_optional_text(_uid_value(dataset, _SOP_INSTANCE_UID_TAG)),
            study_instance_uid=_optional_text(_uid_value(dataset, _STUDY_INSTANCE_UID_TAG)),
            series_instance_uid=_optional_text(_uid_value(dataset, _SERIES_INSTANCE_UID_TAG)),
            patient_lookup_key=lookup_key,
            removed=dict(log.removed),
            replaced=dict(log.replaced),
            kept=dict(log.kept),
            burned_in_text_risk=risk,
            warnings=tuple(log.warnings),
        )
        self._add_to_report(record)
        logger.debug(
            "patient %s: de-identified instance %s (%d removed, %d replaced, %d kept)",
            self.patient_pseudonym,
            record.sop_instance_uid,
            sum(log.removed.values()),
            sum(log.replaced.values()),
            sum(log.kept.values()),
        )
        if risk is not None:
            logger.info(
                "patient %s: instance %s flagged for burned-in text review: %s",
                self.patient_pseudonym,
                record.sop_instance_uid,
                risk,
            )
        return record

    def _lookup_key(self, dataset: Dataset) -> str | None:
        """Return ``patient_lookup_key`` of a header, computed once per distinct raw name, ID
        and character set in the upload (every header of a series repeats them)."""
        values: list[Any] = []
        for tag in _LOOKUP_KEY_TAGS:
            element = dataset.get_item(tag)
            if element is None:
                values.append(None)
            elif isinstance(element, RawDataElement) and isinstance(element.value, bytes):
                values.append((element.VR, element.value))
            elif isinstance(element, DataElement) and element.VR == "CS":
                # pydicom converts SpecificCharacterSet while reading.
                values.append(tuple(str(value) for value in as_list(element.value)))
            else:
                return patient_lookup_key(dataset, secret=self._secret)
        key = tuple(values)
        if key not in self._lookup_keys:
            if len(self._lookup_keys) >= MAX_CACHED_LOOKUP_KEYS:
                self._lookup_keys.clear()
            self._lookup_keys[key] = patient_lookup_key(dataset, secret=self._secret)
        return self._lookup_keys[key]

    def report(self) -> DeidentificationReport:
        """Return a copy of the report over every dataset de-identified so far."""
        current = self._report
        return DeidentificationReport(
            profile=current.profile,
            table_edition=current.table_edition,
            method_codes=list(current.method_codes),
            dates_shifted=current.dates_shifted,
            n_datasets=current.n_datasets,
            n_patient_keys=len(self._patient_keys),
            removed=Counter(current.removed),
            replaced=Counter(current.replaced),
            kept=Counter(current.kept),
            burned_in_text_risks=[dict(item) for item in current.burned_in_text_risks],
            warnings=Counter(current.warnings),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the settings of this de-identifier and its report, without the secret."""
        return {
            "patient_pseudonym": self.patient_pseudonym,
            "keep_dates": self.keep_dates,
            "keep_patient_characteristics": self.keep_patient_characteristics,
            "uid_root": self.uid_root,
            "report": self.report().to_dict(),
        }

    # -- cleaning ----------------------------------------------------------------------

    def _clean(
        self, dataset: Dataset, log: _DatasetLog, *, depth: int, source_path: object
    ) -> None:
        if depth > MAX_SEQUENCE_DEPTH:
            raise InputError(
                f"sequences nest deeper than {MAX_SEQUENCE_DEPTH} levels; the file is "
                "malformed or hostile and was not imported",
                path=source_path if isinstance(source_path, str | Path) else None,
            )
        # Raw text that is plain ASCII reads the same under the declared character set and
        # under the ASCII or UTF-8 declaration written later, so it may stay raw. Sequence
        # items may declare their own character set, so this applies to the top level only.
        ascii_text_stays_raw = depth == 0 and _declares_ascii_superset(dataset)
        rules = self._rules
        outcomes = self._outcomes
        log_kept = log.kept
        shift_tags: list[int] = []
        # Dataset.items() yields the stored elements, raw or converted, without converting.
        for tag, element in list(dataset.items()):
            outcome_key = None
            if isinstance(element, RawDataElement):
                value = element.value
                if isinstance(value, bytes) and len(value) <= MAX_VALIDATED_RAW_BYTES:
                    outcome_key = (
                        int(tag),
                        element.VR,
                        element.is_implicit_VR,
                        element.is_little_endian,
                        value,
                        ascii_text_stays_raw,
                    )
                    outcome = outcomes.get(outcome_key)
                    if outcome is not None:
                        # The same raw element was cleaned in an earlier header.
                        result, name, replacement = outcome
                        if result == "kept":
                            log_kept[name] += 1
                        elif result == "removed":
                            del dataset[tag]
                            log.removed[name] += 1
                        elif replacement is not None:
                            dataset[tag] = replacement
                            log.replaced[name] += 1
                        continue
            rule_key = (int(tag), element.VR)
            rule = rules.get(rule_key)
            if rule is None:
                rule = self._make_rule(dataset, tag, element.VR)
                rules[rule_key] = rule
            action, vr, name, cacheable = rule
            n_warnings = len(log.warnings)
            if action == "keep":
                # A raw element stays raw only when its VR as read is the one cleaning
                # assumed; a mismatch (UN for a known attribute) is converted as before.
                stays_raw = isinstance(element, RawDataElement) and element.VR in (None, vr)
                if (
                    stays_raw
                    and ascii_text_stays_raw
                    and vr in TEXT_VRS
                    and _is_plain_ascii(element.value)
                ):
                    log_kept[name] += 1
                elif stays_raw and cacheable:
                    self._keep_raw(dataset, int(tag), log, element, name, vr)
                else:
                    self._keep(dataset, int(tag), log, element, name)
            elif action == "remove":
                del dataset[tag]
                log.removed[name] += 1
            elif action == "remove_mismatched":
                del dataset[tag]
                log.removed[name] += 1
                log.warnings.append(
                    f"{_tag_text(int(tag))} {name}: the value representation {element.VR} in "
                    f"the file is not the standard's {vr}, so the attribute was removed"
                )
            elif action == "empty" and vr == "SQ":
                dataset[tag] = _written_element(tag, vr, Sequence())
                log.replaced[name] += 1
            elif action == "empty" or action == "dummy":
                dataset[tag] = _fixed_element(int(tag), vr or "UN", empty=action == "empty")
                log.replaced[name] += 1
            elif action == "pseudonym":
                dataset[tag] = DataElement(tag, vr or "PN", self.patient_pseudonym)
                log.replaced[name] += 1
            elif action == "uid":
                self._replace_uids(dataset, int(tag), log, element, vr)
            elif action == "recurse":
                self._clean_sequence(dataset, int(tag), log, depth=depth, source_path=source_path)
            elif action == "shift":
                shift_tags.append(int(tag))
            if (
                outcome_key is not None
                and action in _REMEMBERED_ACTIONS
                and len(log.warnings) == n_warnings
            ):
                self._remember_outcome(outcome_key, dataset, tag, element, name)
        if shift_tags:
            self._shift_temporal(dataset, shift_tags, log)

    def _remember_outcome(
        self, key: tuple[Any, ...], dataset: Dataset, tag: BaseTag, element: Any, name: str
    ) -> None:
        """Remember what cleaning did to a raw element, so that the same element in a later
        header is kept, removed or replaced without being looked at again.

        Only results that do not depend on the rest of the header are remembered: the element
        left unchanged, removed, or replaced by an immutable raw element. An element converted
        in place (text re-encoded, a UID kept after conversion) is cleaned anew each time.
        """
        current = dataset.get_item(tag)
        if current is None:
            outcome: tuple[str, str, RawDataElement | None] = ("removed", name, None)
        elif current is element:
            outcome = ("kept", name, None)
        elif isinstance(current, RawDataElement):
            outcome = ("replaced", name, current)
        else:
            return
        if len(self._outcomes) >= MAX_REMEMBERED_OUTCOMES:
            self._outcomes.clear()
        self._outcomes[key] = outcome

    def _make_rule(self, dataset: Dataset, tag: int, read_vr: str | None) -> _Rule:
        vr = _attribute_vr(dataset, tag)
        cacheable = vr is not None and vr not in _ALWAYS_CONVERTED_VRS and " or " not in vr
        action = self._choose_action(dataset, tag)
        # A dictionary VR such as "US or SS" lists the VRs a file may choose from. An element
        # made in memory may still carry such a choice, which pydicom resolves when the
        # dataset is written.
        standard_vrs = (_dictionary_vr(tag) or vr or "").split(" or ")
        read_vr_chosen = read_vr is not None and " or " not in read_vr
        if (
            action == "keep"
            and read_vr_chosen
            and vr is not None
            and (read_vr != vr or read_vr not in standard_vrs)
        ):
            # A value whose VR in the file is not the standard's (KVP declared PN, a sequence
            # under a number's tag, UN bytes, OB under a "US or SS" tag) was never checked as
            # the standard's VR and may carry anything.
            action = "remove_mismatched"
        return _Rule(action, vr, _attribute_name(int(tag)), cacheable)

    def _choose_action(self, dataset: Dataset, tag: int) -> str:
        """Return the action for one attribute: remove, empty, dummy, pseudonym, uid,
        shift, recurse or keep."""
        group = tag >> 16
        if group == _FILE_META_GROUP or group % 2 == 1:
            return "remove"
        if group in _CURVE_GROUPS or group in _OVERLAY_GROUPS:
            return "remove"
        keyword = _keyword(tag)
        if keyword in _PSEUDONYM_KEYWORDS:
            return "pseudonym"
        if keyword in _WRITTEN_KEYWORDS:
            return "remove"
        vr = _attribute_vr(dataset, tag)
        row = BASIC_PROFILE.get(tag)

        if row is not None:
            if self.keep_dates and row.modified_dates_cleans and vr in TEMPORAL_VRS:
                return "keep" if keyword in VOCABULARY_VERSION_KEYWORDS else "shift"
            if self.keep_patient_characteristics and row.patient_characteristic:
                return "recurse" if vr == "SQ" else "keep"
            action = row.resolved_action
            if action == "X" or (vr is None and action in ("Z", "D")):
                # Without a VR no valid empty or dummy value can be written.
                return "remove"
            if action == "Z":
                return "empty"
            if vr == "SQ":
                return "recurse"
            if vr == "UI" and action in ("U", "D"):
                return "uid"
            if action == "D":
                return "dummy"
            return "keep"

        if _dictionary_vr(tag) is None:
            # Not a standard attribute (pydicom's dictionary lists every one, retired ones too):
            # its meaning and contents are unknown.
            return "remove"
        if vr == "SQ":
            return "recurse"
        if vr == "UI":
            # The standard's own UIDs (classes, transfer syntaxes, coding resources) stay;
            # see replace_uid.
            return "uid"
        if vr in TEMPORAL_VRS:
            return "shift" if self.keep_dates else "remove"
        if vr in TEXT_VRS:
            return "keep" if keyword in KEPT_TEXT_KEYWORDS else "remove"
        if vr is None or vr == "UN":
            return "remove"
        return "keep"

    def _keep_raw(
        self,
        dataset: Dataset,
        tag: int,
        log: _DatasetLog,
        element: Any,
        name: str,
        vr: str | None,
    ) -> None:
        """Keep a raw element of a VR whose conversion depends only on its bytes.

        A binary number is checked by its length alone. Any other value is converted and
        checked once per distinct value in the upload: the same tag, VR, encoding and bytes in
        a later header give the same result, so it is kept raw.
        """
        value = element.value
        if not isinstance(value, bytes):
            self._keep(dataset, tag, log, element, name)
            return
        size = _BINARY_VALUE_BYTES.get(vr or "")
        if size is not None and len(value) // size > _max_values(tag):
            # More numbers than the attribute may have: the extra bytes could carry anything.
            _remove_with_warning(dataset, tag, log, name, _TOO_MANY_VALUES)
            return
        if size is not None and not config.convert_wrong_length_to_UN:
            # pydicom 3.0 (values.convert_numbers) unpacks such values with struct, which fails
            # only on a length that is not a multiple of the value size: that is the check.
            if len(value) % size == 0:
                log.kept[name] += 1
            else:
                self._keep(dataset, tag, log, element, name)
            return
        if len(value) > MAX_VALIDATED_RAW_BYTES:
            self._keep(dataset, tag, log, element, name)
            return
        key = (tag, element.VR, element.is_implicit_VR, element.is_little_endian, value)
        if key in self._validated_raw:
            log.kept[name] += 1
            return
        if vr in BYTE_DETERMINED_VRS and vr != "CS":
            # Converted through the cache that the series reader fills (the position and
            # instance number of this header were converted there already); the element
            # stays raw. A value that does not convert is handled by ``_keep``.
            try:
                value = header_value(dataset, tag)
            except ELEMENT_CONVERSION_ERRORS:
                pass
            else:
                if not _invalid_number(vr, value):
                    self._validated_raw.add(key)
                    log.kept[name] += 1
                    return
        if self._keep(dataset, tag, log, element, name):
            self._validated_raw.add(key)

    def _keep(self, dataset: Dataset, tag: int, log: _DatasetLog, element: Any, name: str) -> bool:
        """Convert and check one kept element; return whether it was kept."""
        # Decoding now, under the original SpecificCharacterSet, lets the text be re-encoded
        # once the character set is normalised.
        converted = element if isinstance(element, DataElement) else None
        if converted is None:
            converted = _decode_element(dataset, tag, log)
        if converted is None:
            return False
        if converted.VR in _BINARY_VALUE_BYTES and len(as_list(converted.value)) > _max_values(tag):
            _remove_with_warning(dataset, tag, log, name, _TOO_MANY_VALUES)
            return False
        if _invalid_number(converted.VR, converted.value):
            # pydicom keeps a DS or IS value that is not a number as text, which could be
            # anything.
            del dataset[tag]
            log.removed[name] += 1
            log.warnings.append(
                f"{_tag_text(tag)} {name}: a {converted.VR} value is not a number and was removed"
            )
            return False
        if converted.VR == "CS" and not all(
            str(value).isascii() for value in as_list(converted.value)
        ):
            # PS3.5 6.2 limits CS to the default repertoire, and pydicom cannot write
            # other characters in a CS value, so the file could not be saved.
            del dataset[tag]
            log.removed[name] += 1
            log.warnings.append(
                f"{_tag_text(tag)} {name}: a code string (CS) value has characters outside "
                "the default repertoire and was removed"
            )
            return False
        log.kept[name] += 1
        return True

    def _replace_uids(
        self, dataset: Dataset, tag: int, log: _DatasetLog, raw: Any, vr: str | None
    ) -> None:
        name = _attribute_name(tag)
        raw_key = _raw_uid_key(raw, vr)
        known = self._uid_values.get(raw_key) if raw_key is not None else None
        if known is not None:
            # The same raw value was replaced in an earlier header of the upload.
            replaced, value = known
            if replaced:
                dataset[tag] = _uid_element(tag, value)
                log.replaced[name] += 1
            else:
                log.kept[name] += 1
            return
        element = _decode_element(dataset, tag, log)
        if element is None:
            return
        originals = [str(value) for value in as_list(element.value)]
        replacements = [self.replace_uid(value) for value in originals]
        replaced = replacements != [value.strip(" \x00") for value in originals]
        if raw_key is not None and element.VR == "UI":
            self._uid_values[raw_key] = (replaced, tuple(replacements))
        if not replaced:
            log.kept[name] += 1
            return
        dataset[tag] = _uid_element(tag, tuple(replacements))
        log.replaced[name] += 1

    def _clean_sequence(
        self, dataset: Dataset, tag: int, log: _DatasetLog, *, depth: int, source_path: object
    ) -> None:
        element = _decode_element(dataset, tag, log)
        if element is None:
            return
        if not isinstance(element.value, Sequence):
            # A non-sequence value under a sequence tag: nothing to clean inside, so drop it.
            del dataset[tag]
            log.removed[_attribute_name(tag)] += 1
            return
        for item in element.value:
            self._clean(item, log, depth=depth + 1, source_path=source_path)
        log.kept[_attribute_name(tag)] += 1

    def _shift_temporal(self, dataset: Dataset, tags: list[int], log: _DatasetLog) -> None:
        """Shift the DA, TM and DT attributes of one dataset level, pairing each date with
        its time (StudyDate with StudyTime ...) so both move as one instant."""
        remaining = set(tags)
        for tag in tags:
            if tag not in remaining or _attribute_vr(dataset, tag) != "DA":
                continue
            keyword = _keyword(tag)
            partner = tag_for_keyword(keyword.replace("Date", "Time")) if keyword else None
            if partner is None or partner not in remaining:
                continue
            if _attribute_vr(dataset, partner) != "TM":
                continue
            self._shift_pair(dataset, tag, partner, log)
            remaining.discard(tag)
            remaining.discard(partner)

        shifters = {"DA": shift_date, "TM": shift_time, "DT": shift_datetime}
        for tag in tags:
            if tag not in remaining:
                continue
            vr = _attribute_vr(dataset, tag)
            shifter = shifters.get(vr or "")
            values = _temporal_values(dataset, tag, log)
            if values is None or shifter is None:
                continue
            shifted = [shifter(value, self._date_shift) if value else "" for value in values]
            self._store_shifted(dataset, tag, vr or "DA", values, shifted, log)

    def _shift_pair(self, dataset: Dataset, date_tag: int, time_tag: int, log: _DatasetLog) -> None:
        dates = _temporal_values(dataset, date_tag, log)
        times = _temporal_values(dataset, time_tag, log)
        if dates is None or times is None:
            return
        new_dates: list[str | None] = []
        new_times: list[str | None] = []
        for index in range(max(len(dates), len(times))):
            date_value = dates[index] if index < len(dates) else None
            time_value = times[index] if index < len(times) else None
            if date_value and time_value:
                pair = shift_date_and_time(date_value, time_value, self._date_shift)
                new_dates.append(pair[0] if pair else None)
                new_times.append(pair[1] if pair else None)
                continue
            if date_value is not None:
                new_dates.append(shift_date(date_value, self._date_shift) if date_value else "")
            if time_value is not None:
                new_times.append(shift_time(time_value, self._date_shift) if time_value else "")
        self._store_shifted(dataset, date_tag, "DA", dates, new_dates, log)
        self._store_shifted(dataset, time_tag, "TM", times, new_times, log)

    def _store_shifted(
        self,
        dataset: Dataset,
        tag: int,
        vr: str,
        originals: list[str],
        shifted: list[str | None],
        log: _DatasetLog,
    ) -> None:
        name = _attribute_name(tag)
        if any(value is None for value in shifted):
            message = (
                f"{_tag_text(tag)} {name}: a value is not a valid {vr}, so it was "
                "replaced with an empty value"
            )
            log.warnings.append(message)
        values = [value or "" for value in shifted]
        if not originals:
            stored: Any = _empty_value(vr)
        elif len(values) == 1:
            stored = values[0]
        else:
            stored = values
        dataset[tag] = DataElement(tag, vr, stored)
        log.replaced[name] += 1

    # -- attributes written by the de-identifier ---------------------------------------

    def _write_identity_attributes(self, dataset: Dataset, log: _DatasetLog) -> None:
        for keyword, tag in (("PatientName", 0x00100010), ("PatientID", 0x00100020)):
            if tag not in dataset:
                setattr(dataset, keyword, self.patient_pseudonym)
                log.replaced[keyword] += 1
        encoding = dataset.original_encoding
        elements = self._identity_elements.get(encoding)
        if elements is None:
            elements = _encoded_once(self._identity_dataset(), encoding)
            if elements is None:
                # No little-endian encoding to share raw elements in: new elements per header.
                elements = dict(self._identity_dataset().items())
            else:
                self._identity_elements[encoding] = elements
        for tag, element in elements.items():
            dataset[tag] = element

    def _identity_dataset(self) -> Dataset:
        """Return the attributes that state the de-identification, as written into every header."""
        method_codes = self._report.method_codes
        written = Dataset()
        written[_PATIENT_IDENTITY_REMOVED_TAG] = _written_element(
            _PATIENT_IDENTITY_REMOVED_TAG, "CS", "YES"
        )
        method_values = [f"ictcf {__version__}"] + [meaning for _, meaning in method_codes]
        written[_DEIDENTIFICATION_METHOD_TAG] = _written_element(
            _DEIDENTIFICATION_METHOD_TAG, "LO", method_values
        )
        codes = []
        for code_value, meaning in method_codes:
            item = Dataset()
            item[_CODE_VALUE_TAG] = _written_element(_CODE_VALUE_TAG, "SH", code_value)
            item[_CODING_SCHEME_DESIGNATOR_TAG] = _written_element(
                _CODING_SCHEME_DESIGNATOR_TAG, "SH", "DCM"
            )
            item[_CODE_MEANING_TAG] = _written_element(_CODE_MEANING_TAG, "LO", meaning)
            codes.append(item)
        written[_DEIDENTIFICATION_METHOD_CODE_SEQUENCE_TAG] = _written_element(
            _DEIDENTIFICATION_METHOD_CODE_SEQUENCE_TAG, "SQ", codes
        )
        written[_TEMPORAL_INFORMATION_MODIFIED_TAG] = _written_element(
            _TEMPORAL_INFORMATION_MODIFIED_TAG, "CS", "MODIFIED" if self.keep_dates else "REMOVED"
        )
        return written

    def _replace_file_meta(self, dataset: Dataset, original_meta: Dataset | None) -> None:
        """Replace the File Meta Information and preamble, as PS3.15 E.1.1 item 7 requires."""
        transfer_syntax = original_meta.get("TransferSyntaxUID") if original_meta else None
        if _SOP_INSTANCE_UID_TAG not in dataset and original_meta is not None:
            original_instance = original_meta.get("MediaStorageSOPInstanceUID")
            if original_instance:
                dataset.SOPInstanceUID = self.replace_uid(str(original_instance))

        sop_class = _uid_value(dataset, _SOP_CLASS_UID_TAG)
        if transfer_syntax:
            syntax: str | None = str(transfer_syntax)
        elif "PixelData" not in dataset:
            syntax = ExplicitVRLittleEndian
        else:
            syntax = None
        key = (None if sop_class is None else str(sop_class), syntax)
        constant = self._meta_elements.get(key)
        if constant is None:
            template = FileMetaDataset()
            template[_META_VERSION_TAG] = _written_element(_META_VERSION_TAG, "OB", b"\x00\x01")
            if sop_class is not None:
                template.MediaStorageSOPClassUID = sop_class
            if syntax is not None:
                template.TransferSyntaxUID = UID(syntax)
            template[_IMPLEMENTATION_CLASS_UID_TAG] = _written_element(
                _IMPLEMENTATION_CLASS_UID_TAG, "UI", UID(ICTCF_IMPLEMENTATION_CLASS_UID)
            )
            template[_IMPLEMENTATION_VERSION_NAME_TAG] = _written_element(
                _IMPLEMENTATION_VERSION_NAME_TAG, "SH", ICTCF_IMPLEMENTATION_VERSION_NAME
            )
            # File Meta Information is always explicit VR little endian (PS3.10 7.1).
            constant = _encoded_once(template, (False, True)) or {}
            self._meta_elements[key] = constant
        elements: dict[BaseTag, DataElement | RawDataElement] = dict(constant)
        sop_instance = _uid_value(dataset, _SOP_INSTANCE_UID_TAG)
        if sop_instance is not None:
            tag = BaseTag(_MEDIA_STORAGE_SOP_INSTANCE_UID_TAG)
            elements[tag] = _written_element(tag, "UI", sop_instance)
        # pydicom keeps the dict it is given and checks that every element is of group 2.
        dataset.file_meta = FileMetaDataset(elements)
        if isinstance(dataset, FileDataset):
            dataset.preamble = b"\x00" * 128

    def _add_to_report(self, record: DeidentificationRecord) -> None:
        report = self._report
        report.n_datasets += 1
        report.removed.update(record.removed)
        report.replaced.update(record.replaced)
        report.kept.update(record.kept)
        report.warnings.update(set(record.warnings))
        if record.patient_lookup_key is not None:
            self._patient_keys.add(record.patient_lookup_key)
        report.n_patient_keys = len(self._patient_keys)
        if record.burned_in_text_risk is not None:
            report.burned_in_text_risks.append(
                {"sop_instance_uid": record.sop_instance_uid, "reason": record.burned_in_text_risk}
            )


# ---------------------------------------------------------------------------------------
# Helpers


def _check_pseudonym(pseudonym: str) -> None:
    if not isinstance(pseudonym, str) or not pseudonym.strip():
        raise ValueError("patient_pseudonym must be a non-empty string (the internal patient key)")
    if len(pseudonym) > MAX_PSEUDONYM_LENGTH:
        raise ValueError(
            f"patient_pseudonym has {len(pseudonym)} characters; DICOM PatientID holds at most "
            f"{MAX_PSEUDONYM_LENGTH}"
        )
    if "\\" in pseudonym or any(unicodedata.category(char) == "Cc" for char in pseudonym):
        raise ValueError(
            "patient_pseudonym must not contain a backslash or control characters, because "
            "DICOM uses them as value delimiters"
        )


def _check_uid_root(uid_root: str) -> None:
    components = uid_root.split(".")
    valid = (
        uid_root.endswith(".")
        and all(part.isdigit() and part.isascii() for part in components[:-1])
        and all(part == "0" or not part.startswith("0") for part in components[:-1])
    )
    if not valid:
        raise ValueError(
            f"uid_root {uid_root!r} is not a UID root: give dot-separated numbers without "
            "leading zeros, ending with a dot, such as '2.25.'"
        )
    if len(uid_root) > MAX_UID_LENGTH - MIN_UID_HASH_DIGITS:
        raise ValueError(
            f"uid_root {uid_root!r} has {len(uid_root)} characters; at most "
            f"{MAX_UID_LENGTH - MIN_UID_HASH_DIGITS} leave room for the hash digits"
        )


def _uid_from_digest(digest: bytes, uid_root: str) -> str:
    if uid_root == DEFAULT_UID_ROOT:
        value = int.from_bytes(digest[:16], "big")
        # Mark the 128 bits as an RFC 9562 version-8 (custom) UUID of the RFC 4122 variant.
        value = (value & ~(0xF << 76)) | (0x8 << 76)
        value = (value & ~(0x3 << 62)) | (0x2 << 62)
        return DEFAULT_UID_ROOT + str(value)
    digits = MAX_UID_LENGTH - len(uid_root)
    return uid_root + str(int.from_bytes(digest, "big") % 10**digits)


def _date_shift_for(secret: bytes, pseudonym: str) -> timedelta:
    digest = hmac.new(
        secret, b"date-shift\x00" + pseudonym.encode("utf-8", "surrogatepass"), hashlib.sha256
    ).digest()
    span = DATE_SHIFT_MAX_DAYS - DATE_SHIFT_MIN_DAYS + 1
    days = DATE_SHIFT_MIN_DAYS + int.from_bytes(digest[:8], "big") % span
    seconds = int.from_bytes(digest[8:12], "big") % SECONDS_PER_DAY
    return timedelta(days=-days, seconds=seconds)


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


# Data dictionary look-ups are cached: a CT header repeats the same few hundred tags.
@functools.lru_cache(maxsize=4096)
def _keyword(tag: int) -> str:
    return keyword_for_tag(tag)


@functools.lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


@functools.lru_cache(maxsize=4096)
def _attribute_name(tag: int) -> str:
    keyword = _keyword(tag)
    if keyword:
        return keyword
    row = BASIC_PROFILE.get(tag)
    return row.name if row is not None else _tag_text(tag)


def _attribute_vr(dataset: Dataset, tag: int) -> str | None:
    """Return the VR from the data dictionary for public attributes, else from the file."""
    vr = _dictionary_vr(tag)
    if vr is not None and " or " not in vr:
        return vr
    element = dataset.get_item(tag)
    file_vr = getattr(element, "VR", None) if element is not None else None
    return str(file_vr) if file_vr else vr


@functools.lru_cache(maxsize=1024)
def _is_registered_uid(uid: str) -> bool:
    """Return whether ``uid`` is one of the DICOM standard's own UIDs.

    That is a UID listed in pydicom's UID dictionary (PS3.6 Table A-1), or a context group
    UID (``1.2.840.10008.6.1.N``, PS3.16), which the dictionary lacks. Any other UID under the
    DICOM root is one made up there and is replaced like an instance UID.
    """
    return UID(uid).name != uid or CONTEXT_GROUP_UID.fullmatch(uid) is not None


_TOO_MANY_VALUES: Final = "more values than the data dictionary allows"


def _remove_with_warning(
    dataset: Dataset, tag: int, log: _DatasetLog, name: str, reason: str
) -> None:
    """Remove a kept attribute whose value failed a check, and record why."""
    del dataset[tag]
    log.removed[name] += 1
    log.warnings.append(f"{_tag_text(tag)} {name}: {reason}, so the attribute was removed")


@functools.lru_cache(maxsize=4096)
def _max_values(tag: int) -> float:
    """Return the largest value multiplicity the data dictionary allows (inf for "1-n")."""
    try:
        multiplicity = dictionary_VM(tag)
    except KeyError:
        return math.inf
    highest = multiplicity.split("-")[-1]
    return float(highest) if highest.isdigit() else math.inf


def _invalid_number(vr: str | None, value: Any) -> bool:
    """Return whether a converted DS or IS value contains text that is not a number.

    pydicom 3 keeps such a value as ``str`` (with a warning) instead of raising.
    """
    if vr not in ("DS", "IS"):
        return False
    return any(isinstance(item, str) and item.strip() for item in as_list(value))


def _written_element(tag: int, vr: str, value: Any) -> DataElement:
    """Build an element whose value was written by this module and is valid for ``vr``.

    Such values (empty values, fixed codes, UIDs already assigned once with validation) skip
    pydicom's value validation, which would otherwise run for every header of an upload.
    """
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def _encoded_once(
    dataset: Dataset, encoding: tuple[Any, Any]
) -> dict[BaseTag, DataElement | RawDataElement] | None:
    """Encode ``dataset`` and read it back as raw elements, to be shared by many headers.

    A raw element is immutable, and pydicom converts it into a new element of the dataset that
    contains it when it is first accessed. One encoded element can therefore be placed in every
    header of an upload without the headers sharing a mutable value.

    pydicom writes raw values of a dataset unchanged when the dataset keeps the encoding it was
    read in, so the elements are encoded in the header's encoding. ``encoding`` is
    ``Dataset.original_encoding``. It is (None, None) for a dataset made in memory, whose raw
    elements pydicom converts before writing, and explicit VR little endian is used then.
    Returns None for a big-endian encoding, because such headers are rare and get new
    elements each time.
    """
    implicit, little_endian = encoding
    if little_endian is False:
        return None
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = bool(implicit)
    buffer.is_little_endian = True
    write_dataset(buffer, dataset)
    parsed = read_dataset(
        BytesIO(buffer.getvalue()), is_implicit_VR=bool(implicit), is_little_endian=True
    )
    return {BaseTag(tag): parsed.get_item(tag) for tag in parsed.keys()}  # noqa: SIM118


@functools.lru_cache(maxsize=1024)
def _fixed_element(tag: int, vr: str, *, empty: bool) -> RawDataElement:
    """Return the empty (action Z) or dummy (action D) element of an attribute (not a
    sequence).

    Both are raw elements, which are immutable and can be shared by every header: an empty
    value has no bytes, and the dummy values are ASCII text or zero bytes, the same in every
    encoding.
    """
    if empty:
        value = b""
    else:
        dummy = DUMMY_VALUES.get(vr)
        value = _DUMMY_BYTES if dummy is None else str(dummy).encode("ascii")
        if len(value) % 2:
            value += b"\x00" if vr == "UI" else b" "
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)


def _uid_element(tag: int, uids: tuple[str, ...]) -> RawDataElement:
    """Return a UI element holding replacement UIDs, as an immutable raw element.

    Replacement UIDs are digits and dots, so the bytes are the same in every encoding.
    """
    value = "\\".join(uids).encode("ascii")
    if len(value) % 2:
        value += b"\x00"
    return RawDataElement(BaseTag(tag), "UI", len(value), value, 0, False, True)


def _uid_value(dataset: Dataset, tag: int) -> Any:
    """Return a UID attribute's value (None when absent), without converting a raw element
    that contains one UID: its text is decoded as pydicom decodes UI values."""
    element = dataset.get_item(tag)
    if element is None:
        return None
    if isinstance(element, RawDataElement) and element.VR in (None, "UI"):
        value = element.value
        if isinstance(value, bytes) and b"\\" not in value:
            return value.decode(default_encoding).strip(" \x00")
    return dataset[tag].value


def _empty_value(vr: str | None) -> Any:
    if vr == "SQ":
        return Sequence()
    return empty_value_for_VR(vr)


def _optional_text(value: object) -> str | None:
    return str(value) if value else None


def _decode_element(dataset: Dataset, tag: int, log: _DatasetLog) -> DataElement | None:
    """Convert one raw element to a value under the dataset's character set.

    Text that pydicom cannot decode is decoded as ISO 8859-1 (Latin-1), which maps every
    byte, with a warning; an element of another VR that cannot be converted is removed.
    NOTE: pydicom 3.0 itself falls back to Latin-1 for undecodable text, so the text branch
    here is a guard for other pydicom versions and configurations and no test reaches it.
    """
    try:
        return dataset[tag]
    except ELEMENT_CONVERSION_ERRORS as err:
        raw = dataset.get_item(tag)
        vr = _attribute_vr(dataset, tag)
        name = f"{_tag_text(tag)} {_attribute_name(tag)}"
        if isinstance(raw, RawDataElement) and vr in TEXT_VRS | {"CS"} and raw.value is not None:
            text = raw.value.decode("latin-1").rstrip(" \x00")
            values = text.split("\\")
            element = DataElement(tag, vr, values[0] if len(values) == 1 else values)
            dataset[tag] = element
            log.warnings.append(
                f"{name}: text could not be decoded with the declared character set "
                f"({type(err).__name__}), so it was decoded as ISO 8859-1 (Latin-1)"
            )
            return element
        del dataset[tag]
        log.removed[_attribute_name(tag)] += 1
        log.warnings.append(
            f"{name}: the value could not be read ({type(err).__name__}) and was removed"
        )
        return None


def _declares_ascii_superset(dataset: Dataset) -> bool:
    """Return whether (0008,0005) SpecificCharacterSet is absent or names only character sets
    that decode the bytes 0x00-0x7F as ASCII (``ASCII_SUPERSET_CHARACTER_SETS``)."""
    element = dataset.get_item(_SPECIFIC_CHARACTER_SET_TAG)
    if element is None:
        return True
    value = element.value
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    terms = [str(term).strip(" \x00") for term in as_list(value)]
    if len(terms) == 1 and "\\" in terms[0]:
        terms = [term.strip() for term in terms[0].split("\\")]
    return all(term in ASCII_SUPERSET_CHARACTER_SETS for term in terms)


def _is_plain_ascii(value: object) -> bool:
    """Return whether raw bytes are ASCII without the ESC byte that starts ISO 2022 switching."""
    return isinstance(value, bytes) and value.isascii() and b"\x1b" not in value


def _raw_uid_key(element: Any, vr: str | None) -> tuple[Any, ...] | None:
    """Return the cache key of a raw UI element (its value bytes), or None."""
    if vr != "UI" or not isinstance(element, RawDataElement) or element.VR not in (None, "UI"):
        return None
    value = element.value
    if not isinstance(value, bytes) or len(value) > MAX_VALIDATED_RAW_BYTES:
        return None
    return (element.is_implicit_VR, element.is_little_endian, value)


def _temporal_values(dataset: Dataset, tag: int, log: _DatasetLog) -> list[str] | None:
    element = _decode_element(dataset, tag, log)
    if element is None:
        return None
    return [str(value).strip(" \x00") for value in as_list(element.value)]


def _character_set_warning(dataset: Dataset) -> str | None:
    raw = dataset.get_item(_SPECIFIC_CHARACTER_SET_TAG)
    if raw is None:
        return None
    value = raw.value
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    terms = [str(term).strip(" \x00") for term in as_list(value)]
    if len(terms) == 1 and "\\" in terms[0]:
        terms = [term.strip() for term in terms[0].split("\\")]
    undefined = [term for term in terms if term and term not in python_encoding]
    if not undefined:
        return None
    # The terms are header values, so the stored warning counts them instead of quoting them.
    return (
        f"SpecificCharacterSet (0008,0005) contains {len(undefined)} undefined term(s); text "
        "was decoded with pydicom's correction of the term or, failing that, as ISO 8859-1 "
        "(Latin-1)"
    )


def _clear_nested_character_sets(dataset: Dataset, *, nested: bool) -> bool:
    """Remove SpecificCharacterSet from sequence items and report whether all text is ASCII.

    Walks ``dataset`` and its sequence items once: deletes (0008,0005) from every item
    (``nested`` is False for the top level, whose declaration the caller rewrites) and returns
    whether every value of a ``TEXT_VRS`` attribute is ASCII. Only elements already converted
    from raw form are looked at: cleaning converts every kept element of ``TEXT_VRS`` and every
    sequence, so the raw ones left are of other VRs (iterating a pydicom Dataset itself would
    convert every element).
    """
    if nested and _SPECIFIC_CHARACTER_SET_TAG in dataset:
        del dataset[_SPECIFIC_CHARACTER_SET_TAG]
    ascii_only = True
    # Dataset.values() yields the stored elements, raw or converted, without converting.
    for element in list(dataset.values()):
        if not isinstance(element, DataElement):
            continue
        if element.VR == "SQ":
            for item in element.value or []:
                if not _clear_nested_character_sets(item, nested=True):
                    ascii_only = False
        elif ascii_only and element.VR in TEXT_VRS:
            ascii_only = all(str(value).isascii() for value in as_list(element.value))
    return ascii_only


def _normalise_character_set(dataset: Dataset) -> None:
    """Declare ASCII (no SpecificCharacterSet) or UTF-8 for the de-identified text.

    Every kept text value was decoded under the original character set, so the values can
    be re-encoded under a single, valid declaration; this also repairs undefined terms.
    """
    if _clear_nested_character_sets(dataset, nested=False):
        if _SPECIFIC_CHARACTER_SET_TAG in dataset:
            del dataset[_SPECIFIC_CHARACTER_SET_TAG]
        return
    dataset.SpecificCharacterSet = "ISO_IR 192"
