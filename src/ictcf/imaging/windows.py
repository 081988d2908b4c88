"""Display windows: Hounsfield units to 8-bit grey with the DICOM linear VOI function.

Every 8-bit rendering of an HU slice in the package (the lung-window and mediastinal-window
JPEGs in the slice store, the PNG export for the slice classifier) goes through
:func:`apply_window`, so the DICOM and PNG routes produce the same grey values. The rendering
starts from HU after the modality transform, so low HU is always dark, whatever the source's
(0028,0004) PhotometricInterpretation (MONOCHROME1 included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Largest grey value of an 8-bit rendering.
GREY_MAX = 255


@dataclass(frozen=True)
class Window:
    """A display window in Hounsfield units.

    Attributes
    ----------
    name : str
        Short name recorded in manifests and PNG text chunks (``lung``, ``mediastinal``).
    width : float
        Window width in HU, (0028,1051) WindowWidth. Must be at least 1.
    level : float
        Window centre in HU, (0028,1050) WindowCenter.
    """

    name: str
    width: float
    level: float

    def __post_init__(self) -> None:
        if not self.width >= 1:
            raise ValueError(
                f"Window width {self.width!r} HU is invalid: DICOM requires a width of at least 1."
            )

    def describe(self) -> str:
        """Return the window as ``name W1500 L-600`` for manifests and PNG text chunks."""
        return f"{self.name} W{self.width:g} L{self.level:g}"


#: Lung window (width 1500 HU, level -600 HU): the usual reading window for lung parenchyma.
LUNG_WINDOW = Window("lung", width=1500.0, level=-600.0)
#: Mediastinal window (width 400 HU, level 40 HU): soft tissue, vessels and effusions.
MEDIASTINAL_WINDOW = Window("mediastinal", width=400.0, level=40.0)


def apply_window(hu: npt.ArrayLike, window: Window = LUNG_WINDOW) -> npt.NDArray[np.uint8]:
    """Map Hounsfield units to 8-bit grey with the DICOM LINEAR VOI LUT function.

    The function is the one of DICOM PS3.3 C.11.2.1.2.1: values at or below
    ``level - 0.5 - (width - 1) / 2`` become 0, values above ``level - 0.5 + (width - 1) / 2``
    become 255 and values in between are mapped linearly and rounded to the nearest integer.

    Parameters
    ----------
    hu : array_like of shape (rows, columns) or any shape
        Values in Hounsfield units. NaN is rendered as 0.
    window : Window, default LUNG_WINDOW
        The display window.

    Returns
    -------
    ndarray of uint8, same shape as ``hu``
        The rendered grey values; the shape (and so width and height) is unchanged.
    """
    values = np.asarray(hu, dtype=np.float32)
    centre = np.float32(window.level - 0.5)
    span = window.width - 1.0
    if span <= 0:
        return np.where(values > centre, GREY_MAX, 0).astype(np.uint8)
    # ((x - centre) / span + 0.5) * 255, computed in place in float32 for speed.
    grey = values - centre
    grey *= np.float32(GREY_MAX / span)
    grey += np.float32(GREY_MAX / 2)
    np.clip(grey, 0, GREY_MAX, out=grey)
    np.rint(grey, out=grey)
    grey[np.isnan(grey)] = 0
    return grey.astype(np.uint8)
