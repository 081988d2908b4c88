"""Lung extraction on generated HU phantoms: body, table, outside air, trachea and crops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import ndimage

from ictcf.errors import InputError
from ictcf.imaging.lung import (
    LUNG_CROP_SIZE,
    _downsample,
    body_mask_hu,
    extract_lung_hu_slice,
    extract_lung_uint8_slice,
    lung_crop_box,
    segment_lungs_hu,
)
from ictcf.imaging.quality import dice_coefficient

AIR_HU = -1000.0
BODY_HU = 40.0
LUNG_HU = -850.0
SIZE = 128
#: (slice, row, column) spacing of the 3-D phantoms in mm.
SPACING = (2.5, 2.5, 2.5)


def _ellipse(
    shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]
) -> NDArray[np.bool_]:
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    return ((rows - centre[0]) / radii[0]) ** 2 + ((columns - centre[1]) / radii[1]) ** 2 <= 1.0


def _ellipsoid(
    shape: tuple[int, int, int],
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
) -> NDArray[np.bool_]:
    planes, rows, columns = np.mgrid[: shape[0], : shape[1], : shape[2]]
    return (
        ((planes - centre[0]) / radii[0]) ** 2
        + ((rows - centre[1]) / radii[1]) ** 2
        + ((columns - centre[2]) / radii[2]) ** 2
    ) <= 1.0


def _noisy(volume: NDArray[np.float32], seed: int = 0) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    return (volume + rng.normal(0.0, 15.0, volume.shape)).astype(np.float32)


def _slice_phantom() -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """One 128x128 slice: air, a body ellipse and two lung ellipses."""
    image = np.full((SIZE, SIZE), AIR_HU, dtype=np.float32)
    image[_ellipse(image.shape, (64, 64), (40, 56))] = BODY_HU
    lungs = _ellipse(image.shape, (62, 40), (28, 17)) | _ellipse(image.shape, (62, 88), (28, 17))
    image[lungs] = LUNG_HU
    return _noisy(image[np.newaxis])[0], lungs


def _volume_phantom(
    n_slices: int = 30,
    *,
    right_radius: float = 17.0,
    left_radius: float = 17.0,
    gap: float = 6.0,
    lung_slices: tuple[int, int] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_]]:
    """A body cylinder with two lung ellipsoids; returns (volume, lungs, body).

    ``lung_slices`` (first, last) limits the lungs' extent; by default they fill the volume
    but for two slices at each end.
    """
    shape = (n_slices, SIZE, SIZE)
    volume = np.full(shape, AIR_HU, dtype=np.float32)
    body_plane = _ellipse((SIZE, SIZE), (64, 64), (42, 58))
    body = np.broadcast_to(body_plane, shape).copy()
    volume[body] = BODY_HU
    first, last = lung_slices if lung_slices is not None else (2, n_slices - 3)
    centre_slice = (first + last) / 2.0
    half_height = (last - first) / 2.0 + 0.5
    right = _ellipsoid(
        shape, (centre_slice, 62, 64 - gap / 2 - right_radius), (half_height, 28, right_radius)
    )
    left = _ellipsoid(
        shape, (centre_slice, 62, 64 + gap / 2 + left_radius), (half_height, 28, left_radius)
    )
    lungs = right | left
    volume[lungs] = LUNG_HU
    return _noisy(volume), lungs, body


def test_single_slice_labels_both_lungs() -> None:
    image, lungs = _slice_phantom()
    extraction = extract_lung_hu_slice(image, pixel_spacing_mm=(2.5, 2.5))
    assert dice_coefficient(lungs, extraction.mask) > 0.97
    assert extraction.qc.n_components == 2
    assert not extraction.qc.nict_candidate
    assert extraction.qc.implausible_reason is None


def test_single_slice_matches_slice_inside_volume() -> None:
    image, _ = _slice_phantom()
    volume = np.repeat(image[np.newaxis], 9, axis=0)
    inside_volume = segment_lungs_hu(volume, spacing_mm=(2.5, 2.5, 2.5))[4]
    alone = extract_lung_hu_slice(image, pixel_spacing_mm=(2.5, 2.5)).mask
    assert dice_coefficient(inside_volume, alone) > 0.99


def test_touching_lungs_keep_only_intrathoracic_voxels() -> None:
    volume, lungs, body = _volume_phantom(gap=0.0)
    # A -850 HU blob outside the body, in the air next to it.
    blob = _ellipsoid(volume.shape, (15, 10, 64), (4, 4, 6))
    assert not (blob & body).any()
    volume[blob] = LUNG_HU
    mask = segment_lungs_hu(volume, spacing_mm=SPACING)
    assert not (mask & ~body).any()
    assert not (mask & blob).any()
    assert dice_coefficient(lungs, mask) > 0.97
    assert mask[15, 62, 47]
    assert mask[15, 62, 81]


def test_table_with_hollow_core_is_excluded() -> None:
    image, lungs = _slice_phantom()
    # Table slab below the body with an air gap, and a hollow air core inside the slab.
    table = np.zeros_like(lungs)
    table[112:122, 10:118] = True
    core = np.zeros_like(lungs)
    core[115:119, 20:108] = True
    image[table] = 300.0
    image[core] = AIR_HU
    body = body_mask_hu(image[np.newaxis], spacing_mm=(2.5, 2.5, 2.5))[0]
    assert not (body & table).any()
    assert not body[106:110, 64].any()  # the air gap between body and table
    extraction = extract_lung_hu_slice(image, pixel_spacing_mm=(2.5, 2.5))
    assert not (extraction.mask & table).any()
    assert dice_coefficient(lungs, extraction.mask) > 0.97


def test_unequal_lungs_are_both_kept() -> None:
    # Radii chosen so that the right lung has about 60 % of the lung volume.
    volume, lungs, _ = _volume_phantom(right_radius=20.0, left_radius=13.4, gap=10.0)
    right_share = lungs[:, :, :64].sum() / lungs.sum()
    assert 0.58 < right_share < 0.62
    mask = segment_lungs_hu(volume, spacing_mm=SPACING)
    assert dice_coefficient(lungs[:, :, :64], mask[:, :, :64]) > 0.97
    assert dice_coefficient(lungs[:, :, 64:], mask[:, :, 64:]) > 0.97


def _trachea_phantom() -> tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_]]:
    """Lungs in slices 2-27 and a -1000 HU trachea from the top slice down to a carina."""
    volume, lungs, _ = _volume_phantom(n_slices=40, gap=14.0, lung_slices=(2, 27))
    shape = volume.shape
    airway = np.zeros(shape, dtype=bool)
    tube = _ellipse((SIZE, SIZE), (62, 64), (5, 5))
    airway[20:] = tube
    # Main bronchi: horizontal tubes from the carina into both lungs.
    rows, columns = np.mgrid[:SIZE, :SIZE]
    bronchi = (np.abs(rows - 62) <= 2) & (np.abs(columns - 64) <= 22)
    airway[18:22] |= bronchi
    volume[airway] = AIR_HU
    lungs &= ~airway
    return _noisy(volume, seed=3), lungs, airway


def test_trachea_and_main_bronchi_are_excluded() -> None:
    volume, lungs, airway = _trachea_phantom()
    mask = segment_lungs_hu(volume, spacing_mm=SPACING)
    assert not (mask & airway).any()
    # The lung volume excludes the tube (the lungs lose at most a one-pixel rim around it).
    assert mask.sum() <= lungs.sum() * 1.02
    assert dice_coefficient(lungs, mask) > 0.96


def test_trachea_removal_independent_of_slice_order() -> None:
    volume, _, _ = _trachea_phantom()
    head_first = segment_lungs_hu(volume, spacing_mm=SPACING)
    feet_first = segment_lungs_hu(volume[::-1], spacing_mm=SPACING)[::-1]
    assert np.array_equal(head_first, feet_first)


@pytest.mark.parametrize("scale", ["unit", "uint8"])
def test_non_hu_input_rejected(scale: str) -> None:
    image, _ = _slice_phantom()
    windowed = (np.clip(image, -160.0, 240.0) + 160.0) / 400.0
    data: NDArray[np.generic] = (
        windowed.astype(np.float32)
        if scale == "unit"
        else np.round(windowed * 255).astype(np.uint8)
    )
    with pytest.raises(InputError, match=r"not (look like )?Hounsfield units"):
        extract_lung_hu_slice(data)
    with pytest.raises(InputError, match="as a JPEG or PNG series"):
        segment_lungs_hu(data[np.newaxis])


def test_windowed_uint8_slice_goes_through_grey_path() -> None:
    image, lungs = _slice_phantom()
    windowed = (np.clip(image, -1350.0, 150.0) + 1350.0) / 1500.0
    grey = np.round(windowed * 255).astype(np.uint8)
    extraction = extract_lung_uint8_slice(grey)
    assert dice_coefficient(lungs, extraction.mask) > 0.95
    assert extraction.qc.n_components == 2


def test_hu_error_names_value_range() -> None:
    with pytest.raises(InputError, match=r"values 0 to 1"):
        extract_lung_hu_slice(np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64))


def test_nan_and_bad_shapes_rejected() -> None:
    image, _ = _slice_phantom()
    broken = image.copy()
    broken[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        extract_lung_hu_slice(broken)
    with pytest.raises(InputError, match=r"expected \(rows, columns\)"):
        extract_lung_hu_slice(image[np.newaxis])
    with pytest.raises(InputError, match=r"\(slices, rows, columns\)"):
        segment_lungs_hu(image)
    with pytest.raises(InputError, match="voxel spacing"):
        segment_lungs_hu(image[np.newaxis], spacing_mm=(1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="pixel spacing"):
        extract_lung_hu_slice(image, pixel_spacing_mm=(1.0,))
    with pytest.raises(InputError, match="mask shape"):
        extract_lung_hu_slice(image, np.zeros((4, 4), dtype=bool))


def test_slice_without_lung_is_nict_candidate() -> None:
    image = np.full((SIZE, SIZE), AIR_HU, dtype=np.float32)
    image[_ellipse(image.shape, (64, 64), (40, 56))] = BODY_HU
    extraction = extract_lung_hu_slice(_noisy(image[np.newaxis])[0], pixel_spacing_mm=(2.5, 2.5))
    assert extraction.qc.empty
    assert extraction.qc.nict_candidate
    assert extraction.crop_box == (0, SIZE, 0, SIZE)
    assert extraction.image_crop.shape == (LUNG_CROP_SIZE, LUNG_CROP_SIZE)
    assert not extraction.mask_crop.any()


def test_gas_pocket_is_not_lung() -> None:
    # An abdomen-like slice: body with a pure-air bowel gas pocket.
    image = np.full((SIZE, SIZE), AIR_HU, dtype=np.float32)
    image[_ellipse(image.shape, (64, 64), (40, 56))] = BODY_HU
    image[_ellipse(image.shape, (60, 50), (10, 14))] = AIR_HU
    volume = _noisy(np.repeat(image[np.newaxis], 12, axis=0))
    assert not segment_lungs_hu(volume, spacing_mm=SPACING).any()
    assert extract_lung_hu_slice(volume[5], pixel_spacing_mm=(2.5, 2.5)).qc.nict_candidate


def test_crop_is_square_around_lungs() -> None:
    image, lungs = _slice_phantom()
    extraction = extract_lung_hu_slice(image, lungs, pixel_spacing_mm=(2.5, 2.5))
    row0, row1, col0, col1 = extraction.crop_box
    assert row1 - row0 == col1 - col0
    rows = np.flatnonzero(lungs.any(axis=1))
    columns = np.flatnonzero(lungs.any(axis=0))
    assert row0 <= rows[0]
    assert rows[-1] < row1
    assert col0 <= columns[0]
    assert columns[-1] < col1
    assert extraction.image_crop.dtype == np.float32
    assert extraction.image_crop.shape == (LUNG_CROP_SIZE, LUNG_CROP_SIZE)
    assert extraction.mask_crop.shape == (LUNG_CROP_SIZE, LUNG_CROP_SIZE)
    # The crop keeps the lung share of the box.
    box_share = lungs.sum() / float((row1 - row0) * (col1 - col0))
    assert abs(extraction.mask_crop.mean() - box_share) < 0.02
    # Lung pixels in the crop hold lung HU.
    assert np.median(extraction.image_crop[extraction.mask_crop]) < -800


def test_crop_box_beyond_image_is_padded_with_air() -> None:
    mask = np.zeros((40, 100), dtype=bool)
    mask[5:35, 2:98] = True
    box = lung_crop_box(mask)
    assert box[1] - box[0] == box[3] - box[2]
    assert box[0] < 0
    assert box[1] > 40
    image = np.where(mask, LUNG_HU, BODY_HU).astype(np.float32)
    image[0, 0] = AIR_HU
    extraction = extract_lung_hu_slice(image, mask)
    assert extraction.image_crop[0, 100] == pytest.approx(-1000.0)


def test_dense_mass_kept_only_by_default() -> None:
    volume, lungs, _ = _volume_phantom()
    # A 40 HU mass of 12 mm radius inside the right lung, and small vessels in both lungs.
    mass = _ellipsoid(volume.shape, (15, 62, 47), (2.5, 4.8, 4.8))
    vessels = np.zeros_like(lungs)
    vessels[:, 55, 40] = True
    vessels[:, 70, 85] = True
    vessels &= lungs
    volume[mass | vessels] = BODY_HU
    with_dense = segment_lungs_hu(volume, spacing_mm=SPACING)
    aerated = segment_lungs_hu(volume, spacing_mm=SPACING, keep_dense_regions=False)
    assert with_dense[mass].all()
    assert not aerated[mass].any()
    assert with_dense[vessels].all()
    assert aerated[vessels].all()
    assert dice_coefficient(lungs, with_dense) > 0.97


def test_consolidation_near_pleura_kept() -> None:
    image, lungs = _slice_phantom()
    # A 40 HU consolidation of 7.5 mm radius in the right lung, 5 mm (two pixels of aerated
    # lung) from the lateral pleura.
    consolidation = _ellipse(lungs.shape, (62, 28), (3, 3))
    lateral_border = int(np.flatnonzero(lungs[62])[0])
    assert lateral_border == 23
    assert lungs[consolidation].all()
    image[consolidation] = BODY_HU
    extraction = extract_lung_hu_slice(image, pixel_spacing_mm=(2.5, 2.5))
    assert extraction.mask[consolidation].all()


def test_table_attached_by_bridges_is_excluded() -> None:
    image, lungs = _slice_phantom()
    table = np.zeros_like(lungs)
    table[112:122, 10:118] = True
    core = np.zeros_like(lungs)
    core[115:119, 20:108] = True
    image[table] = 300.0
    image[core] = AIR_HU
    # Two 10 mm wide soft-tissue bridges close the air gap between body and table, so the
    # gap and the hollow core become air enclosed by the body.
    image[100:113, 30:34] = BODY_HU
    image[100:113, 94:98] = BODY_HU
    gap = np.zeros_like(lungs)
    gap[105:112, :] = True
    volume = _noisy(np.repeat(image[np.newaxis], 10, axis=0), seed=5)
    mask = segment_lungs_hu(volume, spacing_mm=SPACING)
    assert not (mask & table).any()
    assert not (mask & gap).any()
    assert dice_coefficient(np.repeat(lungs[np.newaxis], 10, axis=0), mask) > 0.97
    single = extract_lung_hu_slice(volume[5], pixel_spacing_mm=(2.5, 2.5)).mask
    assert not (single & (table | gap)).any()


def test_constant_air_slice_is_nict() -> None:
    extraction = extract_lung_hu_slice(np.full((64, 64), AIR_HU, dtype=np.float32))
    assert extraction.qc.empty
    assert extraction.qc.nict_candidate


@pytest.mark.parametrize(
    "values",
    [
        np.linspace(0.0, 4095.0, 64 * 64).reshape(64, 64),  # stored values, rescale not applied
        np.linspace(-3.0, 3.0, 64 * 64).reshape(64, 64),  # z-scored intensities
    ],
)
def test_other_non_hu_scales_rejected(values: NDArray[np.float64]) -> None:
    with pytest.raises(InputError, match="does not look like Hounsfield units"):
        extract_lung_hu_slice(values)


# --- costal consolidation ---------------------------------------------------------------------

#: Pixel size of the chest phantom with ribs, in mm (fine enough for 7.5 mm thick ribs).
CHEST_PIXEL_MM = 1.5
CHEST_SIZE = 256
CHEST_CENTRE = (128.0, 128.0)
#: Half-axes (rows, columns) of the ellipse inside the ribs, in pixels. The pleural cavity is
#: 2 pixels (3 mm) smaller.
RIB_INNER_RADII = (66.0, 94.0)
BONE_HU = 700.0
#: Partly aerated consolidation (consolidation mixed with ground glass), as in COVID-19
#: pneumonia. Its median lies far below fat and soft tissue.
CONSOLIDATION_HU = -250.0
#: Pleural fluid.
FLUID_HU = 10.0


@dataclass(frozen=True)
class ChestPhantom:
    """One axial slice with ribs, spine, sternum, scapulae, heart and two lungs."""

    image: NDArray[np.float32]
    lungs: NDArray[np.bool_]
    cavity: NDArray[np.bool_]
    heart: NDArray[np.bool_]
    mediastinum: NDArray[np.bool_]
    bone: NDArray[np.bool_]


def _chest_phantom(seed: int = 0) -> ChestPhantom:
    """Build the chest slice, with rows from anterior (0) to posterior.

    The lung left in the image is the right lung. The lungs fill the pleural cavity except for
    the mediastinum, the heart (which indents the left lung) and the spine.
    """
    shape = (CHEST_SIZE, CHEST_SIZE)
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    angle = np.degrees(np.arctan2(rows - CHEST_CENTRE[0], columns - CHEST_CENTRE[1])) % 360.0
    body = _ellipse(shape, CHEST_CENTRE, (84, 118))
    cavity = _ellipse(shape, CHEST_CENTRE, (RIB_INNER_RADII[0] - 2, RIB_INNER_RADII[1] - 2))
    ring = _ellipse(shape, CHEST_CENTRE, (71, 99)) & ~_ellipse(shape, CHEST_CENTRE, RIB_INNER_RADII)
    # Rib sections of 20 degrees with 10 degree intercostal spaces, none near the midline.
    near_midline = (np.abs(angle - 90.0) < 15.0) | (np.abs(angle - 270.0) < 15.0)
    ribs = ring & ((angle % 30.0) < 20.0) & ~near_midline
    sternum = _ellipse(shape, (58, 128), (5, 14))
    spine = _ellipse(shape, (190, 128), (14, 14))
    # Scapulae: bone plates behind the ribs, with muscle in between.
    scapulae = (
        _ellipse(shape, CHEST_CENTRE, (80, 110))
        & ~_ellipse(shape, CHEST_CENTRE, (77, 107))
        & (((angle > 115.0) & (angle < 150.0)) | ((angle > 30.0) & (angle < 65.0)))
    )
    mediastinum = body & (np.abs(columns - 128) <= 14)
    heart = _ellipse(shape, (108, 142), (30, 34))
    lungs = cavity & ~mediastinum & ~heart & ~spine & ~sternum
    bone = ribs | sternum | spine | scapulae
    image = np.full(shape, AIR_HU, dtype=np.float32)
    image[body] = BODY_HU
    image[lungs] = LUNG_HU
    image[bone] = BONE_HU
    return ChestPhantom(
        image=_noisy(image[np.newaxis], seed=seed)[0],
        lungs=lungs,
        cavity=cavity,
        heart=heart,
        mediastinum=mediastinum,
        bone=bone,
    )


def _replace_lung(
    phantom: ChestPhantom,
    centre: tuple[float, float],
    radii: tuple[float, float],
    hu: float,
    *,
    seed: int = 1,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Replace the lung inside an ellipse with a dense region of ``hu`` (80 HU noise)."""
    region = _ellipse(phantom.lungs.shape, centre, radii) & phantom.lungs
    rng = np.random.default_rng(seed)
    image = phantom.image.copy()
    image[region] = hu + rng.normal(0.0, 80.0, int(region.sum()))
    return image, region


