"""Distance metrics: symmetric Hausdorff distance between mask boundaries (HD95)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from btseg.metrics.utils import as_mask, check_same_shape


def hausdorff(mask_a: Any, mask_b: Any, percentile: float = 100.0,
              spacing: Sequence[float] | None = None) -> float:
    """Symmetric Hausdorff distance between mask boundaries (HD95 with percentile=95).

    Boundaries are the mask pixels removed by one binary erosion (4-connected in 2-D; pixels
    on the image border count as boundary). As in MONAI, the result is the larger of the two
    directed distances, each the `percentile` of distances from one boundary's pixels to the
    nearest pixel of the other boundary (linear interpolation as np.percentile).

    Args:
        mask_a, mask_b: same-shape masks (bool or 0/1), 2-D or n-D.
        percentile: in [0, 100]; 100 gives the classic maximum.
        spacing: pixel size per axis, e.g. (row_mm, col_mm); None gives pixels.

    Returns:
        Distance in pixels, or in the units of `spacing`. Both masks empty: 0.0. Exactly one
        empty: NaN (the distance is undefined; report such images separately).

    Raises:
        ValueError: shapes differ, masks hold values other than 0/1, percentile is outside
            [0, 100], or spacing is not one positive number per axis.
    """
    from scipy import ndimage

    first = as_mask(mask_a, "mask_a")
    second = as_mask(mask_b, "mask_b")
    check_same_shape(first, second, "mask_a,mask_b")
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}.")
    if spacing is not None:
        spacing_values = tuple(float(value) for value in spacing)
        if len(spacing_values) != first.ndim or not all(
            math.isfinite(value) and value > 0 for value in spacing_values
        ):
            raise ValueError(
                f"spacing must give one positive size per axis ({first.ndim} values), got "
                f"{tuple(spacing)}."
            )
    else:
        spacing_values = None
    first_any, second_any = bool(first.any()), bool(second.any())
    if not first_any and not second_any:
        return 0.0
    if not first_any or not second_any:
        return math.nan
    # Crop to both masks plus a one-pixel margin: distances between the boundaries are the
    # same, and the image border still erodes as background (border_value=0).
    union_indices = np.nonzero(first | second)
    window = tuple(
        slice(max(int(axis.min()) - 1, 0), int(axis.max()) + 2) for axis in union_indices
    )
    first, second = first[window], second[window]
    first_edges = first ^ ndimage.binary_erosion(first)
    second_edges = second ^ ndimage.binary_erosion(second)
    distance_to_second = ndimage.distance_transform_edt(~second_edges, sampling=spacing_values)
    distance_to_first = ndimage.distance_transform_edt(~first_edges, sampling=spacing_values)
    first_to_second = distance_to_second[first_edges]
    second_to_first = distance_to_first[second_edges]
    if float(percentile) == 100.0:
        return float(max(first_to_second.max(), second_to_first.max()))
    return float(max(np.percentile(first_to_second, percentile),
                     np.percentile(second_to_first, percentile)))
