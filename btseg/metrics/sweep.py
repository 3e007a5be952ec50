"""Threshold sweeps: segmentation metrics at many thresholds from one pass over the pixels."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg.metrics.histogram import CHUNK_PIXELS, FLOAT16_KEYS, float16_values
from btseg.metrics.overlap import ConfusionCounts, dice_from_counts, metrics_from_counts
from btseg.metrics.utils import image_items, paired_items, pixel_chunks

if TYPE_CHECKING:
    import pandas as pd


#: Thresholds the BTXRD study swept, always part of the default grid.
STUDY_THRESHOLDS: tuple[float, ...] = (0.5, 0.1, 0.01, 0.001, 0.0001)


def default_thresholds() -> np.ndarray:
    """41 log-spaced thresholds from 1e-4 to 0.99 (3 significant digits) plus the study's.

    Returns:
        (K,) float64 sorted unique thresholds in [1e-4, 0.99].
    """
    grid = [float(f"{value:.3g}") for value in np.logspace(-4, math.log10(0.99), 41)]
    return np.unique(np.array(grid + list(STUDY_THRESHOLDS), dtype=np.float64))


def _interval_counts(truth: Any, scores: Any, thresholds: np.ndarray, chunk_pixels: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per image, pixels (all and positive) whose score has k thresholds <= it, k = 0..T."""
    items = paired_items(image_items(truth), image_items(scores))
    n_bins = thresholds.size + 1
    totals = np.zeros((len(items), n_bins), dtype=np.int64)
    positives = np.zeros((len(items), n_bins), dtype=np.int64)
    nan_bin = n_bins  # the float16 lookup sends NaN patterns here so that they can be refused
    interval_of_key = None
    for index, (truth_item, score_item) in enumerate(items):
        for truth_chunk, score_chunk in pixel_chunks(truth_item, score_item, chunk_pixels):
            if score_chunk.dtype in (np.float16, np.uint8, np.bool_):
                if interval_of_key is None:
                    values = float16_values()
                    interval_of_key = np.searchsorted(thresholds, values, side="right")
                    interval_of_key[np.isnan(values)] = nan_bin
                # Histogram the 65536 float16 patterns, then fold the histogram into the
                # threshold intervals: much faster than mapping every pixel.
                keys = score_chunk.astype(np.float16, copy=False).view(np.uint16)
                key_totals = np.bincount(keys, minlength=FLOAT16_KEYS)
                key_positives = np.bincount(keys[truth_chunk], minlength=FLOAT16_KEYS)
                chunk_totals = np.bincount(interval_of_key, weights=key_totals,
                                           minlength=n_bins + 1).astype(np.int64)
                chunk_positives = np.bincount(interval_of_key, weights=key_positives,
                                              minlength=n_bins + 1).astype(np.int64)
            else:
                if score_chunk.dtype.kind == "f" and np.isnan(score_chunk).any():
                    raise ValueError("scores hold NaN; cannot sweep thresholds.")
                intervals = np.searchsorted(thresholds, score_chunk, side="right")
                chunk_totals = np.bincount(intervals, minlength=n_bins + 1)
                chunk_positives = np.bincount(intervals[truth_chunk], minlength=n_bins + 1)
            if chunk_totals[nan_bin]:
                raise ValueError("scores hold NaN; cannot sweep thresholds.")
            totals[index] += chunk_totals[:n_bins]
            positives[index] += chunk_positives[:n_bins]
    return totals, positives


def threshold_sweep(truth: Any, scores: Any, thresholds: Any = None, *,
                    chunk_pixels: int = CHUNK_PIXELS) -> pd.DataFrame:
    """Segmentation metrics at many thresholds from one pass (``score >= threshold``).

    Args:
        truth: masks: an (N, H, W) or (N, H, W, 1) array, one (H, W) array, or a sequence
            of arrays whose sizes may differ between images.
        scores: probabilities with the same structure (any float/integer dtype, no NaN);
            thresholds are in the same units. Comparisons are exact in float64.
        thresholds: 1-D finite values; default `default_thresholds()`. Sorted and de-duplicated.

    Returns:
        DataFrame, one row per threshold ascending, columns: threshold, dice, iou,
        sensitivity, specificity, precision, f1, accuracy (pooled over all pixels of all
        images; NaN where 0/0), mean_dice (mean of per-image Dice over images with non-empty
        truth; NaN if there are none), n_tumour_images, tp, fp, fn, tn (pooled counts).

    Raises:
        ValueError: shapes or image counts differ, masks hold values other than 0/1, scores
            hold NaN, or thresholds are empty or not finite.
    """
    import pandas as pd

    threshold_array = default_thresholds() if thresholds is None else np.asarray(
        thresholds, dtype=np.float64).reshape(-1)
    if threshold_array.size == 0 or not np.all(np.isfinite(threshold_array)):
        raise ValueError("thresholds must be a non-empty list of finite numbers.")
    threshold_array = np.unique(threshold_array)
    totals, positives = _interval_counts(truth, scores, threshold_array, int(chunk_pixels))
    # Predicted positive at threshold j: pixels in intervals k > j (suffix sums).
    predicted = np.cumsum(totals[:, ::-1], axis=1)[:, ::-1][:, 1:]
    tp = np.cumsum(positives[:, ::-1], axis=1)[:, ::-1][:, 1:]
    truth_count = positives.sum(axis=1, keepdims=True)
    pixel_count = totals.sum(axis=1, keepdims=True)
    fp = predicted - tp
    fn = truth_count - tp
    tn = pixel_count - tp - fp - fn
    pooled = ConfusionCounts(tp.sum(axis=0), fp.sum(axis=0), fn.sum(axis=0), tn.sum(axis=0))
    table = {"threshold": threshold_array}
    table.update(metrics_from_counts(pooled))
    tumour = truth_count[:, 0] > 0
    if tumour.any():
        per_image_dice = dice_from_counts(ConfusionCounts(tp[tumour], fp[tumour], fn[tumour],
                                                          tn[tumour]))
        table["mean_dice"] = np.asarray(per_image_dice).reshape(-1, threshold_array.size).mean(
            axis=0)
    else:
        table["mean_dice"] = np.full(threshold_array.size, math.nan)
    table["n_tumour_images"] = np.full(threshold_array.size, int(tumour.sum()))
    table.update({"tp": pooled.tp, "fp": pooled.fp, "fn": pooled.fn, "tn": pooled.tn})
    return pd.DataFrame(table)
