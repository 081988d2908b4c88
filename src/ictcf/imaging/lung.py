"""Lung parenchyma extraction from CT slices and volumes.

Two paths give the same output, a :class:`LungExtraction` with a full-resolution lung mask, a
square crop around the lungs resized to ``LUNG_CROP_SIZE`` x ``LUNG_CROP_SIZE`` pixels with
bilinear interpolation (the input size of the HUST-19 slice classifier) and per-slice QC:

* Hounsfield units (DICOM, NIfTI): :func:`segment_lungs_hu` works on a whole volume in 3-D and
  :func:`extract_lung_hu_slice` crops one slice of it.
* 8-bit grey slices (JPEG/PNG exports): :func:`extract_lung_uint8_slice` follows the method of
  Ning et al. (Nature Biomedical Engineering 4, 1197-1207, 2020): a threshold adapted to the
  image, the largest connected component as the body, the background flood-filled from the
  border, and the dark regions inside the body as lung.

The HU method, step by step (``docs/lung-extraction.md`` has the reasons and limits):

0. Slices with pixels finer than ``WORKING_PIXEL_MM`` are averaged over pixel blocks first;
   the mask is resized back at the end.
1. Body: voxels above ``BODY_THRESHOLD_HU``, opened in-plane to cut thin bridges to the table
   or sheets, the largest in-plane component per slice, holes filled. The table, outside air
   and the padding outside the field of view are outside it.
2. Candidates: voxels below ``LUNG_THRESHOLD_HU`` inside the body.
3. Airways: the trachea is a stack of small, almost pure air regions near the body midline
   over at least ``AIRWAY_MIN_LENGTH_MM``. The longest stack is followed into the main
   bronchi through pure-air regions for at most ``AIRWAY_MAX_EXTENSION_MM``. On a single
   slice only the in-plane test applies: a small, pure-air midline region is taken as
   trachea. The airways and a one-pixel ring around them leave the candidates.
4. Lungs: 3-D components of the remaining candidates that are large enough
   (``LUNG_MIN_VOLUME_MM3``, or ``LUNG_MIN_AREA_MM2`` on a single slice) and mostly made of
   aerated lung densities (``AERATED_RANGE_HU``, at most ``LUNG_MAX_GAS_FRACTION`` pure gas).
   This rejects bowel and stomach gas, skin folds, noise in fat and the trachea stump.
5. Dense regions (consolidation, masses, vessels) are kept inside each lung: per lung and
   slice a closing with a ``DENSE_CLOSING_RADIUS_MM`` disc, then hole filling, limited to the
   body and to voxels below ``BONE_THRESHOLD_HU``. Partly aerated consolidation that
   replaces the costal pleura (too broad for the closing) is put back up to the ribs: it
   lies inside the convex hull of the lung and its ribs, borders the lung, is lined by ribs
   and has a median below ``CONSOLIDATION_MAX_MEDIAN_HU``.
6. In-plane lung regions smaller than ``LUNG_MIN_REGION_AREA_MM2`` are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage as ndi
from skimage.filters import threshold_multiotsu, threshold_otsu

from ictcf.errors import InputError
from ictcf.imaging.quality import SliceQC, check_pixel_spacing, measure_slice_quality

logger = logging.getLogger(__name__)

#: A CT volume in HU as the HU path processes it: float32, or int16 when the caller stores
#: integral HU that way (half the memory, with the same thresholds and results).
_HUVolume = NDArray[np.float32] | NDArray[np.int16]

#: Side of the square lung crop fed to the slice classifier, in pixels (the paper's 200x200).
LUNG_CROP_SIZE = 200
#: Margin added on each side of the lungs' bounding box before squaring, as a share of the
#: box's longer side, so that the pleura and chest wall stay visible in the crop.
LUNG_CROP_MARGIN_FRACTION = 0.05
#: HU assigned to crop areas outside the image (air).
CROP_PAD_HU = -1000.0

#: Chest CT slices in HU have values below this (air outside the body, lung or fat), while
#: 0-1 floats and 8-bit data do not.
HU_LIKE_MAX_MINIMUM = -200.0

#: Tissue above this HU belongs to the body or the table, and air and lung lie below.
BODY_THRESHOLD_HU = -500.0
#: Radius of the in-plane opening that detaches the body from thin bridges to the table and
#: sheets, in mm (at least one pixel). Kept small because a thin anterior chest wall must not
#: be cut: with 2 mm the body outline of one COVID-CT-MD series broke on the 1.2 mm grid.
BODY_OPENING_RADIUS_MM = 1.0
#: Lung parenchyma (with partial-volume voxels at the pleura) lies below this HU.
LUNG_THRESHOLD_HU = -400.0
#: Voxels below this HU are (almost) pure air: trachea, bronchi, gas.
AIR_THRESHOLD_HU = -900.0
#: HU range of aerated lung: well-aerated and emphysematous parenchyma with low-dose noise,
#: but neither pure gas (below) nor partial-volume rims of fat (above).
AERATED_RANGE_HU = (-960.0, -500.0)
#: Share of a component's voxels that must lie in ``AERATED_RANGE_HU`` for it to count as lung.
LUNG_MIN_AERATED_FRACTION = 0.5
#: Largest share of a lung component's voxels below ``AERATED_RANGE_HU`` (pure gas). In the
#: test data normal lungs have about 5 %, bowel and stomach gas 35 % or more.
LUNG_MAX_GAS_FRACTION = 0.3
#: The same limit when a single slice is segmented without 3-D context. In the test data the
#: rim of a stool-filled colon has 15-20 % gas, lung regions of low-dose chest CT up to 5 %.
LUNG_MAX_GAS_FRACTION_SINGLE_SLICE = 0.12
#: Smallest lung component kept in 3-D, in mm³ (10 mL). A lung base cut by the field of view
#: still has tens of mL, while the skin-fold and bowel gas pockets that pass the other tests
#: have less.
LUNG_MIN_VOLUME_MM3 = 10_000.0
#: Smallest lung component kept when a single slice is segmented, in mm². Without 3-D context
#: small gas pockets in the abdomen look like lung, so this is larger than the NiCT limit.
LUNG_MIN_AREA_MM2 = 300.0
#: Lung regions smaller than this on one slice are removed after segmentation, in mm². They
#: are partial-volume specks at the apices and bases, or noise.
LUNG_MIN_REGION_AREA_MM2 = 50.0

#: Smallest cross-section of a trachea or main bronchus, in mm² (an 8 mm diameter airway).
AIRWAY_MIN_AREA_MM2 = 50.0
#: Largest cross-section of a trachea or main bronchus, in mm² (a 30 mm diameter trachea).
AIRWAY_MAX_AREA_MM2 = 700.0
#: Share of pure-air pixels (below ``AIR_THRESHOLD_HU``) in a trachea cross-section. At 3 mm
#: pixels the wall's partial-volume ring makes up the rest.
AIRWAY_MIN_AIR_FRACTION = 0.5
#: The trachea's centre lies within this share of the body width from the body's centre.
AIRWAY_MIDLINE_FRACTION = 0.2
#: Shortest stack of airway cross-sections taken as trachea, in mm.
AIRWAY_MIN_LENGTH_MM = 15.0
#: How far the airway is followed past the end of the trachea stack into the bronchi, in mm.
AIRWAY_MAX_EXTENSION_MM = 40.0
#: A followed airway cross-section growing beyond this multiple of the trachea's area has
#: leaked into the parenchyma, so the following stops there.
AIRWAY_LEAK_FACTOR = 4.0

#: Radius of the in-plane closing that keeps dense regions at the lung border (subpleural
#: consolidation, vessels at the hilum) inside each lung, in mm.
DENSE_CLOSING_RADIUS_MM = 5.0
#: Largest hole filled inside a lung when dense regions are not kept, in mm² (the
#: cross-section of a 12 mm vessel or bronchus). Larger holes are masses or consolidation.
VESSEL_MAX_AREA_MM2 = 120.0
#: Voxels above this HU (bone) are never added to a lung by the closing.
BONE_THRESHOLD_HU = 300.0

# Costal consolidation: partly aerated consolidation that replaces the lung at the costal
# pleura, between the aerated lung and the ribs (see _costal_consolidation). The values were
# chosen on the COVID-CT-MD series P001, cap001 and normal001 and checked on the UIIP volumes.

#: Bone farther than this outside the convex hull of a lung is not one of its ribs (it is the
#: scapula, the arm or a rib behind the scapula), in mm.
RIB_MAX_DISTANCE_MM = 10.0
#: Bone and candidates this close to the body midline are spine, sternum or mediastinum,
#: never ribs or costal consolidation, in mm (half the width of a vertebral body plus the
#: paravertebral gutter).
MIDLINE_BAND_MM = 30.0
#: Candidates this close to bone are rib marrow or the cortex's partial-volume rim, in mm.
RIB_MARGIN_MM = 2.0
#: Layer along the edge of the convex hull of a lung and its ribs taken as chest wall (ribs
#: and the intercostal muscle between them), in mm. With 4 mm the fill reached into the
#: intercostal spaces of a phantom with 7.5 mm thick ribs.
RIB_LAYER_MM = 6.0
#: Regions thinner than this are removed by an opening before the tests, in mm. They are
#: pleura and extrapleural fat along healthy lung.
CONSOLIDATION_MIN_THICKNESS_MM = 6.0
#: Smallest costal consolidation put back, in mm² per slice.
CONSOLIDATION_MIN_AREA_MM2 = 100.0
#: Shortest border a costal consolidation shares with the aerated lung, in mm.
CONSOLIDATION_MIN_CONTACT_MM = 10.0
#: Chest-wall layer pixels within ``RIB_LAYER_MM`` plus this distance of a rib count as lined
#: by it, in mm.
RIB_LINING_DISTANCE_MM = 4.0
#: Share of the chest-wall layer along a candidate that ribs must line. In an axial slice ribs
#: cover roughly half of the costal circumference, while the chord that a convex hull draws
#: across a lung base or an organ has bone only at its ends.
CONSOLIDATION_MIN_RIB_LINING = 0.3
#: Candidates reaching deeper than this into the hull are abdominal organs under a lung base,
#: in mm.
CONSOLIDATION_MAX_DEPTH_MM = 45.0
#: Highest median HU of a costal consolidation put back. The COVID-19 consolidations of P001
#: have medians of -294 to -189 HU (consolidation mixed with ground glass). Fat (about -100
#: HU), pleural fluid, muscle, diaphragm and abdominal organs (0-60 HU) lie above it.
CONSOLIDATION_MAX_MEDIAN_HU = -150.0

#: Target pixel size of the grid the HU segmentation runs on, in mm. Finer slices are averaged
#: over 2x2 (or more) pixel blocks first and the mask is resized back. This quarters the
#: pixels of a 512x512 slice, and on COVID-CT-MD the mask still agrees with the full-resolution
#: mask at a Dice of 0.99.
WORKING_PIXEL_MM = 1.25
#: Field of view assumed when no spacing is given, in mm (a common chest CT reconstruction).
#: The pixel spacing is this over the number of columns, and only the size limits use it.
ASSUMED_FIELD_OF_VIEW_MM = 350.0
#: Slice spacing assumed when none is given, in mm (the iCTCF series are 5 mm thick).
ASSUMED_SLICE_SPACING_MM = 5.0

#: Gaussian smoothing of 8-bit slices before thresholding, in pixels per 512 columns; it
#: removes the salt-and-pepper noise of badly converted exports without moving edges much.
GREY_SMOOTHING_SIGMA_PER_512 = 3.0
#: Grey-level tolerance of the background flood from the image corners (after smoothing):
#: outside air or padding varies less than this, the body outline and the edge of the
#: reconstruction circle step by more.
GREY_BACKGROUND_TOLERANCE = 12.0
#: The lower three-class Otsu threshold is used when the lung it finds is at least this share
#: of the lung found with the two-class threshold. On a COVID-19 JPEG series the lower
#: threshold found only 55-65 % because it dropped ground-glass opacities, so it must agree
#: closely before it replaces Otsu's.
GREY_LOWER_THRESHOLD_MIN_SHARE = 0.9
#: Radius of the closing that seals gaps in the body outline, in pixels per 512 columns.
GREY_BODY_CLOSING_PER_512 = 5.0
#: Smallest dark region kept as lung on an 8-bit slice, in mm² (1 cm²). Without 3-D context
#: and HU the 8-bit path keeps fewer small regions than the HU path.
GREY_LUNG_MIN_AREA_MM2 = 100.0
#: The same limit as a share of the image's pixels when the pixel spacing is unknown
#: (100 mm² in a 350 mm field of view over 512 pixels is about 0.08 %).
GREY_LUNG_MIN_AREA_FRACTION = 0.0008


@dataclass(frozen=True)
class LungExtraction:
    """Lung mask, square lung crop and QC of one axial slice.

    Attributes
    ----------
    mask : ndarray of bool, shape (rows, columns)
        Lung mask at the slice's full resolution.
    crop_box : tuple of int (row0, row1, col0, col1)
        Square crop in slice pixel coordinates (end exclusive). It may reach beyond the
        image; the crop is padded there (``CROP_PAD_HU`` for HU, the median border grey
        level for 8-bit slices).
        Without lung it is the largest centred square.
    image_crop : ndarray of float32, shape (LUNG_CROP_SIZE, LUNG_CROP_SIZE)
        The crop resized with bilinear interpolation, in HU or in 8-bit grey levels.
    mask_crop : ndarray of bool, shape (LUNG_CROP_SIZE, LUNG_CROP_SIZE)
        The mask cropped and resized the same way (bilinear, then > 0.5).
    qc : SliceQC
        Quality measures of ``mask``.
    """

    mask: NDArray[np.bool_]
    crop_box: tuple[int, int, int, int]
    image_crop: NDArray[np.float32]
    mask_crop: NDArray[np.bool_]
    qc: SliceQC


# --- input checks ---------------------------------------------------------------------------


def check_hu_like(values: ArrayLike, *, input_name: str = "slice") -> None:
    """Check that an image contains Hounsfield units rather than 0-1 or 8-bit data.

    Parameters
    ----------
    values : array_like
        Image or volume.
    input_name : str
        Name of the input for the error message.

    Raises
    ------
    InputError
        When the dtype is bool or 8-bit, values are not finite, or nothing lies below
        ``HU_LIKE_MAX_MINIMUM``. A constant slice of air (-1000 HU) passes: it is a slice
        without lung, not an error.
    """
    array = _check_numeric(values, input_name=input_name)
    low = float(array.min())
    high = float(array.max())
    if low > HU_LIKE_MAX_MINIMUM:
        raise InputError(
            f"the {input_name} does not look like Hounsfield units (values {low:g} to {high:g}, "
            f"but CT in HU has air or fat below {HU_LIKE_MAX_MINIMUM:g} HU). Convert the "
            "image to HU (apply the rescale slope and intercept), or import 8-bit renderings "
            "as a JPEG or PNG series, which uses the 8-bit lung extraction"
        )


def _check_numeric(values: ArrayLike, *, input_name: str) -> NDArray[np.generic]:
    array = np.asarray(values)
    if (
        array.dtype == np.bool_
        or array.dtype.itemsize == 1
        or not np.issubdtype(array.dtype, np.number)
    ):
        raise InputError(
            f"the {input_name} has dtype {array.dtype}, not Hounsfield units: convert it to "
            "HU, or import 8-bit images as a JPEG or PNG series, which uses the 8-bit lung "
            "extraction"
        )
    if array.size == 0:
        raise InputError(f"the {input_name} is empty (shape {array.shape})")
    if not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise InputError(
            f"the {input_name} contains NaN or infinite values: replace them (for example with "
            "-1000 HU, air) before lung extraction"
        )
    return array


def _resolve_spacing(
    spacing_mm: Sequence[float] | None, shape: tuple[int, ...]
) -> tuple[float, float, float]:
    if spacing_mm is None:
        pixel = ASSUMED_FIELD_OF_VIEW_MM / shape[-1]
        return ASSUMED_SLICE_SPACING_MM, pixel, pixel
    values = tuple(float(value) for value in spacing_mm)
    if len(values) != 3 or not all(np.isfinite(value) and value > 0 for value in values):
        raise InputError(
            f"invalid voxel spacing {spacing_mm!r}: expected three positive (slice, row, "
            "column) values in mm; pass None when the spacing is unknown"
        )
    return values[0], values[1], values[2]


# --- HU path ----------------------------------------------------------------------------------


def segment_lungs_hu(
    volume_hu: ArrayLike,
    *,
    spacing_mm: Sequence[float] | None = None,
    keep_dense_regions: bool = True,
) -> NDArray[np.bool_]:
    """Segment the lung parenchyma of a CT volume in Hounsfield units.

    Parameters
    ----------
    volume_hu : array_like of float, shape (slices, rows, columns)
        Axial CT in HU with the slice axis first. A single slice is passed as shape
        (1, rows, columns). The slice order (head first or feet first) does not matter.
        float32 and int16 arrays are used without a copy (int16 halves the memory of a long
        series with integral HU), other types are converted to float32.
    spacing_mm : (slice, row, column) spacing in mm, optional
        Voxel spacing. When None, ``ASSUMED_FIELD_OF_VIEW_MM`` over the columns and
        ``ASSUMED_SLICE_SPACING_MM`` are assumed; only the size limits depend on it.
    keep_dense_regions : bool, default True
        Keep dense regions inside and at the border of each lung (consolidation, masses,
        vessels at the hilum) in the mask. With False only holes up to
        ``VESSEL_MAX_AREA_MM2`` (vessels, bronchi) are filled, which gives the aerated lung
        with its vessels, as in reference masks that exclude masses.

    Returns
    -------
    ndarray of bool, shape (slices, rows, columns)
        Lung mask without the trachea and main bronchi, outside air, table and gas.

    Raises
    ------
    InputError
        When the volume is not three-dimensional, not in HU (see :func:`check_hu_like`)
        or the spacing is invalid.
    """
    volume = np.asarray(volume_hu)
    if volume.ndim != 3:
        raise InputError(
            f"invalid CT volume shape {volume.shape}: expected (slices, rows, columns); "
            "pass a single slice as shape (1, rows, columns)"
        )
    check_hu_like(volume, input_name="CT volume")
    spacing = _resolve_spacing(spacing_mm, volume.shape)
    if volume.dtype != np.int16:
        volume = volume.astype(np.float32, copy=False)
    return _segment_checked(volume, spacing, keep_dense_regions=keep_dense_regions)


def _segment_checked(
    volume: _HUVolume,
    spacing: tuple[float, float, float],
    *,
    keep_dense_regions: bool,
) -> NDArray[np.bool_]:
    factor = _working_grid_factor(spacing)
    working: _HUVolume
    if factor > 1:
        working = _downsample(volume, factor)
        working_spacing = (spacing[0], spacing[1] * factor, spacing[2] * factor)
    else:
        working, working_spacing = volume, spacing
    lungs = _segment_on_grid(working, working_spacing, keep_dense_regions=keep_dense_regions)
    if factor > 1:
        lungs = _upsample_mask(lungs, volume.shape[1:])
    return lungs


def _working_grid_factor(spacing: tuple[float, float, float]) -> int:
    return max(1, round(WORKING_PIXEL_MM / min(spacing[1], spacing[2])))


def _downsample(volume: _HUVolume, factor: int) -> NDArray[np.float32]:
    """Average ``factor`` x ``factor`` pixel blocks of each slice (an area resize)."""
    rows = volume.shape[1] // factor
    columns = volume.shape[2] // factor
    out = np.empty((volume.shape[0], rows, columns), dtype=np.float32)
    for index, plane in enumerate(volume):
        # float32 per plane, because OpenCV rounds the block means of integer images.
        out[index] = cv2.resize(
            plane.astype(np.float32, copy=False), (columns, rows), interpolation=cv2.INTER_AREA
        )
    return out


def _upsample_mask(mask: NDArray[np.bool_], shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """Resize a working-grid mask back to the slice shape (bilinear, then > 0.5)."""
    out = np.zeros((mask.shape[0], *shape), dtype=bool)
    size = (shape[1], shape[0])
    for index, plane in enumerate(mask):
        if plane.any():
            resized = cv2.resize(plane.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
            out[index] = resized > 0.5
    return out


def _segment_on_grid(
    volume: _HUVolume,
    spacing: tuple[float, float, float],
    *,
    keep_dense_regions: bool,
) -> NDArray[np.bool_]:
    body = body_mask_hu(volume, spacing_mm=spacing)
    candidates = (volume < LUNG_THRESHOLD_HU) & body
    airways = _find_airways(volume, candidates, body, spacing)
    if airways.any():
        # The wall's partial-volume ring around the air column goes with the airway.
        ring = np.ones((3, 3), dtype=np.uint8)
        for plane in np.flatnonzero(airways.any(axis=(1, 2))):
            candidates[plane] &= ~cv2.dilate(airways[plane].view(np.uint8), ring).view(bool)
    labels, keep = _select_lung_components(volume, candidates, spacing)
    if keep_dense_regions:
        lungs = _keep_dense_regions(volume, labels, keep, body, spacing)
    else:
        lungs = _fill_vessel_holes(labels, keep, VESSEL_MAX_AREA_MM2 / (spacing[1] * spacing[2]))
    lungs = _remove_small_regions(lungs, LUNG_MIN_REGION_AREA_MM2 / (spacing[1] * spacing[2]))
    logger.debug(
        "lung segmentation: %d slices, %d lung voxels, %d airway voxels",
        volume.shape[0],
        int(lungs.sum()),
        int(airways.sum()),
    )
    return lungs


def _label(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
    """Label 6-connected components; a single slice goes through the faster OpenCV."""
    if mask.shape[0] == 1:
        count, labels = cv2.connectedComponents(mask[0].view(np.uint8), connectivity=4)
        return labels[np.newaxis], int(count) - 1
    labels, count = ndi.label(mask)
    return labels, int(count)


def body_mask_hu(
    volume_hu: NDArray[np.floating] | NDArray[np.int16], *, spacing_mm: Sequence[float]
) -> NDArray[np.bool_]:
    """Compute the body mask of each slice of a CT volume in HU.

    Parameters
    ----------
    volume_hu : ndarray of float, shape (slices, rows, columns)
    spacing_mm : (slice, row, column) spacing in mm

    Returns
    -------
    ndarray of bool, shape (slices, rows, columns)
        Per slice, the largest region above ``BODY_THRESHOLD_HU`` after an in-plane opening
        with a ``BODY_OPENING_RADIUS_MM`` disc, with its holes (the lungs) filled.
    """
    tissue = volume_hu > BODY_THRESHOLD_HU
    kernel = _disc_kernel(BODY_OPENING_RADIUS_MM, spacing_mm[1], spacing_mm[2])
    body = np.zeros_like(tissue)
    for index, plane in enumerate(tissue):
        if not plane.any():
            continue
        opened = cv2.morphologyEx(plane.view(np.uint8), cv2.MORPH_OPEN, kernel)
        count, labels = cv2.connectedComponents(opened, connectivity=4)
        if count < 2:
            continue
        sizes = np.bincount(labels.ravel(), minlength=count)
        sizes[0] = 0
        body[index] = fill_holes_2d(labels == int(np.argmax(sizes)))
    return body


def fill_holes_2d(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Fill the holes of a 2-D mask (background regions not connected to the image border).

    Parameters
    ----------
    mask : ndarray of bool, shape (rows, columns)

    Returns
    -------
    ndarray of bool, shape (rows, columns)
    """
    rows, columns = mask.shape
    # Flood the background from a one-pixel frame so that every border pixel is reached.
    canvas = np.zeros((rows + 2, columns + 2), dtype=np.uint8)
    canvas[1:-1, 1:-1] = mask
    cv2.floodFill(canvas, None, (0, 0), 2, flags=4)
    result: NDArray[np.bool_] = canvas[1:-1, 1:-1] != 2
    return result


