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
when dates are kept), UI attributes are replaced unless they name a class or transfer syntax,
and public attributes of unknown VR are removed.

The profile covers headers only. Text burned into the pixel data cannot be detected from
headers; ``burned_in_text_risk`` names the header evidence that an image may carry such text
so the image can be reviewed, and nothing here claims that pixel data are clean.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
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

# Root of every UID the DICOM standard itself defines (SOP classes, transfer syntaxes, coding
# schemes, context groups, well-known frames of reference). Such values name a class, never
# an instance, so they are kept wherever they occur.
DICOM_ROOT_UID_PREFIX: Final = "1.2.840.10008."
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
# UI attributes that name a class, a transfer syntax or a coding resource, never an instance.
KEPT_UID_KEYWORDS: Final = frozenset(
    {
        "CodingSchemeUID",
        "ContextUID",
        "EncryptedContentTransferSyntaxUID",
        "MappingResourceUID",
        "MediaStorageSOPClassUID",
        "OriginalSpecializedSOPClassUID",
        "ReferencedRelatedGeneralSOPClassUIDInFile",
        "ReferencedSOPClassUID",
        "ReferencedSOPClassUIDInFile",
        "ReferencedTransferSyntaxUIDInFile",
        "RelatedGeneralSOPClassUID",
        "SOPClassUID",
        "SOPClassesInStudy",
        "TransferSyntaxUID",
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
        is a Secondary Capture, ImageType (0008,0008) is DERIVED or SECONDARY, or an overlay
        plane is stored in unused pixel bits. None when no reason applies.
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
        reasons.append(
            f"SOP Class {sop_class_text} ({UID(sop_class_text).name}) is a secondary capture, "
            "which often holds screenshots with burned-in text"
        )

    image_type = element_value(dataset, 0x00080008)
    if image_type:
        values = [str(item).strip().upper() for item in as_list(image_type)]
        if "DERIVED" in values[:1] or "SECONDARY" in values[1:2]:
            joined = "\\".join(values)
            reasons.append(f"ImageType (0008,0008) is {joined}")

    for group in range(_OVERLAY_GROUPS.start, _OVERLAY_GROUPS.stop, 2):
        has_rows = (group << 16 | _OVERLAY_ROWS_ELEMENT) in dataset
        if has_rows and (group << 16 | _OVERLAY_DATA_ELEMENT) not in dataset:
            reasons.append(
                f"overlay plane ({group:04X},xxxx) is stored in unused pixel data bits, "
                "which header de-identification does not clear"
            )
    return "; ".join(reasons) or None


# ---------------------------------------------------------------------------------------
# The de-identifier


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
        self._date_shift = _date_shift_for(self._secret, patient_pseudonym)
        self._patient_keys: set[str] = set()

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

        UIDs under the DICOM root ``1.2.840.10008.`` name standard classes and are returned
        unchanged; an empty value stays empty.
        """
        original = str(uid).strip(" \x00")
        if not original or original.startswith(DICOM_ROOT_UID_PREFIX):
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
        lookup_key = patient_lookup_key(dataset, secret=self._secret)
        original_meta = getattr(dataset, "file_meta", None)
        source_path = getattr(dataset, "filename", None)

        self._clean(dataset, log, depth=0, source_path=source_path)
        self._write_identity_attributes(dataset, log)
        _normalise_character_set(dataset)
        self._replace_file_meta(dataset, original_meta)

        record = DeidentificationRecord(
            sop_instance_uid=_optional_text(dataset.get("SOPInstanceUID")),
            study_instance_uid=_optional_text(dataset.get("StudyInstanceUID")),
            series_instance_uid=_optional_text(dataset.get("SeriesInstanceUID")),
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
        actions = {int(tag): self._choose_action(dataset, tag) for tag in list(dataset.keys())}
        shift_tags = [tag for tag, action in actions.items() if action == "shift"]
        self._shift_temporal(dataset, shift_tags, log)

        for tag, action in actions.items():
            name = _attribute_name(tag)
            if action == "shift":
                continue
            if action == "remove":
                del dataset[tag]
                log.removed[name] += 1
            elif action == "empty":
                vr = _attribute_vr(dataset, tag) or "UN"
                dataset[tag] = DataElement(tag, vr, _empty_value(vr))
                log.replaced[name] += 1
            elif action == "dummy":
                vr = _attribute_vr(dataset, tag) or "UN"
                dataset[tag] = DataElement(tag, vr, DUMMY_VALUES.get(vr, _DUMMY_BYTES))
                log.replaced[name] += 1
            elif action == "pseudonym":
                vr = _attribute_vr(dataset, tag) or "PN"
                dataset[tag] = DataElement(tag, vr, self.patient_pseudonym)
                log.replaced[name] += 1
            elif action == "uid":
                self._replace_uids(dataset, tag, log)
            elif action == "recurse":
                self._clean_sequence(dataset, tag, log, depth=depth, source_path=source_path)
            else:
                self._keep(dataset, tag, log)

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

        if vr == "SQ":
            return "recurse"
        if vr == "UI":
            return "keep" if keyword in KEPT_UID_KEYWORDS else "uid"
        if vr in TEMPORAL_VRS:
            return "shift" if self.keep_dates else "remove"
        if vr in TEXT_VRS:
            return "keep" if keyword in KEPT_TEXT_KEYWORDS else "remove"
        if vr is None or vr == "UN":
            return "remove"
        return "keep"

    def _keep(self, dataset: Dataset, tag: int, log: _DatasetLog) -> None:
        # Decoding now, under the original SpecificCharacterSet, lets the text be re-encoded
        # once the character set is normalised.
        element = _decode_element(dataset, tag, log)
        if element is None:
            return
        name = _attribute_name(tag)
        if element.VR == "CS" and not all(str(value).isascii() for value in as_list(element.value)):
            # PS3.5 6.2 limits CS to the default repertoire, and pydicom cannot write
            # other characters in a CS value, so the file could not be saved.
            del dataset[tag]
            log.removed[name] += 1
            log.warnings.append(
                f"{_tag_text(tag)} {name}: a code string (CS) value has characters outside "
                "the default repertoire and was removed"
            )
            return
        log.kept[name] += 1

    def _replace_uids(self, dataset: Dataset, tag: int, log: _DatasetLog) -> None:
        element = _decode_element(dataset, tag, log)
        if element is None:
            return
        originals = [str(value) for value in as_list(element.value)]
        replacements = [self.replace_uid(value) for value in originals]
        name = _attribute_name(tag)
        if replacements == [value.strip(" \x00") for value in originals]:
            log.kept[name] += 1
            return
        element.value = replacements[0] if len(replacements) == 1 else replacements
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
        for keyword in ("PatientName", "PatientID"):
            if keyword not in dataset:
                setattr(dataset, keyword, self.patient_pseudonym)
                log.replaced[keyword] += 1
        dataset.PatientIdentityRemoved = "YES"
        method_values = [f"ictcf {__version__}"] + [
            meaning for _, meaning in self._report.method_codes
        ]
        dataset.DeidentificationMethod = method_values
        codes = []
        for code_value, meaning in self._report.method_codes:
            item = Dataset()
            item.CodeValue = code_value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            codes.append(item)
        dataset.DeidentificationMethodCodeSequence = codes
        dataset.LongitudinalTemporalInformationModified = (
            "MODIFIED" if self.keep_dates else "REMOVED"
        )

    def _replace_file_meta(self, dataset: Dataset, original_meta: Dataset | None) -> None:
        """Replace the File Meta Information and preamble, as PS3.15 E.1.1 item 7 requires."""
        transfer_syntax = original_meta.get("TransferSyntaxUID") if original_meta else None
        if "SOPInstanceUID" not in dataset and original_meta is not None:
            original_instance = original_meta.get("MediaStorageSOPInstanceUID")
            if original_instance:
                dataset.SOPInstanceUID = self.replace_uid(str(original_instance))

        meta = FileMetaDataset()
        meta.FileMetaInformationVersion = b"\x00\x01"
        if "SOPClassUID" in dataset:
            meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        if "SOPInstanceUID" in dataset:
            meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        if transfer_syntax:
            meta.TransferSyntaxUID = UID(str(transfer_syntax))
        elif "PixelData" not in dataset:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = UID(ICTCF_IMPLEMENTATION_CLASS_UID)
        meta.ImplementationVersionName = ICTCF_IMPLEMENTATION_VERSION_NAME
        dataset.file_meta = meta
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
    return (
        f"SpecificCharacterSet (0008,0005) holds undefined terms {undefined}; text was decoded "
        "with pydicom's correction of the term or, failing that, as ISO 8859-1 (Latin-1)"
    )


def _converted_elements(dataset: Dataset) -> Iterable[DataElement]:
    """Yield the elements already converted from raw form, without converting the others.

    Cleaning converts every kept element, so the raw ones left are none of them. (Iterating
    a pydicom Dataset itself would convert every element.)
    """
    for tag in list(dataset.keys()):
        element = dataset.get_item(tag)
        if isinstance(element, DataElement):
            yield element


def _iter_text_values(dataset: Dataset) -> Iterable[str]:
    for element in _converted_elements(dataset):
        if element.VR == "SQ":
            for item in element.value or []:
                yield from _iter_text_values(item)
        elif element.VR in TEXT_VRS:
            for value in as_list(element.value):
                yield str(value)


def _remove_nested_character_sets(dataset: Dataset) -> None:
    for element in _converted_elements(dataset):
        if element.VR != "SQ":
            continue
        for item in element.value or []:
            if _SPECIFIC_CHARACTER_SET_TAG in item:
                del item[_SPECIFIC_CHARACTER_SET_TAG]
            _remove_nested_character_sets(item)


def _normalise_character_set(dataset: Dataset) -> None:
    """Declare ASCII (no SpecificCharacterSet) or UTF-8 for the de-identified text.

    Every kept text value was decoded under the original character set, so the values can
    be re-encoded under a single, valid declaration; this also repairs undefined terms.
    """
    _remove_nested_character_sets(dataset)
    if all(value.isascii() for value in _iter_text_values(dataset)):
        if _SPECIFIC_CHARACTER_SET_TAG in dataset:
            del dataset[_SPECIFIC_CHARACTER_SET_TAG]
        return
    dataset.SpecificCharacterSet = "ISO_IR 192"
