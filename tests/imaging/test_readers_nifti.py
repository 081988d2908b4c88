"""NIfTI volumes: canonical orientation, LPS geometry and the Hounsfield-unit check."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ictcf.errors import InputError
from ictcf.imaging.nifti import classify_intensity_scale, read_nifti_volume

RNG_SEED = 31


def _phantom() -> np.ndarray:
    """HU phantom (x, y, z) = (6, 5, 4): air, a body block and a marker voxel."""
    volume = np.full((6, 5, 4), -1000.0, dtype=np.float32)
    volume[1:5, 1:4, :] = 40.0
    volume[1, 1, 0] = 700.0  # right (low x in RAS), posterior (low y), inferior (low z)
    return volume


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_ras_volume_to_canonical(tmp_path: Path) -> None:
    affine = np.diag([0.8, 0.9, 2.0, 1.0])
    affine[:3, 3] = (-10.0, -20.0, -30.0)
    volume = read_nifti_volume(_save(tmp_path / "ras.nii.gz", _phantom(), affine))
    assert volume.hu.shape == (4, 5, 6)
    assert volume.geometry.spacing_mm == pytest.approx((2.0, 0.9, 0.8))
    np.testing.assert_allclose(volume.geometry.direction, np.eye(3), atol=1e-12)
    # Canonical (slices S, rows P, columns L): the marker is inferior, posterior, right.
    assert volume.hu[0, -2, -2] == 700.0
    # Origin is the voxel at patient right-most, anterior-most, inferior-most, in LPS.
    np.testing.assert_allclose(volume.geometry.origin_mm, [10.0 - 5 * 0.8, 20.0 - 4 * 0.9, -30.0])
    assert volume.intensity_scale == "hounsfield"


def test_flipped_affine_gives_same_array(tmp_path: Path) -> None:
    """B32 for NIfTI: the same phantom stored with y flipped reads identically."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    flipped_affine = affine.copy()
    flipped_affine[1, 1] = -1.0
    flipped_affine[1, 3] = 4.0
    plain = read_nifti_volume(_save(tmp_path / "a.nii", _phantom(), affine))
    flipped = read_nifti_volume(
        _save(tmp_path / "b.nii", _phantom()[:, ::-1, :].copy(), flipped_affine)
    )
    np.testing.assert_array_equal(plain.hu, flipped.hu)
    np.testing.assert_allclose(plain.geometry.origin_mm, flipped.geometry.origin_mm)


@pytest.mark.parametrize(
    ("scale", "maker"),
    [
        ("unit_interval", lambda hu: np.clip((hu + 160) / 400, 0, 1).astype(np.float32)),
        ("uint8", lambda hu: np.round(np.clip((hu + 160) / 400, 0, 1) * 255).astype(np.uint8)),
    ],
)
def test_scaled_volume_flagged(tmp_path: Path, scale: str, maker) -> None:
    """B31: windowed data scaled to 0-1 or 0-255 is rejected, or flagged on request."""
    path = _save(tmp_path / f"{scale}.nii.gz", maker(_phantom()), np.eye(4))
    with pytest.raises(InputError, match="which are not Hounsfield units: give the CT in HU"):
        read_nifti_volume(path)
    volume = read_nifti_volume(path, require_hu=False)
    assert volume.intensity_scale == scale
    assert any("not Hounsfield units" in w for w in volume.warnings)


def test_classify_intensity_scale() -> None:
    assert classify_intensity_scale(np.array([0.0, 0.5, 1.0])) == "unit_interval"
    assert classify_intensity_scale(np.array([0, 17, 255])) == "uint8"
    assert classify_intensity_scale(np.array([-1000.0, 50.0])) == "hounsfield"
    assert classify_intensity_scale(np.array([3.0, 3.0])) == "constant"


def test_no_air_warned(tmp_path: Path) -> None:
    data = np.random.default_rng(RNG_SEED).uniform(-400, 300, size=(4, 4, 3)).astype(np.float32)
    volume = read_nifti_volume(_save(tmp_path / "soft.nii", data, np.eye(4)))
    assert any("holds no air" in w for w in volume.warnings)


def test_no_air_or_fat_rejected(tmp_path: Path) -> None:
    data = np.random.default_rng(RNG_SEED).uniform(-100, 300, size=(4, 4, 3)).astype(np.float32)
    path = _save(tmp_path / "soft.nii", data, np.eye(4))
    with pytest.raises(InputError, match=r"soft\.nii: not a CT in Hounsfield units: no voxel"):
        read_nifti_volume(path)


def test_four_d_rejected(tmp_path: Path) -> None:
    path = _save(tmp_path / "t.nii", np.zeros((3, 3, 3, 2), dtype=np.float32) - 1000, np.eye(4))
    with pytest.raises(InputError, match=r"t\.nii: NIfTI image has shape \(3, 3, 3, 2\)"):
        read_nifti_volume(path)


def test_not_nifti(tmp_path: Path) -> None:
    path = tmp_path / "x.nii"
    path.write_bytes(b"nonsense")
    with pytest.raises(InputError, match=r"x\.nii: NIfTI file could not be read"):
        read_nifti_volume(path)


def test_real_uiip_volume(shared_data: Path) -> None:
    """The UIIP volume (x axis pointing left) reads as (64, 128, 128) at 5 x 3 x 3 mm."""
    path = shared_data / "lung-masks" / "uiip-volumes" / "id001-128x128x64.nii.gz"
    volume = read_nifti_volume(path)
    assert volume.hu.shape == (64, 128, 128)
    assert volume.geometry.spacing_mm[0] == pytest.approx(5.0)
    np.testing.assert_allclose(volume.geometry.direction, np.eye(3), atol=1e-6)
    assert volume.hu.min() < -1000


def test_real_totalseg_volume(shared_data: Path) -> None:
    volume = read_nifti_volume(shared_data / "totalseg-example" / "example_ct.nii.gz")
    assert volume.hu.shape == (112, 101, 122)
    assert volume.geometry.spacing_mm == pytest.approx((3.0, 3.0, 3.0))
    # The file is RAS (x right, y anterior, z superior): canonical (S, P, L) reverses x and y.
    original = np.asarray(nib.load(shared_data / "totalseg-example" / "example_ct.nii.gz").dataobj)
    expected = np.transpose(original[::-1, ::-1, :], (2, 1, 0))
    np.testing.assert_array_equal(volume.hu, expected.astype(np.float32))