def _pleural_contact_mm(region: NDArray[np.bool_], cavity: NDArray[np.bool_]) -> float:
    edge = cavity & ~ndimage.binary_erosion(cavity)
    return float((edge & region).sum()) * CHEST_PIXEL_MM


def _chest_masks(image: NDArray[np.float32]) -> dict[str, NDArray[np.bool_]]:
    """Lung masks of the slice alone and of the slice inside a 7-slice volume."""
    spacing = (CHEST_PIXEL_MM, CHEST_PIXEL_MM)
    volume = np.repeat(image[np.newaxis], 7, axis=0)
    return {
        "single slice": extract_lung_hu_slice(image, pixel_spacing_mm=spacing).mask,
        "volume": segment_lungs_hu(volume, spacing_mm=(2.5, *spacing))[3],
    }


#: (centre, radii) in pixels of consolidations at the costal pleura of the right lung.
COSTAL_CONSOLIDATIONS = {
    "posterior": ((186.0, 78.0), (16.0, 20.0)),
    "lateral": ((120.0, 36.0), (15.0, 12.0)),
}


@pytest.mark.parametrize("where", sorted(COSTAL_CONSOLIDATIONS))
def test_broad_costal_consolidation_kept(where: str) -> None:
    phantom = _chest_phantom()
    centre, radii = COSTAL_CONSOLIDATIONS[where]
    image, consolidation = _replace_lung(phantom, centre, radii, CONSOLIDATION_HU)
    # Broad-based: 40-50 mm of pleural contact, far more than the 5 mm closing bridges.
    assert _pleural_contact_mm(consolidation, phantom.cavity) >= 40.0
    for path, mask in _chest_masks(image).items():
        kept_share = float(mask[consolidation].mean())
        assert kept_share >= 0.9, f"{path}: {kept_share:.2f} of the consolidation kept"
        assert dice_coefficient(phantom.lungs, mask) > 0.98, path


