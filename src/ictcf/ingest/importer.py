"""Import the iCTCF patient export into the database, in one transaction.

Rules the importer enforces:

* Idempotence. Each patient's content is identified by the SHA-256 of its repaired line. A
  patient already stored with the same hash is counted as unchanged; importing the same file
  again adds nothing, not even an :class:`~ictcf.db.models.ImportRun`.
* Conflicts. A patient stored with a different hash, or in a different cohort, raises
  :class:`~ictcf.errors.ConflictError` naming the line and source id; nothing is written.
* Atomicity. Everything is written in one transaction that commits completely or not at all.
* Malformed lines stop the import with the line number and reason, or with
  ``skip_invalid=True`` are listed in the report and skipped.
* Units. Every CF is stored in its catalogue unit (see :mod:`ictcf.ingest.units` and
  :mod:`ictcf.ingest.catalogue`); a value whose unit cannot be converted makes its line invalid.
* Catalogue. A CF's catalogue entry is created by the first import that contains it. It takes
  the full name and panel of the CF's first entry and its catalogue unit. Its range is the
  normal range given most often among that import's values (ties go to the range seen first).
  Later imports never change an existing entry. An abbreviation not in
  :data:`~ictcf.ingest.catalogue.KNOWN_CF_UNITS` is added with a warning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from ictcf import __version__
from ictcf.db.enums import Censoring, Flag
from ictcf.db.models import (
    Base,
    CFDefinition,
    Hospital,
    ImportRun,
    Measurement,
    Patient,
    UnderlyingDisease,
)
from ictcf.db.session import session_scope
from ictcf.errors import ConflictError, InputError
from ictcf.ingest.catalogue import KNOWN_CF_UNITS
from ictcf.ingest.ictcf_export import CFEntry, ExportRecord, decode_export, parse_export_line
from ictcf.ingest.units import (
    CF_UNIT_CORRECTIONS,
    SEPARATE_QUANTITY,
    UNIT_SCALE,
    conversion_factor,
)
from ictcf.progress import progress_bar

logger = logging.getLogger(__name__)

#: ``ImportRun.kind`` of imports of the iCTCF patient export.
IMPORT_KIND = "ictcf-export"

#: Default cohorts by patient number, as split by Ning et al. (Nat. Biomed. Eng. 2020):
#: patients 1-1170 are the training cohort, 1171-1521 the independent validation cohort.
DEFAULT_COHORTS: tuple[tuple[int, int, str], ...] = (
    (1, 1170, "cohort1"),
    (1171, 1521, "cohort2"),
)

#: Significant digits kept after a unit conversion, so 180 mg/L becomes 0.18 g/L exactly.
CONVERTED_SIGNIFICANT_DIGITS = 12

#: Rows per IN (...) query when looking up stored patients (below every backend's limit).
LOOKUP_CHUNK_SIZE = 500


@dataclass(frozen=True)
class SkippedLine:
    """A line left out of an import with ``skip_invalid=True``."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """Summary of one import: counts, skipped lines, warnings and provenance.

    Attributes
    ----------
    file_name : str
        Name of the imported file (without its folder).
    sha256 : str
        SHA-256 of the file's bytes.
    cohort : str or None
        The cohort given by the caller; None when the default split by patient number was used.
    lines_read : int
        Non-blank lines in the file.
    patients_added, patients_unchanged : int
        New patients written, and patients already stored with identical content.
    measurements_added : int
        CF values written for the new patients.
    missing_values : int
        CF entries of new patients whose value is a missing-value marker (not stored).
    cf_definitions_added : list of str
        Abbreviations added to the CF catalogue.
    converted_values : dict of str to int
        Number of values converted to the catalogue unit, keyed by ``ABBR: from -> to``.
    flag_disagreements : int
        Values whose arrow in the export contradicts the flag computed from their range.
    skipped : list of SkippedLine
        Invalid lines left out (only with ``skip_invalid``).
    warnings : list of str
        Anomalies the data survived, each with its line number where it has one.
    import_run_id : int or None
        Key of the :class:`~ictcf.db.models.ImportRun` row; None when nothing changed.
    elapsed_s : float
        Wall-clock time of the import in seconds.
    """

    file_name: str
    sha256: str
    cohort: str | None
    lines_read: int = 0
    patients_added: int = 0
    patients_unchanged: int = 0
    measurements_added: int = 0
    missing_values: int = 0
    cf_definitions_added: list[str] = field(default_factory=list)
    converted_values: dict[str, int] = field(default_factory=dict)
    flag_disagreements: int = 0
    skipped: list[SkippedLine] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    import_run_id: int | None = None
    elapsed_s: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether the import wrote anything."""
        return self.import_run_id is not None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serialisable data, with ``changed`` added."""
        return {**asdict(self), "changed": self.changed}


@dataclass(frozen=True)
class _Value:
    """A CF value converted to its catalogue entry and unit."""

    abbreviation: str
    entry: CFEntry
    value: float
    unit: str | None
    range_text: str | None
    range_low: float | None
    range_high: float | None
    flag_computed: Flag | None


def _table(model: type[Base]) -> Table:
    """Return a model's Core table: Core inserts run as one executemany, without ORM overhead."""
    return Base.metadata.tables[model.__tablename__]


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """Return ``"1 line"`` or ``"2 lines"``: the count with the noun in the right number."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"


def default_cohort(source_number: int) -> str | None:
    """Return the paper's cohort of patient number ``source_number``, or None outside it."""
    for first, last, name in DEFAULT_COHORTS:
        if first <= source_number <= last:
            return name
    return None


