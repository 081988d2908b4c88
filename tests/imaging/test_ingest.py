"""CT import through the Python API: DICOM, JPEG/PNG, NIfTI and labelled slices, then export."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ictcf.db import CTSeries, CTSlice, Patient, SliceLabel, open_database
from ictcf.db.models import ImportRun
from ictcf.errors import ConflictError, DataNotFoundError, InputError
from ictcf.imaging import ingest_ct
from ictcf.imaging.export_slices import PNG_WINDOW_KEY, export_slices
from ictcf.imaging.ingest_ct import (
    _is_int16_hu,
    collect_garbage,
    import_dicom,
    import_jpeg_series,
    import_labelled_slices,
    import_nifti,
)
from ictcf.imaging.ingest_report import STATUS_ALREADY_IMPORTED, STATUS_IMPORTED
from ictcf.imaging.store import SliceStore
from tests.imaging.ingest_fixtures import (
    add_patient,
    database_text,
    files_under,
    phantom_slice,
    phantom_volume,
    table_counts,
    write_ct_series,
    write_ct_slice,
    write_grey_series,
)

SECRET = b"s" * 32


@pytest.fixture
def factory(database_url: str) -> sessionmaker[Session]:
    return open_database(database_url)


@pytest.fixture
def store(tmp_path: Path) -> SliceStore:
    return SliceStore(tmp_path / "store")


def _series_rows(factory: sessionmaker[Session]) -> list[CTSeries]:
    with factory() as session:
        return list(session.scalars(select(CTSeries).order_by(CTSeries.id)))


def _slice_rows(factory: sessionmaker[Session]) -> list[CTSlice]:
    with factory() as session:
        return list(session.scalars(select(CTSlice).order_by(CTSlice.series_id, CTSlice.index)))


# -- DICOM ----------------------------------------------------------------------------------


def test_dicom_series_imported_for_export_number(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    patient_id = add_patient(factory, 17)
    volume = phantom_volume(8)
    write_ct_series(tmp_path / "upload", volume)

    report = import_dicom(
        factory, tmp_path / "upload", patient="Patient 17", store=store, secret=SECRET
    )

    assert report.n_series_imported == 1
    assert report.n_slices_stored == 8
    (series,) = _series_rows(factory)
    assert series.patient_id == patient_id
    assert series.n_slices_kept == 8
    assert series.source_kind.value == "dicom"
    assert series.slice_spacing_mm == pytest.approx(5.0)
    assert series.row_spacing_mm == pytest.approx(3.6)
    slices = _slice_rows(factory)
    assert [item.index for item in slices] == list(range(8))
    positions = [item.position_mm for item in slices]
    assert positions == sorted(positions)
    hu = store.read_arrays(slices[3].image_key)["hu"]
    assert np.array_equal(hu, volume[3])
    assert all(store.exists(item.mask_key or "") for item in slices)
    assert all(item.lung_area_mm2 and item.lung_area_mm2 > 0 for item in slices)
    crop = store.read_arrays(slices[4].crop_key or "")
    assert crop["image"].shape == (200, 200)
    assert crop["mask"].dtype == bool
    ranks = sorted(item.representative_rank for item in slices if item.representative_rank)
    assert ranks == [1, 2, 3, 4, 5]
    with factory() as session:
        run_report = session.get(CTSeries, series.id).import_run.report  # type: ignore[union-attr]
    assert run_report["n_slices_stored"] == 8


def test_dicom_same_series_twice_adds_nothing(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 3)
    write_ct_series(tmp_path / "upload", phantom_volume(6))
    import_dicom(factory, tmp_path / "upload", patient="3", store=store, secret=SECRET)
    counts = table_counts(factory)
    blobs = files_under(store.root)

    again = import_dicom(factory, tmp_path / "upload", patient="3", store=store, secret=SECRET)

    assert [item.status for item in again.series] == [STATUS_ALREADY_IMPORTED]
    assert again.import_run_id is None
    assert table_counts(factory) == counts
    assert files_under(store.root) == blobs


def test_dicom_same_series_other_patient_conflicts(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 3)
    add_patient(factory, 4)
    write_ct_series(tmp_path / "upload", phantom_volume(4))
    import_dicom(factory, tmp_path / "upload", patient="3", store=store, secret=SECRET)
    with pytest.raises(ConflictError, match=r"already stored .* cannot also belong"):
        import_dicom(factory, tmp_path / "upload", patient="4", store=store, secret=SECRET)


def test_dicom_unknown_patient_is_explained(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    write_ct_series(tmp_path / "upload", phantom_volume(3))
    with pytest.raises(DataNotFoundError, match="No patient with iCTCF number 99"):
        import_dicom(factory, tmp_path / "upload", patient="99", store=store, secret=SECRET)
    with pytest.raises(DataNotFoundError, match="--create-patient"):
        import_dicom(factory, tmp_path / "upload", patient="P001", store=store, secret=SECRET)
    assert files_under(store.root) == set()


def test_dicom_create_image_only_patient(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    write_ct_series(tmp_path / "upload", phantom_volume(3))
    import_dicom(
        factory,
        tmp_path / "upload",
        patient="P001",
        store=store,
        secret=SECRET,
        create_patient=True,
    )
    with factory() as session:
        patient = session.scalar(select(Patient).where(Patient.source_id == "P001"))
    assert patient is not None
    assert patient.cohort == "images"
    assert patient.morbidity_form.value == "unknown"


def test_single_slice_series(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 5)
    write_ct_series(tmp_path / "upload", phantom_slice()[np.newaxis])
    report = import_dicom(factory, tmp_path / "upload", patient="5", store=store, secret=SECRET)
    (series,) = report.series
    assert series.n_slices_kept == 1
    assert any("single-slice" in warning for warning in series.warnings)
    (row,) = _slice_rows(factory)
    assert row.lung_area_px and row.lung_area_px > 0


def test_not_dicom_file_is_excluded(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 6)
    write_ct_series(tmp_path / "upload", phantom_volume(3))
    (tmp_path / "upload" / "notes.txt").write_text("scan notes, not an image\n")
    report = import_dicom(factory, tmp_path / "upload", patient="6", store=store, secret=SECRET)
    assert report.n_slices_stored == 3
    assert len(report.excluded_files) == 1
    assert report.excluded_files[0].file_index >= 0
    assert len(report.excluded_files[0].sha256) == 64


def test_only_not_dicom_files_rejected(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 6)
    (tmp_path / "upload").mkdir()
    (tmp_path / "upload" / "a.txt").write_text("not dicom")
    with pytest.raises(InputError, match="No CT series was found among 1 files"):
        import_dicom(factory, tmp_path / "upload", patient="6", store=store, secret=SECRET)
    assert table_counts(factory)["import_run"] == 0


def test_trailing_caret_names_give_one_series(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 7)
    write_ct_series(
        tmp_path / "upload", phantom_volume(2), patient_names=["DOE^JOHN^Q", "DOE^JOHN^Q^"]
    )
    import_dicom(factory, tmp_path / "upload", patient="7", store=store, secret=SECRET)
    assert len(_series_rows(factory)) == 1
    assert len(_slice_rows(factory)) == 2
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1


def test_html_patient_name_never_stored(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 8)
    payload = "<img src=x onerror=alert(1)>"
    write_ct_series(
        tmp_path / "upload", phantom_volume(2), patient_names=[payload, payload], patient_id=payload
    )
    report = import_dicom(
        factory, tmp_path / "upload", patient="8", store=store, secret=SECRET, create_patient=False
    )
    assert "onerror" not in database_text(factory)
    assert "onerror" not in json.dumps(report.to_dict())
    assert "12345678" not in database_text(factory)


def test_truncated_slice_is_dropped_with_reason(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 9)
    paths = write_ct_series(tmp_path / "upload", phantom_volume(4))
    broken = pydicom.dcmread(paths[2])
    broken.PixelData = broken.PixelData[: len(broken.PixelData) // 2]
    broken.save_as(paths[2])
    report = import_dicom(factory, tmp_path / "upload", patient="9", store=store, secret=SECRET)
    (series,) = report.series
    assert series.n_slices_kept == 3
    assert series.n_slices_dropped == 1
    assert len(report.excluded_files) == 1
    assert any("spacing" in warning for warning in series.warnings)


def test_failure_mid_import_stores_nothing(
    factory: sessionmaker[Session],
    store: SliceStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ictcf.imaging import lung

    add_patient(factory, 9)
    write_ct_series(tmp_path / "upload", phantom_volume(4))
    original = lung.extract_lung_hu_slice
    calls = []

    def failing_extraction(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise InputError("simulated failure on the third slice")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lung, "extract_lung_hu_slice", failing_extraction)
    counts = table_counts(factory)
    with pytest.raises(InputError, match="simulated failure"):
        import_dicom(factory, tmp_path / "upload", patient="9", store=store, secret=SECRET)
    assert table_counts(factory) == counts
    assert list(store.iter_keys()) == []


def _zip_with(tmp_path: Path, entries: dict[str, bytes]) -> Path:
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_zip_with_parent_entries_rejected(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 10)
    good = write_ct_series(tmp_path / "series", phantom_volume(2))
    archive = _zip_with(
        tmp_path,
        {
            "series/1.dcm": good[0].read_bytes(),
            "series/2.dcm": good[1].read_bytes(),
            "../../evil.txt": b"outside",
        },
    )
    before = files_under(tmp_path.parent)
    with pytest.raises(InputError):
        import_dicom(factory, archive, patient="10", store=store, secret=SECRET)
    assert files_under(tmp_path.parent) == before
    assert table_counts(factory)["ct_series"] == 0
    assert list(store.iter_keys()) == []


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zip of about 5 MB holding one entry of 1 GiB zeros (level 1 compresses fastest)."""
    archive = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    chunk = b"\0" * (1 << 24)
    with (
        zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as bundle,
        bundle.open("zeros.dcm", "w", force_zip64=True) as member,
    ):
        for _ in range(64):
            member.write(chunk)
    return archive


