"""De-identification by the PS3.15 Annex E Basic Profile: identifiers, UIDs, sequences."""

from __future__ import annotations

import copy
import json
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, ImplicitVRLittleEndian, SecondaryCaptureImageStorage

from ictcf.errors import InputError
from ictcf.imaging.annex_e import BASIC_PROFILE, RESOLVED_ACTION
from ictcf.imaging.deidentify import (
    ICTCF_IMPLEMENTATION_CLASS_UID,
    MAX_SEQUENCE_DEPTH,
    Deidentifier,
    burned_in_text_risk,
    normalise_person_name,
    patient_lookup_key,
)
from tests.imaging.deidentify_fixtures import (
    IDENTIFYING_TEXT,
    PSEUDONYM,
    SECRET,
    assert_absent,
    item,
    make_ct,
    reread,
    sequence,
    to_bytes,
)


def _original_uids(dataset: Dataset) -> list[str]:
    uids = [
        dataset.SOPInstanceUID,
        dataset.StudyInstanceUID,
        dataset.SeriesInstanceUID,
        dataset.FrameOfReferenceUID,
    ]
    return [str(uid) for uid in uids]


def test_table_parses_every_row() -> None:
    assert len(BASIC_PROFILE) == 653
    assert {row.basic_action for row in BASIC_PROFILE.values()} <= set(RESOLVED_ACTION)
    assert BASIC_PROFILE[0x00100010].basic_action == "Z"
    assert BASIC_PROFILE[0x00081140].resolved_action == "U"
    assert BASIC_PROFILE[0x00080020].modified_dates_cleans
    assert BASIC_PROFILE[0x00101010].patient_characteristic


def test_basic_profile_removes_identifiers() -> None:
    dataset = make_ct()
    uids = _original_uids(dataset)
    pixels = dataset.PixelData

    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
    data = to_bytes(dataset)
    assert_absent(data, list(IDENTIFYING_TEXT) + uids)

    result = dcmread(BytesIO(data))
    assert result.PatientName == PSEUDONYM
    assert result.PatientID == PSEUDONYM
    assert result.PatientBirthDate == ""
    assert result.PatientSex == ""
    assert "PatientAge" not in result
    assert result.StudyDate == ""
    assert result.StudyTime == ""
    assert result.AccessionNumber == ""
    assert "InstitutionName" not in result
    assert "SeriesDate" not in result
    assert "AcquisitionDateTime" not in result
    assert "StudyDescription" not in result
    assert result.PatientIdentityRemoved == "YES"
    assert result.LongitudinalTemporalInformationModified == "REMOVED"
    codes = [code.CodeValue for code in result.DeidentificationMethodCodeSequence]
    assert codes == ["113100"]
    assert result.DeidentificationMethodCodeSequence[0].CodingSchemeDesignator == "DCM"
    assert "Basic Application Confidentiality Profile" in result.DeidentificationMethod
    # Technical attributes the lung pipeline needs are kept unchanged.
    assert result.Manufacturer == "SIEMENS"
    assert result.ConvolutionKernel == "B70f"
    assert result.RescaleIntercept == -1024
    assert result.PixelSpacing == [0.7, 0.7]
    assert result.PixelData == pixels
    assert record.removed["InstitutionName"] == 1
    assert record.replaced["PatientName"] == 1
    assert record.kept["Manufacturer"] == 1


def test_file_meta_uses_new_sop_instance_uid() -> None:
    dataset = make_ct()
    original_uid = dataset.SOPInstanceUID
    assert dataset.file_meta.MediaStorageSOPInstanceUID == original_uid

    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
    data = to_bytes(dataset)
    assert_absent(data, [str(original_uid), "WUHAN_CT1"])

    result = dcmread(BytesIO(data))
    assert result.SOPInstanceUID == record.sop_instance_uid
    assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
    assert result.file_meta.ImplementationClassUID == ICTCF_IMPLEMENTATION_CLASS_UID
    assert "SourceApplicationEntityTitle" not in result.file_meta
    assert result.SOPInstanceUID.startswith("2.25.")
    assert len(result.SOPInstanceUID) <= 64
    assert result.SOPInstanceUID.is_valid
    assert result.SOPClassUID == dataset.SOPClassUID