def compute_flag(
    value: float,
    censoring: Censoring | None,
    low: float | None,
    high: float | None,
) -> Flag | None:
    """Flag a value against its normal range; limits count as normal.

    A censored value is an interval: ``<L`` for values below ``L``, ``>L`` for values
    above it, with no other bound (values are not assumed to be positive). It is flagged
    whenever every value of that interval gets the same flag, and None only when the flag is
    uncertain:

    * ``<L``: LOW when ``L`` is at or below the lower limit; NORMAL when the range has no
      lower limit and ``L`` is at or below the upper limit (``<0.13`` against ``<0.5``);
      None otherwise.
    * ``>L``: HIGH when ``L`` is at or above the upper limit; NORMAL when the range has no
      upper limit and ``L`` is at or above the lower limit; None otherwise.

    Parameters
    ----------
    value : float
        The value, or the limit of a censored value, in the unit of the range.
    censoring : Censoring or None
        BELOW for ``<``, ABOVE for ``>``, None for an exact value.
    low, high : float or None
        Limits of the normal range; None where the range has no such limit.

    Returns
    -------
    Flag or None
        None also when there is no range.
    """
    if low is None and high is None:
        return None
    if censoring is Censoring.BELOW:
        if low is not None and value <= low:
            return Flag.LOW
        if low is None and high is not None and value <= high:
            return Flag.NORMAL
        return None
    if censoring is Censoring.ABOVE:
        if high is not None and value >= high:
            return Flag.HIGH
        if high is None and low is not None and value >= low:
            return Flag.NORMAL
        return None
    if low is not None and value < low:
        return Flag.LOW
    if high is not None and value > high:
        return Flag.HIGH
    return Flag.NORMAL


def _round(value: float) -> float:
    return float(f"{value:.{CONVERTED_SIGNIFICANT_DIGITS}g}")


def _convert_range_text(entry: CFEntry, factor: float) -> str | None:
    if entry.range_text is None or factor == 1.0:
        return entry.range_text
    if entry.range_low is not None and entry.range_high is not None:
        return f"{_round(entry.range_low * factor):g}-{_round(entry.range_high * factor):g}"
    if entry.range_high is not None:
        return f"<{_round(entry.range_high * factor):g}"
    if entry.range_low is not None:
        return f">{_round(entry.range_low * factor):g}"
    return entry.range_text


