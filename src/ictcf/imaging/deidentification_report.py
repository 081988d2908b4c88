"""What the de-identifier did: one record per dataset and one report per upload.

Neither contains an original value. UIDs are the replacements and counts are keyed by
attribute keyword, so the report can be stored beside the de-identified images.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DeidentificationRecord:
    """Changes that ``Deidentifier.deidentify`` made to one dataset.

    The record contains no original value. UIDs are the new ones, and counts are keyed by
    attribute keyword (or ``"(gggg,eeee)"`` for attributes without one).

    Attributes
    ----------
    sop_instance_uid, study_instance_uid, series_instance_uid : str or None
        The replacement UIDs written into the dataset.
    patient_lookup_key : str or None
        ``patient_lookup_key`` of the original header.
    removed, replaced, kept : dict of str to int
        Number of attributes removed, replaced (pseudonym, new UID, dummy, empty value or
        shifted date) and kept, at any sequence depth.
    burned_in_text_risk : str or None
        ``burned_in_text_risk`` of the original header.
    warnings : tuple of str
        Anomalies the dataset survived (undecodable text, invalid dates emptied ...).
    """

    sop_instance_uid: str | None
    study_instance_uid: str | None
    series_instance_uid: str | None
    patient_lookup_key: str | None
    removed: dict[str, int]
    replaced: dict[str, int]
    kept: dict[str, int]
    burned_in_text_risk: str | None
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-compatible built-in types."""
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "patient_lookup_key": self.patient_lookup_key,
            "removed": dict(sorted(self.removed.items())),
            "replaced": dict(sorted(self.replaced.items())),
            "kept": dict(sorted(self.kept.items())),
            "burned_in_text_risk": self.burned_in_text_risk,
            "warnings": list(self.warnings),
        }


@dataclass
class DeidentificationReport:
    """Summary of one upload's de-identification, safe to store beside the images.

    Attributes
    ----------
    profile, table_edition : str
        The profile applied and the edition of Table E.1-1 behind it.
    method_codes : list of (str, str)
        CID 7050 code values and meanings written to DeidentificationMethodCodeSequence.
    dates_shifted : bool
        True when longitudinal dates were kept by a per-patient shift.
    n_datasets : int
        Number of datasets de-identified.
    n_patient_keys : int
        Number of distinct patient lookup keys among the original headers; more than one
        means the upload mixed patients.
    removed, replaced, kept : Counter
        Attribute counts by keyword over all datasets.
    burned_in_text_risks : list of dict
        ``{"sop_instance_uid": new UID, "reason": ...}`` for every image to review.
    warnings : Counter
        Warning messages with the number of datasets that raised each.
    """

    profile: str
    table_edition: str
    method_codes: list[tuple[str, str]]
    dates_shifted: bool
    n_datasets: int = 0
    n_patient_keys: int = 0
    removed: Counter[str] = field(default_factory=Counter)
    replaced: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    burned_in_text_risks: list[dict[str, str | None]] = field(default_factory=list)
    warnings: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-compatible built-in types."""
        return {
            "profile": self.profile,
            "table_edition": self.table_edition,
            "method_codes": [
                {"code_value": code, "coding_scheme_designator": "DCM", "code_meaning": meaning}
                for code, meaning in self.method_codes
            ],
            "dates_shifted": self.dates_shifted,
            "pixel_data_cleaned": False,
            "pixel_data_note": (
                "Only headers were de-identified. Text burned into pixel data is neither "
                "detected nor removed; review the images listed in burned_in_text_risks."
            ),
            "n_datasets": self.n_datasets,
            "n_patient_keys": self.n_patient_keys,
            "removed": dict(sorted(self.removed.items())),
            "replaced": dict(sorted(self.replaced.items())),
            "kept": dict(sorted(self.kept.items())),
            "burned_in_text_risks": list(self.burned_in_text_risks),
            "warnings": [
                {"message": message, "count": count}
                for message, count in sorted(self.warnings.items())
            ],
        }

    def write_json(self, path: Path) -> None:
        """Write ``to_dict()`` as indented JSON, replacing ``path`` atomically."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