def test_references_resolve_across_upload() -> None:
    first = make_ct()
    second = make_ct()
    second.StudyInstanceUID = first.StudyInstanceUID
    second.SeriesInstanceUID = first.SeriesInstanceUID
    second.ReferencedImageSequence = sequence(
        item(
            ReferencedSOPClassUID=first.SOPClassUID,
            ReferencedSOPInstanceUID=first.SOPInstanceUID,
        )
    )
    original_first_uid = str(first.SOPInstanceUID)

    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    first_record = deidentifier.deidentify(first)
    second_record = deidentifier.deidentify(second)
    result = reread(second)

    reference = result.ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == first_record.sop_instance_uid
    assert reference.ReferencedSOPClassUID == first.SOPClassUID
    assert second_record.study_instance_uid == first_record.study_instance_uid
    assert second_record.series_instance_uid == first_record.series_instance_uid
    assert_absent(to_bytes(second), [original_first_uid])
    assert deidentifier.replace_uid(original_first_uid) == first_record.sop_instance_uid


def test_uid_replacement_keyed_by_secret() -> None:
    uid = "1.3.12.2.1107.5.1.4.93005.30000020030507333373200012575"
    same = Deidentifier(patient_pseudonym="A", secret=SECRET).replace_uid(uid)
    again = Deidentifier(patient_pseudonym="B", secret=SECRET).replace_uid(uid)
    other = Deidentifier(patient_pseudonym="A", secret=b"\x01" * 32).replace_uid(uid)
    assert same == again
    assert same != other
    assert Deidentifier(patient_pseudonym="A", secret=SECRET).replace_uid(
        "1.2.840.10008.5.1.4.1.1.2"
    ) == ("1.2.840.10008.5.1.4.1.1.2")


def test_custom_uid_root() -> None:
    root = "1.2.826.0.1.3680043.10.543."
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, uid_root=root)
    new_uid = deidentifier.replace_uid("1.2.3.4.5")
    assert new_uid.startswith(root)
    assert len(new_uid) <= 64
    assert new_uid[len(root) :].isdigit()


@pytest.mark.parametrize("root", ["2.25", "01.2.", "1.2.a.", "1." * 30])
def test_invalid_uid_root_rejected(root: str) -> None:
    with pytest.raises(ValueError, match="uid_root"):
        Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, uid_root=root)


@pytest.mark.parametrize("pseudonym", ["", "   ", "P\\1", "P\n1", "P" * 65])
def test_invalid_pseudonym_rejected(pseudonym: str) -> None:
    with pytest.raises(ValueError, match="patient_pseudonym"):
        Deidentifier(patient_pseudonym=pseudonym, secret=SECRET)


def test_short_secret_rejected() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Deidentifier(patient_pseudonym=PSEUDONYM, secret=b"short")


@pytest.mark.parametrize("keep_dates", [False, True])
def test_private_attributes_removed(keep_dates: bool) -> None:
    dataset = make_ct()
    block = dataset.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x19, "LO", "20200526")
    block.add_new(0x20, "SQ", sequence(item(PatientName="DOE^JANE")))

    record = Deidentifier(
        patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=keep_dates
    ).deidentify(dataset)
    data = to_bytes(dataset)
    assert_absent(data, ["ACME 1.0", "20200526", "DOE^JANE"])
    assert not any(element.tag.is_private for element in dcmread(BytesIO(data)))
    assert record.removed["(0029,1019)"] == 1
    assert record.removed["(0029,0010)"] == 1


def test_original_attributes_sequence_removed() -> None:
    dataset = make_ct()
    dataset.OriginalAttributesSequence = sequence(
        item(
            AttributeModificationDateTime="20200527120000",
            ModifyingSystem="PACS",
            ReasonForTheAttributeModification="COERCE",
            SourceOfPreviousValues="OTHER HOSPITAL",
            ModifiedAttributesSequence=sequence(item(PatientName="DOE^JANE")),
        )
    )
    Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
    data = to_bytes(dataset)
    assert b"DOE" not in data
    assert "OriginalAttributesSequence" not in dcmread(BytesIO(data))


