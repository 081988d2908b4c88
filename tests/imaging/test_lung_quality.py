"""Slice QC measures and Dice overlap, checked against brute-force reference versions."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from ictcf.errors import InputError
from ictcf.imaging.lung import _label_4_connected, _label_areas
from ictcf.imaging.quality import (
    MAX_PLAUSIBLE_COMPONENTS,
    NICT_MAX_LUNG_AREA_MM2,
    dice_coefficient,
    mean_slice_dice,
    measure_slice_quality,
    per_slice_dice,
)


def _reference_dice(first: NDArray[np.bool_], second: NDArray[np.bool_]) -> float:
    overlap = 0
    total = 0
    for a, b in zip(first.ravel().tolist(), second.ravel().tolist(), strict=True):
        overlap += int(a and b)
        total += int(a) + int(b)
    return 2.0 * overlap / total


@pytest.mark.parametrize("seed", range(5))
def test_dice_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    first = rng.random((4, 9, 11)) < 0.4
    second = rng.random((4, 9, 11)) < 0.6
    assert dice_coefficient(first, second) == pytest.approx(_reference_dice(first, second))
    per_slice = per_slice_dice(first, second)
    for index in range(first.shape[0]):
        assert per_slice[index] == pytest.approx(_reference_dice(first[index], second[index]))


def test_dice_identical_and_disjoint() -> None:
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:5, 2:5] = True
    assert dice_coefficient(mask, mask) == 1.0
    assert dice_coefficient(mask, np.roll(mask, 4, axis=1)) == 0.0


def test_dice_both_empty_is_nan_with_warning() -> None:
    empty = np.zeros((5, 5), dtype=bool)
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert np.isnan(dice_coefficient(empty, empty))


def test_dice_shape_mismatch_raises() -> None:
    with pytest.raises(InputError, match=r"mask shapes differ: reference \(2, 2\)"):
        dice_coefficient(np.zeros((2, 2), dtype=bool), np.zeros((3, 3), dtype=bool))


def test_mean_slice_dice_skips_slices_empty_in_both() -> None:
    reference = np.zeros((4, 6, 6), dtype=bool)
    prediction = np.zeros((4, 6, 6), dtype=bool)
    reference[0, :3] = True
    prediction[0, :3] = True  # Dice 1
    reference[1, :2] = True  # prediction empty: Dice 0
    prediction[2, :2] = True  # reference empty: Dice 0
    per_slice = per_slice_dice(reference, prediction)
    assert per_slice[:3].tolist() == [1.0, 0.0, 0.0]
    assert np.isnan(per_slice[3])
    assert mean_slice_dice(reference, prediction) == pytest.approx(1.0 / 3.0)


def test_mean_slice_dice_all_empty_is_nan() -> None:
    empty = np.zeros((3, 4, 4), dtype=bool)
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert np.isnan(mean_slice_dice(empty, empty))


def test_qc_area_in_mm2_and_components() -> None:
    mask = np.zeros((100, 100), dtype=bool)
    mask[20:60, 10:40] = True
    mask[20:60, 60:90] = True
    qc = measure_slice_quality(mask, pixel_spacing_mm=(0.5, 0.8))
    assert qc.lung_area_px == 2400
    assert qc.lung_area_mm2 == pytest.approx(2400 * 0.4)
    assert qc.n_components == 2
    assert not qc.empty
    assert not qc.nict_candidate
    assert qc.implausible_reason is None
    assert qc.plausible
    assert qc.to_dict()["lung_area_px"] == 2400


def test_qc_empty_and_tiny_masks_are_nict() -> None:
    empty = measure_slice_quality(np.zeros((50, 50), dtype=bool), pixel_spacing_mm=(1.0, 1.0))
    assert empty.empty
    assert empty.nict_candidate
    assert empty.n_components == 0
    tiny = np.zeros((50, 50), dtype=bool)
    side = int(np.sqrt(NICT_MAX_LUNG_AREA_MM2)) - 1
    tiny[10 : 10 + side, 10 : 10 + side] = True
    qc = measure_slice_quality(tiny, pixel_spacing_mm=(1.0, 1.0))
    assert not qc.empty
    assert qc.nict_candidate


def test_qc_without_spacing_uses_image_share() -> None:
    mask = np.zeros((512, 512), dtype=bool)
    mask[100:400, 50:200] = True
    qc = measure_slice_quality(mask)
    assert qc.lung_area_mm2 is None
    assert not qc.nict_candidate
    assert qc.implausible_reason is None


def test_qc_flags_border_size_and_fragments() -> None:
    touching = np.zeros((64, 64), dtype=bool)
    touching[0:20, 10:30] = True
    assert "touches the image border" in str(measure_slice_quality(touching).implausible_reason)

    huge = np.ones((300, 300), dtype=bool)
    huge[0, :] = False
    huge[-1, :] = False
    huge[:, 0] = False
    huge[:, -1] = False
    reason = measure_slice_quality(huge, pixel_spacing_mm=(1.0, 1.0)).implausible_reason
    assert reason is not None
    assert "exceeds" in reason

    fragments = np.zeros((64, 64), dtype=bool)
    for index in range(MAX_PLAUSIBLE_COMPONENTS + 1):
        fragments[5 + 6 * index % 54, 5 + (index // 9) * 6] = True
    qc = measure_slice_quality(fragments)
    assert qc.n_components == MAX_PLAUSIBLE_COMPONENTS + 1
    assert "separate lung regions" in str(qc.implausible_reason)


def test_qc_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="expected one slice"):
        measure_slice_quality(np.zeros((2, 3, 3), dtype=bool))
    with pytest.raises(InputError, match="pixel spacing"):
        measure_slice_quality(np.zeros((3, 3), dtype=bool), pixel_spacing_mm=(1.0, -1.0))


def test_labelling_falls_back_beyond_16_bit_labels() -> None:
    # A 512x512 checkerboard has 131,072 separate 4-connected squares of one pixel.
    checkerboard = (np.indices((512, 512)).sum(axis=0) % 2).astype(np.uint8)
    count, labels = _label_4_connected(checkerboard)
    assert count == 131_072 + 1
    areas = _label_areas(labels, count)
    assert areas[0] == 131_072
    assert set(areas[1:].tolist()) == {1}
