"""Read the database into pandas frames for models, statistics and exports.

Both frames are keyed by the internal patient key ``patient_id``; ``source_id`` is the export's
own identifier (``Patient 17``) and is kept for output files that users join on.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from ictcf.db.models import CFDefinition, Hospital, Measurement, Patient, UnderlyingDisease

PATIENT_COLUMNS = [
    "patient_id",
    "source_id",
    "source_number",
    "cohort",
    "hospital",
    "age",
    "age_band",
    "sex",
    "body_temperature",
    "pcr_result",
    "ct_evidence",
    "morbidity_form",
    "morbidity_type",
    "outcome",
    "underlying_diseases",
    "has_underlying_disease",
    "n_measurements",
]

MEASUREMENT_COLUMNS = [
    "patient_id",
    "abbreviation",
    "panel",
    "value",
    "censoring",
    "unit",
    "range_low",
    "range_high",
    "range_text",
    "flag_given",
    "flag_computed",
    "raw_value",
]


def load_patients(session: Session, *, cohort: str | None = None) -> pd.DataFrame:
    """Load one row per patient.

    Parameters
    ----------
    session : Session
        Open database session.
    cohort : str, optional
        Keep only this cohort.

    Returns
    -------
    DataFrame
        Columns ``PATIENT_COLUMNS``; enumerations as their string values, ``underlying_diseases``
        as a list of names (empty where the export says "No"), ordered by ``patient_id``.
    """
    query = (
        select(Patient, Hospital.name)
        .outerjoin(Hospital, Patient.hospital_id == Hospital.id)
        .order_by(Patient.id)
    )
    if cohort is not None:
        query = query.where(Patient.cohort == cohort)
    rows = session.execute(query).all()

    diseases: dict[int, list[str]] = {}
    for patient_id, name in session.execute(
        select(UnderlyingDisease.patient_id, UnderlyingDisease.name).order_by(
            UnderlyingDisease.patient_id, UnderlyingDisease.position
        )
    ):
        diseases.setdefault(patient_id, []).append(name)

    counts: dict[int, int] = {}
    for (patient_id,) in session.execute(select(Measurement.patient_id)):
        counts[patient_id] = counts.get(patient_id, 0) + 1

    records = []
    for patient, hospital_name in rows:
        names = diseases.get(patient.id, [])
        records.append(
            {
                "patient_id": patient.id,
                "source_id": patient.source_id,
                "source_number": patient.source_number,
                "cohort": patient.cohort,
                "hospital": hospital_name,
                "age": patient.age,
                "age_band": patient.age_band,
                "sex": patient.sex.value,
                "body_temperature": patient.body_temperature,
                "pcr_result": patient.pcr_result.value,
                "ct_evidence": patient.ct_evidence.value,
                "morbidity_form": patient.morbidity_form.value,
                "morbidity_type": patient.morbidity_type.value,
                "outcome": patient.outcome.value,
                "underlying_diseases": names,
                "has_underlying_disease": bool(names),
                "n_measurements": counts.get(patient.id, 0),
            }
        )
    return pd.DataFrame.from_records(records, columns=PATIENT_COLUMNS)


def load_measurements(session: Session, *, patient_ids: list[int] | None = None) -> pd.DataFrame:
    """Load the CF measurements in long layout, one row per (patient, CF).

    Returns
    -------
    DataFrame
        Columns ``MEASUREMENT_COLUMNS``. ``value`` is the numeric value in ``unit``; for a
        censored value (``censoring`` ``<`` or ``>``) it is the reported limit.
    """
    # Plain columns, not ORM entities: loading 60,000 Measurement objects takes seconds.
    query = (
        select(
            Measurement.patient_id,
            CFDefinition.abbreviation,
            CFDefinition.panel,
            Measurement.value,
            Measurement.censoring,
            Measurement.unit,
            Measurement.range_low,
            Measurement.range_high,
            Measurement.range_text,
            Measurement.flag_given,
            Measurement.flag_computed,
            Measurement.raw_value,
        )
        .join(CFDefinition, Measurement.cf_id == CFDefinition.id)
        .order_by(Measurement.patient_id, CFDefinition.abbreviation)
    )
    if patient_ids is not None:
        query = query.where(Measurement.patient_id.in_(patient_ids))
    records = [
        (
            patient_id,
            abbreviation,
            panel,
            value,
            censoring.value if censoring is not None else None,
            unit,
            range_low,
            range_high,
            range_text,
            flag_given.value if flag_given is not None else None,
            flag_computed.value if flag_computed is not None else None,
            raw_value,
        )
        for (
            patient_id,
            abbreviation,
            panel,
            value,
            censoring,
            unit,
            range_low,
            range_high,
            range_text,
            flag_given,
            flag_computed,
            raw_value,
        ) in session.execute(query)
    ]
    return pd.DataFrame.from_records(records, columns=MEASUREMENT_COLUMNS)


def load_cf_catalogue(session: Session) -> pd.DataFrame:
    """Load the CF catalogue: abbreviation, full name, panel, unit and normal range."""
    rows = session.execute(select(CFDefinition).order_by(CFDefinition.panel, CFDefinition.id))
    return pd.DataFrame.from_records(
        [
            {
                "abbreviation": cf.abbreviation,
                "full_name": cf.full_name,
                "panel": cf.panel,
                "unit": cf.unit,
                "range_text": cf.range_text,
                "range_low": cf.range_low,
                "range_high": cf.range_high,
            }
            for (cf,) in rows
        ],
        columns=[
            "abbreviation",
            "full_name",
            "panel",
            "unit",
            "range_text",
            "range_low",
            "range_high",
        ],
    )
