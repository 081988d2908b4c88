"""Quality measures of a lung mask: per-slice QC and Dice overlap against reference masks.

A slice whose mask contains (almost) no lung is a candidate non-informative CT slice (NiCT), which
is a normal outcome for slices above the apices or below the lung bases, not an error.
Implausible masks (far too large, touching the image border, badly fragmented) are flagged
with a reason so that a reviewer can look at them; the pipeline never drops them silently.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ictcf.errors import InputError

logger = logging.getLogger(__name__)

#: Lung area below which a slice counts as showing no lung parenchyma, in mm² (1 cm², about
#: the cross-section of a lung apex or base tip at the first slice that touches it).
NICT_MAX_LUNG_AREA_MM2 = 100.0
#: The same limit as a share of the slice's pixels when the pixel spacing is unknown
#: (100 mm² in a 350 mm field of view is about 0.08 %).
NICT_MAX_LUNG_AREA_FRACTION = 0.0008
#: Largest plausible lung cross-section of one axial slice, in mm² (both lungs of a large adult
#: at full inspiration reach about 450 cm²).
MAX_PLAUSIBLE_LUNG_AREA_MM2 = 60_000.0
#: Largest plausible share of the image covered by lung when the spacing is unknown.
MAX_PLAUSIBLE_LUNG_AREA_FRACTION = 0.6
#: More separate lung regions than this on one slice means the mask is fragmented (two lungs
#: plus a few apex or base tips and lobes cut by fissures stay below it).
MAX_PLAUSIBLE_COMPONENTS = 8


@dataclass(frozen=True)
class SliceQC:
    """Quality measures of the lung mask of one axial slice.

    Attributes
    ----------
    lung_area_px : int
        Number of lung pixels in the full-resolution mask.
    lung_area_mm2 : float or None
        Lung area in mm², None when the pixel spacing is unknown.
    n_components : int
        Number of separate (8-connected) lung regions.
    empty : bool
        True when the mask contains no lung pixel.
    implausible_reason : str or None
        Why the mask looks wrong (too large, touching the image border, fragmented), or None.
    nict_candidate : bool
        True when the slice shows too little lung to be informative (see
        ``NICT_MAX_LUNG_AREA_MM2``); empty masks are always candidates.
    """

    lung_area_px: int
    lung_area_mm2: float | None
    n_components: int
    empty: bool
    implausible_reason: str | None
    nict_candidate: bool

    @property
    def plausible(self) -> bool:
        """Whether no implausibility was found."""
        return self.implausible_reason is None

    def to_dict(self) -> dict[str, object]:
        """Return the measures as a plain dictionary (for JSON reports and database rows)."""
        return {
            "lung_area_px": self.lung_area_px,
            "lung_area_mm2": self.lung_area_mm2,
            "n_components": self.n_components,
            "empty": self.empty,
            "implausible_reason": self.implausible_reason,
            "nict_candidate": self.nict_candidate,
        }


def check_pixel_spacing(pixel_spacing_mm: Sequence[float] | None) -> tuple[float, float] | None:
    """Validate an in-plane pixel spacing.

    Parameters
    ----------
    pixel_spacing_mm : sequence of two floats or None
        (row, column) spacing in mm, as in (0028,0030) PixelSpacing.

    Returns
    -------
    tuple of two floats or None
        The spacing as floats, or None when none was given.

    Raises
    ------
    InputError
        When the spacing does not have two finite, positive values.
    """
    if pixel_spacing_mm is None:
        return None
    values = tuple(float(value) for value in pixel_spacing_mm)
    if len(values) != 2 or not all(np.isfinite(value) and value > 0 for value in values):
        raise InputError(
            f"invalid pixel spacing {pixel_spacing_mm!r}: expected two positive (row, column) "
            "values in mm; pass None when the spacing is unknown"
        )
    return values[0], values[1]


def measure_slice_quality(
    mask: ArrayLike, *, pixel_spacing_mm: Sequence[float] | None = None
) -> SliceQC:
    """Measure the lung mask of one axial slice.

    Parameters
    ----------
    mask : array_like of bool, shape (rows, columns)
        Lung mask at the slice's full resolution.
    pixel_spacing_mm : (row, column) spacing in mm, optional
        Enables the area in mm² and the mm²-based limits. Without it the limits are shares of
        the image (``NICT_MAX_LUNG_AREA_FRACTION``, ``MAX_PLAUSIBLE_LUNG_AREA_FRACTION``).

    Returns
    -------
    SliceQC

    Raises
    ------
    InputError
        When the mask is not two-dimensional or the spacing is invalid.
    """
    lung = np.asarray(mask, dtype=bool)
    if lung.ndim != 2:
        raise InputError(
            f"invalid lung mask shape {lung.shape}: expected one slice of shape (rows, columns)"
        )
    spacing = check_pixel_spacing(pixel_spacing_mm)
    area_px = int(np.count_nonzero(lung))
    n_labels, _ = cv2.connectedComponents(lung.view(np.uint8), connectivity=8)
    n_components = n_labels - 1

    area_mm2: float | None = None
    if spacing is not None:
        area_mm2 = area_px * spacing[0] * spacing[1]
        nict = area_mm2 < NICT_MAX_LUNG_AREA_MM2
        too_large = area_mm2 > MAX_PLAUSIBLE_LUNG_AREA_MM2
        size_text = f"{area_mm2:.0f} mm² exceeds {MAX_PLAUSIBLE_LUNG_AREA_MM2:.0f} mm²"
    else:
        fraction = area_px / lung.size
        nict = fraction < NICT_MAX_LUNG_AREA_FRACTION
        too_large = fraction > MAX_PLAUSIBLE_LUNG_AREA_FRACTION
        size_text = f"{fraction:.0%} of the image exceeds {MAX_PLAUSIBLE_LUNG_AREA_FRACTION:.0%}"

    reasons: list[str] = []
    if too_large:
        reasons.append(f"lung area {size_text}")
    if area_px and _touches_border(lung):
        reasons.append("lung mask touches the image border")
    if n_components > MAX_PLAUSIBLE_COMPONENTS:
        reasons.append(
            f"{n_components} separate lung regions (more than {MAX_PLAUSIBLE_COMPONENTS})"
        )
    return SliceQC(
        lung_area_px=area_px,
        lung_area_mm2=area_mm2,
        n_components=int(n_components),
        empty=area_px == 0,
        implausible_reason="; ".join(reasons) if reasons else None,
        nict_candidate=area_px == 0 or bool(nict),
    )


def _touches_border(mask: NDArray[np.bool_]) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def dice_coefficient(reference: ArrayLike, prediction: ArrayLike) -> float:
    """Compute the Dice similarity coefficient of two binary masks.

    ``2 |A ∩ B| / (|A| + |B|)`` over all elements, for masks of any dimension.

    Parameters
    ----------
    reference, prediction : array_like of bool, same shape
        Reference (manual) mask and predicted mask.

    Returns
    -------
    float
        Dice in [0, 1]. NaN, with a ``RuntimeWarning``, when both masks are empty because the
        coefficient is undefined there (it is neither 0 nor 1).

    Raises
    ------
    InputError
        When the shapes differ.
    """
    first, second = _as_mask_pair(reference, prediction)
    total = int(np.count_nonzero(first)) + int(np.count_nonzero(second))
    if total == 0:
        warnings.warn(
            "Dice is undefined because both masks are empty; returning nan",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return 2.0 * int(np.count_nonzero(first & second)) / total


def per_slice_dice(reference: ArrayLike, prediction: ArrayLike) -> NDArray[np.float64]:
    """Compute the Dice coefficient of each slice of two mask volumes.

    Parameters
    ----------
    reference, prediction : array_like of bool, shape (slices, rows, columns)
        Reference and predicted masks with the slice axis first.

    Returns
    -------
    ndarray of float64, shape (slices,)
        Dice per slice; NaN (without a warning) for slices where both masks are empty.

    Raises
    ------
    InputError
        When the shapes differ or the masks are not three-dimensional.
    """
    first, second = _as_mask_pair(reference, prediction)
    if first.ndim != 3:
        raise InputError(f"invalid mask shape {first.shape}: expected (slices, rows, columns)")
    overlap = np.count_nonzero(first & second, axis=(1, 2)).astype(np.float64)
    total = (np.count_nonzero(first, axis=(1, 2)) + np.count_nonzero(second, axis=(1, 2))).astype(
        np.float64
    )
    result = np.full(first.shape[0], np.nan)
    defined = total > 0
    result[defined] = 2.0 * overlap[defined] / total[defined]
    return result


def mean_slice_dice(reference: ArrayLike, prediction: ArrayLike) -> float:
    """Average the per-slice Dice over slices where either mask contains lung.

    Slices where both masks are empty are left out because Dice is undefined there. A slice
    where only one mask contains lung counts with Dice 0.

    Parameters
    ----------
    reference, prediction : array_like of bool, shape (slices, rows, columns)

    Returns
    -------
    float
        Mean Dice; NaN with a ``RuntimeWarning`` when every slice is empty in both masks.
    """
    values = per_slice_dice(reference, prediction)
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        warnings.warn(
            "mean per-slice Dice is undefined because every slice is empty in both masks; "
            "returning nan",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(defined.mean())


def _as_mask_pair(
    reference: ArrayLike, prediction: ArrayLike
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    first = np.asarray(reference, dtype=bool)
    second = np.asarray(prediction, dtype=bool)
    if first.shape != second.shape:
        raise InputError(
            f"mask shapes differ: reference {first.shape}, prediction {second.shape}; "
            "resample one mask onto the other's grid first"
        )
    return first, second
