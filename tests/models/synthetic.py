"""Synthetic patient and measurement frames shaped like ``load_patients`` / ``load_measurements``.

The frames are generated from a seeded numpy generator: two hospitals, three morbidity types
plus suspected patients, and CFs whose values shift with the morbidity type so a model can
learn them. No real patient data is involved.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ictcf.db.queries import MEASUREMENT_COLUMNS, PATIENT_COLUMNS

#: CF abbreviation -> (range_low, range_high, unit, shift per morbidity-type step).
SYNTHETIC_CFS: dict[str, tuple[float | None, float | None, str, float]] = {
    "LY": (1.1, 3.2, "G/L", -0.6),
    "CRP": (None, 8.0, "mg/L", 9.0),
    "LDH": (109.0, 245.0, "U/L", 80.0),
    "DD": (None, 0.5, "mg/L FEU", 0.4),
    "ALB": (35.0, 55.0, "g/L", -4.0),
}


def synthetic_frames(
    n_patients: int = 120, *, seed: int = 0, suspected_fraction: float = 0.15
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (patients, measurements) with learnable morbidity and mortality labels."""
    rng = np.random.default_rng(seed)
    types = np.array(["control", "type_i", "type_ii"])
    severity = rng.integers(0, 3, n_patients)
    morbidity_type = types[severity].astype(object)
    suspected = rng.random(n_patients) < suspected_fraction
    morbidity_type[suspected] = "suspected"

    outcome = np.full(n_patients, "unknown", dtype=object)
    covid = (severity >= 1) & ~suspected
    deceased = covid & (rng.random(n_patients) < np.where(severity == 2, 0.45, 0.08))
    outcome[covid] = "cured"
    outcome[deceased] = "deceased"

    patients = pd.DataFrame(
        {
            "patient_id": np.arange(1, n_patients + 1),
            "source_id": [f"Patient {index}" for index in range(1, n_patients + 1)],
            "source_number": np.arange(1, n_patients + 1),
            "cohort": "cohort1",
            "hospital": np.where(rng.random(n_patients) < 0.6, "Union", "Liyuan"),
            "age": rng.integers(20, 90, n_patients).astype(float),
            "age_band": "40to60",
            "sex": rng.choice(["male", "female"], n_patients),
            "body_temperature": np.round(36.5 + 0.8 * severity + rng.normal(0, 0.3, n_patients), 1),
            "pcr_result": "positive",
            "ct_evidence": "positive",
            "morbidity_form": "regular",
            "morbidity_type": morbidity_type,
            "outcome": outcome,
            "underlying_diseases": [[] for _ in range(n_patients)],
            "has_underlying_disease": rng.random(n_patients) < 0.3,
            "n_measurements": 0,
        },
        columns=PATIENT_COLUMNS,
    )

    rows = []
    for index in range(n_patients):
        for abbreviation, (low, high, unit, shift) in SYNTHETIC_CFS.items():
            if rng.random() < 0.1:
                continue
            centre = ((low or 0.0) + (high or 0.0)) / 2
            width = (high or 1.0) - (low or 0.0)
            value = centre + shift * severity[index] + rng.normal(0, 0.25 * width)
            value = max(value, 0.01)
            rows.append(
                {
                    "patient_id": int(patients.at[index, "patient_id"]),
                    "abbreviation": abbreviation,
                    "panel": "Synthetic",
                    "value": round(value, 3),
                    "censoring": None,
                    "unit": unit,
                    "range_low": low,
                    "range_high": high,
                    "range_text": f"{low}-{high}" if low is not None else f"<{high}",
                    "flag_given": None,
                    "flag_computed": None,
                    "raw_value": f"{value:.3f}",
                }
            )
    measurements = pd.DataFrame.from_records(rows, columns=MEASUREMENT_COLUMNS)
    counts = measurements["patient_id"].value_counts()
    patients["n_measurements"] = patients["patient_id"].map(counts).fillna(0).astype(int)
    return patients, measurements


def measurement_row(
    patient_id: int,
    abbreviation: str,
    value: float,
    *,
    low: float | None,
    high: float | None,
    censoring: str | None = None,
    unit: str | None = "U/L",
) -> dict[str, object]:
    """Return one measurement row in ``load_measurements`` layout."""
    return {
        "patient_id": patient_id,
        "abbreviation": abbreviation,
        "panel": "Synthetic",
        "value": value,
        "censoring": censoring,
        "unit": unit,
        "range_low": low,
        "range_high": high,
        "range_text": None,
        "flag_given": None,
        "flag_computed": None,
        "raw_value": str(value),
    }
