"""Read NIfTI CT volumes into the canonical axial grid, checking that values are Hounsfield units.

NIfTI stores world coordinates in RAS (+x right, +y anterior); the readers use DICOM LPS
throughout, so the affine's first two rows change sign. The array is reoriented (axis
permutation and flips only, no interpolation) to the canonical axial order of
:mod:`ictcf.imaging.geometry`: axis 0 from inferior to superior, axis 1 (rows) from anterior to
posterior, axis 2 (columns) from the patient's right to left. A NIfTI and a DICOM copy of the
same scan therefore give the same array.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from nibabel import orientations
from numpy.typing import NDArray

from ictcf.errors import InputError
from ictcf.imaging.geometry import SeriesGeometry, geometry_from_affine_lps, is_orthogonal
from ictcf.imaging.lung import HU_LIKE_MAX_MINIMUM

logger = logging.getLogger(__name__)

#: Axis codes (nibabel's convention: the direction each array axis increases towards) of the
#: canonical (slices, rows, columns) order: superior, posterior, left.
CANONICAL_AXCODES = ("S", "P", "L")
#: Conversion of a RAS affine to LPS: negate x and y.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: A CT volume in HU contains air. A volume whose minimum is above this (HU) contains no air
#: and is reported, because it is either not in HU or a crop without any air.
AIR_PRESENT_MAX_HU = -500.0

IntensityScale = Literal["hounsfield", "unit_interval", "uint8", "constant"]


@dataclass(frozen=True)
class NiftiVolume:
    """A NIfTI CT volume in the canonical axial grid.

    Attributes
    ----------
    hu : ndarray of float32, shape (slices, rows, columns)
        Values after the NIfTI scaling (``scl_slope``, ``scl_inter``), in canonical order.
    geometry : SeriesGeometry
        LPS geometry of ``hu``.
    warnings : list of str
        Findings the volume survives (no air, non-orthogonal axes...).
    intensity_scale : str
        ``"hounsfield"`` for HU data, ``"unit_interval"`` for values within 0-1,
        ``"uint8"`` for integer values within 0-255, ``"constant"`` for a single value.
    """

    hu: NDArray[np.float32]
    geometry: SeriesGeometry
    warnings: list[str] = field(default_factory=list)
    intensity_scale: IntensityScale = "hounsfield"


def classify_intensity_scale(values: NDArray[np.floating] | NDArray[np.integer]) -> IntensityScale:
    """Name the value scale of an image volume.

    Returns
    -------
    str
        ``"constant"`` when all values are equal, ``"unit_interval"`` when all lie in
        [0, 1], ``"uint8"`` when all are integers in [0, 255], otherwise ``"hounsfield"``.
        The test looks at values only, so a Hounsfield crop of soft tissue within 0-255
        HU would read as ``"uint8"``. Such crops are not whole CT volumes.
    """
    low = float(np.min(values))
    high = float(np.max(values))
    if low == high:
        return "constant"
    if low >= 0.0 and high <= 1.0:
        return "unit_interval"
    if low >= 0.0 and high <= 255.0 and bool(np.all(np.equal(np.mod(values, 1), 0))):
        return "uint8"
    return "hounsfield"


def read_nifti_volume(path: Path, *, require_hu: bool = True) -> NiftiVolume:
    """Read a 3-D NIfTI CT volume, reorient it to the canonical axial grid and check its values.

    Parameters
    ----------
    path : Path
        ``.nii`` or ``.nii.gz`` file.
    require_hu : bool, default True
        Raise when the values are not Hounsfield units (scaled to 0-1 or 0-255, or
        constant). With False such a volume is returned with ``intensity_scale`` set, so the
        caller can send 8-bit data to the raster path.

    Returns
    -------
    NiftiVolume

    Raises
    ------
    InputError
        If the file cannot be read, is not 3-D (a 4-D file with one volume is accepted), has a
        degenerate affine, or (with ``require_hu``) contains values that are not HU. Values
        are not HU when scaled to 0-1 or 0-255, constant, or without any voxel below
        ``HU_LIKE_MAX_MINIMUM`` HU.
    """
    try:
        image = nib.load(path)
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError) as err:
        raise InputError(f"NIfTI file could not be read ({err})", path=path) from err
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise InputError(f"not a NIfTI image ({type(image).__name__})", path=path)
    shape = tuple(int(n) for n in image.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(
            f"NIfTI image has shape {shape}; a CT volume must be 3-D (x, y, z)", path=path
        )
    try:
        data = np.asarray(image.dataobj, dtype=np.float32).reshape(shape)
    except (OSError, ValueError, EOFError, MemoryError, zlib.error) as err:
        raise InputError(f"NIfTI voxel data could not be read ({err})", path=path) from err
    if not np.all(np.isfinite(data)):
        raise InputError("NIfTI volume contains NaN or infinite values", path=path)

    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(f"NIfTI affine is degenerate: {affine[:3, :3].tolist()}", path=path)
    current = orientations.io_orientation(affine)
    target = orientations.axcodes2ornt(CANONICAL_AXCODES)
    transform = orientations.ornt_transform(current, target)
    canonical = orientations.apply_orientation(data, transform)
    affine_ras = affine @ orientations.inv_ornt_aff(transform, shape)
    affine_lps = RAS_TO_LPS @ affine_ras
    canonical_shape = (int(canonical.shape[0]), int(canonical.shape[1]), int(canonical.shape[2]))
    geometry = geometry_from_affine_lps(affine_lps, canonical_shape)

    warnings: list[str] = []
    if not is_orthogonal(geometry.direction):
        warnings.append("NIfTI axes are not orthogonal (sheared affine); geometry is approximate")
    scale = classify_intensity_scale(canonical)
    if scale != "hounsfield":
        message = (
            f"values range from {float(canonical.min()):g} to {float(canonical.max()):g} "
            f"({scale.replace('_', ' ')}), which are not Hounsfield units"
        )
        if require_hu:
            raise InputError(
                message + ": give the CT in HU, or import 8-bit renderings as a JPEG or PNG series",
                path=path,
            )
        warnings.append(message)
    elif float(canonical.min()) > HU_LIKE_MAX_MINIMUM:
        # Lung extraction rejects such a volume too; masks resampled from 0/255 look like this.
        message = (
            f"not a CT in Hounsfield units: no voxel is below {HU_LIKE_MAX_MINIMUM:g} HU (air "
            f"or fat), values range from {float(canonical.min()):.4g} to "
            f"{float(canonical.max()):.4g}"
        )
        if require_hu:
            raise InputError(
                message + ". It may be a mask or a label map: import only the CT volumes",
                path=path,
            )
        warnings.append(message)
    elif float(canonical.min()) > AIR_PRESENT_MAX_HU:
        warnings.append(
            f"lowest value is {float(canonical.min()):g}, above {AIR_PRESENT_MAX_HU:g} HU: "
            "the volume holds no air, so it may not be in Hounsfield units"
        )
    spacing = geometry.spacing_mm
    if any(math.isnan(s) or s <= 0 for s in spacing):
        raise InputError(f"NIfTI voxel spacing {spacing} is not positive", path=path)
    for warning in warnings:
        logger.warning("NIfTI volume: %s", warning)
    return NiftiVolume(
        hu=np.ascontiguousarray(canonical, dtype=np.float32),
        geometry=geometry,
        warnings=warnings,
        intensity_scale=scale,
    )
