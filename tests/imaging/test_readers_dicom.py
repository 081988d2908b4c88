"""DICOM series planning and Hounsfield-unit decoding on synthetic and real series."""

from __future__ import annotations

import csv
import logging
import math
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from ictcf.errors import InputError
from ictcf.imaging import dicom_headers
from ictcf.imaging.dicom_series import (
    PADDING_FILL_HU,
    iter_hu_slices,
    load_hu_volume,
    plan_dicom_series,
)
from tests.imaging.dicom_factory import (
    ct_dataset,
    encode_jpeg_lossless,
    enhanced_ct,
    write,
    write_axial_series,
)

RNG_SEED = 20260412


def _volume(slices: int, rows: int = 8, columns: int = 8) -> np.ndarray:
    """Stored values whose slice k is filled with 100 * k (int16), easy to trace."""
    return np.stack([np.full((rows, columns), 100 * k, dtype=np.int16) for k in range(slices)])


def _only_plan(tmp_path: Path, paths: list[Path]):
    scan = plan_dicom_series(paths)
    assert len(scan.series) == 1, [p.warnings for p in scan.series]
    return scan.series[0]


# --- modality transform ------------------------------------------------------------------


def test_missing_rescale_assumes_identity(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """B01: no (0028,1052)/(0028,1053): slope 1, intercept 0, with a warning."""
    volume = np.stack([np.linspace(-1000, 200, 64, dtype=np.int16).reshape(8, 8)] * 3)
    paths = write_axial_series(tmp_path, volume, [0, 1, 2], slope=None, intercept=None)
    with caplog.at_level(logging.WARNING):
        plan = _only_plan(tmp_path, paths)
    assert any("RescaleSlope" in w and "slope 1" in w for w in plan.warnings)
    assert "RescaleIntercept" in caplog.text
    hu = load_hu_volume(plan)
    np.testing.assert_array_equal(hu, volume.astype(np.float32))


def test_enhanced_per_frame_rescale(tmp_path: Path) -> None:
    """B02: per-frame PixelValueTransformationSequence wins over nothing at top level."""
    dataset = enhanced_ct(
        np.ones((2, 1, 1), dtype=np.uint16),
        positions=[(0, 0, 0), (0, 0, 1)],
        per_frame_rescale=[(3.0, -1.0), (7.0, -3.0)],
    )
    path = write(dataset, tmp_path / "enhanced.dcm")
    plan = _only_plan(tmp_path, [path])
    values = [float(item.hu[0, 0]) for item in iter_hu_slices(plan, fill_padding=False)]
    assert values == [2.0, 4.0]


def test_enhanced_shared_rescale(tmp_path: Path) -> None:
    dataset = enhanced_ct(
        np.full((2, 2, 2), 1000, dtype=np.uint16),
        positions=[(0, 0, 0), (0, 0, 1)],
        shared_rescale=(1.0, -1024.0),
    )
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "e.dcm")])
    assert {float(item.hu[0, 0]) for item in iter_hu_slices(plan)} == {-24.0}


def test_enhanced_geometry_from_functional_groups(tmp_path: Path) -> None:
    """B26: no top-level IPP/IOP; positions per frame, orientation and spacing shared."""
    dataset = enhanced_ct(
        np.zeros((3, 4, 4), dtype=np.uint16),
        positions=[(0, 0, 4), (0, 0, 0), (0, 0, 2)],
        pixel_spacing=(0.7, 0.7),
        slice_thickness=2.0,
        shared_rescale=(1.0, 0.0),
    )
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "e.dcm")])
    geometry = plan.geometry
    assert geometry.spacing_mm == pytest.approx((2.0, 0.7, 0.7))
    np.testing.assert_allclose(geometry.origin_mm, [0, 0, 0])
    assert [frame.frame_index for frame in plan.frames] == [1, 2, 0]


def test_enhanced_without_positions_is_excluded(tmp_path: Path) -> None:
    dataset = enhanced_ct(np.zeros((2, 4, 4), dtype=np.uint16), positions=None)
    scan = plan_dicom_series([write(dataset, tmp_path / "e.dcm")])
    assert scan.series == []
    assert "ImagePositionPatient" in scan.excluded[0].reason


