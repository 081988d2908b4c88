"""JPEG/PNG slices: the single grey conversion, numeric ordering and labelled folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ictcf.errors import InputError
from ictcf.imaging.raster import (
    describe_raster,
    group_raster_series,
    load_grey_series,
    load_grey_slice,
    order_slice_files,
    scan_labelled_slices,
)

RNG_SEED = 41


def _grey(size: tuple[int, int] = (64, 64)) -> np.ndarray:
    return np.random.default_rng(RNG_SEED).integers(0, 256, size=size, dtype=np.uint8)


def test_grey_and_equal_rgb_identical(tmp_path: Path) -> None:
    """B41: mode L and RGB with equal channels give the same array."""
    grey = _grey()
    Image.fromarray(grey, mode="L").save(tmp_path / "l.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1), mode="RGB").save(tmp_path / "rgb.png")
    first = load_grey_slice(tmp_path / "l.png")
    second = load_grey_slice(tmp_path / "rgb.png")
    assert first.dtype == np.uint8
    assert first.shape == (64, 64)
    np.testing.assert_array_equal(first, grey)
    np.testing.assert_array_equal(second, grey)


def test_red_arrow_uses_bt601_luma(tmp_path: Path) -> None:
    """B43: a red annotation on a grey slice becomes luma 76, same in every caller."""
    grey = np.full((300, 300), 100, dtype=np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    rgb[140:160, 50:250] = (255, 0, 0)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "arrow.png")
    result = load_grey_slice(tmp_path / "arrow.png")
    assert result[150, 100] == 76
    assert result[0, 0] == 100
    np.testing.assert_array_equal(result, load_grey_slice(tmp_path / "arrow.png"))
    info = describe_raster(tmp_path / "arrow.png")
    assert info.colour_fraction == pytest.approx(20 * 200 / 300**2)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    image = np.zeros((20, 40), dtype=np.uint8)
    image[:, :5] = 255  # bright left edge
    pil = Image.fromarray(image, mode="L")
    exif = pil.getexif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    pil.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    result = load_grey_slice(tmp_path / "rot.jpg")
    assert result.shape == (40, 20)
    assert result[:5].mean() > 200  # the left edge is now at the top
    assert describe_raster(tmp_path / "rot.jpg").exif_orientation == 6


def test_rgba_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[0, 0, 3] = 0
    rgba[1:, :, 3] = 255
    rgba[0, 1:, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    result = load_grey_slice(tmp_path / "a.png")
    assert result[0, 0] == 0
    assert result[1, 1] == 200


def test_palette_and_16bit(tmp_path: Path) -> None:
    grey = _grey((8, 8))
    Image.fromarray(grey, mode="L").convert("P").save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_grey_slice(tmp_path / "p.png"), grey)
    wide = (grey.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "w.png")
    np.testing.assert_array_equal(load_grey_slice(tmp_path / "w.png"), grey)


def test_damaged_image_raises(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(InputError, match=r"bad\.jpg: image could not be read"):
        load_grey_slice(tmp_path / "bad.jpg")


def test_numeric_order_not_string_order() -> None:
    names = [
        "IMG-0001-00010.jpg",
        "IMG-0001-00009.jpg",
        "slice_10.png",
        "slice_2.png",
        "IMG-0001-00088.jpg",
    ]
    ordered = [p.name for p in order_slice_files(Path("s") / n for n in names)]
    assert ordered == [
        "IMG-0001-00009.jpg",
        "IMG-0001-00010.jpg",
        "IMG-0001-00088.jpg",
        "slice_2.png",
        "slice_10.png",
    ]


def test_group_series_by_prefix() -> None:
    paths = [
        Path("p/IMG-0002-00001.jpg"),
        Path("p/IMG-0001-00002.jpg"),
        Path("p/IMG-0001-00001.jpg"),
        Path("p/notes.txt"),
    ]
    groups = group_raster_series(paths)
    assert [(g.prefix, [f.name for f in g.files]) for g in groups] == [
        ("IMG-0001-", ["IMG-0001-00001.jpg", "IMG-0001-00002.jpg"]),
        ("IMG-0002-", ["IMG-0002-00001.jpg"]),
    ]


def test_labelled_folders(tmp_path: Path) -> None:
    for folder, names in {
        "Patient 1/NiCT": ["IMG-0001-00002.jpg"],
        "Patient 1/pCT": ["IMG-0001-00010.jpg", "IMG-0001-00009.jpg"],
        "nct": ["x.png"],
        "other": ["y.png"],
    }.items():
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            Image.fromarray(_grey((4, 4))).save(tmp_path / folder / name)
    labelled = scan_labelled_slices(tmp_path)
    assert [(p.name, label) for p, label in labelled] == [
        ("x.png", "nCT"),
        ("IMG-0001-00002.jpg", "NiCT"),
        ("IMG-0001-00009.jpg", "pCT"),
        ("IMG-0001-00010.jpg", "pCT"),
    ]


def test_labelled_folders_empty_raises(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no labelled slices found"):
        scan_labelled_slices(tmp_path)


def test_real_jpeg_series(shared_data: Path) -> None:
    files = sorted((shared_data / "jpeg-series").glob("*.jpg"))
    groups = group_raster_series(files)
    assert len(groups) == 1
    assert groups[0].files[0].name == "IMG-0001-00007.jpg"
    assert groups[0].files[-1].name == "IMG-0001-00056.jpg"
    volume = load_grey_series(groups[0].files[:3])
    assert volume.shape == (3, 512, 512)
    assert volume.dtype == np.uint8


def test_series_size_mismatch(tmp_path: Path) -> None:
    Image.fromarray(_grey((4, 4))).save(tmp_path / "a1.png")
    Image.fromarray(_grey((4, 5))).save(tmp_path / "a2.png")
    with pytest.raises(InputError, match=r"a2\.png: slice is 5x4 pixels but the series is 4x4"):
        load_grey_series([tmp_path / "a1.png", tmp_path / "a2.png"])