@pytest.mark.parametrize("where", sorted(COSTAL_CONSOLIDATIONS))
def test_costal_consolidation_stops_at_ribs(where: str) -> None:
    phantom = _chest_phantom()
    centre, radii = COSTAL_CONSOLIDATIONS[where]
    image, _ = _replace_lung(phantom, centre, radii, CONSOLIDATION_HU)
    inside_ribs = _ellipse(phantom.lungs.shape, CHEST_CENTRE, RIB_INNER_RADII)
    for path, mask in _chest_masks(image).items():
        # No rib, intercostal muscle, scapula or muscle between ribs and scapula.
        assert not (mask & phantom.bone).any(), path
        assert not (mask & ~inside_ribs).any(), path


def test_costal_consolidation_leaves_mediastinum_out() -> None:
    phantom = _chest_phantom()
    # Consolidation on both sides, the left one next to the heart's concavity.
    image, _ = _replace_lung(phantom, *COSTAL_CONSOLIDATIONS["posterior"], CONSOLIDATION_HU)
    left = _chest_phantom()
    left_image, _ = _replace_lung(left, (186.0, 178.0), (16.0, 20.0), CONSOLIDATION_HU)
    image[:, 128:] = left_image[:, 128:]
    heart_inside = ndimage.binary_erosion(phantom.heart)
    for path, mask in _chest_masks(image).items():
        assert not (mask & heart_inside).any(), path
        assert not (mask & phantom.mediastinum).any(), path