def _catalogue_abbreviation(entry: CFEntry) -> tuple[str, str | None, str]:
    """Return (abbreviation, unit, full name) after unit corrections and quantity splits."""
    unit = entry.unit
    if unit is not None:
        unit = CF_UNIT_CORRECTIONS.get((entry.abbreviation, unit), unit)
        separate = SEPARATE_QUANTITY.get((entry.abbreviation, unit))
        if separate is not None:
            return separate[0], unit, separate[1]
    return entry.abbreviation, unit, entry.full_name


class _Catalogue:
    """Catalogue units: stored entries first, then the reference list, then this import."""

    def __init__(self, stored: dict[str, CFDefinition], records: Sequence[ExportRecord]):
        self.stored = stored
        self.units: dict[str, str | None] = {
            abbreviation: definition.unit for abbreviation, definition in stored.items()
        }
        seen_units: dict[str, Counter[str | None]] = {}
        for record in records:
            for entry in record.entries:
                abbreviation, unit, _ = _catalogue_abbreviation(entry)
                seen_units.setdefault(abbreviation, Counter())[unit] += 1
        for abbreviation, counts in seen_units.items():
            if abbreviation in self.units:
                continue
            if abbreviation in KNOWN_CF_UNITS:
                self.units[abbreviation] = KNOWN_CF_UNITS[abbreviation]
            else:
                # most_common keeps first-seen order among ties.
                self.units[abbreviation] = counts.most_common(1)[0][0]

    def convert(self, entry: CFEntry) -> _Value | None:
        """Convert one entry; None for a missing value. ValueError if the unit is foreign."""
        if entry.value is None:
            return None
        abbreviation, unit, _ = _catalogue_abbreviation(entry)
        target = self.units[abbreviation]
        factor = conversion_factor(unit, target)
        if factor is None:
            raise ValueError(_unit_message(entry.abbreviation, unit, target))

        value, low, high = entry.value, entry.range_low, entry.range_high
        if factor != 1.0:
            value = _round(value * factor)
            low = None if low is None else _round(low * factor)
            high = None if high is None else _round(high * factor)
        return _Value(
            abbreviation=abbreviation,
            entry=entry,
            value=value,
            unit=target,
            range_text=_convert_range_text(entry, factor),
            range_low=low,
            range_high=high,
            flag_computed=compute_flag(value, entry.censoring, low, high),
        )


def _unit_message(abbreviation: str, unit: str | None, target: str | None) -> str:
    """Build the error message for a value whose unit cannot be converted to the catalogue unit."""
    given = "has no unit after its normal range" if unit is None else f"is in unit {unit!r}"
    if target is None:
        expected = "its values elsewhere in the data have no unit"
        supported = "none (a dimensionless value)"
    else:
        expected = f"its catalogue unit is {target!r}"
        dimension = UNIT_SCALE.get(target, (None, 0.0))[0]
        units = sorted(
            name for name, (other, _) in UNIT_SCALE.items() if dimension and other == dimension
        )
        supported = ", ".join(units) if units else repr(target)
    return (
        f"CF {abbreviation!r} {given}, but {expected}, and the value cannot be converted. "
        f"Units accepted for this CF: {supported}. Correct the unit in the file, or import "
        "with --skip-invalid to leave this line out; if the unit is right, please report it "
        "to the ictcf developers"
    )


def _hash_file(path: Path) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise InputError(
            "file not found. Check the path, or run `ictcf data fetch` to download the export.",
            path=path,
        ) from err
    except IsADirectoryError as err:
        raise InputError("is a folder, not an export file.", path=path) from err
    except OSError as err:
        raise InputError(
            f"cannot read the file: {err.strerror or err}. Check its permissions "
            "(`ls -l`) and that the disk or network share is available.",
            path=path,
        ) from err
    return data, hashlib.sha256(data).hexdigest()


def _stored_patients(session: Session, source_ids: list[str]) -> dict[str, tuple[str, str]]:
    stored: dict[str, tuple[str, str]] = {}
    for start in range(0, len(source_ids), LOOKUP_CHUNK_SIZE):
        chunk = source_ids[start : start + LOOKUP_CHUNK_SIZE]
        query = select(Patient.source_id, Patient.content_sha256, Patient.cohort).where(
            Patient.source_id.in_(chunk)
        )
        for source_id, content_sha256, cohort in session.execute(query):
            stored[source_id] = (content_sha256, cohort)
    return stored


