"""Export the clinical features (CFs) of the database to CSV or Parquet.

Two layouts:

* ``long``: one row per measurement, with the patient fields needed to join
  (:data:`LONG_PATIENT_COLUMNS`) and every measurement column (value, censoring, unit, range,
  flags, raw value).
* ``wide``: one row per patient with the patient fields (:data:`WIDE_PATIENT_COLUMNS`), then
  one column per CF named ``cf_<ABBR>`` (``cf_LY``, ``cf_CD4/CD8``) holding the value in the
  catalogue unit. A CF with at least one censored value also gets ``cf_<ABBR>_censoring``
  (``<``, ``>`` or empty), so a censored limit is never read as an exact value. CF columns
  follow the catalogue order: panels alphabetically, then CFs in the order they were added to
  the catalogue. Empty cells are missing values.

In CSV files list fields (underlying diseases) are joined with ``"; "``.

The format comes from ``file_format`` or, when it is not given, from the suffix of the output
file (``.csv`` or ``.parquet``). A format that contradicts a ``.csv`` or ``.parquet`` suffix is
an error; other suffixes are accepted with an explicit format. An existing output file is
replaced. Written files get the permissions of a file created by ``open()``: 0666 minus the
umask.
"""

from __future__ import annotations

import logging
import os
import tempfile
from enum import StrEnum
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db.models import Patient
from ictcf.db.queries import PATIENT_COLUMNS, load_cf_catalogue, load_measurements, load_patients
from ictcf.errors import DataNotFoundError, InputError
from ictcf.ingest.files import apply_default_mode

logger = logging.getLogger(__name__)


class ExportFormat(StrEnum):
    """File format of a CF export."""

    CSV = "csv"
    PARQUET = "parquet"


class ExportLayout(StrEnum):
    """Table layout of a CF export (see the module documentation)."""

    LONG = "long"
    WIDE = "wide"


#: Prefix of the CF value columns of the wide layout.
CF_COLUMN_PREFIX = "cf_"
#: Suffix of the censoring columns of the wide layout.
CENSORING_SUFFIX = "_censoring"
#: Separator of list values (underlying diseases) in CSV files.
LIST_SEPARATOR = "; "

#: Patient fields repeated on every row of the long layout.
LONG_PATIENT_COLUMNS = ["patient_id", "source_id", "cohort", "hospital"]
#: Patient fields of the wide layout, before the CF columns: those of the patient table
#: without its count of measurements.
WIDE_PATIENT_COLUMNS = [column for column in PATIENT_COLUMNS if column != "n_measurements"]
#: Measurement columns of the long layout, after the patient fields.
LONG_MEASUREMENT_COLUMNS = [
    "abbreviation",
    "full_name",
    "panel",
    "value",
    "censoring",
    "unit",
    "range_text",
    "range_low",
    "range_high",
    "flag_given",
    "flag_computed",
    "raw_value",
]


def cf_table(
    session: Session, *, layout: ExportLayout | str = ExportLayout.LONG, cohort: str | None = None
) -> pd.DataFrame:
    """Build the CF table of the database in the long or wide layout.

    Parameters
    ----------
    session : Session
        Open database session.
    layout : {"long", "wide"}, default "long"
        See the module documentation for the columns of each layout.
    cohort : str, optional
        Keep only the patients of this cohort.

    Returns
    -------
    DataFrame
        Long: ``LONG_PATIENT_COLUMNS + LONG_MEASUREMENT_COLUMNS``, ordered by patient and
        catalogue order. Wide: ``WIDE_PATIENT_COLUMNS`` then the CF columns, one row per
        patient ordered by ``patient_id``; ``underlying_diseases`` is a list.
    """
    layout = ExportLayout(layout)
    patients = load_patients(session, cohort=cohort)
    catalogue = load_cf_catalogue(session)
    measurements = load_measurements(session, patient_ids=patients["patient_id"].tolist())
    order = {abbreviation: index for index, abbreviation in enumerate(catalogue["abbreviation"])}

    if layout is ExportLayout.LONG:
        table = measurements.merge(
            patients[LONG_PATIENT_COLUMNS], on="patient_id", how="inner", validate="many_to_one"
        ).merge(
            catalogue[["abbreviation", "full_name"]],
            on="abbreviation",
            how="left",
            validate="many_to_one",
        )
        table["_order"] = table["abbreviation"].map(order)
        table = table.sort_values(["patient_id", "_order"], kind="stable")
        return table[LONG_PATIENT_COLUMNS + LONG_MEASUREMENT_COLUMNS].reset_index(drop=True)

    wide = patients[WIDE_PATIENT_COLUMNS].set_index("patient_id")
    abbreviations = [
        abbreviation
        for abbreviation in catalogue["abbreviation"]
        if abbreviation in set(measurements["abbreviation"])
    ]
    values = measurements.pivot(index="patient_id", columns="abbreviation", values="value")
    censoring = measurements.pivot(index="patient_id", columns="abbreviation", values="censoring")
    censored = set(measurements.loc[measurements["censoring"].notna(), "abbreviation"])
    columns: dict[str, pd.Series] = {}
    for abbreviation in abbreviations:
        name = f"{CF_COLUMN_PREFIX}{abbreviation}"
        columns[name] = values[abbreviation].reindex(wide.index).astype("float64")
        if abbreviation in censored:
            columns[name + CENSORING_SUFFIX] = censoring[abbreviation].reindex(wide.index)
    cf_frame = pd.DataFrame(columns, index=wide.index)
    return pd.concat([wide, cf_frame], axis=1).reset_index()