def test_paravertebral_aorta_left_out() -> None:
    phantom = _chest_phantom()
    # A descending aorta in the left paravertebral gutter indents the lung beside the spine.
    # A convex hull of that lung and its ribs would take it.
    aorta = _ellipse(phantom.lungs.shape, (170.0, 150.0), (9.0, 9.0)) & ~phantom.mediastinum
    image, consolidation = _replace_lung(phantom, (186.0, 178.0), (16.0, 20.0), CONSOLIDATION_HU)
    rng = np.random.default_rng(2)
    image[aorta] = BODY_HU + rng.normal(0.0, 15.0, int(aorta.sum()))
    consolidation &= ~aorta
    for path, mask in _chest_masks(image).items():
        assert float(mask[consolidation].mean()) >= 0.9, path
        assert not (mask & ndimage.binary_erosion(aorta)).any(), path


def test_pleural_fluid_between_lung_and_ribs_left_out() -> None:
    phantom = _chest_phantom()
    image, fluid = _replace_lung(phantom, *COSTAL_CONSOLIDATIONS["posterior"], FLUID_HU)
    for path, mask in _chest_masks(image).items():
        # The 5 mm closing at the notch's rim takes a few pixels, but the fluid stays out.
        assert float(mask[fluid].mean()) < 0.02, path


@pytest.mark.parametrize("pixel_mm", [1.5, 0.7])
def test_int16_volume_gives_same_mask(pixel_mm: float) -> None:
    # 0.7 mm pixels run on the 2x2-averaged working grid, 1.5 mm pixels on the input grid.
    phantom = _chest_phantom()
    image, _ = _replace_lung(phantom, *COSTAL_CONSOLIDATIONS["posterior"], CONSOLIDATION_HU)
    volume = np.rint(np.repeat(image[np.newaxis], 5, axis=0)).astype(np.float32)
    spacing = (2.5, pixel_mm, pixel_mm)
    as_float = segment_lungs_hu(volume, spacing_mm=spacing)
    as_int16 = segment_lungs_hu(volume.astype(np.int16), spacing_mm=spacing)
    assert as_float.any()
    assert np.array_equal(as_float, as_int16)
    # The block means of the working grid are the float ones, not rounded to integers.
    assert np.array_equal(_downsample(volume, 2), _downsample(volume.astype(np.int16), 2))