def import_ictcf_export(
    factory: sessionmaker[Session],
    path: Path | str,
    *,
    cohort: str | None = None,
    skip_invalid: bool = False,
    progress: bool = False,
) -> ImportReport:
    """Import an iCTCF patient export file into the database.

    Parameters
    ----------
    factory : sessionmaker
        Session factory of an open database (see :func:`ictcf.db.open_database`).
    path : Path or str
        The export file: one patient per line, UTF-8 (see :mod:`ictcf.ingest.ictcf_export`).
    cohort : str, optional
        Cohort of every imported patient. Default: the paper's split by patient number,
        ``cohort1`` for patients 1-1170 and ``cohort2`` for 1171-1521.
    skip_invalid : bool, default False
        Record malformed lines in the report and import the rest, instead of stopping.
    progress : bool, default False
        Show a progress bar over the lines on stderr.

    Returns
    -------
    ImportReport
        Counts, skipped lines, warnings and the ``ImportRun`` key (None when nothing changed).

    Raises
    ------
    InputError
        If the file is missing, not UTF-8, empty, or (without ``skip_invalid``) has a
        malformed line, a patient listed twice, a value whose unit cannot be converted, or
        a patient number outside the default cohorts while ``cohort`` is not given.
    ConflictError
        If a patient is already stored with different content or in a different cohort.
        The database is unchanged after every error.
    """
    started = time.perf_counter()
    path = Path(path)
    data, sha256 = _hash_file(path)
    report = ImportReport(file_name=path.name, sha256=sha256, cohort=cohort)
    lines = decode_export(data, path=path)
    report.lines_read = len(lines)
    logger.info("importing %s, SHA-256 %s", plural(len(lines), "line"), sha256)

    def reject(error: InputError) -> None:
        if not skip_invalid:
            raise error
        report.skipped.append(SkippedLine(line=error.line or 0, reason=error.reason))
        logger.warning("skipped line %s: %s", error.line, error.reason)

    records: list[ExportRecord] = []
    first_line_of: dict[str, int] = {}
    for line_number, text in progress_bar(
        lines, enabled=progress, description="Reading export", total=len(lines), unit="line"
    ):
        try:
            record = parse_export_line(text, line_number=line_number, path=path)
        except InputError as err:
            reject(err)
            continue
        if record.source_id in first_line_of:
            reject(
                InputError(
                    f"{record.source_id} is listed twice (first on line "
                    f"{first_line_of[record.source_id]}). Remove one of the two lines.",
                    path=path,
                    line=line_number,
                )
            )
            continue
        record_cohort = cohort or default_cohort(record.source_number)
        if record_cohort is None:
            reject(
                InputError(
                    f"{record.source_id} is outside the default cohorts (patients 1-1521). "
                    "Give the cohort explicitly with --cohort NAME.",
                    path=path,
                    line=line_number,
                )
            )
            continue
        first_line_of[record.source_id] = line_number
        records.append(record)

    with session_scope(factory) as session:
        _write(session, path, records, report, cohort, reject, started)
    report.elapsed_s = round(time.perf_counter() - started, 3)
    if report.changed:
        logger.info(
            "import run %s: %s added, %d unchanged, %s",
            report.import_run_id,
            plural(report.patients_added, "patient"),
            report.patients_unchanged,
            plural(report.measurements_added, "CF value"),
        )
    else:
        logger.info(
            "nothing changed: %s already stored, %s skipped",
            plural(report.patients_unchanged, "patient"),
            plural(len(report.skipped), "line"),
        )
    return report