def test_modality_lut_sequence_matches_pydicom(tmp_path: Path) -> None:
    stored = np.arange(16, dtype=np.uint16).reshape(4, 4)
    dataset = ct_dataset(stored, slope=None, intercept=None)
    item = Dataset()
    item.LUTDescriptor = [16, 0, 16]
    item.LUTData = [v * 10 for v in range(16)]
    item["LUTData"].VR = "US"
    item.ModalityLUTType = "HU"
    dataset.ModalityLUTSequence = DicomSequence([item])
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "lut.dcm")])
    hu = next(iter_hu_slices(plan)).hu
    np.testing.assert_array_equal(hu, stored * 10)


def test_monochrome1_hu_not_inverted(tmp_path: Path) -> None:
    """B04: HU follow the rescale; the photometric interpretation is passed on for rendering."""
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (64, 1))
    dataset = ct_dataset(ramp, photometric="MONOCHROME1", intercept=-1024.0)
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "m1.dcm")])
    item = next(iter_hu_slices(plan))
    assert plan.photometric_interpretation == "MONOCHROME1"
    assert item.photometric_interpretation == "MONOCHROME1"
    assert item.hu[0, 0] == -1024.0
    assert item.hu[0, -1] == 4095 - 1024
    assert np.all(np.diff(item.hu[0]) >= 0)


def test_signed_and_unsigned_agree(tmp_path: Path) -> None:
    values = np.array([[-1000, 0], [40, 1200]], dtype=np.int16)
    signed = ct_dataset(values, intercept=0.0)
    unsigned = ct_dataset((values + 1024).astype(np.uint16), intercept=-1024.0)
    for name, dataset in (("s.dcm", signed), ("u.dcm", unsigned)):
        plan = _only_plan(tmp_path, [write(dataset, tmp_path / name)])
        np.testing.assert_array_equal(next(iter_hu_slices(plan)).hu, values)


# --- padding -------------------------------------------------------------------------------


def test_pixel_padding_value_becomes_air(tmp_path: Path) -> None:
    stored = np.full((4, 4), 1024, dtype=np.int16)
    stored[0, :] = -2000
    dataset = ct_dataset(stored, intercept=-1024.0, PixelPaddingValue=-2000)
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "pad.dcm")])
    item = next(iter_hu_slices(plan))
    assert np.all(item.hu[0] == PADDING_FILL_HU)
    assert np.all(item.hu[1:] == 0.0)
    assert item.padding_mask is not None
    assert item.padding_mask[0].all()
    assert not item.padding_mask[1:].any()
    raw = next(iter_hu_slices(plan, fill_padding=False))
    assert np.all(raw.hu[0] == -3024.0)


def test_padding_range_limit(tmp_path: Path) -> None:
    stored = np.array([[0, 5, 10, 2000]], dtype=np.uint16)
    dataset = ct_dataset(stored, intercept=-1024.0, PixelPaddingValue=0, PixelPaddingRangeLimit=10)
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "range.dcm")])
    item = next(iter_hu_slices(plan))
    assert item.hu.tolist() == [[-1000.0, -1000.0, -1000.0, 976.0]]


def test_implicit_padding_below_air(tmp_path: Path) -> None:
    """A Toshiba-style -2048 outside the field of view without a padding tag."""
    stored = np.array([[-2048, -1000, 0]], dtype=np.int16)
    plan = _only_plan(tmp_path, [write(ct_dataset(stored, intercept=0.0), tmp_path / "t.dcm")])
    item = next(iter_hu_slices(plan))
    assert item.hu.tolist() == [[-1000.0, -1000.0, 0.0]]
    assert item.padding_mask is not None
    assert item.padding_mask.tolist() == [[True, False, False]]


# --- ordering, duplicates, spacing ---------------------------------------------------------


def test_order_from_positions_not_names(tmp_path: Path) -> None:
    """B11: z = -10, -5, 0 written as b, c, a: origin -10, spacing 5."""
    volume = _volume(3)
    paths = write_axial_series(
        tmp_path, volume, [-5.0, -10.0, 0.0], names=["b.dcm", "c.dcm", "a.dcm"]
    )
    plan = _only_plan(tmp_path, paths)
    assert [frame.path.name for frame in plan.frames] == ["c.dcm", "b.dcm", "a.dcm"]
    assert plan.geometry.origin_mm[2] == pytest.approx(-10.0)
    assert plan.geometry.spacing_mm[0] == pytest.approx(5.0)
    np.testing.assert_allclose(plan.geometry.slice_positions_mm, [0, 5, 10])