def test_zip_bomb_rejected(sqlite_url: str, zip_bomb: Path, tmp_path: Path) -> None:
    factory = open_database(sqlite_url)
    store = SliceStore(tmp_path / "store")
    add_patient(factory, 11)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(InputError):
        import_dicom(factory, zip_bomb, patient="11", store=store, secret=SECRET, workdir=workdir)
    assert table_counts(factory)["ct_series"] == 0
    assert list(store.iter_keys()) == []
    assert list(workdir.iterdir()) == []


def test_garbage_collection_removes_orphans(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 12)
    write_ct_series(tmp_path / "upload", phantom_volume(2))
    import_dicom(factory, tmp_path / "upload", patient="12", store=store, secret=SECRET)
    used = set(store.iter_keys())
    orphan = store.put_arrays({"x": np.zeros(3)})
    dry = collect_garbage(factory, store, min_age_s=0, dry_run=True)
    assert dry.n_unreferenced == 1
    assert store.exists(orphan)
    result = collect_garbage(factory, store, min_age_s=0)
    assert result.n_deleted == 1
    assert set(store.iter_keys()) == used


# -- JPEG / PNG -----------------------------------------------------------------------------


def test_jpeg_series_ordered_by_number(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 20)
    volume = phantom_volume(5, 128, 128)
    paths = write_grey_series(tmp_path / "jpeg", volume)
    report = import_jpeg_series(factory, tmp_path / "jpeg", patient="20", store=store)
    (series,) = report.series
    assert series.n_slices_kept == 5
    assert series.burned_in_text_reason
    slices = _slice_rows(factory)
    first = store.read_image(slices[0].image_key)
    with Image.open(paths[0]) as picture:
        assert np.array_equal(first, np.asarray(picture))
    last = store.read_image(slices[-1].image_key)
    with Image.open(paths[-1]) as picture:
        assert np.array_equal(last, np.asarray(picture))


