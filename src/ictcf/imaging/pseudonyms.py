"""The per-installation de-identification secret and keyed patient lookup keys.

The store keeps one secret per installation (``load_or_create_secret``). It keys the UID
hash and the date shift of ``deidentify.Deidentifier`` and the patient lookup key below, which
lets the store recognise a returning patient without storing a name or an ID.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
import unicodedata
from pathlib import Path
from typing import Final

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from ictcf.errors import InputError
from ictcf.imaging._element_values import element_value

logger = logging.getLogger(__name__)

# Length of the per-installation secret in bytes (256 bits for HMAC-SHA-256).
SECRET_LENGTH_BYTES: Final = 32
_PATIENT_NAME_TAG: Final = 0x00100010
_PATIENT_ID_TAG: Final = 0x00100020


def load_or_create_secret(path: Path) -> bytes:
    """Read the per-installation de-identification secret, creating it on first use.

    The secret keys the UID hash, the date shift and the patient lookup key, so it must stay
    the same for the life of an installation. A new secret gives every re-imported image new
    UIDs and every patient a new lookup key.

    Parameters
    ----------
    path : Path
        File that holds the secret as hexadecimal text. Created with mode 0600 (and its
        folder with mode 0700) when missing.

    Returns
    -------
    bytes
        The secret, ``SECRET_LENGTH_BYTES`` long or longer.

    Raises
    ------
    InputError
        If the file exists but does not hold a hexadecimal secret of at least
        ``SECRET_LENGTH_BYTES`` bytes.
    """
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    new_secret = secrets.token_bytes(SECRET_LENGTH_BYTES)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(new_secret.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        # A partly written secret would be rejected on the next start, so leave no file instead.
        path.unlink(missing_ok=True)
        raise
    logger.info("created a new de-identification secret at %s", path)
    return new_secret


def _read_secret(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "de-identification secret %s is accessible to other users (mode %o); "
            "restrict it with 'chmod 600 %s'",
            path,
            stat.S_IMODE(mode),
            path,
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError as err:
        raise InputError(
            "the de-identification secret is not hexadecimal text; restore it from a backup, "
            "because a new secret changes every pseudonymised UID and patient key",
            path=path,
        ) from err
    if len(secret) < SECRET_LENGTH_BYTES:
        raise InputError(
            f"the de-identification secret is {len(secret)} bytes long, shorter than the "
            f"{SECRET_LENGTH_BYTES} bytes required; restore it from a backup",
            path=path,
        )
    return secret


def normalise_person_name(value: object) -> str:
    """Normalise a DICOM person name so that equivalent spellings compare equal.

    Applies Unicode NFKC, upper case, collapses white space inside each component, strips
    each component and drops trailing empty components and component groups, so
    ``"DOE^JOHN^Q"``, ``"DOE^JOHN^Q^"`` and ``" doe ^ john ^q "`` all give ``"DOE^JOHN^Q"``.
    Multiple values (VM > 1) are normalised one by one and joined with a backslash.

    Parameters
    ----------
    value : str, pydicom PersonName, sequence of those, or None
        The PN value as pydicom returns it.

    Returns
    -------
    str
        The normalised name; an empty string for an empty or missing name.
    """
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(normalise_person_name(item) for item in value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = unicodedata.normalize("NFKC", str(value)).strip(" \x00")
    groups = []
    for group in text.split("="):
        components = [" ".join(component.split()).upper() for component in group.split("^")]
        while components and not components[-1]:
            components.pop()
        groups.append("^".join(components))
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def patient_lookup_key(dataset: Dataset, *, secret: bytes) -> str | None:
    """Derive a stable, keyed lookup key for the patient of an original (not yet
    de-identified) dataset.

    The key is HMAC-SHA-256 over the PatientID (white space stripped) and the normalised
    PatientName (``normalise_person_name``), so the store can recognise the same patient in
    a later upload without storing either value. Without the secret the key cannot be
    recomputed from a guessed name.

    Parameters
    ----------
    dataset : pydicom.Dataset
        The header before de-identification.
    secret : bytes
        The per-installation secret (``load_or_create_secret``).

    Returns
    -------
    str or None
        64 hexadecimal characters, or None when both PatientID and PatientName are empty
        (such images cannot be matched to a patient by header).
    """
    patient_id = element_value(dataset, _PATIENT_ID_TAG)
    patient_name = element_value(dataset, _PATIENT_NAME_TAG)
    id_text = "" if patient_id is None else str(patient_id).strip(" \x00")
    name_text = normalise_person_name(patient_name)
    if not id_text and not name_text:
        return None
    message = f"patient-lookup-key\x00{id_text}\x00{name_text}".encode("utf-8", "surrogatepass")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