@pytest.mark.parametrize("variant", ["no_instance_number", "reversed_instance_number"])
def test_instance_number_never_orders(tmp_path: Path, variant: str) -> None:
    """B16/B17: no SliceLocation, missing or reversed InstanceNumber: IPP decides."""
    volume = _volume(3)
    paths = []
    series_uid = generate_uid()
    for k, z in enumerate([0.0, 1.0, 2.0]):
        number = None if variant == "no_instance_number" else 3 - k
        dataset = ct_dataset(
            volume[k], position=(0, 0, z), series_uid=series_uid, instance_number=number
        )
        assert "SliceLocation" not in dataset
        paths.append(write(dataset, tmp_path / f"{k}.dcm"))
    plan = _only_plan(tmp_path, paths)
    hu = load_hu_volume(plan)
    assert [float(hu[k, 0, 0]) for k in range(3)] == [-1024.0, -924.0, -824.0]


def test_duplicate_slice_dropped(tmp_path: Path) -> None:
    """B10: a copy of z=1 with a new SOPInstanceUID is dropped and reported."""
    volume = _volume(3)
    paths = write_axial_series(tmp_path, volume, [0.0, 1.0, 2.0])
    copy = pydicom.dcmread(paths[1])
    copy.SOPInstanceUID = generate_uid()
    copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
    paths.append(write(copy, tmp_path / "copy.dcm"))
    plan = _only_plan(tmp_path, paths)
    assert len(plan.frames) == 3
    assert any("1 duplicate slice dropped" in w for w in plan.warnings)
    np.testing.assert_allclose(plan.geometry.slice_positions_mm, [0, 1, 2])


def test_repeated_positions_split_series(tmp_path: Path) -> None:
    """Two acquisitions at the same positions in one series become two volumes."""
    series_uid = generate_uid()
    paths = []
    for acquisition in (1, 2):
        for k, z in enumerate([0.0, 1.0]):
            stored = np.full((4, 4), acquisition * 10 + k, dtype=np.int16)
            dataset = ct_dataset(
                stored, position=(0, 0, z), series_uid=series_uid, AcquisitionNumber=acquisition
            )
            paths.append(write(dataset, tmp_path / f"a{acquisition}_{k}.dcm"))
    scan = plan_dicom_series(paths)
    assert [plan.split_index for plan in scan.series] == [0, 1]
    assert all(len(plan.frames) == 2 for plan in scan.series)
    assert any("AcquisitionNumber" in w for w in scan.series[0].warnings)
    first = load_hu_volume(scan.series[0])
    assert float(first[0, 0, 0]) == 10 - 1024


def test_series_split_by_kernel_and_matrix(tmp_path: Path) -> None:
    series_uid = generate_uid()
    paths = write_axial_series(
        tmp_path / "soft", _volume(2), [0, 1], series_uid=series_uid, ConvolutionKernel="B30f"
    )
    paths += write_axial_series(
        tmp_path / "lung", _volume(2), [0, 1], series_uid=series_uid, ConvolutionKernel="B70f"
    )
    paths += write_axial_series(
        tmp_path / "big",
        _volume(2, 16, 16),
        [0, 1],
        series_uid=series_uid,
        ConvolutionKernel="B30f",
    )
    scan = plan_dicom_series(paths)
    assert len(scan.series) == 3
    assert all("series split" in plan.warnings[0] for plan in scan.series)


def test_gap_and_nonuniform_spacing(tmp_path: Path) -> None:
    """B14: z = 0, 1, 3, 4: warned, and slice extents keep volumes right."""
    paths = write_axial_series(tmp_path, _volume(4), [0.0, 1.0, 3.0, 4.0])
    plan = _only_plan(tmp_path, paths)
    geometry = plan.geometry
    assert not geometry.uniform_spacing
    assert any("non-uniform slice spacing" in w for w in plan.warnings)
    assert any("gap of 2.000 mm before slice 2" in w for w in plan.warnings)
    np.testing.assert_allclose(geometry.slice_extents_mm, [1.0, 1.5, 1.5, 1.0])
    assert geometry.slice_extents_mm.sum() == pytest.approx(5.0)


def test_single_slice_series(tmp_path: Path) -> None:
    path = write(ct_dataset(_volume(1)[0], SpacingBetweenSlices=2.5), tmp_path / "one.dcm")
    plan = _only_plan(tmp_path, [path])
    assert plan.geometry.shape == (1, 8, 8)
    assert plan.geometry.spacing_mm[0] == 2.5
    assert plan.geometry.slice_extents_mm.tolist() == [2.5]
    assert any("single-slice series" in w for w in plan.warnings)