def test_request_attributes_sequence_removed() -> None:
    dataset = make_ct()
    dataset.RequestAttributesSequence = sequence(
        item(RequestedProcedureID="RP-556677", ScheduledProcedureStepID="SPS-889900")
    )
    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
    data = to_bytes(dataset)
    assert_absent(data, ["RP-556677", "SPS-889900"])
    assert "RequestAttributesSequence" not in dcmread(BytesIO(data))
    assert record.removed["RequestAttributesSequence"] == 1


def test_names_removed_at_any_depth() -> None:
    # ReferencedSeriesSequence, ReferencedInstanceSequence and
    # PurposeOfReferenceCodeSequence are not in Table E.1-1, so they are kept and cleaned.
    dataset = make_ct()
    innermost = item(
        CodeValue="121311",
        CodingSchemeDesignator="DCM",
        CodeMeaning="Localizer",
        OperatorsName="DOE^JANE",
        PersonName="DOE^JANE",
        InstanceCreationDate="20200526",
        ReferencedSOPInstanceUID="1.2.3.4.5.6.7.8.9",
    )
    dataset.ReferencedSeriesSequence = sequence(
        item(
            SeriesInstanceUID="1.2.3.4.5.6.7.8",
            ReferencedInstanceSequence=sequence(
                item(PurposeOfReferenceCodeSequence=sequence(innermost))
            ),
        )
    )
    Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
    data = to_bytes(dataset)
    assert_absent(data, ["DOE", "20200526", "1.2.3.4.5.6.7.8"])

    result = dcmread(BytesIO(data))
    series_item = result.ReferencedSeriesSequence[0]
    code = series_item.ReferencedInstanceSequence[0].PurposeOfReferenceCodeSequence[0]
    assert code.CodeValue == "121311"
    assert code.CodeMeaning == "Localizer"
    assert "OperatorsName" not in code
    assert code.PersonName == "ANONYMOUS"
    assert "InstanceCreationDate" not in code
    assert code.ReferencedSOPInstanceUID.startswith("2.25.")


def test_sequence_depth_limit() -> None:
    dataset = make_ct()
    nested = item(CodeValue="1")
    for _ in range(MAX_SEQUENCE_DEPTH + 2):
        nested = item(ReferencedSeriesSequence=sequence(nested))
    dataset.ReferencedSeriesSequence = nested.ReferencedSeriesSequence
    with pytest.raises(InputError, match="nest deeper"):
        Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)


def test_unlisted_attributes_fall_back_by_vr() -> None:
    dataset = make_ct()
    dataset.PatientSpeciesDescription = "DOE FAMILY"  # LO, not in Table E.1-1
    dataset.SOPInstanceUIDOfConcatenationSource = "1.2.3.99.1"  # UI, not in the table
    dataset.ReferencedSOPClassUID = "1.3.12.2.1107.5.9.1"  # a vendor's class UID
    dataset.ContextUID = "1.2.840.10008.6.1.308"  # registered (CID 4021), kept
    dataset.add_new(0x60000010, "US", 4)  # overlay plane: always removed
    dataset.add_new(0x60003000, "OW", b"\x01\x00" * 8)
    dataset.add_new(0x50000005, "US", 1)  # curve data: always removed
    Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
    result = reread(dataset)
    assert "PatientSpeciesDescription" not in result
    assert result.SOPInstanceUIDOfConcatenationSource.startswith("2.25.")
    # A class UID that the standard does not register could carry anything, so it is
    # replaced like an instance UID.
    assert result.ReferencedSOPClassUID.startswith("2.25.")
    assert result.ContextUID == "1.2.840.10008.6.1.308"
    assert result.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert 0x60000010 not in result
    assert 0x60003000 not in result
    assert 0x50000005 not in result


