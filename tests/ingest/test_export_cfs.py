"""Exporting the clinical features in long and wide layouts, CSV and Parquet."""

from __future__ import annotations

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
    with pytest.raises(
        DataNotFoundError, match=r"No clinical features to export in cohort 'cohort2'"
    ):
        export_cfs(factory, tmp_path / "x.csv", cohort="cohort2")
    assert not (tmp_path / "x.csv").exists()


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
