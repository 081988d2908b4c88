"""Helpers that read attribute values from possibly malformed headers, shared by the
de-identification modules."""

from __future__ import annotations

import struct
from typing import Any, Final

from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException
from pydicom.multival import MultiValue

from ictcf.imaging.dicom_headers import header_value

# Errors pydicom raises while converting a malformed raw element to a value.
ELEMENT_CONVERSION_ERRORS: Final = (
    ValueError,
    TypeError,
    LookupError,
    NotImplementedError,
    OverflowError,
    struct.error,
    BytesLengthException,
)


def as_list(value: object) -> list[Any]:
    """Return the values of an attribute value as a list (empty for an empty value)."""
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def element_value(dataset: Dataset, tag: int) -> Any:
    """Return an attribute value, or its raw bytes decoded as Latin-1 when pydicom cannot
    convert it, or None when the attribute is absent."""
    if tag not in dataset:
        return None
    try:
        return header_value(dataset, tag)
    except ELEMENT_CONVERSION_ERRORS:
        raw = dataset.get_item(tag)
        raw_value = getattr(raw, "value", None)
        return raw_value.decode("latin-1") if isinstance(raw_value, bytes) else None
