"""Patients created from images alone use the morbidity form and type ``unknown``."""

from __future__ import annotations

from ictcf.db import open_database, session_scope
from ictcf.db.enums import (
    MORBIDITY_TYPE_OF_FORM,
    CTEvidence,
    MorbidityForm,
    MorbidityType,
    Outcome,
    PCRResult,
    Sex,
)
from ictcf.db.models import Patient
from ictcf.db.queries import load_patients


def test_unknown_form_maps_to_unknown_type() -> None:
    assert MORBIDITY_TYPE_OF_FORM[MorbidityForm.UNKNOWN] is MorbidityType.UNKNOWN
    assert set(MORBIDITY_TYPE_OF_FORM) == set(MorbidityForm)


def test_image_only_patient_loads(database_url: str) -> None:
    factory = open_database(database_url)
    with session_scope(factory) as session:
        session.add(
            Patient(
                source_id="series-1.2.3",
                cohort="imaging",
                sex=Sex.UNKNOWN,
                pcr_result=PCRResult.UNKNOWN,
                pcr_result_raw="",
                ct_evidence=CTEvidence.NOT_AVAILABLE,
                ct_evidence_raw="",
                morbidity_form=MorbidityForm.UNKNOWN,
                morbidity_form_raw="",
                morbidity_type=MorbidityType.UNKNOWN,
                outcome=Outcome.UNKNOWN,
                outcome_raw="",
                content_sha256="0" * 64,
            )
        )
    with factory() as session:
        patients = load_patients(session)
    assert patients["morbidity_form"].tolist() == ["unknown"]
    assert patients["morbidity_type"].tolist() == ["unknown"]
    assert patients["underlying_diseases"].tolist() == [[]]
    assert patients["n_measurements"].tolist() == [0]