# --- orientation and tilt ------------------------------------------------------------------


def test_flipped_y_reoriented_to_canonical(tmp_path: Path) -> None:
    """B32: IOP 1,0,0,0,-1,0 (rows run anterior): rows are flipped back."""
    rows = np.arange(4, dtype=np.int16)[:, None] * np.ones((1, 5), dtype=np.int16) * 100
    upright = write_axial_series(tmp_path / "up", np.stack([rows, rows]), [0, 1], intercept=0.0)
    flipped = write_axial_series(
        tmp_path / "flip",
        np.stack([rows[::-1], rows[::-1]]),
        [0, 1],
        orientation=(1, 0, 0, 0, -1, 0),
        position_xy=(0.0, 3 * 0.7),
        intercept=0.0,
    )
    reference = _only_plan(tmp_path, upright)
    plan = _only_plan(tmp_path, flipped)
    assert plan.geometry.reorientation.flip_rows
    np.testing.assert_array_equal(load_hu_volume(plan), load_hu_volume(reference))
    np.testing.assert_allclose(plan.geometry.origin_mm, reference.geometry.origin_mm)
    np.testing.assert_allclose(plan.geometry.direction, np.eye(3), atol=1e-12)


def test_transposed_orientation(tmp_path: Path) -> None:
    image = np.arange(12, dtype=np.int16).reshape(3, 4)
    dataset = ct_dataset(image, orientation=(0, 1, 0, 1, 0, 0), intercept=0.0)
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "t.dcm")])
    assert plan.geometry.shape == (1, 4, 3)
    np.testing.assert_array_equal(next(iter_hu_slices(plan)).hu, image.T)


def test_non_square_keeps_shape(tmp_path: Path) -> None:
    """B25: 32 rows x 48 columns with a left-to-right gradient."""
    gradient = np.tile(np.arange(48, dtype=np.int16), (32, 1))
    plan = _only_plan(tmp_path, [write(ct_dataset(gradient, intercept=0.0), tmp_path / "n.dcm")])
    hu = next(iter_hu_slices(plan)).hu
    assert hu.shape == (32, 48)
    assert np.all(np.diff(hu, axis=1) == 1)
    assert np.all(np.diff(hu, axis=0) == 0)


def _tilted_series(tmp_path: Path, variant: str) -> list[Path]:
    angle = math.radians(15)
    step = 2.5
    series_uid = generate_uid()
    image = np.full((16, 16), 1024, dtype=np.int16)
    image[6:10, 6:10] = 2024
    paths = []
    for k in range(5):
        if variant == "tilted_iop":
            orientation = (1, 0, 0, 0, math.cos(angle), math.sin(angle))
            position = (0.0, 0.0, k * step)
        else:
            orientation = (1, 0, 0, 0, 1, 0)
            position = (0.0, k * step * math.tan(angle), k * step)
        dataset = ct_dataset(
            image,
            position=position,
            orientation=orientation,
            pixel_spacing=(1.0, 1.0),
            series_uid=series_uid,
            GantryDetectorTilt=15,
        )
        paths.append(write(dataset, tmp_path / f"{k}.dcm"))
    return paths


@pytest.mark.parametrize("variant", ["tilted_iop", "sheared_ipp"])
def test_gantry_tilt_resampled(tmp_path: Path, variant: str) -> None:
    """B13: slices shifted in plane onto an orthogonal grid, new pixels -1000 HU."""
    plan = _only_plan(tmp_path, _tilted_series(tmp_path, variant))
    assert plan.geometry.sheared
    assert any("gantry tilt: slices shifted" in w for w in plan.warnings)
    volume = load_hu_volume(plan)
    shifts = [frame.shift_px[0] for frame in plan.frames]
    assert shifts[2] == pytest.approx(0.0)
    assert abs(shifts[0]) == pytest.approx(2 * 2.5 * math.tan(math.radians(15)), rel=1e-6) or abs(
        shifts[0]
    ) == pytest.approx(2 * 2.5 * math.sin(math.radians(15)), rel=1e-6)
    # The square at rows 6-9 of the middle slice moves in the outer slices; the edge rows
    # shifted in from outside the image are air.
    assert volume[2, 6:10, 6:10].min() == 1000.0
    edge = 0 if shifts[0] > 0 else -1
    assert volume[0, edge, 0] == PADDING_FILL_HU
    positions = plan.geometry.slice_positions_mm
    assert np.all(np.diff(positions) > 0)
    # Along the tilted normal the step is 2.5 cos(15 deg); along z for the sheared stack 2.5.
    expected = 2.5 * math.cos(math.radians(15)) if variant == "tilted_iop" else 2.5
    assert plan.geometry.spacing_mm[0] == pytest.approx(expected, rel=1e-6)


