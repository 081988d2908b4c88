"""8-bit JPEG/PNG slices: the one grey conversion, slice ordering and the iCTCF folder layouts.

iCTCF distributes CT as rendered 8-bit images rather than DICOM. A series is a folder of files
named like ``IMG-0001-00088.jpg`` (series 1, image 88), and there is one ``Patient N.zip``
per patient. The labelled slice sets sit in folders ``NiCT/`` (no lung visible), ``pCT/``
(positive: pneumonia lesions) and ``nCT/`` (negative: lungs without lesions). :func:`load_grey_slice` is the only
place where such a file becomes an array, so training and inference see identical values.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from ictcf.errors import InputError

logger = logging.getLogger(__name__)

#: File suffixes read as raster slices.
RASTER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"})
#: Folder names of the iCTCF labelled slice sets, matched case-insensitively, mapped to the label.
SLICE_LABEL_FOLDERS = {"nict": "NiCT", "pct": "pCT", "nct": "nCT"}
#: Divisor from 16-bit grey (0-65535) to 8-bit grey (0-255): 65535 / 255.
UINT16_TO_UINT8 = 257.0
#: Largest image side (pixels) accepted; larger files are rejected before decoding to keep
#: memory bounded (a 512x512 CT slice is far below).
MAX_IMAGE_SIDE = 8192

_NUMBER = re.compile(r"(\d+)")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that compares runs of digits as numbers (``IMG-2`` before ``IMG-10``)."""
    parts = _NUMBER.split(text)
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in parts if part)


def order_slice_files(paths: Iterable[Path]) -> list[Path]:
    """Order slice files by folder, then by the numbers in their names.

    ``IMG-0001-00009.jpg`` comes before ``IMG-0001-00010.jpg`` and ``slice_2.png`` before
    ``slice_10.png``; a plain string sort would put 10 before 2 for unpadded numbers.

    Parameters
    ----------
    paths : iterable of Path

    Returns
    -------
    list of Path
    """
    return sorted(
        (Path(p) for p in paths), key=lambda p: (natural_key(str(p.parent)), natural_key(p.name))
    )


@dataclass(frozen=True)
class RasterSeries:
    """Ordered raster slices of one series.

    Attributes
    ----------
    folder : Path
        Folder holding the files.
    prefix : str
        File-name part shared by the series with the trailing image number removed
        (``IMG-0001-`` for ``IMG-0001-00088.jpg``).
    files : list of Path
        Ordered by image number (see :func:`order_slice_files`).
    """

    folder: Path
    prefix: str
    files: list[Path]


def group_raster_series(paths: Iterable[Path]) -> list[RasterSeries]:
    """Group raster slice files into series by folder and name prefix.

    Files in one folder whose names differ only in the trailing number (``IMG-0001-00007.jpg``,
    ``IMG-0001-00008.jpg``) form one series; ``IMG-0002-...`` files form another. Files
    without a raster suffix are ignored.

    Returns
    -------
    list of RasterSeries
        Sorted by folder and prefix.
    """
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for raw in paths:
        path = Path(raw)
        if path.suffix.lower() not in RASTER_SUFFIXES:
            continue
        prefix = _TRAILING_NUMBER.sub("", path.stem)
        groups[(path.parent, prefix)].append(path)
    keys = sorted(groups, key=lambda key: (natural_key(str(key[0])), natural_key(key[1])))
    return [
        RasterSeries(folder, prefix, order_slice_files(groups[(folder, prefix)]))
        for folder, prefix in keys
    ]


