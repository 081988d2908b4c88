"""Importing the export: counts on the real file, idempotence, conflicts and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ictcf import __version__
from ictcf.db import open_database
from ictcf.db.enums import Censoring, Flag, MorbidityType
from ictcf.db.models import CFDefinition, ImportRun, Measurement, Patient
from ictcf.db.queries import load_cf_catalogue, load_measurements, load_patients
from ictcf.errors import ConflictError, InputError
from ictcf.ingest.importer import (
    ImportReport,
    compute_flag,
    default_cohort,
    import_ictcf_export,
)
from tests.ingest.conftest import cf_block, make_line, table_counts, write_export

RealImport = tuple[sessionmaker[Session], ImportReport]


@pytest.fixture(scope="module")
def real_import(cohort1_export: Path, tmp_path_factory: pytest.TempPathFactory) -> RealImport:
    """The real cohort-1 export imported once into SQLite, shared by the read-only tests."""
    url = f"sqlite:///{tmp_path_factory.mktemp('real') / 'real.sqlite3'}"
    factory = open_database(url)
    report = import_ictcf_export(factory, cohort1_export)
    return factory, report


# The real cohort-1 export.


def test_real_import_counts(real_import: RealImport) -> None:
    factory, report = real_import
    assert report.patients_added == 1170
    assert report.measurements_added == 56861
    assert report.skipped == []
    with factory() as session:
        patients = load_patients(session)
    assert len(patients) == 1170
    assert set(patients["cohort"]) == {"cohort1"}
    counts = patients["morbidity_type"].value_counts().to_dict()
    assert counts[MorbidityType.CONTROL.value] == 222
    assert counts[MorbidityType.TYPE_I.value] == 438
    assert counts[MorbidityType.TYPE_II.value] == 211
    assert counts[MorbidityType.SUSPECTED.value] == 299
    assert patients["hospital"].value_counts().to_dict() == {"Union": 775, "Liyuan": 395}


def test_real_import_provenance(real_import: RealImport, cohort1_export: Path) -> None:
    factory, report = real_import
    with factory() as session:
        runs = session.scalars(select(ImportRun)).all()
    assert len(runs) == 1
    run = runs[0]
    assert run.id == report.import_run_id
    assert run.kind == "ictcf-export"
    assert run.file_name == "patient_cohort1.txt"
    assert run.sha256 == "f0ac84e36180780ea865899122a0a1ed34e8906b682ec7414ddf02e8a80046c5"
    assert run.importer_version == __version__
    assert run.report["patients_added"] == 1170
    json.dumps(run.report)


def test_real_import_units_never_mixed(real_import: RealImport) -> None:
    factory, _ = real_import
    with factory() as session:
        measurements = load_measurements(session)
        catalogue = load_cf_catalogue(session).set_index("abbreviation")
    for abbreviation, group in measurements.groupby("abbreviation"):
        seen = set(group["unit"].dropna())
        expected = catalogue.at[str(abbreviation), "unit"]
        assert seen == ({expected} if expected else set()), abbreviation
    assert catalogue.loc["PA", "unit"] == "g/L"
    assert catalogue.loc["PDW", "unit"] == "%"
    assert catalogue.loc["PDW-fL", "unit"] == "fL"
    assert catalogue.loc["CREA", "unit"] == "µmol/L"
    assert catalogue.loc["APOB", "unit"] == "g/L"


def test_real_import_prealbumin_converted(
    real_import: RealImport,
) -> None:
    factory, _ = real_import
    with factory() as session:
        measurements = load_measurements(session)
    prealbumin = measurements[measurements["abbreviation"] == "PA"]
    liyuan = prealbumin[prealbumin["range_text"] == "0.18-0.35"]
    assert len(liyuan) == 102
    assert (liyuan["range_low"] == 0.18).all()
    assert (liyuan["range_high"] == 0.35).all()
    assert liyuan["value"].between(0.0, 1.0).all()


def test_real_import_liyuan_patient(real_import: RealImport) -> None:
    factory, _ = real_import
    with factory() as session:
        patient_id = session.scalars(
            select(Patient.id).where(Patient.source_id == "Patient 778")
        ).one()
        rows = load_measurements(session, patient_ids=[patient_id]).set_index("abbreviation")
    assert rows.at["PA", "value"] == 0.0965
    assert rows.at["PA", "unit"] == "g/L"
    assert rows.at["PA", "range_text"] == "0.18-0.35"
    assert rows.at["PA", "flag_computed"] == "low"
    assert rows.at["PA", "raw_value"] == "96.50&#8595;"
    assert "PDW" not in rows.index
    assert rows.at["PDW-fL", "value"] == 15.9
    assert rows.at["PDW-fL", "unit"] == "fL"


def test_real_import_ranges_kept_per_measurement(
    real_import: RealImport,
) -> None:
    factory, _ = real_import
    with factory() as session:
        measurements = load_measurements(session)
        albumin = session.scalars(
            select(CFDefinition).where(CFDefinition.abbreviation == "ALB")
        ).one()
    ranges = set(measurements.loc[measurements["abbreviation"] == "ALB", "range_text"])
    assert ranges == {"35-55", "40-55"}
    # Union Hospital has more patients: its range is the most common one.
    assert (albumin.range_low, albumin.range_high) == (35.0, 55.0)


def test_real_import_flags_agree_with_arrows(
    real_import: RealImport,
) -> None:
    factory, report = real_import
    assert report.flag_disagreements == 0
    with factory() as session:
        measurements = load_measurements(session)
    flagged = measurements[measurements["flag_given"].notna()]
    assert len(flagged) == 8863 + 7340
    assert (flagged["flag_given"] == flagged["flag_computed"]).all()
    censored = measurements[measurements["censoring"].notna()]
    assert len(censored) == 268 + 18 + 6 + 4 + 2
    assert censored["value"].notna().all()


def test_real_import_warns_negative_value(
    real_import: RealImport,
) -> None:
    _, report = real_import
    assert report.warnings == [
        "line 677: CF 'DBIL' has the negative value '-0.17&#8595;'; stored as given"
    ]


# Idempotence and conflicts.


def test_reimport_changes_nothing(database_url: str, export_dir: Path) -> None:
    factory = open_database(database_url)
    path = write_export(export_dir, [make_line(1), make_line(2)])
    first = import_ictcf_export(factory, path)
    before = table_counts(factory)
    second = import_ictcf_export(factory, path)
    assert first.patients_added == 2
    assert first.import_run_id is not None
    assert first.to_dict()["changed"] is True
    assert second.patients_added == 0
    assert second.to_dict()["changed"] is False
    assert second.patients_unchanged == 2
    assert second.import_run_id is None
    assert table_counts(factory) == before


def test_second_file_adds_only_new_patients(database_url: str, export_dir: Path) -> None:
    factory = open_database(database_url)
    import_ictcf_export(factory, write_export(export_dir, [make_line(1), make_line(2)], "a.txt"))
    report = import_ictcf_export(
        factory, write_export(export_dir, [make_line(2), make_line(3)], "b.txt")
    )
    assert report.patients_added == 1
    assert report.patients_unchanged == 1
    with factory() as session:
        assert session.scalars(select(Patient.source_id).order_by(Patient.id)).all() == [
            "Patient 1",
            "Patient 2",
            "Patient 3",
        ]
        assert len(session.scalars(select(ImportRun)).all()) == 2


def test_conflicting_second_file(database_url: str, export_dir: Path) -> None:
    factory = open_database(database_url)
    import_ictcf_export(factory, write_export(export_dir, [make_line(1), make_line(2)], "a.txt"))
    before = table_counts(factory)
    changed_value = cf_block([("Routine Blood Test", ["Lymphocyte count@LY@1.30@1.1-3.2 G/L"])])
    for changed in (make_line(2, temperature="38.2"), make_line(2, cf=changed_value)):
        path = write_export(export_dir, [make_line(3), changed], "b.txt")
        with pytest.raises(
            ConflictError,
            match=(
                r"b.txt, line 2: Patient 2 is already stored with different content\. Nothing "
                r"was imported\. If this file is the corrected export, import it into a new "
                r"database \(--database-url"
            ),
        ):
            import_ictcf_export(factory, path)
        assert table_counts(factory) == before


def test_conflicting_cohort(database_url: str, export_dir: Path) -> None:
    factory = open_database(database_url)
    path = write_export(export_dir, [make_line(1)])
    import_ictcf_export(factory, path)
    with pytest.raises(ConflictError, match=r"stored in cohort 'cohort1', not 'external'"):
        import_ictcf_export(factory, path, cohort="external")


def test_duplicate_patient_in_file(database_url: str, export_dir: Path) -> None:
    factory = open_database(database_url)
    before = table_counts(factory)
    path = write_export(export_dir, [make_line(1), make_line(2), make_line(1)])
    with pytest.raises(
        InputError, match=r"export.txt, line 3: Patient 1 is listed twice \(first on line 1\)"
    ):
        import_ictcf_export(factory, path)
    assert table_counts(factory) == before
    report = import_ictcf_export(factory, path, skip_invalid=True)
    assert report.patients_added == 2
    assert [(skipped.line, skipped.reason[:25]) for skipped in report.skipped] == [
        (3, "Patient 1 is listed twice")
    ]


# Bad inputs: the import stops, the database is unchanged.


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (make_line(2)[:-60], r"line 2: patient blob is malformed"),
        (make_line(2).replace("&cf&", ""), r"line 2: .*missing or unclosed block\(s\): &cf&"),
        (make_line(2) + "\tmore", r"line 2: expected 10 tab-separated fields, found 11"),
        (
            make_line(2, cf=cf_block([("Inflammation", ["C-reactive protein@CRP@abc@<8 mg/L"])])),
            r"line 2: CF 'CRP': value 'abc' is not a number",
        ),
        (
            make_line(2, cf=cf_block([("Inflammation", ["Procalcitonin@PCT@0,02@<0.5 ng/ml"])])),
            r"line 2: CF 'PCT': value '0,02' uses a decimal comma",
        ),
        (
            make_line(2, form_header="Moderate", form="Moderate"),
            r"unknown morbidity form 'Moderate'",
        ),
        (make_line(2, outcome="Transferred"), r"line 2: unknown outcome 'Transferred'"),
        (
            make_line(
                2, cf=cf_block([("Routine Blood Test", ["Lymphocyte count@LY@1.0@1.1-3.2 %"])])
            ),
            r"line 2: CF 'LY' is in unit '%', but its catalogue unit is 'G/L', and the value cannot be converted. Units accepted for this CF: /L, /µL, G/L, T/L",
        ),
    ],
    ids=[
        "truncated",
        "missing-cf-block",
        "tab-fields",
        "value-abc",
        "decimal-comma",
        "unknown-form",
        "unknown-outcome",
        "foreign-unit",
    ],
)
def test_bad_line_stops_import(
    database_url: str, export_dir: Path, bad_line: str, message: str
) -> None:
    factory = open_database(database_url)
    import_ictcf_export(factory, write_export(export_dir, [make_line(1)], "first.txt"))
    before = table_counts(factory)
    path = write_export(export_dir, [make_line(3), bad_line, make_line(4)])
    with pytest.raises(InputError, match=message):
        import_ictcf_export(factory, path)
    assert table_counts(factory) == before

    report = import_ictcf_export(factory, path, skip_invalid=True)
    assert report.patients_added == 2
    assert [skipped.line for skipped in report.skipped] == [2]
    with factory() as session:
        run = session.get(ImportRun, report.import_run_id)
        assert run is not None
        assert run.report["skipped"][0]["line"] == 2


def test_empty_file(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    path = export_dir / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.txt: the file contains no patient lines"):
        import_ictcf_export(factory, path)
    assert table_counts(factory)["import_run"] == 0


def test_wrong_encoding(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    path = export_dir / "latin1.txt"
    line = make_line(1, cf=cf_block([])).replace("Hypertension", "Hypertensión")
    path.write_bytes(line.encode("latin-1"))
    with pytest.raises(
        InputError, match=r"latin1.txt, line 1: invalid UTF-8 byte 0xf3 at byte offset"
    ):
        import_ictcf_export(factory, path)
    path.write_bytes(make_line(1).encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16 byte order mark"):
        import_ictcf_export(factory, path)
    assert sum(table_counts(factory).values()) == 0


def test_missing_file(sqlite_url: str, tmp_path: Path) -> None:
    factory = open_database(sqlite_url)
    with pytest.raises(InputError, match=r"nothere.txt: file not found"):
        import_ictcf_export(factory, tmp_path / "nothere.txt")


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (PermissionError(13, "Permission denied"), "Permission denied"),
        (OSError(5, "Input/output error"), "Input/output error"),
    ],
)
def test_unreadable_file(
    sqlite_url: str,
    export_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    text: str,
) -> None:
    factory = open_database(sqlite_url)
    path = write_export(export_dir, [make_line(1)])
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == path:
            raise error
        return real_read_bytes(self)

    # The tests run as root, which chmod 000 does not stop, so the error is injected.
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(InputError, match=rf"export.txt: cannot read the file: {text}\. Check"):
        import_ictcf_export(factory, path)
    assert sum(table_counts(factory).values()) == 0


def test_patient_outside_default_cohorts(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    path = write_export(export_dir, [make_line(1600)])
    with pytest.raises(
        InputError, match=r"Patient 1600 is outside the default cohorts .* --cohort NAME"
    ):
        import_ictcf_export(factory, path)
    report = import_ictcf_export(factory, path, cohort="external")
    assert report.patients_added == 1


def test_transaction_rolls_back_on_database_error(
    sqlite_url: str, export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = open_database(sqlite_url)
    import_ictcf_export(factory, write_export(export_dir, [make_line(1)], "first.txt"))
    before = table_counts(factory)

    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("ictcf.ingest.importer._insert_patients", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        import_ictcf_export(factory, write_export(export_dir, [make_line(2)], "second.txt"))
    assert table_counts(factory) == before


# Values, units, catalogue.


def test_values_censoring_and_flags(database_url: str, export_dir: Path) -> None:
    factory = open_database(database_url)
    import_ictcf_export(factory, write_export(export_dir, [make_line(1)]))
    with factory() as session:
        rows = {row.abbreviation: row for row in load_measurements(session).itertuples(index=False)}
    assert rows["LY"].value == 1.0
    assert rows["LY"].flag_given == Flag.LOW.value
    assert rows["LY"].flag_computed == Flag.LOW.value
    assert rows["PCT"].value == 0.13
    assert rows["PCT"].censoring == Censoring.BELOW.value
    # <0.13 against the range <0.5 is certainly normal.
    assert rows["PCT"].flag_computed == Flag.NORMAL.value
    assert rows["WBC"].flag_given is None
    assert rows["WBC"].flag_computed == Flag.NORMAL.value
    assert rows["CREA"].unit == "µmol/L"
    assert rows["CREA"].raw_value == "74.30"


def test_missing_values_are_not_stored(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    cf = cf_block(
        [
            ("Inflammation", ["C-reactive protein@CRP@N/A@<8 mg/L"]),
            ("Biochemical Test", ["Albumin@ALB@--@35-55 g/L", "Globulin@GLB@25@20-30 g/L"]),
        ]
    )
    report = import_ictcf_export(factory, write_export(export_dir, [make_line(1, cf=cf)]))
    assert report.measurements_added == 1
    assert report.missing_values == 2


def test_units_harmonised_between_hospitals(database_url: str, export_dir: Path) -> None:
    factory = open_database(database_url)
    union = make_line(1, cf=cf_block([("Biochemical Test", ["Prealbumin@PA@0.25@0.17-0.42 g/L"])]))
    liyuan = make_line(
        2,
        hospital="Liyuan",
        cf=cf_block([("Biochemical Test", ["Prealbumin@PA@250@180-350 mg/L"])]),
    )
    report = import_ictcf_export(factory, write_export(export_dir, [liyuan, union]))
    assert report.converted_values == {"PA: mg/L -> g/L": 1}
    with factory() as session:
        rows = load_measurements(session)
        catalogue = load_cf_catalogue(session).set_index("abbreviation")
    assert rows["unit"].tolist() == ["g/L", "g/L"]
    assert sorted(rows["value"]) == [0.25, 0.25]
    assert set(rows["range_text"]) == {"0.17-0.42", "0.18-0.35"}
    assert catalogue.loc["PA", "unit"] == "g/L"


def test_unknown_cf_is_added_with_warning(database_url: str, export_dir: Path) -> None:
    factory = open_database(database_url)
    cf = cf_block([("Biochemical Test", ["Ferritin@FERR@310.5@30-400 ng/ml"])])
    report = import_ictcf_export(factory, write_export(export_dir, [make_line(1, cf=cf)]))
    assert report.cf_definitions_added == ["FERR"]
    assert report.warnings == [
        "unknown CF 'FERR' (Ferritin, panel 'Biochemical Test') added to the catalogue with unit 'ng/mL'"
    ]
    with factory() as session:
        ferritin = session.scalars(
            select(CFDefinition).where(CFDefinition.abbreviation == "FERR")
        ).one()
        value = session.scalars(select(Measurement.value)).one()
    assert (ferritin.unit, ferritin.range_low, ferritin.range_high) == ("ng/mL", 30.0, 400.0)
    assert value == 310.5


def test_unknown_cf_units_harmonised(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    lines = [
        make_line(1, cf=cf_block([("Biochemical Test", ["Ferritin@FERR@310.5@30-400 ng/ml"])])),
        make_line(2, cf=cf_block([("Biochemical Test", ["Ferritin@FERR@120@30-400 ng/ml"])])),
        make_line(3, cf=cf_block([("Biochemical Test", ["Ferritin@FERR@0.25@0.03-0.4 mg/L"])])),
    ]
    report = import_ictcf_export(factory, write_export(export_dir, lines))
    assert report.converted_values == {"FERR: mg/L -> ng/mL": 1}
    with factory() as session:
        rows = load_measurements(session)
    assert rows["unit"].tolist() == ["ng/mL"] * 3
    assert rows["value"].tolist() == [310.5, 120.0, 250.0]
    assert rows["range_text"].tolist() == ["30-400", "30-400", "30-400"]


def test_entry_without_unit_is_rejected(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    without_unit = cf_block([("Biochemical Test", ["Albumin@ALB@40@35-55"])])
    lines = [make_line(1), make_line(2, cf=without_unit)]
    path = write_export(export_dir, lines)
    with pytest.raises(
        InputError,
        match=(
            r"export.txt, line 2: CF 'ALB' has no unit after its normal range, but its "
            r"catalogue unit is 'g/L', and the value cannot be converted\. Units accepted for "
            r"this CF: .*g/L.*mg/L.*--skip-invalid"
        ),
    ):
        import_ictcf_export(factory, path)
    assert sum(table_counts(factory).values()) == 0
    report = import_ictcf_export(factory, path, skip_invalid=True)
    assert report.patients_added == 1
    assert [skipped.line for skipped in report.skipped] == [2]


def test_entry_without_unit_for_dimensionless_cf(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    ratio = cf_block([("Immune", ["CD4/CD8 ratio@CD4/CD8@1.2@0.71-2.78"])])
    report = import_ictcf_export(factory, write_export(export_dir, [make_line(1, cf=ratio)]))
    assert report.measurements_added == 1
    with factory() as session:
        assert load_measurements(session)["unit"].tolist() == [None]


def test_unit_message_names_accepted_units(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    wrong = cf_block([("Biochemical Test", ["Albumin@ALB@40@35-55 mmol/L"])])
    with pytest.raises(
        InputError,
        match=r"CF 'ALB' is in unit 'mmol/L', but its catalogue unit is 'g/L'.*please report",
    ) as caught:
        import_ictcf_export(factory, write_export(export_dir, [make_line(1, cf=wrong)]))
    assert "ictcf.ingest" not in str(caught.value)


def test_catalogue_not_changed_by_later_import(sqlite_url: str, export_dir: Path) -> None:
    factory = open_database(sqlite_url)
    first = make_line(1, cf=cf_block([("Biochemical Test", ["Albumin@ALB@40@35-55 g/L"])]))
    import_ictcf_export(factory, write_export(export_dir, [first], "a.txt"))
    later = [
        make_line(n, cf=cf_block([("Biochemical Test", ["Albumin@ALB@41@40-55 g/L"])]))
        for n in (2, 3)
    ]
    import_ictcf_export(factory, write_export(export_dir, later, "b.txt"))
    with factory() as session:
        catalogue = load_cf_catalogue(session).set_index("abbreviation")
    assert catalogue.loc["ALB", "range_text"] == "35-55"


def test_cohort_override_and_default() -> None:
    assert default_cohort(1) == "cohort1"
    assert default_cohort(1170) == "cohort1"
    assert default_cohort(1171) == "cohort2"
    assert default_cohort(1521) == "cohort2"
    assert default_cohort(1522) is None


@pytest.mark.parametrize(
    ("value", "censoring", "low", "high", "flag"),
    [
        (1.0, None, 1.1, 3.2, Flag.LOW),
        (1.1, None, 1.1, 3.2, Flag.NORMAL),
        (3.2, None, 1.1, 3.2, Flag.NORMAL),
        (3.3, None, 1.1, 3.2, Flag.HIGH),
        (0.5, None, None, 0.5, Flag.NORMAL),
        (0.6, None, None, 0.5, Flag.HIGH),
        # <L: the interval below L, with no lower bound.
        (0.13, Censoring.BELOW, None, 0.5, Flag.NORMAL),
        (3.14, Censoring.BELOW, None, 8.0, Flag.NORMAL),
        (0.5, Censoring.BELOW, None, 0.5, Flag.NORMAL),
        (0.6, Censoring.BELOW, None, 0.5, None),
        (6.0, Censoring.BELOW, 5.0, 40.0, None),
        (5.0, Censoring.BELOW, 5.0, 40.0, Flag.LOW),
        (4.0, Censoring.BELOW, 5.0, None, Flag.LOW),
        (3.0, Censoring.BELOW, 0.0, 8.0, None),
        # >L: the interval above L, with no upper bound.
        (8.0, Censoring.ABOVE, 0.0, 8.0, Flag.HIGH),
        (7.0, Censoring.ABOVE, 0.0, 8.0, None),
        (60.0, Censoring.ABOVE, 60.0, None, Flag.NORMAL),
        (90.0, Censoring.ABOVE, 60.0, None, Flag.NORMAL),
        (50.0, Censoring.ABOVE, 60.0, None, None),
        (0.13, Censoring.BELOW, None, None, None),
        (7.0, None, None, None, None),
    ],
)
def test_compute_flag(
    value: float,
    censoring: Censoring | None,
    low: float | None,
    high: float | None,
    flag: Flag | None,
) -> None:
    assert compute_flag(value, censoring, low, high) is flag
