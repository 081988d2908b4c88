"""Pure geometry of image volumes in the DICOM patient coordinate system (LPS, millimetres).

Nothing here reads files: the functions take direction cosines and positions already extracted
from headers (see :mod:`ictcf.imaging.dicom_headers`) or from a NIfTI affine.

Conventions used across :mod:`ictcf.imaging`:

* Patient coordinates are DICOM LPS: +x towards the patient's left, +y posterior, +z superior.
* A volume array has shape ``(slices, rows, columns)``.
* ``direction`` is a (3, 3) array with three rows. Row 0 is the row direction: the way the
  column index increases, the first triplet of (0020,0037) ImageOrientationPatient. Row 1 is
  the column direction: the way the row index increases, the second triplet. Row 2 is the
  slice normal, their cross product.
* ``spacing_mm`` is ``(slice, row, column)``: the distance between slice centres along the
  normal, between row centres (the first value of (0028,0030) PixelSpacing) and between column
  centres (its second value).
* The canonical axial grid has the row direction towards +x (patient left), the column
  direction towards +y (posterior), hence the normal towards +z, and slices ordered from
  inferior to superior. This is the orientation of a standard axial CT image (IOP 1,0,0,0,1,0)
  with slices sorted by ascending position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Largest difference between two direction cosines that still counts as the same orientation;
#: scanners print cosines to 6 digits, and 1e-3 is about 0.06 degrees.
ORIENTATION_TOLERANCE = 1e-3
#: Largest distance (mm) between two slice positions that still counts as the same position.
POSITION_TOLERANCE_MM = 0.01
#: Largest deviation of one slice step from the median step, as a fraction of the median,
#: before the spacing counts as non-uniform (0.5 % of 5 mm is 0.025 mm, above print rounding).
SPACING_RELATIVE_TOLERANCE = 0.005
#: A slice step above this multiple of the median step is reported as a gap (missing slices).
GAP_FACTOR = 1.5
#: Largest angle (degrees) between the slice normal and the z axis for a slice to count as axial;
#: 45 degrees separates axial from coronal and sagittal, and tilted axial scans stay well below.
AXIAL_MAX_ANGLE_DEG = 45.0
#: Largest in-plane offset (mm) between consecutive slices before the stack counts as sheared
#: (gantry tilt); 0.01 mm is well below any pixel spacing.
SHEAR_TOLERANCE_MM = 0.01


def slice_normal(orientation: ArrayLike) -> NDArray[np.float64]:
    """Compute the unit slice normal from (0020,0037) ImageOrientationPatient.

    Parameters
    ----------
    orientation : array_like of shape (6,)
        Row direction cosines followed by column direction cosines.

    Returns
    -------
    ndarray of shape (3,)
        ``row x column``, normalised.

    Raises
    ------
    ValueError
        If the vectors are degenerate (zero length or parallel).
    """
    values = np.asarray(orientation, dtype=np.float64).reshape(6)
    row, column = values[:3], values[3:]
    normal = np.cross(row, column)
    length = float(np.linalg.norm(normal))
    if not math.isfinite(length) or length < 0.5:
        raise ValueError(
            f"orientation {values.tolist()} has degenerate row and column vectors "
            "(zero length or parallel)"
        )
    return normal / length


def orientation_matrix(orientation: ArrayLike) -> NDArray[np.float64]:
    """Build the (3, 3) direction matrix (row direction, column direction, normal) from IOP.

    The row and column vectors are normalised; they are not re-orthogonalised, so a sheared
    orientation stays visible to :func:`is_orthogonal`.
    """
    values = np.asarray(orientation, dtype=np.float64).reshape(6)
    row = values[:3] / np.linalg.norm(values[:3])
    column = values[3:] / np.linalg.norm(values[3:])
    return np.stack([row, column, slice_normal(values)])


def is_orthogonal(direction: NDArray[np.float64], tolerance: float = ORIENTATION_TOLERANCE) -> bool:
    """Return whether the row and column directions are perpendicular within ``tolerance``."""
    return abs(float(np.dot(direction[0], direction[1]))) <= tolerance


def same_orientation(a: ArrayLike, b: ArrayLike, tolerance: float = ORIENTATION_TOLERANCE) -> bool:
    """Return whether two ImageOrientationPatient values agree within ``tolerance`` per cosine."""
    first = np.asarray(a, dtype=np.float64).reshape(6)
    second = np.asarray(b, dtype=np.float64).reshape(6)
    return bool(np.max(np.abs(first - second)) <= tolerance)


def classify_plane(normal: ArrayLike) -> str:
    """Name the anatomical plane of a slice from its normal.

    Returns
    -------
    str
        ``"axial"`` when the normal is within :data:`AXIAL_MAX_ANGLE_DEG` of the z axis,
        otherwise ``"coronal"`` (normal mostly along y) or ``"sagittal"`` (mostly along x).
    """
    unit = np.asarray(normal, dtype=np.float64)
    unit = unit / np.linalg.norm(unit)
    angle = math.degrees(math.acos(min(1.0, abs(float(unit[2])))))
    if angle <= AXIAL_MAX_ANGLE_DEG:
        return "axial"
    return "coronal" if abs(unit[1]) >= abs(unit[0]) else "sagittal"


def tilt_angle_deg(normal: ArrayLike) -> float:
    """Angle in degrees between the slice normal and the z axis (0 for a true axial slice)."""
    unit = np.asarray(normal, dtype=np.float64)
    unit = unit / np.linalg.norm(unit)
    return math.degrees(math.acos(min(1.0, abs(float(unit[2])))))


@dataclass(frozen=True)
class InPlaneReorientation:
    """Transpose and flips that bring an axial slice to the canonical in-plane orientation.

    Apply to an array of shape (rows, columns) in this order: transpose when ``transpose``,
    then reverse the rows when ``flip_rows``, then reverse the columns when ``flip_columns``
    (see :meth:`apply`).
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_columns: bool = False

    @property
    def is_identity(self) -> bool:
        """Whether the slice is already canonical."""
        return not (self.transpose or self.flip_rows or self.flip_columns)

    def apply(self, image: NDArray[np.generic]) -> NDArray[np.generic]:
        """Return ``image`` (shape (..., rows, columns)) in canonical orientation, as a view."""
        result = np.swapaxes(image, -1, -2) if self.transpose else image
        if self.flip_rows:
            result = result[..., ::-1, :]
        if self.flip_columns:
            result = result[..., :, ::-1]
        return result

    def describe(self) -> str:
        """Return a short human-readable list of the operations, or ``"none"``."""
        steps = [
            name
            for name, active in (
                ("transpose", self.transpose),
                ("flip rows", self.flip_rows),
                ("flip columns", self.flip_columns),
            )
            if active
        ]
        return ", ".join(steps) if steps else "none"