def test_gantry_tilt_rejected_on_request(tmp_path: Path) -> None:
    paths = _tilted_series(tmp_path, "sheared_ipp")
    scan = plan_dicom_series(paths, gantry_tilt="reject")
    assert scan.series == []
    assert len(scan.excluded) == 5
    assert "gantry tilt" in scan.excluded[0].reason


# --- exclusions ----------------------------------------------------------------------------


def test_exclusions_with_reasons(tmp_path: Path) -> None:
    good = write_axial_series(tmp_path / "good", _volume(2), [0, 1])
    localizer = write(
        ct_dataset(_volume(1)[0], image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")),
        tmp_path / "loc.dcm",
    )
    coronal = write(
        ct_dataset(_volume(1)[0], orientation=(1, 0, 0, 0, 0, -1)), tmp_path / "cor.dcm"
    )
    mr = write(ct_dataset(_volume(1)[0], modality="MR"), tmp_path / "mr.dcm")
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    no_geometry = ct_dataset(_volume(1)[0])
    del no_geometry.ImagePositionPatient
    missing = write(no_geometry, tmp_path / "nogeo.dcm")
    scan = plan_dicom_series([*good, localizer, coronal, mr, text, missing])
    assert len(scan.series) == 1
    reasons = {item.path.name: item.reason for item in scan.excluded}
    assert reasons["loc.dcm"].startswith("localizer")
    assert reasons["cor.dcm"].startswith("coronal reconstruction")
    assert "not CT" in reasons["mr.dcm"]
    assert reasons["notes.txt"].startswith("not a DICOM file")
    assert "(0020,0032) ImagePositionPatient" in reasons["nogeo.dcm"]


def test_truncated_file_excluded(tmp_path: Path) -> None:
    path = write(ct_dataset(_volume(1, 64, 64)[0]), tmp_path / "cut.dcm")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    scan = plan_dicom_series([path])
    assert scan.series == []
    assert scan.excluded[0].reason.startswith("truncated: pixel data needs 8192 bytes")


def test_header_cut_short_excluded(tmp_path: Path) -> None:
    path = write(ct_dataset(_volume(1)[0]), tmp_path / "short.dcm")
    path.write_bytes(path.read_bytes()[:300])
    scan = plan_dicom_series([path])
    assert scan.series == []
    assert len(scan.excluded) == 1


def test_two_window_values_load(tmp_path: Path) -> None:
    """B23: multi-valued WindowCenter/WindowWidth do not disturb reading."""
    dataset = ct_dataset(_volume(1)[0], WindowCenter=[40, -600], WindowWidth=[400, 1500])
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "w.dcm")])
    assert next(iter_hu_slices(plan)).header.WindowCenter == [40, -600]


def test_header_has_no_pixel_data(tmp_path: Path) -> None:
    plan = _only_plan(tmp_path, write_axial_series(tmp_path, _volume(2), [0, 1]))
    for item in iter_hu_slices(plan):
        assert "PixelData" not in item.header
        assert item.header.SOPInstanceUID == item.frame.sop_instance_uid


# --- compressed syntaxes -------------------------------------------------------------------


def _compressed(stored: np.ndarray, syntax: str, frames: list[bytes]) -> pydicom.Dataset:
    dataset = ct_dataset(stored, intercept=0.0)
    dataset.PixelData = encapsulate(frames)
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = syntax
    return dataset


def test_jpeg_lossless_bit_exact(tmp_path: Path) -> None:
    """B05: a 64x64 int16 slice in 1.2.840.10008.1.2.4.70 decodes bit-exactly."""
    rng = np.random.default_rng(RNG_SEED)
    stored = rng.integers(-1024, 3000, size=(64, 64)).astype(np.int16)
    dataset = _compressed(stored, JPEGLosslessSV1, [encode_jpeg_lossless(stored)])
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "jl.dcm")])
    assert plan.transfer_syntax_uid == JPEGLosslessSV1
    np.testing.assert_array_equal(next(iter_hu_slices(plan, fill_padding=False)).hu, stored)