def _disc_kernel(radius_mm: float, row_mm: float, column_mm: float) -> NDArray[np.uint8]:
    """Return a disc (an ellipse in pixels for anisotropic spacing) of ``radius_mm``.

    Pixels whose centre lies within the radius plus half a pixel belong to it, which is
    rounder than OpenCV's small ellipse kernels (those are closer to a cross).
    """
    radius_rows = max(1, round(radius_mm / row_mm))
    radius_columns = max(1, round(radius_mm / column_mm))
    rows, columns = np.ogrid[-radius_rows : radius_rows + 1, -radius_columns : radius_columns + 1]
    inside = (rows / (radius_rows + 0.5)) ** 2 + (columns / (radius_columns + 0.5)) ** 2 <= 1.0
    return inside.astype(np.uint8)


def _find_airways(
    volume: _HUVolume,
    candidates: NDArray[np.bool_],
    body: NDArray[np.bool_],
    spacing: tuple[float, float, float],
) -> NDArray[np.bool_]:
    """Find the trachea and main bronchi as a stack of small pure-air midline regions."""
    air = volume < AIR_THRESHOLD_HU
    body_columns = body.sum(axis=1)
    body_width = (body_columns > 0).sum(axis=1).astype(np.float64)
    body_total = body_columns.sum(axis=1).astype(np.float64)
    body_centre = np.divide(
        (body_columns * np.arange(volume.shape[2])).sum(axis=1),
        body_total,
        out=np.zeros(volume.shape[0]),
        where=body_total > 0,
    )
    pixel_mm2 = spacing[1] * spacing[2]
    airway_like = np.zeros_like(candidates)
    for plane in np.flatnonzero(candidates.any(axis=(1, 2))):
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(
            candidates[plane].view(np.uint8), connectivity=4
        )
        areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
        air_counts = np.bincount(labels.ravel(), weights=air[plane].ravel(), minlength=count)
        # Small, almost pure air, and centred near the body midline of this slice.
        chosen = (
            (areas * pixel_mm2 >= AIRWAY_MIN_AREA_MM2)
            & (areas * pixel_mm2 <= AIRWAY_MAX_AREA_MM2)
            & (air_counts >= AIRWAY_MIN_AIR_FRACTION * areas)
            & (
                np.abs(centroids[:, 0] - body_centre[plane])
                <= AIRWAY_MIDLINE_FRACTION * body_width[plane]
            )
        )
        chosen[0] = False
        if chosen.any():
            airway_like[plane] = chosen[labels]
    if not airway_like.any() or volume.shape[0] == 1:
        return airway_like

    # Airway stacks span several slices. The longest one is the trachea, and only it is
    # followed into the main bronchi (shorter stacks are bronchus pieces or oesophageal air).
    stacks, _ = ndi.label(airway_like)  # sparse: few slices hold airway-like regions
    min_slices = max(2, int(np.ceil(AIRWAY_MIN_LENGTH_MM / spacing[0])))
    airways = np.zeros_like(airway_like)
    trachea: tuple[int, slice] | None = None
    for stack_index, box in enumerate(ndi.find_objects(stacks), start=1):
        if box is None or box[0].stop - box[0].start < min_slices:
            continue
        airways[box[0]] |= stacks[box[0]] == stack_index
        length = box[0].stop - box[0].start
        if trachea is None or length > trachea[1].stop - trachea[1].start:
            trachea = (stack_index, box[0])
    if trachea is not None:
        tube = stacks[trachea[1]] == trachea[0]
        reference_area = float(np.median(tube.sum(axis=(1, 2))))
        air_candidates = air & candidates
        first, last = trachea[1].start, trachea[1].stop - 1
        _follow_airway(airways, tube[-1], last, 1, air_candidates, reference_area, spacing)
        _follow_airway(airways, tube[0], first, -1, air_candidates, reference_area, spacing)
    return airways


