"""Choose five representative slices per patient, as the iCTCF resource shows for each patient.

Rule (until a slice classifier scores the slices):

1. If the patient has slices labelled pCT (from the HUST-19 labelled download), the pool is
   those slices. Otherwise the pool is the informative slices (lung present, not a NiCT
   candidate, QC plausible) of the patient's main series, the one with the most of them.
   When it has fewer than five, the other series' slices with the largest lung areas are added.
2. The pool is narrowed to the half with the largest lung area (at least five slices), which
   is the mid-thorax plateau where both lungs are large.
3. Five slices are taken evenly spread along the series order of that set, and ranked 1 to 5
   by lung area (1 = largest). The choice does not depend on which way the slice index runs
   (feet to head for DICOM and NIfTI, file-name order for JPEG series), except where lung
   areas are exactly equal.

Once the slice classifier exists, its top-scoring pCT slices replace this rule (HUST-19 shows
the slices its classifier scores most likely to be pCT); :func:`choose_representative_slices`
accepts a ``score`` for that purpose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ictcf.db.imaging_models import CTSeries, CTSlice, SliceLabel

#: Number of representative slices per patient (the iCTCF resource shows five).
N_REPRESENTATIVE = 5
#: Share of the pool, by largest lung area, from which the slices are spread (the plateau).
PLATEAU_FRACTION = 0.5


@dataclass(frozen=True)
class SliceCandidate:
    """The facts about one slice that the choice uses.

    Attributes
    ----------
    slice_id : int
        Database id of the slice.
    series_id : int
        Database id of its series.
    index : int
        Position of the slice in its series.
    lung_area : float or None
        Lung area in mm² where known for the whole series, else in pixels; None without QC.
    informative : bool
        False for NiCT candidates, empty or implausible lung masks.
    label : SliceLabel or None
        Stored label.
    score : float or None
        Classifier probability of pCT, where a classifier has scored the slice.
    """

    slice_id: int
    series_id: int
    index: int
    lung_area: float | None
    informative: bool
    label: SliceLabel | None = None
    score: float | None = None


def _spread(pool: list[SliceCandidate], n: int) -> list[SliceCandidate]:
    """Take ``n`` slices evenly spread along the series order of ``pool``.

    The choice is the same whichever way the series runs. DICOM and NIfTI index 0 is the most
    inferior slice, and JPEG series follow their file names, often head first. So a position
    halfway between two slices goes to the slice nearer the middle, and a middle position
    halfway between two slices goes to the one with the larger lung area.
    """
    ordered = sorted(pool, key=lambda item: (item.series_id, item.index))
    if len(ordered) <= n:
        return ordered
    last = len(ordered) - 1
    chosen_indices = sorted(
        {_nearest_towards_middle(ordered, position, last) for position in np.linspace(0, last, n)}
    )
    return [ordered[i] for i in chosen_indices]


def _nearest_towards_middle(ordered: list[SliceCandidate], position: float, last: int) -> int:
    lower = math.floor(position)
    if position - lower != 0.5:
        return round(position)
    upper = lower + 1
    middle = last / 2
    if abs(lower - middle) != abs(upper - middle):
        return lower if abs(lower - middle) < abs(upper - middle) else upper
    # NOTE: equal lung areas here fall back to the lower index, the only direction-dependent
    # case left.
    return upper if (ordered[upper].lung_area or 0.0) > (ordered[lower].lung_area or 0.0) else lower


def choose_representative_slices(
    candidates: Sequence[SliceCandidate], *, n: int = N_REPRESENTATIVE
) -> dict[int, int]:
    """Choose up to ``n`` representative slices and rank them.

    Parameters
    ----------
    candidates : sequence of SliceCandidate
        All slices of one patient.
    n : int, default 5
        Number of slices to choose.

    Returns
    -------
    dict of int to int
        Slice id to rank (1 = most representative). Empty when no slice shows lung.
    """
    scored = [item for item in candidates if item.score is not None]
    if scored:
        best = sorted(scored, key=lambda item: (-(item.score or 0.0), item.series_id, item.index))
        return {item.slice_id: rank for rank, item in enumerate(best[:n], start=1)}

    pool = [item for item in candidates if item.label is SliceLabel.PCT]
    if not pool:
        pool = _main_series_pool(candidates, n)
    if not pool:
        return {}

    by_area = sorted(pool, key=lambda item: -(item.lung_area or 0.0))
    plateau_size = max(n, math.ceil(len(by_area) * PLATEAU_FRACTION))
    chosen = _spread(by_area[:plateau_size], n)
    ranked = sorted(chosen, key=lambda item: (-(item.lung_area or 0.0), item.series_id, item.index))
    return {item.slice_id: rank for rank, item in enumerate(ranked, start=1)}


def _main_series_pool(candidates: Sequence[SliceCandidate], n: int) -> list[SliceCandidate]:
    informative = [
        item
        for item in candidates
        if item.informative and item.lung_area is not None and item.lung_area > 0
    ]
    if not informative:
        return []
    counts: dict[int, int] = {}
    areas: dict[int, float] = {}
    for item in informative:
        counts[item.series_id] = counts.get(item.series_id, 0) + 1
        areas[item.series_id] = areas.get(item.series_id, 0.0) + (item.lung_area or 0.0)
    # Most informative slices first; ties go to the larger total lung area, then the older series.
    main_series = max(
        counts, key=lambda series_id: (counts[series_id], areas[series_id], -series_id)
    )
    pool = [item for item in informative if item.series_id == main_series]
    if len(pool) < n:
        # Too few slices in any one series (single-slice uploads): add the other series'
        # slices with the largest lung areas.
        others = [item for item in informative if item.series_id != main_series]
        others.sort(key=lambda item: (-(item.lung_area or 0.0), item.series_id, item.index))
        pool.extend(others[: n - len(pool)])
    return pool


def update_representative_slices(session: Session, patient_id: int) -> list[int]:
    """Recompute and store the representative ranks of one patient's slices.

    Parameters
    ----------
    session : Session
        Open session; the caller commits.
    patient_id : int
        Internal patient key.

    Returns
    -------
    list of int
        Ids of the chosen slices, rank 1 first.
    """
    rows = session.execute(
        select(CTSlice, CTSeries.id)
        .join(CTSeries, CTSlice.series_id == CTSeries.id)
        .where(CTSeries.patient_id == patient_id)
    ).all()
    series_has_mm2: dict[int, bool] = {}
    for slice_row, series_id in rows:
        known = slice_row.lung_area_mm2 is not None
        series_has_mm2[series_id] = series_has_mm2.get(series_id, True) and known
    candidates = []
    for slice_row, series_id in rows:
        area: float | None
        if series_has_mm2[series_id]:
            area = slice_row.lung_area_mm2
        else:
            area = None if slice_row.lung_area_px is None else float(slice_row.lung_area_px)
        informative = bool(
            not slice_row.nict_candidate
            and not slice_row.lung_empty
            and slice_row.implausible_reason is None
        )
        candidates.append(
            SliceCandidate(
                slice_id=slice_row.id,
                series_id=series_id,
                index=slice_row.index,
                lung_area=area,
                informative=informative,
                label=slice_row.label,
            )
        )
    ranks = choose_representative_slices(candidates)
    slice_ids = [slice_row.id for slice_row, _ in rows]
    if slice_ids:
        session.execute(
            update(CTSlice).where(CTSlice.id.in_(slice_ids)).values(representative_rank=None)
        )
    for slice_id, rank in ranks.items():
        session.execute(
            update(CTSlice).where(CTSlice.id == slice_id).values(representative_rank=rank)
        )
    return sorted(ranks, key=lambda slice_id: ranks[slice_id])