# -- NIfTI ----------------------------------------------------------------------------------


def _write_nifti(path: Path, volume_zyx: np.ndarray) -> Path:
    data = np.transpose(volume_zyx, (2, 1, 0)).astype(np.int16)  # NIfTI order (x, y, z)
    affine = np.diag([-3.6, -3.6, 5.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_nifti_volume_imported(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 30)
    path = _write_nifti(tmp_path / "ct.nii.gz", phantom_volume(6))
    report = import_nifti(factory, path, patient="30", store=store)
    (series,) = report.series
    assert series.status == STATUS_IMPORTED
    assert series.n_slices_kept == 6
    slices = _slice_rows(factory)
    assert all(item.image_kind.value == "hu" for item in slices)
    assert sum(bool(item.lung_area_px) for item in slices) >= 4


def test_nifti_not_hu_rejected(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 31)
    scaled = (phantom_volume(4).astype(np.float64) + 1000) / 2000
    data = np.transpose(scaled, (2, 1, 0)).astype(np.float32)
    path = tmp_path / "scaled.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([-3.6, -3.6, 5.0, 1.0])), path)
    with pytest.raises(InputError):
        import_nifti(factory, path, patient="31", store=store)
    assert table_counts(factory)["ct_series"] == 0


# -- labelled slices ------------------------------------------------------------------------


def _labelled_layout(root: Path) -> None:
    volume = phantom_volume(6, 128, 128)
    write_grey_series(root / "NiCT" / "Patient 40", volume[:1])
    write_grey_series(root / "pCT" / "Patient 40", volume[2:4])
    write_grey_series(root / "nCT" / "Patient 41", volume[1:4])


def test_labelled_slices_per_patient_folders(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    first = add_patient(factory, 40)
    second = add_patient(factory, 41)
    _labelled_layout(tmp_path / "hust19")
    report = import_labelled_slices(factory, tmp_path / "hust19", store=store)
    assert report.n_series_imported == 2
    labels = {(item.patient_id, tuple(sorted(item.labels.items()))) for item in report.series}
    assert labels == {(first, (("NiCT", 1), ("pCT", 2))), (second, (("nCT", 3),))}
    slices = _slice_rows(factory)
    assert all(item.label_source == "hust19-download" for item in slices)
    pct_ranked = [
        item
        for item in slices
        if item.representative_rank is not None and item.label is SliceLabel.PCT
    ]
    assert len(pct_ranked) == 2


def test_labelled_slices_loose_files_need_patient(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    write_grey_series(tmp_path / "hust19" / "pCT", phantom_volume(2, 128, 128))
    with pytest.raises(InputError, match="Pass --patient KEY"):
        import_labelled_slices(factory, tmp_path / "hust19", store=store)
    add_patient(factory, 42)
    report = import_labelled_slices(factory, tmp_path / "hust19", store=store, patient="42")
    assert report.n_slices_stored == 2


def test_labelled_slices_without_label_folders(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    write_grey_series(tmp_path / "plain", phantom_volume(2, 128, 128))
    with pytest.raises(InputError, match="No slices were found in NiCT/, pCT/ or nCT/"):
        import_labelled_slices(factory, tmp_path / "plain", store=store)


# -- export ---------------------------------------------------------------------------------


def test_export_png_keeps_size_and_gradient(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 50)
    gradient = np.tile(np.linspace(-1000, 100, 48).round().astype(np.int16), (32, 1))
    (tmp_path / "upload").mkdir()
    write_ct_slice(
        tmp_path / "upload" / "one.dcm",
        gradient,
        series_uid=pydicom.uid.generate_uid(),
        study_uid=pydicom.uid.generate_uid(),
        z_mm=0.0,
        instance_number=1,
    )
    import_dicom(factory, tmp_path / "upload", patient="50", store=store, secret=SECRET)
    report = export_slices(factory, tmp_path / "out", format="png", store=store)
    assert report.n_slices == 1
    with (tmp_path / "out" / "manifest.csv").open(encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    with Image.open(tmp_path / "out" / row["file"]) as picture:
        assert picture.mode == "L"
        assert picture.size == (48, 32)
        assert picture.text[PNG_WINDOW_KEY] == "lung W1500 L-600"
        pixels = np.asarray(picture)
    assert np.all(np.diff(pixels[0].astype(int)) >= 0)
    assert pixels[0, -1] > pixels[0, 0]
    assert np.all(pixels == pixels[0])
    assert row["window"] == "lung"
    assert row["window_width"] == "1500.0"
    assert row["window_level"] == "-600.0"
    assert row["columns"] == "48"
    assert row["rows"] == "32"


def test_export_npz_and_label_filter(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 40)
    add_patient(factory, 41)
    _labelled_layout(tmp_path / "hust19")
    import_labelled_slices(factory, tmp_path / "hust19", store=store)
    report = export_slices(factory, tmp_path / "out", format="npz", store=store, label="pCT")
    assert report.n_slices == 2
    assert report.labels == {"pCT": 2}
    with (tmp_path / "out" / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    arrays = np.load(io.BytesIO((tmp_path / "out" / rows[0]["file"]).read_bytes()))
    assert arrays["image"].dtype == np.uint8
    assert arrays["mask"].shape == arrays["image"].shape
    assert {row["label"] for row in rows} == {"pCT"}


def test_export_refuses_non_empty_folder(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(ConflictError, match="not empty"):
        export_slices(factory, tmp_path / "out", store=store)


def test_export_unknown_label(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="Unknown slice label 'GGO'"):
        export_slices(factory, tmp_path / "out", store=store, label="GGO")


def test_import_writes_only_store_and_database(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path, isolated_home: Path
) -> None:
    add_patient(factory, 60)
    write_ct_series(tmp_path / "upload", phantom_volume(3))
    upload_before = {path: path.read_bytes() for path in files_under(tmp_path / "upload")}
    outside_before = files_under(tmp_path) - files_under(store.root)
    import_dicom(factory, tmp_path / "upload", patient="60", store=store, secret=SECRET)
    assert {path: path.read_bytes() for path in files_under(tmp_path / "upload")} == upload_before
    assert files_under(tmp_path) - files_under(store.root) == outside_before
    assert files_under(isolated_home) == set()


def test_concurrent_duplicate_becomes_conflict(
    factory: sessionmaker[Session],
    store: SliceStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ictcf.imaging import ingest_ct

    add_patient(factory, 61)
    write_ct_series(tmp_path / "upload", phantom_volume(2))
    import_dicom(factory, tmp_path / "upload", patient="61", store=store, secret=SECRET)
    # Pretend the check ran before another import committed the same series.
    monkeypatch.setattr(ingest_ct, "_existing_series", lambda *args: None)
    monkeypatch.setattr(
        ingest_ct, "_write_series", _write_without_key_check(ingest_ct._write_series)
    )
    counts = table_counts(factory)
    with pytest.raises(ConflictError, match="at the same time"):
        import_dicom(factory, tmp_path / "upload", patient="61", store=store, secret=SECRET)
    assert table_counts(factory) == counts


def _write_without_key_check(write: object) -> object:
    """Wrap ``_write_series`` so that its series-key check cannot see the stored series."""

    def wrapper(session: Session, draft: object, recorder: object) -> object:
        draft.series_key = draft.series_key + ".new"  # type: ignore[attr-defined]
        return write(session, draft, recorder)  # type: ignore[operator]

    return wrapper


def test_labelled_slices_from_zip(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 40)
    add_patient(factory, 41)
    _labelled_layout(tmp_path / "hust19")
    archive = tmp_path / "hust19.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in files_under(tmp_path / "hust19"):
            bundle.write(path, path.relative_to(tmp_path).as_posix())
    report = import_labelled_slices(factory, archive, store=store)
    assert report.n_series_imported == 2
    assert report.n_slices_stored == 6


def test_int16_volume_check() -> None:
    assert _is_int16_hu(np.array([[-1024.0, 0.0], [3071.0, 32767.0]], dtype=np.float32))
    assert not _is_int16_hu(np.array([[-1024.0, 0.5]], dtype=np.float32))
    assert not _is_int16_hu(np.array([[-40000.0, 0.0]], dtype=np.float32))
    assert not _is_int16_hu(np.zeros((0, 0), dtype=np.float32))


def test_fractional_hu_series_segmented_like_integral(
    factory: sessionmaker[Session],
    store: SliceStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first slices have integral HU, so the lung volume starts as int16; a later slice
    # rescaled by 0.5 has fractional HU and makes the import switch the volume to float32.
    volume = phantom_volume(8)
    add_patient(factory, 5)
    add_patient(factory, 6)
    write_ct_series(tmp_path / "integral", volume)
    fractional = write_ct_series(tmp_path / "fractional", volume)
    dataset = pydicom.dcmread(fractional[5])
    stored = dataset.pixel_array.astype(np.int32)
    dataset.PixelData = (stored * 2 + 1).astype(np.int16).tobytes()
    dataset.RescaleSlope = 0.5
    dataset.save_as(fractional[5], enforce_file_format=True)
    assert float(pydicom.dcmread(fractional[5]).RescaleSlope) == 0.5

    volume_types: list[np.dtype[Any]] = []
    original = ingest_ct._extract_lungs_hu

    def record_type(*args: Any, **kwargs: Any) -> None:
        volume_types.append(args[3].dtype)
        original(*args, **kwargs)

    monkeypatch.setattr(ingest_ct, "_extract_lungs_hu", record_type)
    import_dicom(factory, tmp_path / "integral", patient="5", store=store, secret=SECRET)
    import_dicom(factory, tmp_path / "fractional", patient="6", store=store, secret=SECRET)
    assert volume_types == [np.dtype(np.int16), np.dtype(np.float32)]
    patient_of_series = {series.id: series.patient_id for series in _series_rows(factory)}
    areas: dict[int, list[int | None]] = {}
    for row in sorted(_slice_rows(factory), key=lambda row: (row.series_id, row.index)):
        areas.setdefault(patient_of_series[row.series_id], []).append(row.lung_area_px)
    first, second = areas.values()
    assert len(first) == len(second) == 8
    assert first == second


# -- patients of one upload -------------------------------------------------------------------


def _two_patient_upload(folder: Path, *, second_has_identity: bool = True) -> Path:
    """Write two 3-slice series with different PatientName and PatientID into ``folder``."""
    write_ct_series(
        folder / "a", phantom_volume(3), patient_names=["ALPHA^ONE"] * 3, patient_id="ID-ALPHA"
    )
    second = write_ct_series(
        folder / "b", phantom_volume(3), patient_names=["BETA^TWO"] * 3, patient_id="ID-BETA"
    )
    if not second_has_identity:
        for path in second:
            dataset = pydicom.dcmread(path)
            del dataset.PatientName
            del dataset.PatientID
            dataset.save_as(path)
    return folder


def test_dicom_two_patients_rejected(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 21)
    upload = _two_patient_upload(tmp_path / "upload")
    counts = table_counts(factory)

    with pytest.raises(InputError, match=r"contains images of 2 patients") as caught:
        import_dicom(factory, upload, patient="21", store=store, secret=SECRET)

    message = str(caught.value)
    assert "--allow-mixed-patients" in message
    for identity in ("ALPHA", "BETA", "ID-ALPHA", "ID-BETA"):
        assert identity not in message
    assert table_counts(factory) == counts
    assert list(store.iter_keys()) == []


def test_dicom_two_patients_new_patient_not_created(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    upload = _two_patient_upload(tmp_path / "upload")
    with pytest.raises(InputError, match="2 patients"):
        import_dicom(
            factory, upload, patient="NEW-1", create_patient=True, store=store, secret=SECRET
        )
    assert table_counts(factory)["patient"] == 0


def test_dicom_mixed_patients_allowed_with_warning(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    patient_id = add_patient(factory, 22)
    upload = _two_patient_upload(tmp_path / "upload")

    report = import_dicom(
        factory, upload, patient="22", store=store, secret=SECRET, allow_mixed_patients=True
    )

    assert report.n_series_imported == 2
    assert {item.patient_id for item in report.series} == {patient_id}
    assert report.deidentification["n_patient_keys"] == 2
    assert len(report.warnings) == 1
    assert "contains images of 2 patients" in report.warnings[0]
    assert any(line.startswith("warning: the upload") for line in report.summary_lines())
    with factory() as session:
        run = session.scalars(select(ImportRun)).one()
        assert run.report["warnings"] == report.warnings
    assert "ALPHA" not in database_text(factory)


def test_dicom_headers_without_patient_not_counted(
    factory: sessionmaker[Session], store: SliceStore, tmp_path: Path
) -> None:
    add_patient(factory, 23)
    upload = _two_patient_upload(tmp_path / "upload", second_has_identity=False)

    report = import_dicom(factory, upload, patient="23", store=store, secret=SECRET)

    assert report.n_series_imported == 2
    # Imported, but the files without an identity are pointed out.
    (warning,) = report.warnings
    assert "neither PatientID nor PatientName" in warning
    assert report.deidentification["n_patient_keys"] == 1


def test_count_upload_patients_ignores_name_spelling(tmp_path: Path) -> None:
    from ictcf.imaging.dicom_series import plan_dicom_series

    files = write_ct_series(
        tmp_path / "upload", phantom_volume(3), patient_names=["DOE^JOHN", "DOE^JOHN^^", "doe^john"]
    )
    scan = plan_dicom_series(files)

    # PatientName is compared after normalisation: upper case, no trailing empty components.
    assert ingest_ct.count_upload_patients(scan.series, secret=SECRET) == 1