def _follow_airway(
    airways: NDArray[np.bool_],
    start: NDArray[np.bool_],
    plane: int,
    step: int,
    air: NDArray[np.bool_],
    reference_area: float,
    spacing: tuple[float, float, float],
) -> None:
    """Follow an airway from ``plane`` through pure-air pixels, slice by slice, in place."""
    max_steps = int(AIRWAY_MAX_EXTENSION_MM // spacing[0])
    current = start
    kernel = np.ones((3, 3), dtype=np.uint8)
    for _ in range(max_steps):
        plane += step
        if plane < 0 or plane >= air.shape[0]:
            return
        reach = cv2.dilate(current.view(np.uint8), kernel).view(bool)
        # Take whole in-plane air regions touching the reach, so a bronchus running
        # sideways within one slice is followed too.
        _, labels = cv2.connectedComponents(air[plane].view(np.uint8), connectivity=8)
        touched = np.unique(labels[reach & air[plane]])
        following = np.isin(labels, touched[touched > 0])
        area = int(following.sum())
        if area == 0 or area > AIRWAY_LEAK_FACTOR * reference_area:
            return
        airways[plane] |= following
        current = following


def _select_lung_components(
    volume: _HUVolume,
    candidates: NDArray[np.bool_],
    spacing: tuple[float, float, float],
) -> tuple[NDArray[np.int32], NDArray[np.bool_]]:
    """Label the candidate components and flag those that are lung.

    Lung components are large enough and made of aerated lung densities. Returns the labels
    and, per label (0 = background), whether it is lung.
    """
    labels, count = _label(candidates)
    if count == 0:
        return labels, np.zeros(1, dtype=bool)
    region = labels[candidates]
    values = volume[candidates]
    sizes = np.bincount(region, minlength=count + 1).astype(np.float64)
    aerated = (values >= AERATED_RANGE_HU[0]) & (values < AERATED_RANGE_HU[1])
    # Counting the labels of the selected voxels needs no float64 weight arrays, which
    # matters for series of several hundred slices.
    aerated_counts = np.bincount(region[aerated], minlength=count + 1)
    gas_counts = np.bincount(region[values < AERATED_RANGE_HU[0]], minlength=count + 1)
    if volume.shape[0] == 1:
        large = sizes * spacing[1] * spacing[2] >= LUNG_MIN_AREA_MM2
        max_gas = LUNG_MAX_GAS_FRACTION_SINGLE_SLICE
    else:
        large = sizes * spacing[0] * spacing[1] * spacing[2] >= LUNG_MIN_VOLUME_MM3
        max_gas = LUNG_MAX_GAS_FRACTION
    lung_like = (aerated_counts >= LUNG_MIN_AERATED_FRACTION * sizes) & (
        gas_counts <= max_gas * sizes
    )
    keep = large & lung_like
    keep[0] = False
    rejected = int(np.count_nonzero(large[1:] & ~lung_like[1:]))
    if rejected:
        logger.debug("%d air components rejected as gas or non-lung density", rejected)
    return labels, keep


def _remove_small_regions(mask: NDArray[np.bool_], min_pixels: float) -> NDArray[np.bool_]:
    """Remove in-plane (8-connected) regions with fewer than ``min_pixels`` pixels."""
    result = mask.copy()
    for plane in np.flatnonzero(mask.any(axis=(1, 2))):
        _, labels, stats, _ = cv2.connectedComponentsWithStats(
            mask[plane].view(np.uint8), connectivity=8
        )
        small = stats[:, cv2.CC_STAT_AREA] < min_pixels
        small[0] = False
        if small.any():
            result[plane] &= ~small[labels]
    return result


def _component_boxes(
    labels: NDArray[np.int32], keep: NDArray[np.bool_]
) -> list[tuple[int, tuple[slice, ...]]]:
    if not keep.any():
        return []
    return [
        (index, box)
        for index, box in enumerate(ndi.find_objects(labels, max_label=keep.size - 1), start=1)
        if box is not None and keep[index]
    ]


def _fill_vessel_holes(
    labels: NDArray[np.int32], keep: NDArray[np.bool_], max_hole_pixels: float
) -> NDArray[np.bool_]:
    """Fill the in-plane holes of each lung up to ``max_hole_pixels`` (vessels, bronchi)."""
    result: NDArray[np.bool_] = keep[labels]
    for index, box in _component_boxes(labels, keep):
        for plane in range(box[0].start, box[0].stop):
            window = labels[plane][box[1:]] == index
            if not window.any():
                continue
            holes = fill_holes_2d(window) & ~window
            count, hole_labels, stats, _ = cv2.connectedComponentsWithStats(
                holes.view(np.uint8), connectivity=4
            )
            small = stats[:, cv2.CC_STAT_AREA] <= max_hole_pixels
            small[0] = False
            if count > 1 and small.any():
                result[plane][box[1:]] |= small[hole_labels]
    return result


def _keep_dense_regions(
    volume: _HUVolume,
    labels: NDArray[np.int32],
    keep: NDArray[np.bool_],
    body: NDArray[np.bool_],
    spacing: tuple[float, float, float],
) -> NDArray[np.bool_]:
    """Close and fill each lung per slice so that dense regions at its border stay inside.

    Then put back costal consolidation (see :func:`_costal_consolidation`), so that a
    partly aerated consolidation replacing the lateral, anterior or posterior pleura over
    several centimetres stays in the mask.

    NOTE: dense consolidation at soft-tissue HU (median above
    ``CONSOLIDATION_MAX_MEDIAN_HU``) that replaces the pleura over more than a few millimetres
    is still left out, because in 2-D it looks like pleural fluid, the diaphragm or chest wall
    muscle. So is consolidation along the mediastinum, within ``MIDLINE_BAND_MM`` of the
    midline, or reaching more than ``RIB_MAX_DISTANCE_MM`` beyond the aerated lung's convex
    hull (a wide dependent consolidation). Two lungs joined in front of and behind the
    mediastinum form one component, and filling it would take in the mediastinum. Such masks
    were not seen in the test data.
    """
    kernel = _disc_kernel(DENSE_CLOSING_RADIUS_MM, spacing[1], spacing[2])
    pad = max(kernel.shape)
    result: NDArray[np.bool_] = keep[labels]
    rows, columns = labels.shape[1:]
    for index, box in _component_boxes(labels, keep):
        r0 = max(0, box[1].start - pad)
        r1 = min(rows, box[1].stop + pad)
        c0 = max(0, box[2].start - pad)
        c1 = min(columns, box[2].stop + pad)
        for plane in range(box[0].start, box[0].stop):
            window = labels[plane, r0:r1, c0:c1] == index
            if not window.any():
                continue
            closed = cv2.morphologyEx(window.view(np.uint8), cv2.MORPH_CLOSE, kernel).view(bool)
            filled = fill_holes_2d(closed | window)
            allowed = body[plane, r0:r1, c0:c1] & (volume[plane, r0:r1, c0:c1] < BONE_THRESHOLD_HU)
            result[plane, r0:r1, c0:c1] |= filled & allowed
    for with_lung in np.flatnonzero(result.any(axis=(1, 2))):
        result[with_lung] |= _costal_consolidation(
            volume[with_lung], result[with_lung], body[with_lung], spacing
        )
    return result


def _costal_consolidation(
    hu: _HUVolume,
    lungs: NDArray[np.bool_],
    body: NDArray[np.bool_],
    spacing: tuple[float, float, float],
) -> NDArray[np.bool_]:
    """Find consolidation that replaces the costal pleura of the lungs of one slice.

    Each lung (the mask on one side of the body midline) is handled alone. Its ribs are the
    bone within ``RIB_MAX_DISTANCE_MM`` of the lung's own convex hull. The candidates lie
    inside the convex hull of the lung and its ribs and outside the lung. They keep away from
    the hull's edge (the rib layer), from bone, from the midline and from the mediastinal
    side of the lung. A candidate region is kept when it is thick and large enough, borders
    the aerated lung, is lined by ribs on its outer side, is not deep inside the hull and is
    partly aerated (by its median HU). Returns the added pixels, never bone or pixels outside
    the body.
    """
    added = np.zeros_like(lungs)
    body_columns = np.flatnonzero(body.any(axis=0))
    if body_columns.size == 0:
        return added
    midline = 0.5 * (body_columns[0] + body_columns[-1])
    column_index = np.arange(lungs.shape[1])
    for side in (-1, 1):
        half = lungs & ((column_index - midline) * side > 0)
        if half.sum() * spacing[1] * spacing[2] < LUNG_MIN_AREA_MM2:
            continue
        added |= _costal_consolidation_one_side(hu, half, body, spacing, midline, side)
    return added & ~lungs & body & (hu < BONE_THRESHOLD_HU)


def _costal_consolidation_one_side(
    hu: _HUVolume,
    lung: NDArray[np.bool_],
    body: NDArray[np.bool_],
    spacing: tuple[float, float, float],
    midline: float,
    side: int,
) -> NDArray[np.bool_]:
    """Find the costal consolidation of the lung on one side of the body midline.

    ``side`` is -1 for a lung left of ``midline`` in the image (the patient's right in the
    usual display) and 1 for one right of it.
    """
    pixel_mm = 0.5 * (spacing[1] + spacing[2])
    pixel_mm2 = spacing[1] * spacing[2]
    added = np.zeros_like(lung)

    # Work in the lung's bounding box grown by the rib distance.
    rows = np.flatnonzero(lung.any(axis=1))
    columns = np.flatnonzero(lung.any(axis=0))
    reach = int(np.ceil(RIB_MAX_DISTANCE_MM / pixel_mm)) + 2
    r0, r1 = max(0, rows[0] - reach), min(lung.shape[0], rows[-1] + reach + 1)
    c0, c1 = max(0, columns[0] - reach), min(lung.shape[1], columns[-1] + reach + 1)
    lung_w = lung[r0:r1, c0:c1]
    hu_w = hu[r0:r1, c0:c1]
    body_w = body[r0:r1, c0:c1]
    costal_columns = ((np.arange(c0, c1) - midline) * side * spacing[2] >= MIDLINE_BAND_MM)[
        np.newaxis, :
    ]

    # Ribs: bone beside the lung's convex hull, away from the spine and the sternum.
    lung_hull = _convex_hull_mask(lung_w)
    bone = (hu_w >= BONE_THRESHOLD_HU) & body_w
    outside_hull = cv2.distanceTransform((~lung_hull).view(np.uint8), cv2.DIST_L2, 5)
    ribs = bone & costal_columns & (outside_hull * pixel_mm <= RIB_MAX_DISTANCE_MM)
    if not ribs.any():
        return added

    # Candidates: inside the hull of the lung and its ribs, but not in the chest-wall layer
    # along the hull's edge, next to bone, medial to the lung or near the midline.
    shell = _convex_hull_mask(lung_w | ribs)
    depth = cv2.distanceTransform(shell.view(np.uint8), cv2.DIST_L2, 5) * pixel_mm
    from_bone = cv2.distanceTransform((~bone).view(np.uint8), cv2.DIST_L2, 5) * pixel_mm
    candidates = (
        shell
        & ~lung_w
        & body_w
        & costal_columns
        & (from_bone > RIB_MARGIN_MM)
        & (depth > RIB_LAYER_MM)
        & ~_medial_of_lung(lung_w, side)
    )
    kernel = _disc_kernel(CONSOLIDATION_MIN_THICKNESS_MM / 2.0, spacing[1], spacing[2])
    candidates = cv2.morphologyEx(candidates.view(np.uint8), cv2.MORPH_OPEN, kernel).view(bool)
    if not candidates.any():
        return added
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        candidates.view(np.uint8), connectivity=4
    )

    # A costal consolidation borders the aerated lung on one side and the ribs on the other.
    lung_border = cv2.dilate(lung_w.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & ~lung_w
    contact_mm = np.bincount(labels[lung_border], minlength=count) * pixel_mm
    grown = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
    layer = shell & (depth <= RIB_LAYER_MM) & (grown > 0)
    from_ribs = cv2.distanceTransform((~ribs).view(np.uint8), cv2.DIST_L2, 5) * pixel_mm
    lined = layer & (from_ribs <= RIB_LAYER_MM + RIB_LINING_DISTANCE_MM)
    layer_counts = np.bincount(grown[layer], minlength=count)
    lined_counts = np.bincount(grown[lined], minlength=count)
    chosen = (
        (stats[:, cv2.CC_STAT_AREA] * pixel_mm2 >= CONSOLIDATION_MIN_AREA_MM2)
        & (contact_mm >= CONSOLIDATION_MIN_CONTACT_MM)
        & (layer_counts > 0)
        & (lined_counts >= CONSOLIDATION_MIN_RIB_LINING * layer_counts)
    )
    chosen[0] = False
    for index in np.flatnonzero(chosen):
        left, top, width, height = stats[index, :4]
        box = np.s_[top : top + height, left : left + width]
        region = labels[box] == index
        # Deep regions are abdominal organs under a lung base. Dense ones are fluid, muscle
        # or organs rather than partly aerated lung.
        chosen[index] = (
            float(depth[box][region].max()) <= CONSOLIDATION_MAX_DEPTH_MM
            and float(np.median(hu_w[box][region])) <= CONSOLIDATION_MAX_MEDIAN_HU
        )
    added[r0:r1, c0:c1] = chosen[labels]
    return added


def _convex_hull_mask(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Fill the convex hull of a 2-D mask (from its outer contours, which is fast)."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    hull = np.zeros(mask.shape, dtype=np.uint8)
    if contours:
        cv2.fillConvexPoly(hull, cv2.convexHull(np.concatenate(contours)), 1)
    return hull.view(bool)


def _medial_of_lung(lung: NDArray[np.bool_], side: int) -> NDArray[np.bool_]:
    """Mark pixels closer to the body midline than the lung's most medial pixel in their row.

    Rows without lung take the limit of the nearest row with lung.
    """
    rows, columns = lung.shape
    lung_rows = np.flatnonzero(lung.any(axis=1))
    if side > 0:
        extreme = np.argmax(lung, axis=1).astype(np.float64)
    else:
        extreme = (columns - 1 - np.argmax(lung[:, ::-1], axis=1)).astype(np.float64)
    limit = np.interp(np.arange(rows), lung_rows, extreme[lung_rows])
    column_index = np.arange(columns)[np.newaxis, :]
    if side > 0:
        return np.asarray(column_index < limit[:, np.newaxis])
    return np.asarray(column_index > limit[:, np.newaxis])


def extract_lung_hu_slice(
    hu: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    pixel_spacing_mm: Sequence[float] | None = None,
) -> LungExtraction:
    """Extract the lungs of one axial slice in Hounsfield units.

    Parameters
    ----------
    hu : array_like of float, shape (rows, columns)
        Slice in HU.
    mask : array_like of bool, shape (rows, columns), optional
        Lung mask of this slice, usually a slice of :func:`segment_lungs_hu` run on the whole
        volume (which removes the trachea more reliably). Computed from this slice alone when
        None.
    pixel_spacing_mm : (row, column) spacing in mm, optional
        Enables the area in mm² in the QC and the mm-based limits of the segmentation.

    Returns
    -------
    LungExtraction

    Raises
    ------
    InputError
        When the slice is not 2-D, not in HU (0-1 floats or 8-bit data, see
        :func:`check_hu_like`), the mask shape differs or the spacing is invalid.
    """
    image = np.asarray(hu)
    if image.ndim != 2:
        raise InputError(
            f"invalid CT slice shape {image.shape}: expected (rows, columns); use "
            "segment_lungs_hu for volumes"
        )
    spacing = check_pixel_spacing(pixel_spacing_mm)
    if mask is None:
        check_hu_like(image, input_name="CT slice")
    else:
        # The volume was checked as a whole when its mask was made. One slice of it (say,
        # inside the body with a small field of view) need not show air itself.
        _check_numeric(image, input_name="CT slice")
    image = image.astype(np.float32, copy=False)
    if mask is None:
        volume = image[np.newaxis]
        volume_spacing = (
            _resolve_spacing(None, volume.shape)
            if spacing is None
            else (ASSUMED_SLICE_SPACING_MM, spacing[0], spacing[1])
        )
        lung = _segment_checked(volume, volume_spacing, keep_dense_regions=True)[0]
    else:
        lung = _check_mask(mask, image.shape)
    return _build_extraction(image, lung, spacing, pad_value=CROP_PAD_HU)


def _check_mask(mask: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    lung = np.asarray(mask)
    if lung.shape != shape:
        raise InputError(f"lung mask shape {lung.shape} differs from the slice shape {shape}")
    return lung.astype(bool, copy=False)


# --- 8-bit path -------------------------------------------------------------------------------


def extract_lung_uint8_slice(
    grey: ArrayLike, *, pixel_spacing_mm: Sequence[float] | None = None
) -> LungExtraction:
    """Extract the lungs of one 8-bit grey CT slice (JPEG/PNG export).

    The paper's method, with additions for real exports:

    1. An image whose border is bright (inverted polarity, as a MONOCHROME1 display) is
       inverted, then smoothed with a Gaussian (``GREY_SMOOTHING_SIGMA_PER_512``), which
       removes salt-and-pepper noise of badly converted exports.
    2. Background: flood-filled from the dark image corners within
       ``GREY_BACKGROUND_TOLERANCE`` grey levels (outside air, or the padding outside the
       reconstruction circle). Bright corners are body cut by the field of view.
    3. Threshold: Otsu's method over the pixels that are not background. When the lower
       threshold of a three-class Otsu split still finds at least
       ``GREY_LOWER_THRESHOLD_MIN_SHARE`` of that lung, it is used instead, because dark fat
       or noisy soft tissue would otherwise count as lung.
    4. Body: the largest bright component after a closing (``GREY_BODY_CLOSING_PER_512``) that
       seals gaps in its outline, with its holes filled.
    5. Lung: dark regions inside the body, large enough (``GREY_LUNG_MIN_AREA_MM2`` with a
       known spacing, else ``GREY_LUNG_MIN_AREA_FRACTION``), holes filled per region.

    NOTE: unlike the HU path, this path does not separate the trachea from the lungs. In an
    8-bit export it is a dark region like the lungs, so a tracheal section larger than the
    size limit stays in the mask.

    Parameters
    ----------
    grey : array_like of uint8, shape (rows, columns)
        Grey slice, usually from :func:`ictcf.imaging.raster.load_grey_slice`.
    pixel_spacing_mm : (row, column) spacing in mm, optional
        Enables the area in mm² in the QC.

    Returns
    -------
    LungExtraction
        ``image_crop`` contains grey levels 0-255 as float32 (before any inversion).

    Raises
    ------
    InputError
        When the slice is not a 2-D uint8 array or the spacing is invalid.
    """
    image = np.asarray(grey)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise InputError(
            f"invalid 8-bit slice: shape {image.shape}, dtype {image.dtype}; expected a "
            "(rows, columns) uint8 array (load JPEG/PNG files with load_grey_slice, and "
            "pass Hounsfield units to extract_lung_hu_slice)"
        )
    spacing = check_pixel_spacing(pixel_spacing_mm)
    lung = segment_lungs_uint8(image, pixel_spacing_mm=spacing)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return _build_extraction(
        image.astype(np.float32), lung, spacing, pad_value=float(np.median(border))
    )


def segment_lungs_uint8(
    grey: NDArray[np.uint8], *, pixel_spacing_mm: Sequence[float] | None = None
) -> NDArray[np.bool_]:
    """Segment the lungs of one 8-bit grey slice (see :func:`extract_lung_uint8_slice`).

    Parameters
    ----------
    grey : ndarray of uint8, shape (rows, columns)
    pixel_spacing_mm : (row, column) spacing in mm, optional

    Returns
    -------
    ndarray of bool, shape (rows, columns)
    """
    image = grey
    if _border_is_bright(image):
        image = 255 - image
    sigma = GREY_SMOOTHING_SIGMA_PER_512 * image.shape[1] / 512.0
    smooth = np.asarray(
        cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma),
        dtype=np.float32,
    )
    if float(smooth.max()) - float(smooth.min()) < 1.0:
        return np.zeros(image.shape, dtype=bool)
    # The blurred 8-bit image lies in [0, 255], so truncating gives the bin of a 256-bin
    # histogram over [0, 256). np.histogram gives the same bins at several times the cost.
    levels = smooth.astype(np.uint8)
    outside = _flood_from_corners(smooth, below=_otsu_of_levels(levels))
    counts = np.bincount(levels[~outside], minlength=256)
    if np.count_nonzero(counts) < 2:
        return np.zeros(image.shape, dtype=bool)
    histogram = (counts, _BIN_CENTRES)
    if pixel_spacing_mm is not None:
        min_area = GREY_LUNG_MIN_AREA_MM2 / (pixel_spacing_mm[0] * pixel_spacing_mm[1])
    else:
        min_area = GREY_LUNG_MIN_AREA_FRACTION * image.size

    # Otsu's threshold splits lung from the rest when the body is bright. Dark fat or noisy
    # soft tissue falls on the lung side of it, but the lower threshold of a three-class Otsu
    # split separates them, so that one is used when it finds nearly as much lung.
    lungs = _dark_regions_in_body(smooth, outside, float(threshold_otsu(hist=histogram)), min_area)
    if np.count_nonzero(counts) >= 3:
        low = float(threshold_multiotsu(classes=3, hist=histogram)[0])
        lower_lungs = _dark_regions_in_body(smooth, outside, low, min_area)
        if lower_lungs.sum() >= GREY_LOWER_THRESHOLD_MIN_SHARE * lungs.sum():
            lungs = lower_lungs
    return lungs


def _dark_regions_in_body(
    smooth: NDArray[np.float32], outside: NDArray[np.bool_], threshold: float, min_area: float
) -> NDArray[np.bool_]:
    """Find the dark regions enclosed by the largest bright component (the body)."""
    bright = (smooth > threshold) & ~outside
    # Close small gaps in the body outline (noisy fat, thin ribs) so the lungs stay enclosed.
    radius = max(1, round(GREY_BODY_CLOSING_PER_512 * smooth.shape[1] / 512.0))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    closed = cv2.morphologyEx(bright.view(np.uint8), cv2.MORPH_CLOSE, kernel)
    count, labels = _label_4_connected(closed)
    lungs = np.zeros(smooth.shape, dtype=bool)
    if count < 2:
        return lungs
    sizes = _label_areas(labels, count)
    sizes[0] = 0
    body = fill_holes_2d(labels == int(np.argmax(sizes)))
    dark = body & ~bright & ~outside
    # Labels and a bincount of areas cost half of OpenCV's labelling with statistics, and
    # only the few large regions (not the specks of noisy images) are looked at further.
    count, labels = _label_4_connected(dark.view(np.uint8))
    areas = _label_areas(labels, count)
    for index in np.flatnonzero(areas[1:] >= min_area) + 1:
        region = labels == index
        rows = np.flatnonzero(region.any(axis=1))
        columns = np.flatnonzero(region.any(axis=0))
        window = np.s_[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
        lungs[window] |= fill_holes_2d(region[window])
    return lungs


#: Largest number of pixels counted exactly by OpenCV's float32 histogram (2**24).
_EXACT_FLOAT32_COUNT = 1 << 24


def _label_4_connected(mask: NDArray[Any]) -> tuple[int, NDArray[Any]]:
    """Label the 4-connected regions of a 0/1 image, as 16-bit labels when they fit.

    16-bit labels are about a quarter faster to write and to count. OpenCV raises an error
    when 16 bits cannot hold the labels (a noise pattern can have more than 65,535 regions),
    and the labelling is then redone with 32-bit labels.
    """
    try:
        count, labels = cv2.connectedComponents(mask, connectivity=4, ltype=cv2.CV_16U)
    except cv2.error:
        count, labels = cv2.connectedComponents(mask, connectivity=4, ltype=cv2.CV_32S)
    return int(count), labels


def _label_areas(labels: NDArray[Any], count: int) -> NDArray[np.int64]:
    """Count the pixels of each label 0..count-1 of an OpenCV labelling.

    OpenCV's histogram of 16-bit labels is about twice as fast as ``np.bincount``; its float32
    counts are exact below ``_EXACT_FLOAT32_COUNT`` pixels. Larger images or more labels use
    ``np.bincount``.
    """
    if count <= np.iinfo(np.uint16).max and labels.size < _EXACT_FLOAT32_COUNT:
        histogram = cv2.calcHist(
            [labels.astype(np.uint16, copy=False)], [0], None, [count], [0, count]
        )
        return np.asarray(histogram, dtype=np.float32).ravel().astype(np.int64)
    return np.bincount(np.asarray(labels).ravel(), minlength=count).astype(np.int64)


#: Centres of the 256 one-grey-level bins of the 8-bit histograms, in float32 like the bin
#: edges np.histogram gave for the float32 image (Otsu's criterion can tie within rounding).
_BIN_CENTRES = np.arange(256, dtype=np.float32) + np.float32(0.5)


def _otsu_of_levels(levels: NDArray[np.uint8]) -> float:
    return float(threshold_otsu(hist=(np.bincount(levels.ravel(), minlength=256), _BIN_CENTRES)))


def _border_is_bright(image: NDArray[np.uint8]) -> bool:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return bool(np.median(border) > 127)


def _flood_from_corners(smooth: NDArray[np.float32], *, below: float) -> NDArray[np.bool_]:
    """Flood the background (outside air or padding) from the corners darker than ``below``.

    Each flood takes the pixels connected to its corner within ``GREY_BACKGROUND_TOLERANCE``
    grey levels of the corner's value, so it stops at the body outline or at the edge of
    the reconstruction circle. Bright corners are body cut by the field of view.
    """
    rows, columns = smooth.shape
    flood_mask = np.zeros((rows + 2, columns + 2), dtype=np.uint8)
    flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    tolerance = (GREY_BACKGROUND_TOLERANCE,) * 4
    for row, column in ((0, 0), (0, columns - 1), (rows - 1, 0), (rows - 1, columns - 1)):
        if flood_mask[row + 1, column + 1] or smooth[row, column] >= below:
            continue
        # FLOODFILL_MASK_ONLY leaves the image unchanged, so no copy of it is needed.
        cv2.floodFill(smooth, flood_mask, (column, row), 0, tolerance, tolerance, flags)
    result: NDArray[np.bool_] = flood_mask[1:-1, 1:-1] > 0
    return result


# --- crop -------------------------------------------------------------------------------------


def lung_crop_box(mask: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    """Compute the square crop box around the lungs of one slice.

    Parameters
    ----------
    mask : ndarray of bool, shape (rows, columns)

    Returns
    -------
    tuple of int (row0, row1, col0, col1)
        End-exclusive square box: the lungs' bounding box plus ``LUNG_CROP_MARGIN_FRACTION``
        of its longer side on each side, centred on the box. It may reach beyond the image.
        Without lung: the largest square centred in the image.
    """
    rows, columns = mask.shape
    if not mask.any():
        side = min(rows, columns)
        r0 = (rows - side) // 2
        c0 = (columns - side) // 2
        return r0, r0 + side, c0, c0 + side
    row_any = np.flatnonzero(mask.any(axis=1))
    column_any = np.flatnonzero(mask.any(axis=0))
    top, bottom = int(row_any[0]), int(row_any[-1]) + 1
    left, right = int(column_any[0]), int(column_any[-1]) + 1
    longer = max(bottom - top, right - left)
    side = longer + 2 * int(np.ceil(LUNG_CROP_MARGIN_FRACTION * longer))
    r0 = (top + bottom - side) // 2
    c0 = (left + right - side) // 2
    return r0, r0 + side, c0, c0 + side


def _crop_padded(
    image: NDArray[np.float32], box: tuple[int, int, int, int], pad_value: float
) -> NDArray[np.float32]:
    r0, r1, c0, c1 = box
    rows, columns = image.shape
    out = np.full((r1 - r0, c1 - c0), pad_value, dtype=image.dtype)
    src_r0, src_r1 = max(r0, 0), min(r1, rows)
    src_c0, src_c1 = max(c0, 0), min(c1, columns)
    if src_r0 < src_r1 and src_c0 < src_c1:
        out[src_r0 - r0 : src_r1 - r0, src_c0 - c0 : src_c1 - c0] = image[
            src_r0:src_r1, src_c0:src_c1
        ]
    return out


def _build_extraction(
    image: NDArray[np.float32],
    lung: NDArray[np.bool_],
    spacing: tuple[float, float] | None,
    *,
    pad_value: float,
) -> LungExtraction:
    box = lung_crop_box(lung)
    size = (LUNG_CROP_SIZE, LUNG_CROP_SIZE)
    image_crop = cv2.resize(
        _crop_padded(image, box, pad_value), size, interpolation=cv2.INTER_LINEAR
    ).astype(np.float32)
    mask_crop = (
        cv2.resize(
            _crop_padded(lung.astype(np.float32), box, 0.0), size, interpolation=cv2.INTER_LINEAR
        )
        > 0.5
    )
    return LungExtraction(
        mask=lung,
        crop_box=box,
        image_crop=image_crop,
        mask_crop=mask_crop,
        qc=measure_slice_quality(lung, pixel_spacing_mm=spacing),
    )