def scan_labelled_slices(root: Path) -> list[tuple[Path, str]]:
    """List the slices of an iCTCF-style labelled set with their labels.

    A file's label comes from the nearest enclosing folder named ``NiCT``, ``pCT`` or ``nCT``
    (case-insensitive), so ``root/Patient 3/pCT/IMG-0001-00040.jpg`` is ``"pCT"``.

    Parameters
    ----------
    root : Path
        Folder to search recursively.

    Returns
    -------
    list of (Path, str)
        Raster files under a label folder, ordered by label folder then by image number.
        Files outside any label folder are skipped (counted in a DEBUG log line).

    Raises
    ------
    InputError
        If ``root`` is not a folder or contains no labelled slice.
    """
    if not root.is_dir():
        raise InputError("labelled slice folder not found: give a folder", path=root)
    labelled: list[tuple[Path, str]] = []
    skipped = 0
    for path in order_slice_files(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() not in RASTER_SUFFIXES or path.name.startswith("."):
            continue
        label = _nearest_label(path.relative_to(root))
        if label is None:
            skipped += 1
            continue
        labelled.append((path, label))
    if skipped:
        logger.debug("%d raster files outside NiCT/pCT/nCT folders skipped", skipped)
    if not labelled:
        raise InputError(
            "no labelled slices found: expected image files inside folders named NiCT, pCT or nCT",
            path=root,
        )
    return labelled


def _nearest_label(relative: Path) -> str | None:
    for part in reversed(relative.parts[:-1]):
        label = SLICE_LABEL_FOLDERS.get(part.lower())
        if label is not None:
            return label
    return None


def _open_image(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        if max(image.size) > MAX_IMAGE_SIDE:
            raise InputError(
                f"image of {image.size[0]}x{image.size[1]} pixels exceeds the "
                f"{MAX_IMAGE_SIDE}-pixel limit for a CT slice",
                path=path,
            )
        image.load()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as err:
        raise InputError(
            f"image could not be read ({type(err).__name__}: {err}): the file is damaged or "
            "not a JPEG/PNG/TIFF/BMP image",
            path=path,
        ) from err
    return image


def grey_from_image(image: Image.Image) -> NDArray[np.uint8]:
    """Convert a decoded PIL image to one 8-bit grey channel (see :func:`load_grey_slice`)."""
    oriented = ImageOps.exif_transpose(image)
    mode = oriented.mode
    if mode == "L":
        return np.asarray(oriented, dtype=np.uint8).copy()
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(oriented, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"{mode} image has values outside 0-65535")
        return np.asarray(np.rint(values / UINT16_TO_UINT8), dtype=np.uint8)
    if mode == "F":
        raise ValueError("floating-point images have no defined 8-bit grey scale")
    if mode == "1":
        return np.asarray(oriented.convert("L"), dtype=np.uint8).copy()
    has_alpha = mode in ("LA", "RGBA", "PA") or (mode == "P" and "transparency" in oriented.info)
    if has_alpha:
        rgba = oriented.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        oriented = Image.alpha_composite(black, rgba)
    rgb = oriented.convert("RGB")
    return np.asarray(rgb.convert("L"), dtype=np.uint8).copy()


def load_grey_slice(path: Path) -> NDArray[np.uint8]:
    """Read a JPEG/PNG/TIFF/BMP slice as one 8-bit grey channel.

    This is the single conversion used by training and inference alike:

    1. the EXIF Orientation tag is applied (the array is what a viewer shows);
    2. grey (``L``) images are returned unchanged; 16-bit grey is divided by 257 and rounded;
       bilevel images become 0/255;
    3. transparent images (``LA``, ``RGBA``, palette with transparency) are composited onto
       black, since transparent regions of a CT rendering are background;
    4. colour and palette images become ITU-R BT.601 luma,
       ``L = (19595 R + 38470 G + 7471 B + 32768) >> 16`` (Pillow's ``convert("L")``), so an
       RGB image with equal channels gives exactly the grey image, and a red annotation
       (255, 0, 0) becomes grey level 76 rather than disappearing.

    Parameters
    ----------
    path : Path

    Returns
    -------
    ndarray of uint8, shape (height, width)

    Raises
    ------
    InputError
        If the file cannot be decoded, is larger than :data:`MAX_IMAGE_SIDE` or has a
        floating-point mode.
    """
    image = _open_image(path)
    try:
        return grey_from_image(image)
    except ValueError as err:
        raise InputError(f"image cannot be converted to 8-bit grey: {err}", path=path) from err
    finally:
        image.close()


@dataclass(frozen=True)
class RasterInfo:
    """Properties of a raster slice before grey conversion.

    Attributes
    ----------
    mode : str
        Pillow mode (``L``, ``RGB``, ``RGBA``, ``P``...).
    width, height : int
        Size after the EXIF orientation is applied.
    exif_orientation : int
        EXIF Orientation tag (1 = none).
    colour_fraction : float
        Fraction of pixels whose red, green and blue values differ (colour annotations such
        as arrows or text); 0 for grey images.
    """

    mode: str
    width: int
    height: int
    exif_orientation: int
    colour_fraction: float


def describe_raster(path: Path) -> RasterInfo:
    """Report the mode, size, EXIF orientation and amount of colour of a raster slice.

    Raises
    ------
    InputError
        If the file cannot be decoded.
    """
    image = _open_image(path)
    try:
        orientation = int(image.getexif().get(0x0112, 1))
        oriented = ImageOps.exif_transpose(image)
        fraction = 0.0
        if oriented.mode not in ("L", "1", "I", "I;16", "I;16B", "I;16L", "F", "LA"):
            rgb = np.asarray(oriented.convert("RGB"), dtype=np.int16)
            differs = (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])
            fraction = float(differs.mean())
        return RasterInfo(
            mode=image.mode,
            width=oriented.size[0],
            height=oriented.size[1],
            exif_orientation=orientation,
            colour_fraction=fraction,
        )
    finally:
        image.close()


def load_grey_series(paths: Sequence[Path]) -> NDArray[np.uint8]:
    """Read ordered slices of one series into a (slices, height, width) uint8 array.

    Raises
    ------
    InputError
        If a slice cannot be read or the slices differ in size.
    """
    slices = [load_grey_slice(path) for path in paths]
    if not slices:
        raise InputError("no slices given for the series")
    shape = slices[0].shape
    for path, image in zip(paths, slices, strict=True):
        if image.shape != shape:
            raise InputError(
                f"slice is {image.shape[1]}x{image.shape[0]} pixels but the series is "
                f"{shape[1]}x{shape[0]}: a series must have one size",
                path=path,
            )
    return np.stack(slices)