def test_patient_characteristics_option() -> None:
    dataset = make_ct()
    Deidentifier(
        patient_pseudonym=PSEUDONYM, secret=SECRET, keep_patient_characteristics=True
    ).deidentify(dataset)
    result = reread(dataset)
    assert result.PatientAge == "059Y"
    assert result.PatientSex == "M"
    assert result.PatientBirthDate == ""
    codes = [code.CodeValue for code in result.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113108"]


def test_person_name_normalisation() -> None:
    assert normalise_person_name("DOE^JOHN^Q") == "DOE^JOHN^Q"
    assert normalise_person_name("DOE^JOHN^Q^") == "DOE^JOHN^Q"
    assert normalise_person_name(" doe ^ john  ^q ^^") == "DOE^JOHN^Q"
    assert normalise_person_name("Doe^John=ドウ^ジョン=") == "DOE^JOHN=ドウ^ジョン"
    assert normalise_person_name("") == ""
    assert normalise_person_name(None) == ""


def test_lookup_key_matches_name_variants() -> None:
    first = make_ct(patient_name="DOE^JOHN^Q")
    second = make_ct(patient_name="DOE^JOHN^Q^")
    other = make_ct(patient_name="ROE^RICHARD")
    key = patient_lookup_key(first, secret=SECRET)
    assert key is not None
    assert len(key) == 64
    assert key == patient_lookup_key(second, secret=SECRET)
    assert key != patient_lookup_key(other, secret=SECRET)
    assert key != patient_lookup_key(first, secret=b"\x02" * 32)
    assert patient_lookup_key(make_ct(patient_name="", patient_id=""), secret=SECRET) is None

    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    first_record = deidentifier.deidentify(first)
    second_record = deidentifier.deidentify(second)
    assert first_record.patient_lookup_key == second_record.patient_lookup_key == key
    assert reread(first).PatientName == reread(second).PatientName == PSEUDONYM
    assert deidentifier.report().n_patient_keys == 1
    deidentifier.deidentify(other)
    assert deidentifier.report().n_patient_keys == 2


def test_report_counts_and_serialises() -> None:
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    datasets = [make_ct(), make_ct()]
    for dataset in datasets:
        deidentifier.deidentify(dataset)
    report = deidentifier.report()
    assert report.n_datasets == 2
    assert report.removed["InstitutionName"] == 2
    assert report.replaced["PatientName"] == 2
    assert report.replaced["SOPInstanceUID"] == 2
    assert report.kept["Manufacturer"] == 2
    assert report.burned_in_text_risks == []

    text = json.dumps(report.to_dict())
    for value in IDENTIFYING_TEXT:
        assert value not in text
    assert json.loads(text)["pixel_data_cleaned"] is False
    assert "secret" not in json.dumps(deidentifier.to_dict())


def test_report_written_as_json(tmp_path: Path) -> None:
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET, keep_dates=True)
    deidentifier.deidentify(make_ct())
    path = tmp_path / "deidentification.json"
    deidentifier.report().write_json(path)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["n_datasets"] == 1
    assert written["dates_shifted"] is True
    assert [code["code_value"] for code in written["method_codes"]] == ["113100", "113107"]
    assert not (tmp_path / "deidentification.json.tmp").exists()


def _draw_block_text(rows: int, columns: int) -> np.ndarray:
    """Return an image with bright block letters in its top-left 40x10 pixels."""
    image = np.zeros((rows, columns), dtype=np.uint16)
    for left in range(0, 40, 5):
        image[1:9, left : left + 3] = 4000
        image[1:3, left : left + 4] = 4000
    return image


def test_secondary_capture_flagged() -> None:
    dataset = make_ct(rows=32, columns=48)
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.BitsStored = 12
    dataset.HighBit = 11
    dataset.PixelRepresentation = 0
    dataset.PixelData = _draw_block_text(32, 48).tobytes()
    pixels = dataset.PixelData

    reason = burned_in_text_risk(dataset)
    assert reason is not None
    assert "secondary capture" in reason
    assert "DERIVED" in reason

    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    record = deidentifier.deidentify(dataset)
    assert record.burned_in_text_risk == reason
    flagged = deidentifier.report().burned_in_text_risks
    assert flagged == [{"sop_instance_uid": record.sop_instance_uid, "reason": reason}]
    # Header de-identification leaves the pixels, and any text in them, untouched.
    assert reread(dataset).PixelData == pixels


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"ImageType": ["DERIVED", "SECONDARY", "AXIAL"]}, "ImageType (0008,0008)"),
        ({"BurnedInAnnotation": "YES"}, "BurnedInAnnotation (0028,0301) is YES"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7.4"}, "secondary capture"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}, None),
        ({"BurnedInAnnotation": "NO"}, None),
        # VL Photographic Image Storage shares the 1.2.840.10008.5.1.4.1.1.7 prefix only
        # as text, not as a UID component.
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.77.1.4"}, None),
    ],
)
def test_burned_in_text_risk_sources(attributes: dict[str, object], expected: str | None) -> None:
    dataset = make_ct()
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    reason = burned_in_text_risk(dataset)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None
        assert expected in reason


