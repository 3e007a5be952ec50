"""Hausdorff distance (btseg.metrics.distance): agreement with SciPy and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist, directed_hausdorff

from btseg import metrics


def _boundary_points(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-neighbour outside the mask or the image."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    interior = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return np.argwhere(inner & ~interior).astype(np.float64)


def _blob_masks() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[:40, :50]
    first = (rows - 15) ** 2 + (cols - 18) ** 2 <= 64
    second = ((rows - 22) ** 2) / 4 + (cols - 27) ** 2 / 9 <= 16
    second[35:40, 45:50] = True  # a far island touching the image border
    return first, second


def _nested_masks() -> tuple[np.ndarray, np.ndarray]:
    first = np.zeros((14, 16), dtype=bool)
    first[2:12, 3:13] = True
    second = np.zeros_like(first)
    second[5:8, 6:10] = True  # inside the first: set distances would be 0 one way
    return first, second


@pytest.mark.parametrize("make_masks", [_blob_masks, _nested_masks])
def test_hausdorff_matches_scipy_directed_hausdorff_on_boundaries(make_masks):
    first, second = make_masks()
    points_first, points_second = _boundary_points(first), _boundary_points(second)
    expected = max(directed_hausdorff(points_first, points_second)[0],
                   directed_hausdorff(points_second, points_first)[0])
    assert metrics.hausdorff(first, second) == pytest.approx(expected, abs=1e-12)
    assert metrics.hausdorff(second, first) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("make_masks", [_blob_masks, _nested_masks])
@pytest.mark.parametrize("percentile", [95, 50])
def test_percentile_hausdorff_and_spacing_match_brute_force(make_masks, percentile):
    first, second = make_masks()
    spacing = (0.5, 2.0)
    points_first = _boundary_points(first) * spacing
    points_second = _boundary_points(second) * spacing
    distances = cdist(points_first, points_second)
    expected = max(np.percentile(distances.min(axis=1), percentile),
                   np.percentile(distances.min(axis=0), percentile))
    assert metrics.hausdorff(first, second, percentile, spacing=spacing) == pytest.approx(
        expected, abs=1e-9)
    in_pixels = metrics.hausdorff(first, second, percentile)
    assert metrics.hausdorff(first, second, percentile, spacing=(3.0, 3.0)) == pytest.approx(
        3 * in_pixels, abs=1e-9)


def test_hausdorff_by_hand_and_empty_policy():
    first = np.zeros((6, 10), dtype=bool)
    second = np.zeros((6, 10), dtype=bool)
    first[2, 1] = True
    second[2, 7] = True
    assert metrics.hausdorff(first, second) == 6.0
    assert metrics.hausdorff(first, first) == 0.0
    empty = np.zeros_like(first)
    assert metrics.hausdorff(empty, empty) == 0.0
    assert math.isnan(metrics.hausdorff(first, empty))
    with pytest.raises(ValueError, match=r"mask_a \(6, 10\) and mask_b \(6, 9\)"):
        metrics.hausdorff(first, second[:, :9])
    with pytest.raises(ValueError, match="spacing"):
        metrics.hausdorff(first, second, spacing=(1.0,))