def test_unsupported_syntax_rejected_at_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B05 without a decoder: the plan fails with the syntax name and what to install."""
    stored = np.zeros((8, 8), dtype=np.int16)
    dataset = _compressed(stored, JPEGLosslessSV1, [encode_jpeg_lossless(stored)])
    path = write(dataset, tmp_path / "jl.dcm")

    class _Unavailable:
        is_available = False
        missing_dependencies = ("pylibjpeg",)

    monkeypatch.setattr(dicom_headers, "get_decoder", lambda syntax: _Unavailable())
    with pytest.raises(
        InputError,
        match=r"jl\.dcm: compressed transfer syntax JPEG Lossless.*\(1\.2\.840\.10008\.1\.2\.4\.70\) "
        r"is not supported: install pylibjpeg and pylibjpeg-libjpeg",
    ):
        plan_dicom_series([path])


def test_jpeg_ls_from_pydicom_test_file(tmp_path: Path) -> None:
    source = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    reference = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small.dcm")).pixel_array
    dataset = ct_dataset(reference.astype(np.int16), intercept=0.0)
    dataset.PixelData = source.PixelData
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = JPEGLSLossless
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "jls.dcm")])
    np.testing.assert_array_equal(next(iter_hu_slices(plan, fill_padding=False)).hu, reference)


def test_rle_multiframe_zero_frame_exact(tmp_path: Path) -> None:
    """B08: 2-frame 16-bit RLE; the second frame's zeros stay zero."""
    rng = np.random.default_rng(RNG_SEED)
    frames = np.zeros((2, 16, 16), dtype=np.uint16)
    frames[0] = rng.integers(0, 4096, size=(16, 16))
    frames[1, 4:8, 4:8] = 500
    dataset = enhanced_ct(frames, positions=[(0, 0, 0), (0, 0, 1)], shared_rescale=(1.0, 0.0))
    dataset.compress(RLELossless, frames, encoding_plugin="pydicom")
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "rle.dcm")])
    volume = load_hu_volume(plan, fill_padding=False)
    np.testing.assert_array_equal(volume, frames.astype(np.float32))


def test_truncated_jpeg2000_never_zeros(tmp_path: Path) -> None:
    """B07: a J2K codestream cut in half raises an error naming the file."""
    rng = np.random.default_rng(RNG_SEED)
    stored = rng.integers(0, 2000, size=(64, 64)).astype(np.uint16)
    dataset = ct_dataset(stored, intercept=-1024.0)
    dataset.compress(JPEG2000Lossless, stored)
    encoded = next(pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=1))
    dataset.PixelData = encapsulate([encoded[: len(encoded) // 2]])
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "half.dcm")])
    with pytest.raises(InputError, match=r"half\.dcm: pixel data could not be decoded.*EOC"):
        list(iter_hu_slices(plan))


def test_jpeg2000_junk_comment_near_end(tmp_path: Path) -> None:
    """B07 variant: a junk COM marker segment before EOC is decoded or reported, never zeros."""
    rng = np.random.default_rng(RNG_SEED)
    stored = rng.integers(0, 2000, size=(64, 64)).astype(np.uint16)
    dataset = ct_dataset(stored, intercept=0.0)
    dataset.compress(JPEG2000Lossless, stored)
    encoded = next(pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=1))
    body = encoded.rstrip(b"\x00")
    junk = b"\xff\x64\x00\x0a\x00\x01garbage"[:12]
    dataset.PixelData = encapsulate([body[:-2] + junk + body[-2:]])
    plan = _only_plan(tmp_path, [write(dataset, tmp_path / "junk.dcm")])
    with pytest.raises(InputError, match=r"junk\.dcm: pixel data could not be decoded"):
        next(iter_hu_slices(plan, fill_padding=False))


