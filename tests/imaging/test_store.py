"""Slice store, display windows, representative slices and patient linking."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ictcf.db.imaging_models import SliceLabel
from ictcf.errors import DataNotFoundError, InputError
from ictcf.imaging.linking import (
    SECRET_FILE_NAME,
    default_store_root,
    load_deidentification_secret,
    parse_patient_key,
)
from ictcf.imaging.representative import SliceCandidate, choose_representative_slices
from ictcf.imaging.store import SliceStore, encode_npz, encode_png, hu_storage_array
from ictcf.imaging.windows import LUNG_WINDOW, MEDIASTINAL_WINDOW, Window, apply_window

# -- store ----------------------------------------------------------------------------------


def test_npz_encoding_is_deterministic() -> None:
    arrays = {"hu": np.arange(12, dtype=np.int16).reshape(3, 4), "mask": np.eye(3, dtype=bool)}
    assert encode_npz(arrays) == encode_npz(dict(reversed(list(arrays.items()))))


def test_store_writes_identical_content_once(tmp_path: Path) -> None:
    store = SliceStore(tmp_path / "store")
    array = np.arange(20, dtype=np.float32).reshape(4, 5)
    first = store.put_arrays({"hu": array})
    second = store.put_arrays({"hu": array.copy()})
    assert first == second
    assert list(store.iter_keys()) == [first]
    assert np.array_equal(store.read_arrays(first)["hu"], array)


def test_store_key_layout_and_no_temp_leftovers(tmp_path: Path) -> None:
    store = SliceStore(tmp_path / "store")
    key = store.put_png(np.zeros((3, 4), dtype=np.uint8))
    folder, name = key.split("/")
    assert len(folder) == 2
    assert name.endswith(".png")
    assert (tmp_path / "store" / key).is_file()
    assert list((tmp_path / "store" / ".tmp").iterdir()) == []


@pytest.mark.parametrize("key", ["../etc/passwd", "ab/../../x.npz", "/abs/path.npz", "ab/cd.npz"])
def test_store_rejects_invalid_keys(tmp_path: Path, key: str) -> None:
    store = SliceStore(tmp_path)
    with pytest.raises(InputError, match="Invalid slice store key"):
        store.path_of(key)


def test_store_missing_blob_names_store(tmp_path: Path) -> None:
    store = SliceStore(tmp_path / "store")
    key = "ab/" + "c" * 62 + ".npz"
    with pytest.raises(DataNotFoundError, match=r"missing from .*--store"):
        store.read_bytes(key)


def test_mask_png_round_trip(tmp_path: Path) -> None:
    store = SliceStore(tmp_path)
    mask = np.zeros((32, 48), dtype=bool)
    mask[5:20, 10:30] = True
    restored = store.read_image(store.put_png(mask))
    assert restored.dtype == bool
    assert np.array_equal(restored, mask)


def test_png_is_single_channel_with_text(tmp_path: Path) -> None:
    grey = np.tile(np.arange(48, dtype=np.uint8), (32, 1))
    data = encode_png(grey, text={"ictcf:window": "lung W1500 L-600"})
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.mode == "L"
        assert picture.size == (48, 32)
        assert picture.text["ictcf:window"] == "lung W1500 L-600"


def test_hu_storage_is_int16_only_when_lossless() -> None:
    whole = np.array([[-1024.0, 0.0], [400.0, 3071.0]], dtype=np.float32)
    fractional = whole + 0.5
    assert hu_storage_array(whole).dtype == np.int16
    assert hu_storage_array(fractional).dtype == np.float32
    assert hu_storage_array(np.array([[40000.0]])).dtype == np.float32


def test_delete_and_stale_temp_cleanup(tmp_path: Path) -> None:
    store = SliceStore(tmp_path)
    key = store.put_jpeg(np.full((8, 8), 100, dtype=np.uint8))
    assert store.delete(key)
    assert not store.exists(key)
    assert not store.delete(key)
    temp = tmp_path / ".tmp" / "leftover.npz"
    temp.parent.mkdir(exist_ok=True)
    temp.write_bytes(b"partial")
    os.utime(temp, (0, 0))
    assert store.remove_stale_temp_files(older_than_s=60) == 1


# -- windows --------------------------------------------------------------------------------


def test_lung_window_limits() -> None:
    grey = apply_window(np.array([-1400.0, -1351.0, -600.0, 150.0, 151.0, 2000.0]), LUNG_WINDOW)
    assert grey.tolist()[0] == 0
    assert grey.tolist()[-1] == 255
    assert grey[2] in (127, 128)
    assert grey[4] == 255


def test_window_formula_matches_dicom_linear() -> None:
    hu = np.linspace(-300, 400, 71)
    centre, width = MEDIASTINAL_WINDOW.level, MEDIASTINAL_WINDOW.width
    expected = np.clip(((hu - (centre - 0.5)) / (width - 1) + 0.5) * 255, 0, 255)
    assert np.array_equal(apply_window(hu, MEDIASTINAL_WINDOW), np.rint(expected).astype(np.uint8))


def test_window_keeps_shape_and_orientation() -> None:
    hu = np.tile(np.linspace(-1000, 200, 48), (32, 1))
    grey = apply_window(hu, LUNG_WINDOW)
    assert grey.shape == (32, 48)
    assert np.all(np.diff(grey[0].astype(int)) >= 0)
    assert np.all(grey == grey[0])


def test_window_rejects_zero_width() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Window("bad", width=0.0, level=0.0)


def test_window_nan_renders_black() -> None:
    assert apply_window(np.array([np.nan]), LUNG_WINDOW).tolist() == [0]


# -- representative slices ------------------------------------------------------------------


def _profile(n: int, series_id: int = 1, start_id: int = 0) -> list[SliceCandidate]:
    areas = np.sin(np.linspace(0, np.pi, n)) * 10000
    return [
        SliceCandidate(
            slice_id=start_id + index,
            series_id=series_id,
            index=index,
            lung_area=float(area),
            informative=area > 500,
        )
        for index, area in enumerate(areas)
    ]


def test_representatives_spread_over_plateau() -> None:
    candidates = _profile(41)
    ranks = choose_representative_slices(candidates)
    assert sorted(ranks.values()) == [1, 2, 3, 4, 5]
    chosen = sorted(ranks)
    assert chosen[0] >= 10
    assert chosen[-1] <= 30
    assert chosen[-1] - chosen[0] >= 15
    best = max(chosen, key=lambda slice_id: candidates[slice_id].lung_area or 0)
    assert ranks[best] == 1


def test_representatives_prefer_pct_labels() -> None:
    candidates = _profile(20)
    labelled = [
        SliceCandidate(
            slice_id=100 + i,
            series_id=2,
            index=i,
            lung_area=50.0,
            informative=True,
            label=SliceLabel.PCT,
        )
        for i in range(3)
    ]
    ranks = choose_representative_slices(candidates + labelled)
    assert set(ranks) == {100, 101, 102}


def test_representatives_use_classifier_scores() -> None:
    candidates = [
        SliceCandidate(
            slice_id=i, series_id=1, index=i, lung_area=100.0, informative=True, score=i / 10
        )
        for i in range(10)
    ]
    ranks = choose_representative_slices(candidates)
    assert ranks == {9: 1, 8: 2, 7: 3, 6: 4, 5: 5}


def test_representatives_empty_without_lung() -> None:
    candidates = [
        SliceCandidate(slice_id=i, series_id=1, index=i, lung_area=0.0, informative=False)
        for i in range(6)
    ]
    assert choose_representative_slices(candidates) == {}


def test_representatives_across_single_slice_series() -> None:
    candidates = [
        SliceCandidate(
            slice_id=i, series_id=i, index=0, lung_area=float(100 * i), informative=i != 3
        )
        for i in range(1, 9)
    ]
    ranks = choose_representative_slices(candidates)
    assert ranks == {8: 1, 7: 2, 6: 3, 5: 4, 4: 5}


def test_representatives_fewer_than_five() -> None:
    ranks = choose_representative_slices(_profile(5)[1:4])
    assert sorted(ranks.values()) == [1, 2, 3]


# -- linking --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("17", ("export_number", 17)),
        ("Patient 17", ("export_number", 17)),
        ("patient17", ("export_number", 17)),
        (17, ("export_number", 17)),
        ("id:5", ("internal", 5)),
        ("P001", ("source_id", "P001")),
    ],
)
def test_parse_patient_key(key: str | int, expected: tuple[str, object]) -> None:
    assert parse_patient_key(key) == expected


def test_parse_patient_key_rejects_blank() -> None:
    with pytest.raises(InputError, match="patient key is empty"):
        parse_patient_key("  ")


def test_default_store_root_beside_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'x.sqlite3'}"
    assert default_store_root(url) == (tmp_path / "db" / "store").resolve()


def test_default_store_root_postgres_in_home(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/ictcf"
    assert default_store_root(url, home=tmp_path) == tmp_path / "store"


def test_deidentification_secret_created_once(tmp_path: Path) -> None:
    first = load_deidentification_secret(tmp_path)
    second = load_deidentification_secret(tmp_path)
    assert first == second
    assert len(first) >= 32
    mode = stat.S_IMODE((tmp_path / SECRET_FILE_NAME).stat().st_mode)
    assert mode == 0o600


def test_deidentification_secret_too_short(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE_NAME).write_text("abcd\n")
    with pytest.raises(InputError, match="restore it from a backup"):
        load_deidentification_secret(tmp_path)
