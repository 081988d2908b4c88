"""Exporting the clinical features in long and wide layouts, CSV and Parquet."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db import open_database
from ictcf.errors import DataNotFoundError, InputError
from ictcf.exporting import LONG_MEASUREMENT_COLUMNS, LONG_PATIENT_COLUMNS, export_cfs
from ictcf.ingest.importer import import_ictcf_export
from tests.ingest.conftest import cf_block, make_line, write_export


@pytest.fixture
def factory(database_url: str, export_dir: Path) -> sessionmaker[Session]:
    factory = open_database(database_url)
    other = cf_block([("Biochemical Test", ["Albumin@ALB@41.0@40-55 g/L"])])
    lines = [make_line(1), make_line(2, cf=other, diseases="No"), make_line(3, cf="")]
    import_ictcf_export(factory, write_export(export_dir, lines))
    return factory


def test_long_csv(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "out" / "cfs.csv"
    export_cfs(factory, path)
    table = pd.read_csv(path)
    assert list(table.columns) == LONG_PATIENT_COLUMNS + LONG_MEASUREMENT_COLUMNS
    assert len(table) == 7
    pct = table[table["abbreviation"] == "PCT"].iloc[0]
    assert pct["source_id"] == "Patient 1"
    assert pct["value"] == 0.13
    assert pct["censoring"] == "<"
    assert pct["raw_value"] == "<0.13"
    assert pct["unit"] == "ng/mL"
    ggt = table[table["abbreviation"] == "GGT"].iloc[0]
    assert ggt["full_name"] == "γ-glutamyltransferase"
    assert list(tmp_path.joinpath("out").iterdir()) == [path]


def test_wide_parquet(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    export_cfs(factory, path, layout="wide")
    table = pd.read_parquet(path)
    assert len(table) == 3
    assert table["source_id"].tolist() == ["Patient 1", "Patient 2", "Patient 3"]
    assert {"cf_LY", "cf_ALB", "cf_PCT", "cf_PCT_censoring"} <= set(table.columns)
    assert "cf_ALB_censoring" not in table.columns
    patient_1 = table.iloc[0]
    assert patient_1["cf_LY"] == 1.0
    assert patient_1["cf_PCT"] == 0.13
    assert patient_1["cf_PCT_censoring"] == "<"
    assert list(patient_1["underlying_diseases"]) == ["Hypertension", "Diabetes"]
    assert table.iloc[1]["cf_ALB"] == 41.0
    assert pd.isna(table.iloc[1]["cf_LY"])
    assert table.iloc[2][[c for c in table.columns if c.startswith("cf_")]].isna().all()


def test_wide_csv_joins_lists(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    export_cfs(factory, path, layout="wide", file_format="csv")
    table = pd.read_csv(path, keep_default_na=False)
    assert table["underlying_diseases"].tolist() == [
        "Hypertension; Diabetes",
        "",
        "Hypertension; Diabetes",
    ]


def test_cohort_filter(factory: sessionmaker[Session], tmp_path: Path) -> None:
    table = export_cfs(factory, tmp_path / "x.csv", cohort="cohort1")
    assert set(table["cohort"]) == {"cohort1"}
    with pytest.raises(
        DataNotFoundError,
        match=r"cohort 'cohort2' does not exist\. Stored cohorts: cohort1\. Give one of them",
    ):
        export_cfs(factory, tmp_path / "y.csv", cohort="cohort2")
    assert not (tmp_path / "y.csv").exists()


def test_cohort_without_values(
    factory: sessionmaker[Session], export_dir: Path, tmp_path: Path
) -> None:
    import_ictcf_export(
        factory, write_export(export_dir, [make_line(7, cf="")], "empty.txt"), cohort="pilot"
    )
    with pytest.raises(
        DataNotFoundError, match=r"no clinical features to export in cohort 'pilot'"
    ):
        export_cfs(factory, tmp_path / "x.csv", cohort="pilot")


def test_unknown_cohort_in_empty_database(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(
        DataNotFoundError, match=r"Stored cohorts: none; the database has no patients"
    ):
        export_cfs(open_database(sqlite_url), tmp_path / "x.csv", cohort="cohort1")


@pytest.mark.parametrize(
    ("name", "file_format"), [("cfs.csv", "parquet"), ("cfs.parquet", "csv"), ("a.CSV", "parquet")]
)
def test_format_contradicting_suffix(
    factory: sessionmaker[Session], tmp_path: Path, name: str, file_format: str
) -> None:
    with pytest.raises(
        InputError, match=rf"the format {file_format} contradicts the suffix '\.\w+' \(a \w+ file\)"
    ):
        export_cfs(factory, tmp_path / name, file_format=file_format)
    assert not (tmp_path / name).exists()


def test_explicit_format_with_other_suffix(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "cfs.txt"
    export_cfs(factory, path, file_format="csv")
    assert len(pd.read_csv(path)) == 7


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize("name", ["cfs.csv", "cfs.parquet"])
def test_written_file_honours_umask(
    factory: sessionmaker[Session], tmp_path: Path, umask: int, mode: int, name: str
) -> None:
    previous = os.umask(umask)
    try:
        export_cfs(factory, tmp_path / name)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def test_existing_file_is_replaced(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "cfs.csv"
    path.write_text("old content\n", encoding="utf-8")
    export_cfs(factory, path)
    assert len(pd.read_csv(path)) == 7
    assert not list(tmp_path.glob(".cfs.csv.*"))


def test_unknown_suffix(factory: sessionmaker[Session], tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"cfs.xlsx: cannot tell the format from the suffix '.xlsx'"
    ):
        export_cfs(factory, tmp_path / "cfs.xlsx")
    with pytest.raises(InputError, match=r"Use format csv or parquet and layout long or wide"):
        export_cfs(factory, tmp_path / "cfs.csv", layout="tall")


def test_empty_database(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"Import the iCTCF export first"):
        export_cfs(open_database(sqlite_url), tmp_path / "cfs.csv")
