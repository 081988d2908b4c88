"""Link imported images to patients, and locate the slice store and the de-identification key."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db.enums import (
    MORBIDITY_TYPE_OF_FORM,
    CTEvidence,
    MorbidityForm,
    Outcome,
    PCRResult,
    Sex,
)
from ictcf.db.models import Patient
from ictcf.errors import ConflictError, DataNotFoundError, InputError
from ictcf.imaging.store import STORE_FOLDER_NAME, SliceStore
from ictcf.settings import default_home

logger = logging.getLogger(__name__)

#: Cohort name of patients created from images alone (no iCTCF clinical record).
IMAGE_ONLY_COHORT = "images"
#: File in the ictcf home folder holding the secret that keys UID replacement and date shifts.
SECRET_FILE_NAME = "deidentification.key"
#: Maximum length of the key of a new image-only patient (the ``source_id`` column width).
MAX_PATIENT_KEY_LENGTH = 64

_EXPORT_NUMBER = re.compile(r"^\s*(?:patient\s*)?(\d+)\s*$", re.IGNORECASE)
_INTERNAL_KEY = re.compile(r"^\s*id:(\d+)\s*$", re.IGNORECASE)


def parse_patient_key(key: str | int) -> tuple[str, int | str]:
    """Classify a patient key given on the command line.

    Parameters
    ----------
    key : str or int
        ``17`` or ``Patient 17`` (iCTCF export number), ``id:5`` (internal key), or any other
        text (the ``source_id`` of an image-only patient).

    Returns
    -------
    tuple
        ``("export_number", 17)``, ``("internal", 5)`` or ``("source_id", text)``.
    """
    if isinstance(key, int):
        return ("export_number", key)
    internal = _INTERNAL_KEY.match(key)
    if internal:
        return ("internal", int(internal.group(1)))
    number = _EXPORT_NUMBER.match(key)
    if number:
        return ("export_number", int(number.group(1)))
    text = key.strip()
    if not text:
        raise InputError("The patient key is empty. Pass an iCTCF number such as 17 or id:5.")
    return ("source_id", text)


def find_patient(session: Session, key: str | int) -> Patient | None:
    """Return the patient that ``key`` names, or None.

    Raises
    ------
    ConflictError
        If an export number matches patients of more than one cohort.
    """
    kind, value = parse_patient_key(key)
    if kind == "internal":
        return session.get(Patient, value)
    if kind == "export_number":
        matches = session.scalars(select(Patient).where(Patient.source_number == value)).all()
        if len(matches) > 1:
            cohorts = ", ".join(sorted(patient.cohort for patient in matches))
            raise ConflictError(
                f"Patient number {value} exists in several cohorts ({cohorts}). Use the internal "
                f"key instead, one of: {', '.join(f'id:{p.id}' for p in matches)}."
            )
        return matches[0] if matches else None
    return session.scalar(select(Patient).where(Patient.source_id == value))


def resolve_patient(
    session: Session,
    key: str | int,
    *,
    create: bool = False,
    create_option: str = "--create-patient",
) -> Patient:
    """Return the patient named by ``key``, creating an image-only patient if allowed.

    Parameters
    ----------
    session : Session
        Open session; a created patient is added and flushed, and the caller commits.
    key : str or int
        See :func:`parse_patient_key`.
    create : bool, default False
        Create a patient with ``source_id = key`` and unknown clinical fields when no patient
        matches. Numeric keys are reserved for iCTCF export numbers and never created.
    create_option : str, default "--create-patient"
        The command-line option that sets ``create``, named in the error when it is false.

    Raises
    ------
    DataNotFoundError
        If no patient matches and ``create`` is false, or the key is an export number or
        internal key that does not exist.
    """
    patient = find_patient(session, key)
    if patient is not None:
        return patient
    kind, value = parse_patient_key(key)
    if kind == "export_number":
        raise DataNotFoundError(
            f"No patient with iCTCF number {value} is in the database. Import the iCTCF export "
            "first (ictcf import ictcf-export), or give an internal key such as id:5."
        )
    if kind == "internal":
        raise DataNotFoundError(
            f"No patient with internal key id:{value} is in the database. The internal keys "
            "are the patient_id column of 'ictcf export cfs --layout wide -o patients.csv'; "
            "or link by iCTCF number (17 or 'Patient 17')."
        )
    if not create:
        raise DataNotFoundError(
            f"No patient with key {value!r} is in the database. Link to an existing patient "
            f"(iCTCF number such as 17, or id:5), or pass {create_option} to create an "
            "image-only patient with this key."
        )
    return create_image_only_patient(session, str(value))


def create_image_only_patient(session: Session, source_id: str) -> Patient:
    """Add a patient known only from images: clinical fields unknown, cohort ``images``.

    The key becomes the patient's ``source_id``; it should be a pseudonym, not a name.
    """
    if len(source_id) > MAX_PATIENT_KEY_LENGTH:
        raise InputError(
            f"Patient key of {len(source_id)} characters is too long for a new patient; use at "
            f"most {MAX_PATIENT_KEY_LENGTH} characters."
        )
    form = MorbidityForm.UNKNOWN
    patient = Patient(
        source_id=source_id,
        source_number=None,
        cohort=IMAGE_ONLY_COHORT,
        sex=Sex.UNKNOWN,
        pcr_result=PCRResult.UNKNOWN,
        pcr_result_raw="",
        # NOTE: CTEvidence has no "unknown" member; NOT_AVAILABLE here means that no CT reading
        # (positive or negative) is recorded, although images exist.
        ct_evidence=CTEvidence.NOT_AVAILABLE,
        ct_evidence_raw="",
        morbidity_form=form,
        morbidity_form_raw="",
        morbidity_type=MORBIDITY_TYPE_OF_FORM[form],
        outcome=Outcome.UNKNOWN,
        outcome_raw="",
        ct_preview_refs=[],
        content_sha256=hashlib.sha256(f"image-only:{source_id}".encode()).hexdigest(),
    )
    session.add(patient)
    session.flush()
    logger.info("patient %d created from images only (cohort %s)", patient.id, IMAGE_ONLY_COHORT)
    return patient


def patient_pseudonym(patient_id: int) -> str:
    """Return the value written into de-identified (0010,0010) PatientName and (0010,0020) PatientID."""
    return f"ICTCF-{patient_id}"


def default_store_root(database_url: str, home: Path | None = None) -> Path:
    """Return the default slice store folder for a database.

    For SQLite, the ``store`` folder beside the database file; for any other database (and an
    in-memory SQLite), ``store`` in the ictcf home folder.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().resolve().parent / STORE_FOLDER_NAME
    return (home or default_home()) / STORE_FOLDER_NAME


def store_for(factory: sessionmaker[Session], store: SliceStore | Path | str | None) -> SliceStore:
    """Return ``store`` as a :class:`SliceStore`, or the default store of the factory's database."""
    if isinstance(store, SliceStore):
        return store
    if store is not None:
        return SliceStore(Path(store))
    engine = factory.kw["bind"]
    return SliceStore(default_store_root(engine.url.render_as_string(hide_password=False)))


def load_deidentification_secret(home: Path | None = None) -> bytes:
    """Return the installation's de-identification secret, creating it on first use.

    The secret keys the replacement UIDs and the per-patient date shift, so re-importing the
    same files gives the same de-identified values. It lives in ``deidentification.key`` in the
    ictcf home folder (hexadecimal text, mode 0600). Anyone with the secret can link replaced
    UIDs back to originals they already know, so keep it out of shared folders and back it up.
    """
    from ictcf.imaging.deidentify import load_or_create_secret

    return load_or_create_secret((home or default_home()) / SECRET_FILE_NAME)