def test_embedded_overlay_flagged() -> None:
    dataset = make_ct()
    dataset.add_new(0x60000010, "US", 4)
    dataset.add_new(0x60000102, "US", 15)
    reason = burned_in_text_risk(dataset)
    assert reason is not None
    assert "overlay plane (6000,xxxx)" in reason


def test_real_ct_files_deidentified(shared_data: Path) -> None:
    files = sorted((shared_data / "covid-ct-md" / "P001").iterdir())[:2]
    files += sorted((shared_data / "tcia-sbu").glob("*/axial/*.dcm"))[:2]
    if not files:
        pytest.skip("no real DICOM files in the shared data")
    for path in files:
        dataset = dcmread(path)
        pixels = dataset.pixel_array.copy()
        originals = _instance_values(dataset)
        Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
        data = to_bytes(dataset)
        assert_absent(data, originals)
        result = dcmread(BytesIO(data))
        assert np.array_equal(result.pixel_array, pixels)
        assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID
        assert not any(element.tag.is_private for element in result)


def _instance_values(dataset: Dataset) -> list[str]:
    """Return the instance UIDs, patient identifiers and dates of a header, at any depth."""
    values: set[str] = set()

    def visit(current: Dataset) -> None:
        for element in current:
            if element.VR == "SQ":
                for child in element.value:
                    visit(child)
            elif element.VR == "UI" and element.value:
                text = str(element.value)
                if UID(text).name == text:  # not a UID that the standard registers
                    values.add(text)
            elif element.value and (
                element.VR == "DA" or element.keyword in ("PatientID", "PatientName")
            ):
                values.add(str(element.value))

    visit(dataset)
    return sorted(values)


def test_unregistered_uid_under_dicom_root_replaced() -> None:
    dataset = make_ct()
    dataset.StudyInstanceUID = "1.2.840.10008.19450317.555123456"
    dataset.SOPClassUID = "1.2.840.10008.19450317.1"
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    deidentifier.deidentify(dataset)
    data = to_bytes(dataset)
    assert b"19450317" not in data
    result = dcmread(BytesIO(data))
    assert result.StudyInstanceUID == deidentifier.replace_uid("1.2.840.10008.19450317.555123456")
    assert result.file_meta.MediaStorageSOPClassUID == result.SOPClassUID
    assert deidentifier.replace_uid("1.2.840.10008.1.2.1") == "1.2.840.10008.1.2.1"


@pytest.mark.parametrize(
    ("tag", "vr", "value"),
    [
        (0x00180060, "PN", "LEAKMARK^KVP"),  # KVP is DS
        (0x00181150, "LO", "LEAKMARK EXPOSURE TIME"),  # ExposureTime is IS
        (0x00280034, "UT", "LEAKMARK ASPECT"),  # PixelAspectRatio is IS
        (0x00080008, "LO", "ORIGINAL\\PRIMARY\\LEAKMARK"),  # ImageType is CS
        (0x00180060, "UN", b"LEAKMARK_KVP_UN"),
        (0x00181150, "OB", b"LEAKMARK_EXPOSURE"),
        (0x00280120, "OB", b"LEAKMARK_PADDING"),  # PixelPaddingValue is US or SS
        (0x00280106, "CS", "LEAKMARK"),  # SmallestImagePixelValue is US or SS
    ],
)
def test_wrong_vr_in_file_removed(tag: int, vr: str, value: str | bytes) -> None:
    written = dcmread(BytesIO(to_bytes(make_ct())))
    # As read from an explicit VR file that declares this VR for the attribute.
    encoded = value.encode("ascii") if isinstance(value, str) else value
    encoded += b" " * (len(encoded) % 2)
    written[tag] = RawDataElement(BaseTag(tag), vr, len(encoded), encoded, 0, False, True)
    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(written)
    data = to_bytes(written)
    assert b"LEAKMARK" not in data
    assert tag not in dcmread(BytesIO(data))
    assert any("value representation" in warning for warning in record.warnings)


