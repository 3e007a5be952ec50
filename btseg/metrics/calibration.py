"""Calibration of class probabilities: reliability curve and expected calibration error."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from btseg.metrics.utils import class_probabilities, ratio


class ReliabilityCurve(NamedTuple):
    """Per confidence bin: mean confidence, accuracy and count ((n_bins,) each; NaN if empty).

    edges: (n_bins + 1,) bin edges; bin k holds confidences in (edges[k], edges[k+1]].
    """

    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    edges: np.ndarray


def reliability_curve(y_true: Any, probabilities: Any, n_bins: int = 15) -> ReliabilityCurve:
    """Reliability diagram data on the top-class probability (equal-width bins on [0, 1]).

    Args:
        y_true: (N,) class indices. probabilities: (N, C) class probabilities.
        n_bins: number of equal-width confidence bins.

    Raises:
        ValueError: shapes disagree, labels are out of range, or n_bins < 1.
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}.")
    labels, probability_array = class_probabilities(y_true, probabilities)
    confidence = probability_array.max(axis=1)
    correct = (probability_array.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    confidence_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    return ReliabilityCurve(
        ratio(confidence_sum, count, math.nan),
        ratio(correct_sum, count, math.nan),
        count.astype(np.int64),
        np.linspace(0.0, 1.0, n_bins + 1),
    )


def expected_calibration_error(y_true: Any, probabilities: Any, n_bins: int = 15) -> float:
    """ECE = sum over bins of (count / N) * |accuracy - mean confidence|, in [0, 1].

    Uses `reliability_curve` bins; NaN for zero samples.
    """
    curve = reliability_curve(y_true, probabilities, n_bins)
    total = int(curve.count.sum())
    if total == 0:
        return math.nan
    occupied = curve.count > 0
    gaps = np.abs(curve.accuracy[occupied] - curve.confidence[occupied])
    return float(np.sum(curve.count[occupied] * gaps) / total)