def _write(
    session: Session,
    path: Path,
    records: list[ExportRecord],
    report: ImportReport,
    cohort: str | None,
    reject: Callable[[InputError], None],
    started: float,
) -> None:
    """Compare with the database, then write the new patients; runs inside one transaction."""
    stored = _stored_patients(session, [record.source_id for record in records])
    new_records: list[ExportRecord] = []
    for record in records:
        record_cohort = cohort or default_cohort(record.source_number)
        if record.source_id not in stored:
            new_records.append(record)
            continue
        stored_hash, stored_cohort = stored[record.source_id]
        if stored_hash != record.content_sha256:
            raise ConflictError(
                f"{path.name}, line {record.line_number}: {record.source_id} is already stored "
                "with different content. Nothing was imported. If this file is the corrected "
                "export, import it into a new database (--database-url "
                "sqlite:///NEW.sqlite3), or delete the database file (or drop the PostgreSQL "
                "database) and import again."
            )
        if stored_cohort != record_cohort:
            raise ConflictError(
                f"{path.name}, line {record.line_number}: {record.source_id} is already stored "
                f"in cohort {stored_cohort!r}, not {record_cohort!r}. Nothing was imported. "
                f"Re-run with --cohort {stored_cohort}, or import into another database."
            )
        report.patients_unchanged += 1

    definitions = {
        definition.abbreviation: definition
        for (definition,) in session.execute(select(CFDefinition))
    }
    catalogue = _Catalogue(definitions, new_records)
    values_of: dict[str, list[_Value]] = {}
    accepted: list[ExportRecord] = []
    for record in new_records:
        try:
            converted = [catalogue.convert(entry) for entry in record.entries]
        except ValueError as err:
            reject(InputError(f"{err}.", path=path, line=record.line_number))
            continue
        values_of[record.source_id] = [value for value in converted if value is not None]
        report.missing_values += sum(value is None for value in converted)
        accepted.append(record)
        report.warnings.extend(f"line {record.line_number}: {text}" for text in record.warnings)

    if not accepted:
        return

    run = ImportRun(
        kind=IMPORT_KIND,
        file_name=path.name,
        sha256=report.sha256,
        imported_at=dt.datetime.now(dt.UTC),
        importer_version=__version__,
        cohort=cohort,
        report={},
    )
    session.add(run)
    session.flush()
    report.import_run_id = run.id

    cf_ids = _add_catalogue_entries(session, definitions, accepted, values_of, report)
    hospital_ids = _hospital_ids(session, {record.hospital for record in accepted})
    patient_ids = _insert_patients(session, accepted, run.id, cohort, hospital_ids)
    report.patients_added = len(accepted)

    disease_rows = [
        {"patient_id": patient_ids[record.source_id], "position": position, "name": name}
        for record in accepted
        for position, name in enumerate(record.diseases)
    ]
    if disease_rows:
        session.execute(insert(_table(UnderlyingDisease)), disease_rows)

    measurement_rows = []
    for record in accepted:
        for value in values_of[record.source_id]:
            entry = value.entry
            if value.value < 0:
                report.warnings.append(
                    f"line {record.line_number}: CF {entry.abbreviation!r} has the negative "
                    f"value {entry.raw_value!r}; stored as given"
                )
            if (
                entry.flag_given is not None
                and value.flag_computed is not None
                and entry.flag_given != value.flag_computed
            ):
                report.flag_disagreements += 1
            measurement_rows.append(
                {
                    "patient_id": patient_ids[record.source_id],
                    "cf_id": cf_ids[value.abbreviation],
                    "raw_entry": entry.raw_entry,
                    "raw_value": entry.raw_value,
                    "value": value.value,
                    "censoring": entry.censoring,
                    "unit": value.unit,
                    "range_text": value.range_text,
                    "range_low": value.range_low,
                    "range_high": value.range_high,
                    "flag_given": entry.flag_given,
                    "flag_computed": value.flag_computed,
                }
            )
            if value.unit != entry.unit:
                key = f"{value.abbreviation}: {entry.unit} -> {value.unit}"
                report.converted_values[key] = report.converted_values.get(key, 0) + 1
    if measurement_rows:
        session.execute(insert(_table(Measurement)), measurement_rows)
    report.measurements_added = len(measurement_rows)

    report.elapsed_s = round(time.perf_counter() - started, 3)
    run.report = report.to_dict()
    session.flush()


