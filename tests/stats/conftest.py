"""Fixtures of the statistics tests: a small synthetic cohort in a database, and the real one.

The synthetic cohort is generated here with a seeded generator. Its CF ``SHIFT`` is higher in
COVID-19 patients by construction, ``FLAT`` has one value for everybody, ``RARE`` is measured
in two patients only and ``PCT`` contains censored values ``<0.05``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db.enums import (
    MORBIDITY_TYPE_OF_FORM,
    Censoring,
    CTEvidence,
    MorbidityForm,
    Outcome,
    PCRResult,
    Sex,
)
from ictcf.db.models import CFDefinition, Hospital, Measurement, Patient, UnderlyingDisease
from ictcf.db.session import open_database, session_scope

#: (morbidity form, outcome, number of patients) of the synthetic cohort.
SYNTHETIC_GROUPS: tuple[tuple[MorbidityForm, Outcome, int], ...] = (
    (MorbidityForm.CONTROL, Outcome.UNKNOWN, 20),
    (MorbidityForm.REGULAR, Outcome.CURED, 20),
    (MorbidityForm.SEVERE, Outcome.CURED, 8),
    (MorbidityForm.CRITICALLY_ILL, Outcome.DECEASED, 8),
    (MorbidityForm.SUSPECTED, Outcome.UNKNOWN, 4),
)


def insert_patient(
    session: Session,
    number: int,
    form: MorbidityForm,
    outcome: Outcome,
    *,
    age: float | None,
    temperature: float | None,
    sex: Sex = Sex.MALE,
    diseases: tuple[str, ...] = (),
    hospital: Hospital | None = None,
    cohort: str = "synthetic",
) -> Patient:
    """Insert one patient through the ORM and return it (flushed, with its key)."""
    patient = Patient(
        source_id=f"Patient {number}",
        source_number=number,
        cohort=cohort,
        hospital=hospital,
        age=age,
        age_band=None,
        sex=sex,
        body_temperature=temperature,
        pcr_result=PCRResult.UNKNOWN,
        pcr_result_raw="",
        ct_evidence=CTEvidence.NOT_AVAILABLE,
        ct_evidence_raw="",
        morbidity_form=form,
        morbidity_form_raw=form.value,
        morbidity_type=MORBIDITY_TYPE_OF_FORM[form],
        outcome=outcome,
        outcome_raw=outcome.value,
        content_sha256=hashlib.sha256(str(number).encode()).hexdigest(),
    )
    patient.diseases = [UnderlyingDisease(position=i, name=name) for i, name in enumerate(diseases)]
    session.add(patient)
    session.flush()
    return patient


def add_measurement(
    session: Session,
    patient: Patient,
    cf: CFDefinition,
    value: float,
    *,
    censoring: Censoring | None = None,
    unit: str | None = None,
) -> None:
    """Insert one measurement of ``cf`` for ``patient``."""
    prefix = censoring.value if censoring else ""
    session.add(
        Measurement(
            patient_id=patient.id,
            cf_id=cf.id,
            raw_entry=f"{cf.full_name}@{cf.abbreviation}@{prefix}{value}",
            raw_value=f"{prefix}{value}",
            value=value,
            censoring=censoring,
            unit=unit if unit is not None else cf.unit,
        )
    )


def fill_synthetic_cohort(factory: sessionmaker[Session], *, seed: int = 7) -> dict[str, Any]:
    """Insert the synthetic cohort described in the module docstring; return its facts."""
    rng = np.random.default_rng(seed)
    facts: dict[str, Any] = {"shift_by_type": {}, "n_censored_pct": 0}
    with session_scope(factory) as session:
        hospital = Hospital(name="Union")
        session.add(hospital)
        cfs = {
            abbreviation: CFDefinition(
                abbreviation=abbreviation, full_name=name, panel="Synthetic", unit=unit
            )
            for abbreviation, name, unit in (
                ("SHIFT", "Shifted marker", "g/L"),
                ("FLAT", "Constant marker", "g/L"),
                ("RARE", "Rare marker", "g/L"),
                ("PCT", "Procalcitonin", "ng/mL"),
                ("LY", "Lymphocyte count", "G/L"),
            )
        }
        session.add_all(cfs.values())
        session.flush()

        number = 0
        for form, outcome, count in SYNTHETIC_GROUPS:
            covid = MORBIDITY_TYPE_OF_FORM[form].value in ("type_i", "type_ii")
            for _ in range(count):
                number += 1
                diseases = ("Hypertension",) if rng.random() < 0.4 else ()
                patient = insert_patient(
                    session,
                    number,
                    form,
                    outcome,
                    age=float(rng.normal(60 if covid else 50, 8)),
                    temperature=float(rng.normal(37.9 if covid else 37.1, 0.3)),
                    sex=Sex.MALE if number % 2 else Sex.FEMALE,
                    diseases=diseases,
                    hospital=hospital,
                )
                add_measurement(
                    session, patient, cfs["SHIFT"], float(rng.normal(10 + 5 * covid, 1))
                )
                add_measurement(session, patient, cfs["FLAT"], 4.0)
                add_measurement(session, patient, cfs["LY"], float(rng.lognormal(0, 0.5)))
                if number <= 2:
                    add_measurement(session, patient, cfs["RARE"], float(number))
                if number % 3 == 0:
                    add_measurement(session, patient, cfs["PCT"], 0.05, censoring=Censoring.BELOW)
                    facts["n_censored_pct"] += 1
                else:
                    add_measurement(session, patient, cfs["PCT"], float(rng.uniform(0.06, 2.0)))
        facts["n_patients"] = number
    return facts


@pytest.fixture
def synthetic_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A database (SQLite, and PostgreSQL when configured) holding the synthetic cohort."""
    factory = open_database(database_url)
    fill_synthetic_cohort(factory)
    yield factory
    bind = factory.kw["bind"]
    bind.dispose()


@pytest.fixture
def synthetic_sqlite(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """The synthetic cohort in SQLite only, for tests that do not depend on the database."""
    factory = open_database(sqlite_url)
    fill_synthetic_cohort(factory)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture(scope="session")
def cohort1_database(cohort1_export: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite URL of a database holding the real cohort-1 export, imported once per session."""
    importer = pytest.importorskip("ictcf.ingest.importer")
    path = tmp_path_factory.mktemp("stats-cohort1") / "cohort1.sqlite3"
    url = f"sqlite:///{path}"
    factory = open_database(url)
    importer.import_ictcf_export(factory, cohort1_export)
    factory.kw["bind"].dispose()
    return url
