"""CT import on the real public test data (read from the shared data folder, never copied)."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db import CTSeries, CTSlice, open_database
from ictcf.imaging.ingest_ct import import_dicom, import_jpeg_series, import_nifti
from ictcf.imaging.store import SliceStore

SECRET = b"r" * 32


@pytest.fixture
def factory(sqlite_url: str) -> sessionmaker[Session]:
    return open_database(sqlite_url)


def _slices(factory: sessionmaker[Session]) -> list[CTSlice]:
    with factory() as session:
        return list(session.scalars(select(CTSlice).order_by(CTSlice.series_id, CTSlice.index)))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not in the shared data folder")
    return path


def test_tcia_sbu_axial_slices_only(
    factory: sessionmaker[Session], shared_data: Path, tmp_path: Path
) -> None:
    folder = _require(shared_data / "tcia-sbu")
    # The folder contains eight patients' slices. They are imported as one upload to test
    # slice selection.
    report = import_dicom(
        factory,
        folder,
        patient="sbu",
        create_patient=True,
        store=SliceStore(tmp_path / "s"),
        secret=SECRET,
        allow_mixed_patients=True,
    )
    assert any("8 patients" in warning for warning in report.warnings)
    assert report.n_files == 48
    assert report.n_series_imported == 16
    assert all(series.n_slices_kept == 1 for series in report.series)
    reasons = " ".join(item.reason for item in report.excluded_files)
    assert len(report.excluded_files) == 32
    assert "coronal" in reasons
    assert "sagittal" in reasons
    with_lung = [series for series in report.series if series.lung_area_mm2_range]
    assert len(with_lung) >= 10


def test_jpeg_series_order_and_lungs(
    factory: sessionmaker[Session], shared_data: Path, tmp_path: Path
) -> None:
    folder = _require(shared_data / "jpeg-series")
    report = import_jpeg_series(
        factory, folder, patient="jpeg", create_patient=True, store=SliceStore(tmp_path / "s")
    )
    assert report.n_slices_stored == 50
    slices = _slices(factory)
    first_hash = hashlib.sha256((folder / "IMG-0001-00007.jpg").read_bytes()).hexdigest()
    last_hash = hashlib.sha256((folder / "IMG-0001-00056.jpg").read_bytes()).hexdigest()
    assert slices[0].source_sha256 == first_hash
    assert slices[-1].source_sha256 == last_hash
    assert sum(bool(item.lung_area_px) for item in slices) >= 40
    ranked = [item for item in slices if item.representative_rank]
    assert len(ranked) == 5
    assert not any(item.nict_candidate for item in ranked)


def test_uiip_volume_lung_free_ends(
    factory: sessionmaker[Session], shared_data: Path, tmp_path: Path
) -> None:
    path = _require(shared_data / "lung-masks" / "uiip-volumes" / "id001-128x128x64.nii.gz")
    report = import_nifti(
        factory, path, patient="uiip", create_patient=True, store=SliceStore(tmp_path / "s")
    )
    (series,) = report.series
    assert series.n_slices_kept == 64
    assert series.n_nict_candidates >= 1
    slices = _slices(factory)
    middle = slices[len(slices) // 2]
    assert middle.lung_area_mm2 is not None
    assert middle.lung_area_mm2 > 10000


@pytest.mark.slow
def test_covid_ct_md_series_in_anatomical_order(
    factory: sessionmaker[Session], shared_data: Path, tmp_path: Path
) -> None:
    folder = _require(shared_data / "covid-ct-md" / "P001")
    report = import_dicom(
        factory,
        folder,
        patient="ctmd",
        create_patient=True,
        store=SliceStore(tmp_path / "s"),
        secret=SECRET,
    )
    assert report.n_slices_stored == 148
    slices = _slices(factory)
    positions = [item.position_mm for item in slices]
    assert all(later > earlier for earlier, later in itertools.pairwise(positions))
    ranked = sorted((item for item in slices if item.representative_rank), key=lambda s: s.index)
    assert len(ranked) == 5
    assert not any(item.nict_candidate for item in ranked)
    with factory() as session:
        (series,) = session.scalars(select(CTSeries)).all()
    assert series.slice_spacing_mm == pytest.approx(2.0, abs=0.05)
    assert series.burned_in_text is False


@pytest.mark.slow
def test_totalseg_jpeg2000_pelvis_has_no_lung(
    factory: sessionmaker[Session], shared_data: Path, tmp_path: Path
) -> None:
    folder = _require(shared_data / "totalseg-example" / "example_ct_dicom")
    report = import_dicom(
        factory,
        folder,
        patient="ts",
        create_patient=True,
        store=SliceStore(tmp_path / "s"),
        secret=SECRET,
    )
    (series,) = report.series
    assert series.n_slices_kept == 20
    assert series.n_nict_candidates == 20
