"""De-identification of headers in odd, wrong or non-Latin character sets."""

from __future__ import annotations

import warnings
from io import BytesIO

import pytest
from pydicom import config, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from ictcf.imaging.deidentify import Deidentifier, patient_lookup_key
from tests.imaging.deidentify_fixtures import (
    PSEUDONYM,
    SECRET,
    assert_absent,
    make_ct,
    reread,
    to_bytes,
)

# Fictitious Cyrillic name, 12 characters so it can replace a 12-byte placeholder in place.
CYRILLIC_NAME = "ИВАНОВ^ПЕТР "
PLACEHOLDER_NAME = "XXXXXXXXXXXX"


def _file_with_raw_name(character_set: str, name_bytes: bytes) -> bytes:
    """Write a CT file whose PatientName bytes are ``name_bytes`` under ``character_set``."""
    dataset = make_ct(patient_name=PLACEHOLDER_NAME, character_set=None)
    data = to_bytes(dataset)
    assert data.count(PLACEHOLDER_NAME.encode()) == 1
    data = data.replace(PLACEHOLDER_NAME.encode(), name_bytes)
    # Adding SpecificCharacterSet to the parsed dataset and writing it again keeps the raw
    # name bytes intact, because pydicom writes unconverted elements unchanged.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reread_dataset = dcmread(BytesIO(data))
        reread_dataset.SpecificCharacterSet = character_set
        return to_bytes(reread_dataset)


def test_cp1251_name_under_ascii_charset() -> None:
    name_bytes = CYRILLIC_NAME.encode("cp1251")
    data = _file_with_raw_name("ISO 2022 IR 6", name_bytes)
    assert name_bytes in data

    dataset = dcmread(BytesIO(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
        output = to_bytes(dataset)
    assert name_bytes not in output
    assert_absent(output, [CYRILLIC_NAME.strip()])
    assert dcmread(BytesIO(output)).PatientName == PSEUDONYM
    assert record.patient_lookup_key is not None


@pytest.mark.parametrize("character_set", ["ISO_2022_IR_6", "ISO 2022 IR 100"])
def test_odd_charset_readable_and_resaved(character_set: str) -> None:
    data = _file_with_raw_name(character_set, b"DOE^JOHN    ")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = dcmread(BytesIO(data))
        assert dataset.PatientID == "12345678"
        clean = make_ct(patient_name="DOE^JOHN")
        assert patient_lookup_key(dataset, secret=SECRET) == patient_lookup_key(
            clean, secret=SECRET
        )
        record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
        result = reread(dataset)

    if character_set == "ISO_2022_IR_6":
        assert any("Latin-1" in warning for warning in record.warnings)
    else:
        assert record.warnings == ()
    assert "SpecificCharacterSet" not in result
    assert result.PatientID == PSEUDONYM
    assert_absent(to_bytes(result), ["12345678", "DOE^JOHN"])


def test_cjk_pseudonym_written_as_utf8() -> None:
    pseudonym = "患者-0042"
    dataset = make_ct(character_set="ISO_IR 100")
    dataset.Manufacturer = "Röntgenwerk"
    dataset = reread(dataset)

    Deidentifier(patient_pseudonym=pseudonym, secret=SECRET).deidentify(dataset)
    data = to_bytes(dataset)
    result = dcmread(BytesIO(data))
    assert result.SpecificCharacterSet == "ISO_IR 192"
    assert result.PatientName == pseudonym
    assert result.PatientID == pseudonym
    assert result.Manufacturer == "Röntgenwerk"
    assert pseudonym.encode("utf-8") in data


def test_non_ascii_code_string_removed() -> None:
    dataset = reread(make_ct(character_set="ISO_IR 100"))
    dataset.SpecificCharacterSet = "ISO_IR 192"
    with pytest.warns(UserWarning, match="Invalid value for VR CS"):
        dataset.BodyPartExamined = "胸部"

    record = Deidentifier(patient_pseudonym="患者-0042", secret=SECRET).deidentify(dataset)
    result = reread(dataset)
    assert "BodyPartExamined" not in result
    assert any("(0018,0015) BodyPartExamined" in warning for warning in record.warnings)
    assert result.SpecificCharacterSet == "ISO_IR 192"
    assert result.PatientName == "患者-0042"


def test_unknown_charset_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydicom 3.0 decodes text of an unknown character set as Latin-1 even in its strict
    # reading mode. The kept text must then be re-encoded under a valid declaration.
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.RAISE)
    dataset = make_ct(character_set=None)
    dataset.Manufacturer = "MANUFACTURERX"
    data = to_bytes(dataset).replace(b"MANUFACTURERX", "Röntgen GmbH ".encode("latin-1"))
    parsed = dcmread(BytesIO(data))
    parsed.SpecificCharacterSet = "ISO_IR 999"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(parsed)
    result = reread(parsed)
    assert result.Manufacturer == "Röntgen GmbH"
    assert result.PatientName == PSEUDONYM
    assert result.SpecificCharacterSet == "ISO_IR 192"
    assert any("1 undefined term(s)" in warning for warning in record.warnings)
    assert not any("ISO_IR 999" in warning for warning in record.warnings)


def test_unreadable_value_removed() -> None:
    dataset = make_ct()
    # BitsStored is kept by the profile, but this raw US value has an odd byte count.
    dataset._dict[Tag(0x00280101)] = RawDataElement(
        Tag(0x00280101), "US", 3, b"\x10\x00\x00", 0, False, True
    )
    record = Deidentifier(patient_pseudonym=PSEUDONYM, secret=SECRET).deidentify(dataset)
    result = reread(dataset)
    assert "BitsStored" not in result
    assert record.removed["BitsStored"] == 1
    assert any("(0028,0101) BitsStored" in warning for warning in record.warnings)
