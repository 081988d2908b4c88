"""Lung masks against manual masks (Dice) and lung-free slices (NiCT recall) on real data.

Per-slice Dice is averaged over the slices where the reference or the predicted mask contains
lung. Slices empty in both are left out (see ``ictcf.imaging.quality.mean_slice_dice``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from ictcf.imaging.dicom_series import iter_hu_slices, plan_dicom_series
from ictcf.imaging.lung import (
    extract_lung_hu_slice,
    extract_lung_uint8_slice,
    segment_lungs_hu,
)
from ictcf.imaging.nifti import read_nifti_volume
from ictcf.imaging.quality import dice_coefficient, mean_slice_dice, measure_slice_quality
from ictcf.imaging.raster import load_grey_slice, order_slice_files

#: Reference masks are stored as interpolated 0/255 floats, with lung above the midpoint.
MASK_THRESHOLD = 127.0


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found at {path}")
    return path


@pytest.fixture(scope="module")
def uiip_folder(shared_data: Path) -> Path:
    return _require(shared_data / "lung-masks" / "uiip-volumes")


def _uiip_cases(folder: Path) -> list[str]:
    return sorted(
        path.name.removesuffix("-128x128x64.nii.gz")
        for path in folder.glob("id*-128x128x64.nii.gz")
    )


def _load_uiip(
    folder: Path, case: str
) -> tuple[NDArray[np.float32], NDArray[np.bool_], tuple[float, float, float]]:
    volume = read_nifti_volume(folder / f"{case}-128x128x64.nii.gz")
    reference = read_nifti_volume(folder / f"{case}-128x128x64-msk.nii.gz", require_hu=False)
    assert reference.hu.shape == volume.hu.shape
    spacing = tuple(float(value) for value in volume.geometry.spacing_mm)
    return volume.hu, reference.hu > MASK_THRESHOLD, (spacing[0], spacing[1], spacing[2])


def test_uiip_volumes_dice(uiip_folder: Path) -> None:
    cases = _uiip_cases(uiip_folder)
    assert cases, "no uiip volumes found"
    for case in cases:
        volume, reference, spacing = _load_uiip(uiip_folder, case)
        mask = segment_lungs_hu(volume, spacing_mm=spacing)
        volume_dice = dice_coefficient(reference, mask)
        slice_dice = mean_slice_dice(reference, mask)
        assert volume_dice >= 0.98, f"{case}: 3-D Dice {volume_dice:.4f}"
        assert slice_dice >= 0.95, f"{case}: mean per-slice Dice {slice_dice:.4f}"


def test_uiip_lung_free_ends_are_nict(uiip_folder: Path) -> None:
    for case in _uiip_cases(uiip_folder):
        volume, reference, spacing = _load_uiip(uiip_folder, case)
        mask = segment_lungs_hu(volume, spacing_mm=spacing)
        lung_free = np.flatnonzero(~reference.any(axis=(1, 2)))
        assert lung_free.size > 0
        for index in lung_free:
            qc = measure_slice_quality(mask[index], pixel_spacing_mm=spacing[1:])
            assert qc.nict_candidate, f"{case} slice {index}: {qc}"


@pytest.fixture(scope="module")
def abdomen(shared_data: Path) -> tuple[NDArray[np.float32], tuple[float, ...], list[int]]:
    folder = _require(shared_data / "totalseg-example")
    volume = read_nifti_volume(folder / "example_ct.nii.gz")
    with (folder / "per_slice_lung.csv").open(newline="", encoding="utf-8") as handle:
        lung_free = [int(row["z"]) for row in csv.DictReader(handle) if int(row["lung_px"]) == 0]
    spacing = tuple(float(value) for value in volume.geometry.spacing_mm)
    return volume.hu, spacing, lung_free


def test_abdomen_lung_free_slices_3d(
    abdomen: tuple[NDArray[np.float32], tuple[float, ...], list[int]],
) -> None:
    volume, spacing, lung_free = abdomen
    assert len(lung_free) >= 90
    mask = segment_lungs_hu(volume, spacing_mm=spacing)
    missed = [
        index
        for index in lung_free
        if not measure_slice_quality(mask[index], pixel_spacing_mm=spacing[1:]).nict_candidate
    ]
    assert missed == []
    # The lung bases in the top slices are found.
    assert mask[-1].sum() * spacing[1] * spacing[2] > 5_000.0


def test_abdomen_lung_free_slices_single(
    abdomen: tuple[NDArray[np.float32], tuple[float, ...], list[int]],
) -> None:
    volume, spacing, lung_free = abdomen
    missed = [
        index
        for index in lung_free
        if not extract_lung_hu_slice(volume[index], pixel_spacing_mm=spacing[1:]).qc.nict_candidate
    ]
    assert missed == []


@pytest.fixture(scope="module")
def finding_lungs(shared_data: Path) -> Path:
    return _require(shared_data / "lung-masks" / "finding-lungs")


def test_finding_lungs_full_resolution_dice(finding_lungs: Path) -> None:
    images = sorted((finding_lungs / "kmader_minitest_10_tif" / "images").glob("*.tif"))
    assert images
    scores = []
    for path in images:
        grey = np.asarray(Image.open(path).convert("L"))
        reference = np.asarray(Image.open(path.parent.parent / "masks" / path.name))[..., 0] > 127
        scores.append(dice_coefficient(reference, extract_lung_uint8_slice(grey).mask))
    assert float(np.mean(scores)) >= 0.93, f"Dice per slice: {np.round(scores, 3).tolist()}"


def test_finding_lungs_64px_dice(finding_lungs: Path) -> None:
    folder = finding_lungs / "kmader_all267_64px_npy"
    images = np.concatenate([np.load(folder / "x_train.npy"), np.load(folder / "x_test.npy")])
    masks = np.concatenate([np.load(folder / "y_train.npy"), np.load(folder / "y_test.npy")])
    scores = []
    for image, reference in zip(images[..., 0], masks[..., 0], strict=True):
        grey = np.round(image * 255.0).astype(np.uint8)
        scores.append(dice_coefficient(reference > 0.5, extract_lung_uint8_slice(grey).mask))
    assert len(scores) >= 200
    assert float(np.mean(scores)) >= 0.93


@pytest.mark.parametrize("case", ["P001", "cap001", "normal001"])
def test_chest_series_lungs_continuous(shared_data: Path, case: str) -> None:
    folder = _require(shared_data / "covid-ct-md" / case)
    scan = plan_dicom_series(sorted(folder.glob("*.dcm")))
    plan = max(scan.series, key=lambda item: len(item.frames))
    volume = np.stack([item.hu for item in iter_hu_slices(plan)])
    spacing = tuple(float(value) for value in plan.geometry.spacing_mm)
    mask = segment_lungs_hu(volume, spacing_mm=spacing)
    volume_ml = mask.sum() * spacing[0] * spacing[1] * spacing[2] / 1000.0
    assert 2000.0 < volume_ml < 9000.0
    # Every slice between the first and the last slice with lung shows lung.
    areas = mask.sum(axis=(1, 2))
    with_lung = np.flatnonzero(areas)
    assert (areas[with_lung[0] : with_lung[-1] + 1] > 0).all()
    # Both lungs on the middle slice with lung.
    middle = measure_slice_quality(mask[with_lung[len(with_lung) // 2]])
    assert middle.n_components >= 2
    assert middle.implausible_reason is None


def test_jpeg_series_lung_area_continuous(shared_data: Path) -> None:
    folder = _require(shared_data / "jpeg-series")
    files = order_slice_files(sorted(folder.glob("*.jpg")))
    assert len(files) >= 40
    areas = np.array(
        [extract_lung_uint8_slice(load_grey_slice(path)).qc.lung_area_px for path in files]
    )
    shares = areas / float(512 * 512)
    # Neighbouring slices differ little in lung area. A threshold that drops the ground-glass
    # opacities on some slices and not on others makes the area jump.
    large = shares[:-1] > 0.03
    ratios = shares[1:][large] / shares[:-1][large]
    assert ratios.min() > 0.65
    assert ratios.max() < 1.5
    assert shares.max() > 0.1
    with_lung = np.flatnonzero(areas)
    assert (areas[with_lung[0] : with_lung[-1] + 1] > 0).all()


#: (slice index in anatomical order from the feet, row, column) inside three posterior
#: subpleural consolidations of COVID-CT-MD P001, on slices labelled as infected. Each lies
#: at least 7 mm inside its lesion, which replaces the pleura over several centimetres.
P001_SUBPLEURAL_CONSOLIDATIONS = ((45, 367, 163), (59, 361, 147), (94, 330, 367))


def test_covid_subpleural_consolidation_kept(shared_data: Path) -> None:
    folder = _require(shared_data / "covid-ct-md" / "P001")
    scan = plan_dicom_series(sorted(folder.glob("*.dcm")))
    plan = max(scan.series, key=lambda item: len(item.frames))
    volume = np.stack([item.hu for item in iter_hu_slices(plan)])
    spacing = tuple(float(value) for value in plan.geometry.spacing_mm)
    assert volume.shape == (148, 512, 512)
    mask = segment_lungs_hu(volume, spacing_mm=spacing)
    rows, columns = np.mgrid[-4:5, -4:5]
    disc = rows**2 + columns**2 <= 16  # 3 mm radius at 0.75 mm pixels
    for index, row, column in P001_SUBPLEURAL_CONSOLIDATIONS:
        # Partly aerated: between aerated lung and soft tissue.
        assert -400.0 < volume[index, row, column] < 0.0
        around = mask[index, row - 4 : row + 5, column - 4 : column + 5]
        assert around[disc].all(), f"slice {index}: consolidation at ({row}, {column}) left out"