def canonical_in_plane(direction: NDArray[np.float64]) -> InPlaneReorientation:
    """Find the transpose and flips that point the row direction to +x and the column direction to +y.

    Parameters
    ----------
    direction : ndarray of shape (3, 3)
        Acquired (row direction, column direction, normal).

    Returns
    -------
    InPlaneReorientation
        Nearest-axis operations only; an oblique slice stays oblique.
    """
    row, column = direction[0], direction[1]
    transpose = abs(row[0]) < abs(row[1])
    if transpose:
        row, column = column, row
    return InPlaneReorientation(
        transpose=bool(transpose), flip_rows=bool(column[1] < 0), flip_columns=bool(row[0] < 0)
    )


def reoriented_frame(
    origin_mm: NDArray[np.float64],
    direction: NDArray[np.float64],
    pixel_spacing_mm: tuple[float, float],
    shape: tuple[int, int],
    reorientation: InPlaneReorientation,
) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[float, float]]:
    """Compute the in-plane geometry of a slice after :meth:`InPlaneReorientation.apply`.

    Parameters
    ----------
    origin_mm : ndarray of shape (3,)
        Centre of the first transmitted pixel (ImagePositionPatient), mm.
    direction : ndarray of shape (3, 3)
        Acquired (row direction, column direction, normal).
    pixel_spacing_mm : (float, float)
        Acquired (row spacing, column spacing), mm.
    shape : (int, int)
        Acquired (rows, columns).
    reorientation : InPlaneReorientation
        The operations applied to the pixel array.

    Returns
    -------
    origin_mm : ndarray of shape (3,)
        Centre of pixel [0, 0] of the reoriented slice.
    direction : ndarray of shape (3, 3)
        Reoriented (row direction, column direction, normal); the normal is recomputed as
        row x column.
    pixel_spacing_mm : (float, float)
        Reoriented (row spacing, column spacing).
    """
    row_dir, col_dir = direction[0].copy(), direction[1].copy()
    row_spacing, column_spacing = pixel_spacing_mm
    rows, columns = shape
    origin = np.asarray(origin_mm, dtype=np.float64).copy()
    if reorientation.transpose:
        row_dir, col_dir = col_dir, row_dir
        row_spacing, column_spacing = column_spacing, row_spacing
        rows, columns = columns, rows
    if reorientation.flip_rows:
        origin = origin + (rows - 1) * row_spacing * col_dir
        col_dir = -col_dir
    if reorientation.flip_columns:
        origin = origin + (columns - 1) * column_spacing * row_dir
        row_dir = -row_dir
    normal = np.cross(row_dir, col_dir)
    normal = normal / np.linalg.norm(normal)
    return origin, np.stack([row_dir, col_dir, normal]), (row_spacing, column_spacing)