def test_sequence_under_number_tag_removed() -> None:
    dataset = make_ct()
    dataset.add_new(
        0x00181120, "SQ", sequence(item(PatientName="LEAKMARK^NESTED", PatientBirthDate="19450317"))
    )
    written = dcmread(BytesIO(to_bytes(dataset)))
    Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(written)
    data = to_bytes(written)
    assert b"LEAKMARK" not in data
    assert b"19450317" not in data


def test_attribute_outside_dictionary_removed() -> None:
    dataset = make_ct()
    dataset.add_new(0x00089999, "OB", b"LEAKMARK_UNKNOWN_OB")
    dataset.add_new(0x0008999C, "DS", "1945.0317")
    written = dcmread(BytesIO(to_bytes(dataset)))
    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(written)
    data = to_bytes(written)
    assert b"LEAKMARK" not in data
    assert b"1945.0317" not in data
    assert record.removed.get("(0008,9999)") == 1


@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
@pytest.mark.parametrize(("tag", "vr"), [(0x00180060, "DS"), (0x00200012, "IS")])
def test_number_holding_text_removed(tag: int, vr: str) -> None:
    written = dcmread(BytesIO(to_bytes(make_ct())))
    # pydicom reads a UN element of a known attribute with the dictionary's VR, and keeps a
    # DS or IS value that is not a number as text.
    encoded = b"LEAKMARK^DOE "
    written[tag] = RawDataElement(
        BaseTag(tag), vr, len(encoded) + 1, encoded + b" ", 0, False, True
    )
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    for _ in range(2):
        header = copy.deepcopy(written)
        record = deidentifier.deidentify(header)
        assert b"LEAKMARK" not in to_bytes(header)
        assert any("not a number" in warning for warning in record.warnings)


def test_burned_in_reason_names_only_defined_terms() -> None:
    dataset = make_ct()
    dataset.ImageType = ["DERIVED", "SECONDARY", "LEAKMARK DOE"]
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.19450317"
    reason = burned_in_text_risk(dataset)
    assert reason is not None
    assert "value 1 is DERIVED" in reason
    assert "value 2 is SECONDARY" in reason
    assert "secondary capture" in reason
    assert "LEAKMARK" not in reason
    assert "19450317" not in reason


def test_uid_with_short_components_under_root_replaced() -> None:
    dataset = make_ct()
    dataset.StudyInstanceUID = "1.2.840.10008.1945.317.5551.2345.6"
    dataset.SeriesInstanceUID = "1.2.840.10008.1945.0317.5551"
    dataset.ContextUID = "1.2.840.10008.6.1.308"
    deidentifier = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET)
    deidentifier.deidentify(dataset)
    result = reread(dataset)
    assert result.StudyInstanceUID.startswith("2.25.")
    assert result.SeriesInstanceUID.startswith("2.25.")
    assert result.ContextUID == "1.2.840.10008.6.1.308"


def test_binary_value_with_too_many_numbers_removed() -> None:
    dataset = make_ct()
    dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    written = dcmread(BytesIO(to_bytes(dataset)))
    # SmallestImagePixelValue has one value: 16 bytes of US would hide text in eight numbers.
    encoded = b"LEAKMARK_IMPL_US"
    written[0x00280106] = RawDataElement(
        BaseTag(0x00280106), None, len(encoded), encoded, 0, True, True
    )
    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(written)
    written.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert b"LEAKMARK" not in to_bytes(written)
    assert any("more values" in warning for warning in record.warnings)