def _suffix_format(output: Path) -> ExportFormat | None:
    suffix = output.suffix.lower().lstrip(".")
    return ExportFormat(suffix) if suffix in {member.value for member in ExportFormat} else None


def _check_format(
    output: Path, file_format: ExportFormat | str | None, layout: ExportLayout | str
) -> tuple[ExportFormat, ExportLayout]:
    """Resolve the format from the argument or the suffix; reject a contradicting pair."""
    from_suffix = _suffix_format(output)
    if file_format is None:
        if from_suffix is None:
            raise InputError(
                f"cannot tell the format from the suffix {output.suffix!r}; use .csv or "
                ".parquet, or give --format csv|parquet.",
                path=output,
            )
        file_format = from_suffix
    try:
        resolved_format = ExportFormat(file_format)
        resolved_layout = ExportLayout(layout)
    except ValueError as err:
        raise InputError(
            f"{err}. Use format csv or parquet and layout long or wide.", path=output
        ) from err
    if from_suffix is not None and from_suffix is not resolved_format:
        raise InputError(
            f"the format {resolved_format.value} contradicts the suffix {output.suffix!r} "
            f"(a {from_suffix.value} file). Name the file .{resolved_format.value}, or leave "
            "--format out to take the format from the suffix.",
            path=output,
        )
    return resolved_format, resolved_layout


def _stored_cohorts(session: Session) -> list[str]:
    return sorted(session.scalars(select(Patient.cohort).distinct()))


def export_cfs(
    factory: sessionmaker[Session],
    output: Path | str,
    *,
    file_format: ExportFormat | str | None = None,
    layout: ExportLayout | str = ExportLayout.LONG,
    cohort: str | None = None,
) -> pd.DataFrame:
    """Write the CF table of the database to a CSV or Parquet file.

    Parameters
    ----------
    factory : sessionmaker
        Session factory of an open database.
    output : Path or str
        File to write; its folder is created and an existing file is replaced. The file is
        written to a temporary name first and renamed, so an error never leaves a partial
        file. Its mode is 0666 minus the umask, as for ``open()``.
    file_format : {"csv", "parquet"}, optional
        Default: from the suffix of ``output`` (``.csv`` or ``.parquet``). Must agree with a
        ``.csv`` or ``.parquet`` suffix; any other suffix is accepted.
    layout : {"long", "wide"}, default "long"
        See :func:`cf_table`.
    cohort : str, optional
        Keep only this cohort.

    Returns
    -------
    DataFrame
        The table that was written.

    Raises
    ------
    InputError
        If the format cannot be inferred from the suffix, is unknown, or contradicts the
        suffix.
    DataNotFoundError
        If the cohort does not exist (the message lists the stored cohorts), or the database
        contains no measurements.
    """
    output = Path(output)
    file_format, layout = _check_format(output, file_format, layout)
    with factory() as session:
        table = cf_table(session, layout=layout, cohort=cohort)
        cohorts = [] if not table.empty else _stored_cohorts(session)
    if table.empty:
        if cohort is not None and cohort not in cohorts:
            stored = ", ".join(cohorts) if cohorts else "none; the database has no patients"
            raise DataNotFoundError(
                f"cohort {cohort!r} does not exist. Stored cohorts: {stored}. Give one of "
                "them with --cohort, or leave --cohort out to export every cohort."
            )
        where = f" in cohort {cohort!r}" if cohort else ""
        raise DataNotFoundError(
            f"no clinical features to export{where}. Import the iCTCF export first with "
            "`ictcf import ictcf-export FILE`."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(
        prefix=f".{output.name}.", suffix=".part", dir=output.parent
    )
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        if file_format is ExportFormat.CSV:
            written = table.copy()
            if "underlying_diseases" in written:
                written["underlying_diseases"] = written["underlying_diseases"].map(
                    LIST_SEPARATOR.join
                )
            written.to_csv(temporary, index=False)
        else:
            table.to_parquet(temporary, index=False)
        apply_default_mode(temporary)
        temporary.replace(output)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("wrote %d rows (%s, %s layout)", len(table), file_format.value, layout.value)
    return table