@dataclass(frozen=True)
class SpacingReport:
    """Regularity of the slice positions along the normal.

    Attributes
    ----------
    spacing_mm : float
        Median distance between consecutive slices (NaN with fewer than two slices).
    uniform : bool
        Whether every step is within :data:`SPACING_RELATIVE_TOLERANCE` of the median.
    gaps : list of (int, float)
        ``(index, step_mm)`` for each step above :data:`GAP_FACTOR` times the median, where
        ``index`` is the slice after the gap.
    warnings : list of str
        Human-readable findings, empty for a regular stack.
    """

    spacing_mm: float
    uniform: bool
    gaps: list[tuple[int, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_slice_spacing(positions_mm: Sequence[float] | NDArray[np.float64]) -> SpacingReport:
    """Check that sorted slice positions along the normal are evenly spaced.

    Parameters
    ----------
    positions_mm : sequence of float
        Strictly increasing positions along the slice normal, mm.

    Returns
    -------
    SpacingReport
    """
    positions = np.asarray(positions_mm, dtype=np.float64)
    if positions.size < 2:
        return SpacingReport(spacing_mm=math.nan, uniform=True)
    steps = np.diff(positions)
    median = float(np.median(steps))
    deviation = np.abs(steps - median)
    uniform = bool(np.all(deviation <= max(SPACING_RELATIVE_TOLERANCE * median, 1e-6)))
    gaps = [
        (int(index) + 1, float(steps[index]))
        for index in np.flatnonzero(steps > GAP_FACTOR * median)
    ]
    warnings: list[str] = []
    if not uniform:
        warnings.append(
            f"non-uniform slice spacing: steps range from {steps.min():.3f} to "
            f"{steps.max():.3f} mm around a median of {median:.3f} mm. Each slice keeps its "
            "own position (position_mm), and volumes or distances that assume the median "
            "spacing are approximate"
        )
    for index, step in gaps:
        missing = round(step / median) - 1
        warnings.append(
            f"gap of {step:.3f} mm before slice {index} (about {missing} missing "
            f"slice{'s' if missing != 1 else ''} at a {median:.3f} mm spacing)"
        )
    return SpacingReport(spacing_mm=median, uniform=uniform, gaps=gaps, warnings=warnings)


@dataclass(frozen=True)
class SeriesGeometry:
    """Geometry of a volume of shape (slices, rows, columns) in LPS millimetres.

    Attributes
    ----------
    origin_mm : ndarray of shape (3,)
        Centre of voxel [0, 0, 0].
    spacing_mm : (float, float, float)
        ``(slice, row, column)`` spacing. The slice value is the median step between slices
        (see ``slice_positions_mm`` when ``uniform_spacing`` is false). For a single slice it
        is (0018,0088) SpacingBetweenSlices or (0018,0050) SliceThickness, or NaN when both
        are missing.
    direction : ndarray of shape (3, 3)
        Rows: row direction, column direction, slice normal (unit vectors).
    slice_positions_mm : ndarray of shape (slices,)
        Distance of each slice from ``origin_mm`` along the normal, increasing from 0.
    shape : (int, int, int)
        ``(slices, rows, columns)``.
    uniform_spacing : bool
        Whether the slices are evenly spaced (see :func:`check_slice_spacing`).
    reorientation : InPlaneReorientation
        Operations applied to each acquired slice to reach this grid.
    gantry_tilt_deg : float
        Angle between the acquired slice normal and the z axis, degrees.
    sheared : bool
        Whether the acquired slices were shifted in plane to undo a gantry-tilt shear.
    """

    origin_mm: NDArray[np.float64]
    spacing_mm: tuple[float, float, float]
    direction: NDArray[np.float64]
    slice_positions_mm: NDArray[np.float64]
    shape: tuple[int, int, int]
    uniform_spacing: bool = True
    reorientation: InPlaneReorientation = field(default_factory=InPlaneReorientation)
    gantry_tilt_deg: float = 0.0
    sheared: bool = False

    @property
    def affine(self) -> NDArray[np.float64]:
        """(4, 4) matrix from the index ``(slice, row, column, 1)`` to LPS mm.

        Uses the median slice spacing; with ``uniform_spacing`` false, take exact slice
        positions from ``slice_positions_mm``.
        """
        slice_step, row_step, column_step = self.spacing_mm
        matrix = np.eye(4)
        matrix[:3, 0] = self.direction[2] * (0.0 if math.isnan(slice_step) else slice_step)
        matrix[:3, 1] = self.direction[1] * row_step
        matrix[:3, 2] = self.direction[0] * column_step
        matrix[:3, 3] = self.origin_mm
        return matrix

    @property
    def slice_extents_mm(self) -> NDArray[np.float64]:
        """Thickness of the slab each slice stands for, mm, shape (slices,).

        Each slice covers half the distance to each neighbour (the first and last slices
        mirror their only neighbour), so ``sum(area_mm2 * extent_mm)`` is a volume that stays
        right when the spacing is non-uniform or has gaps. A single slice gets
        ``spacing_mm[0]``.
        """
        positions = self.slice_positions_mm
        if positions.size < 2:
            return np.full(positions.size, self.spacing_mm[0], dtype=np.float64)
        steps = np.diff(positions)
        extents = np.empty(positions.size, dtype=np.float64)
        extents[0] = steps[0]
        extents[-1] = steps[-1]
        extents[1:-1] = (steps[:-1] + steps[1:]) / 2.0
        return extents

    def slice_origin_mm(self, index: int) -> NDArray[np.float64]:
        """Centre of voxel [index, 0, 0] in LPS mm."""
        return np.asarray(
            self.origin_mm + self.direction[2] * self.slice_positions_mm[index], dtype=np.float64
        )

    def voxel_volume_ml(self) -> float:
        """Volume of one voxel at the median spacing, mL (1 mL = 1000 mm³)."""
        slice_step, row_step, column_step = self.spacing_mm
        return slice_step * row_step * column_step / 1000.0


def geometry_from_affine_lps(
    affine_lps: NDArray[np.float64], shape: tuple[int, int, int]
) -> SeriesGeometry:
    """Build a :class:`SeriesGeometry` from a (4, 4) index-to-LPS affine of a (slices, rows, columns) array.

    Parameters
    ----------
    affine_lps : ndarray of shape (4, 4)
        Column 0 steps one slice, column 1 one row, column 2 one column.
    shape : (int, int, int)
        ``(slices, rows, columns)``.

    Raises
    ------
    ValueError
        If a spacing is zero.
    """
    columns = affine_lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"affine has a zero voxel spacing: {spacing.tolist()}")
    normal = columns[:, 0] / spacing[0]
    column_dir = columns[:, 1] / spacing[1]
    row_dir = columns[:, 2] / spacing[2]
    positions = np.arange(shape[0], dtype=np.float64) * spacing[0]
    return SeriesGeometry(
        origin_mm=np.asarray(affine_lps[:3, 3], dtype=np.float64),
        spacing_mm=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        direction=np.stack([row_dir, column_dir, normal]),
        slice_positions_mm=positions,
        shape=shape,
        gantry_tilt_deg=tilt_angle_deg(normal),
    )