def test_deflate_bomb_rejected(tmp_path: Path) -> None:
    """B86: a deflated body of about 1 GiB is rejected while memory stays bounded."""
    dataset = ct_dataset(np.zeros((8, 8), dtype=np.int16))
    del dataset.PixelData
    plain = write(dataset, tmp_path / "plain.dcm").read_bytes()
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    deflated = write(dataset, tmp_path / "deflated.dcm").read_bytes()
    pixel_bytes = 1024**3
    element = b"\xe0\x7f\x10\x00OW\x00\x00" + pixel_bytes.to_bytes(4, "little")
    compressor = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = tmp_path / "bomb.dcm"
    with bomb.open("wb") as handle:
        handle.write(deflated[: _meta_end(deflated)])
        handle.write(compressor.compress(plain[_meta_end(plain) :] + element))
        zeros = bytes(16 * 1024 * 1024)
        for _ in range(pixel_bytes // len(zeros)):
            handle.write(compressor.compress(zeros))
        handle.write(compressor.flush())
    assert bomb.stat().st_size < 8 * 1024 * 1024
    tracemalloc.start()
    try:
        scan = plan_dicom_series([bomb])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.series == []
    assert "possible deflate bomb" in scan.excluded[0].reason
    assert peak < 64 * 1024 * 1024


def _meta_end(raw: bytes) -> int:
    """Offset of the first byte after the preamble and the (0002,xxxx) group."""
    offset = 132
    while raw[offset : offset + 2] == b"\x02\x00":
        vr = raw[offset + 4 : offset + 6]
        if vr in (b"OB", b"UN", b"SQ", b"UT", b"OW"):
            offset += 12 + int.from_bytes(raw[offset + 8 : offset + 12], "little")
        else:
            offset += 8 + int.from_bytes(raw[offset + 6 : offset + 8], "little")
    return offset


def test_deflated_small_file_reads(tmp_path: Path) -> None:
    stored = np.arange(64, dtype=np.int16).reshape(8, 8)
    dataset = ct_dataset(stored, intercept=0.0)
    path = tmp_path / "deflated.dcm"
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=True)
    plan = _only_plan(tmp_path, [path])
    np.testing.assert_array_equal(next(iter_hu_slices(plan)).hu, stored)


# --- real data -----------------------------------------------------------------------------


def test_covid_ct_md_order_matches_labels(shared_data: Path) -> None:
    """Frames run inferior to superior: the reverse of the dataset's InstanceNumber order."""
    folder = shared_data / "covid-ct-md" / "P001"
    with (shared_data / "covid-ct-md" / "slice_labels.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["case"] == "P001"]
    by_uid = {row["sop_instance_uid"]: row for row in rows}
    scan = plan_dicom_series(sorted(folder.glob("*.dcm")))
    assert len(scan.series) == 1
    plan = scan.series[0]
    assert len(plan.frames) == len(rows) == 148
    numbers = [int(by_uid[frame.sop_instance_uid]["instance_number"]) for frame in plan.frames]
    assert numbers == list(range(148, 0, -1))
    z = [float(by_uid[frame.sop_instance_uid]["image_position_z"]) for frame in plan.frames]
    assert z == sorted(z)
    assert plan.geometry.spacing_mm[0] == pytest.approx(2.0)
    assert plan.warnings == []
    first = next(iter_hu_slices(plan))
    assert first.hu.shape == (512, 512)
    assert first.hu.min() >= -1024.0


def test_tcia_sbu_excludes_reformats_and_pads(shared_data: Path) -> None:
    files = sorted((shared_data / "tcia-sbu").rglob("*.dcm"))
    scan = plan_dicom_series(files)
    assert len(scan.series) == 16
    assert len(scan.excluded) == 32
    assert all(
        "coronal" in item.path.parts[-2] or "sagittal" in item.path.parts[-2]
        for item in scan.excluded
    )
    ge = next(
        plan
        for plan in scan.series
        if plan.frames[0].path.parts[-3] == "A002304"
        and plan.frames[0].path.name.startswith("19001231")
    )
    item = next(iter_hu_slices(ge))
    assert item.padding_mask is not None and item.padding_mask.any()
    assert item.hu.min() >= -1024.0
    raw = next(iter_hu_slices(ge, fill_padding=False))
    assert raw.hu.min() == -3024.0


def test_totalseg_jpeg2000_series(shared_data: Path) -> None:
    files = sorted((shared_data / "totalseg-example" / "example_ct_dicom").glob("CT.*"))
    scan = plan_dicom_series(files)
    plan = scan.series[0]
    assert plan.transfer_syntax_uid == JPEG2000Lossless
    assert plan.geometry.shape == (20, 512, 512)
    assert plan.geometry.uniform_spacing
    volume = load_hu_volume(plan)
    assert volume.min() >= -1024.0
    assert volume.max() > 500.0


@pytest.mark.parametrize("signed", [True, False])
def test_direct_read_matches_pydicom_unused_bits(tmp_path: Path, signed: bool) -> None:
    """12 bits stored in 16 with junk in the high bits: same values as pydicom's decoder."""
    rng = np.random.default_rng(RNG_SEED)
    low = rng.integers(-2048 if signed else 0, 2048 if signed else 4096, size=(8, 8))
    junk = rng.integers(0, 16, size=(8, 8)) << 12
    raw = ((low & 0xFFF) | junk).astype(np.uint16)
    dataset = ct_dataset(raw.view(np.int16) if signed else raw, intercept=0.0)
    dataset.BitsStored = 12
    dataset.HighBit = 11
    path = write(dataset, tmp_path / "bits.dcm")
    expected = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(expected, low)
    plan = _only_plan(tmp_path, [path])
    np.testing.assert_array_equal(next(iter_hu_slices(plan, fill_padding=False)).hu, expected)


@pytest.mark.slow
def test_600_slice_series_bounded_memory(tmp_path: Path) -> None:
    """Planning and streaming a 600-slice 512x512 series keeps far less than the volume in memory."""
    rng = np.random.default_rng(RNG_SEED)
    image = rng.integers(0, 2000, size=(512, 512)).astype(np.int16)
    series_uid = generate_uid()
    paths = [
        write(
            ct_dataset(image, position=(0, 0, float(k)), series_uid=series_uid),
            tmp_path / f"{k}.dcm",
        )
        for k in range(600)
    ]
    tracemalloc.start()
    try:
        plan = _only_plan(tmp_path, paths)
        count = sum(1 for _ in iter_hu_slices(plan))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 600
    volume_bytes = 600 * 512 * 512 * 4
    assert peak < volume_bytes / 10


def test_second_iteration_rereads_headers(tmp_path: Path) -> None:
    plan = _only_plan(tmp_path, write_axial_series(tmp_path, _volume(3), [0, 1, 2]))
    first = list(iter_hu_slices(plan))
    second = list(iter_hu_slices(plan))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.hu, b.hu)
        assert a.header is not b.header
        assert a.header.SOPInstanceUID == b.header.SOPInstanceUID