def _add_catalogue_entries(
    session: Session,
    definitions: dict[str, CFDefinition],
    records: list[ExportRecord],
    values_of: dict[str, list[_Value]],
    report: ImportReport,
) -> dict[str, int]:
    """Insert catalogue entries for CFs not yet stored; return the key of every CF."""
    first_entry: dict[str, _Value] = {}
    range_counts: dict[str, Counter[tuple[str | None, float | None, float | None]]] = {}
    for record in records:
        for value in values_of[record.source_id]:
            if value.abbreviation in definitions:
                continue
            first_entry.setdefault(value.abbreviation, value)
            range_counts.setdefault(value.abbreviation, Counter())[
                (value.range_text, value.range_low, value.range_high)
            ] += 1
    new_rows = []
    for abbreviation, value in first_entry.items():
        range_text, range_low, range_high = range_counts[abbreviation].most_common(1)[0][0]
        _, _, full_name = _catalogue_abbreviation(value.entry)
        new_rows.append(
            {
                "abbreviation": abbreviation,
                "full_name": full_name,
                "panel": value.entry.panel,
                "unit": value.unit,
                "range_text": range_text,
                "range_low": range_low,
                "range_high": range_high,
            }
        )
        if abbreviation not in KNOWN_CF_UNITS:
            report.warnings.append(
                f"unknown CF {abbreviation!r} ({full_name}, panel {value.entry.panel!r}) added "
                f"to the catalogue with unit {value.unit or '(none)'!r}"
            )
            logger.warning("unknown CF %r added to the catalogue", abbreviation)
    if new_rows:
        session.execute(insert(_table(CFDefinition)), new_rows)
        report.cf_definitions_added = [str(row["abbreviation"]) for row in new_rows]
    return {
        abbreviation: cf_id
        for abbreviation, cf_id in session.execute(
            select(CFDefinition.abbreviation, CFDefinition.id)
        )
    }


def _hospital_ids(session: Session, names: set[str]) -> dict[str, int]:
    existing = {
        name: hospital_id
        for hospital_id, name in session.execute(select(Hospital.id, Hospital.name))
    }
    missing = sorted(names - existing.keys())
    if missing:
        session.execute(insert(Hospital), [{"name": name} for name in missing])
        existing = {
            name: hospital_id
            for hospital_id, name in session.execute(select(Hospital.id, Hospital.name))
        }
    return existing


def _insert_patients(
    session: Session,
    records: list[ExportRecord],
    run_id: int,
    cohort: str | None,
    hospital_ids: dict[str, int],
) -> dict[str, int]:
    rows = [
        {
            "source_id": record.source_id,
            "source_number": record.source_number,
            "cohort": cohort or default_cohort(record.source_number),
            "hospital_id": hospital_ids[record.hospital],
            "import_run_id": run_id,
            "age": record.age,
            "age_band": record.age_band,
            "sex": record.sex,
            "body_temperature": record.body_temperature,
            "pcr_result": record.pcr_result,
            "pcr_result_raw": record.pcr_result_raw,
            "ct_evidence": record.ct_evidence,
            "ct_evidence_raw": record.ct_evidence_raw,
            "morbidity_form": record.morbidity_form,
            "morbidity_form_raw": record.morbidity_form_raw,
            "morbidity_type": record.morbidity_type,
            "outcome": record.outcome,
            "outcome_raw": record.outcome_raw,
            "ct_series_ref": record.ct_series_ref,
            "ct_preview_refs": list(record.ct_preview_refs),
            "content_sha256": record.content_sha256,
        }
        for record in records
    ]
    session.execute(insert(_table(Patient)), rows)
    return {
        source_id: patient_id
        for patient_id, source_id in session.execute(
            select(Patient.id, Patient.source_id).where(Patient.import_run_id == run_id)
        )
    }


__all__ = [
    "DEFAULT_COHORTS",
    "IMPORT_KIND",
    "ImportReport",
    "SkippedLine",
    "compute_flag",
    "default_cohort",
    "import_ictcf_export",
]