def test_float32_rescale_matches_apply_modality_lut(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    stored = rng.integers(0, 4096, size=(16, 16)).astype(np.uint16)
    dataset = ct_dataset(stored, slope=0.5, intercept=-1024.5)
    path = write(dataset, tmp_path / "r.dcm")
    reference = pydicom.pixels.apply_modality_lut(stored, pydicom.dcmread(path))
    plan = _only_plan(tmp_path, [path])
    np.testing.assert_allclose(
        next(iter_hu_slices(plan, fill_padding=False)).hu, reference, rtol=0, atol=1e-3
    )


def test_gantry_tilt_aligns_straight_structure(tmp_path: Path) -> None:
    """A column straight along z, imaged with IPP y shifted 1 mm per slice, lines up again."""
    series_uid = generate_uid()
    paths = []
    for k in range(5):
        image = np.full((16, 16), 24, dtype=np.int16)
        image[6 - k : 10 - k, 5:9] = 1024  # physical y 6-10 mm seen from a plane at y = k mm
        dataset = ct_dataset(
            image,
            position=(0.0, float(k), 2.5 * k),
            pixel_spacing=(1.0, 1.0),
            series_uid=series_uid,
        )
        paths.append(write(dataset, tmp_path / f"{k}.dcm"))
    plan = _only_plan(tmp_path, paths)
    volume = load_hu_volume(plan)
    expected = volume[2] > -500
    assert expected.sum() == 16
    for index in range(5):
        np.testing.assert_array_equal(volume[index] > -500, expected)
    np.testing.assert_allclose(plan.geometry.origin_mm, [0.0, 2.0, 0.0])


def test_tilted_but_orthogonal_stack_warns_only(tmp_path: Path) -> None:
    """IPP moving along the tilted normal: already orthogonal, so no resampling."""
    angle = math.radians(15)
    normal = np.array([0.0, -math.sin(angle), math.cos(angle)])
    series_uid = generate_uid()
    paths = []
    for k in range(3):
        dataset = ct_dataset(
            _volume(1)[0],
            position=tuple(normal * 2.0 * k),
            orientation=(1, 0, 0, 0, math.cos(angle), math.sin(angle)),
            series_uid=series_uid,
            GantryDetectorTilt=15,
        )
        paths.append(write(dataset, tmp_path / f"{k}.dcm"))
    plan = _only_plan(tmp_path, paths)
    assert not plan.geometry.sheared
    assert plan.geometry.gantry_tilt_deg == pytest.approx(15.0)
    assert plan.geometry.spacing_mm[0] == pytest.approx(2.0)
    assert any("the stack is orthogonal, so no resampling" in w for w in plan.warnings)
    assert all(frame.shift_px == (0.0, 0.0) for frame in plan.frames)
