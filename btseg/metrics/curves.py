"""ROC and precision-recall curves, exact from score histograms.

Pixel curves (`pixel_roc`, `pixel_pr`, `pixel_curves`) histogram every pixel in one pass
(btseg.metrics.histogram); small arrays such as classifier outputs (`roc_curve_points`,
`pr_curve_points`) are histogrammed by sorting. Either way the curves come from the
histogram's cumulative counts (`roc_from_histogram`, `pr_from_histogram`), which also take a
histogram read back from disk (`float16_histogram`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from btseg.metrics.histogram import CHUNK_PIXELS, ScoreHistogram, exact_histogram, score_histogram


@dataclass(frozen=True)
class RocCurve:
    """Receiver operating characteristic.

    fpr, tpr: (K+1,) float64 in [0, 1], starting at (0, 0); thresholds: (K+1,) float64,
    decreasing, the first +inf. Point k counts ``score >= thresholds[k]`` as positive.
    auc: trapezoidal area, NaN when there are no positives or no negatives (tpr or fpr is
    then NaN throughout). exact: False when float32/float64 scores were quantised.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float
    n_positive: int
    n_negative: int
    exact: bool


@dataclass(frozen=True)
class PrCurve:
    """Precision-recall curve, ordered as scikit-learn's precision_recall_curve.

    thresholds: (K,) float64 increasing distinct scores; precision, recall: (K+1,) float64 with
    the last point (1, 0). average_precision = sum_n (R_n - R_{n-1}) P_n over thresholds from
    high to low (no interpolation). No positives: recall NaN and AP NaN (scikit-learn returns
    0 with a warning). No negatives: precision 1 everywhere and AP 1.
    """

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray
    average_precision: float
    n_positive: int
    n_negative: int
    exact: bool


def roc_from_histogram(histogram: ScoreHistogram, drop_intermediate: bool = True) -> RocCurve:
    """ROC curve and AUC of a score histogram (every threshold at once, by cumulative sums).

    Args:
        histogram: K distinct score values with their positive and negative counts.
        drop_intermediate: drop collinear points, as scikit-learn's roc_curve; the AUC is
            computed before and does not change.

    Returns:
        RocCurve with at most K + 1 points: (0, 0) at threshold +inf, then one point per
        value from high to low. AUC NaN (and tpr or fpr NaN throughout) when the histogram
        has no positives or no negatives, e.g. an empty histogram (K = 0).
    """
    positives_descending = histogram.positives[::-1]
    negatives_descending = histogram.negatives[::-1]
    tps = np.cumsum(positives_descending)
    fps = np.cumsum(negatives_descending)
    thresholds = histogram.values[::-1]
    n_positive = int(tps[-1]) if tps.size else 0
    n_negative = int(fps[-1]) if fps.size else 0
    if n_positive and n_negative:
        # Trapezoid area in integers, divided once: exact up to the final rounding.
        heights = 2 * tps - positives_descending
        if 2 * n_positive * n_negative < 2**62:
            twice_area = int(np.dot(negatives_descending, heights))
        else:
            twice_area = sum(int(a) * int(b) for a, b in zip(negatives_descending, heights,
                                                              strict=True))
        auc = twice_area / (2 * n_positive * n_negative)
    else:
        auc = math.nan
    if drop_intermediate and tps.size > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    fpr = fps / n_negative if n_negative else np.full(fps.shape, math.nan)
    tpr = tps / n_positive if n_positive else np.full(tps.shape, math.nan)
    return RocCurve(
        fpr.astype(np.float64), tpr.astype(np.float64), np.r_[math.inf, thresholds], auc,
        n_positive, n_negative, histogram.exact,
    )


def pr_from_histogram(histogram: ScoreHistogram) -> PrCurve:
    """Precision-recall curve and average precision of a score histogram.

    Args:
        histogram: K distinct score values with their positive and negative counts.

    Returns:
        PrCurve with K thresholds and K + 1 points, the last (precision 1, recall 0). No
        positives (an empty histogram included): recall and AP NaN. No negatives: AP 1.
    """
    positives_descending = histogram.positives[::-1]
    tps = np.cumsum(positives_descending)
    fps = np.cumsum(histogram.negatives[::-1])
    n_positive = int(tps[-1]) if tps.size else 0
    n_negative = int(fps[-1]) if fps.size else 0
    predicted = tps + fps
    precision_descending = np.divide(tps, predicted, out=np.zeros(tps.shape), where=predicted > 0)
    if n_positive:
        recall_descending = tps / n_positive
        average_precision = math.fsum(positives_descending * precision_descending) / n_positive
    else:
        recall_descending = np.full(tps.shape, math.nan)
        average_precision = math.nan
    return PrCurve(
        np.r_[precision_descending[::-1], 1.0],
        np.r_[recall_descending[::-1], 0.0],
        histogram.values.copy(),
        average_precision,
        n_positive,
        n_negative,
        histogram.exact,
    )


_CURVE_ARGS = """
    Args:
        truth: masks (bool or 0/1) matching `scores`: one array of any shape, an (N, H, W)
            array, or a sequence of arrays whose shapes may differ between images.
        scores: probabilities or scores with the same structure. float16, uint8 and bool
            scores are histogrammed over every representable value, so results equal
            scikit-learn's exactly (ties included). Other dtypes are cast to float32 and
            quantised: 2**20 bins of equal width in float32 order between the smallest and
            largest score (for probabilities in [0, 1], 13 mantissa bits, a relative step
            of 2**-13; agreement with scikit-learn within 1e-3, and still exact when the
            values are float16-representable). A pre-pass finds the range.
        chunk_pixels: pixels per step; extra memory stays O(chunk_pixels + bins).
"""


def _with_curve_args(function: Callable[..., Any]) -> Callable[..., Any]:
    """Insert the shared Args section before the Raises section of a curve docstring."""
    head, _, raises = (function.__doc__ or "").partition("    Raises:")
    function.__doc__ = head.rstrip() + "\n" + _CURVE_ARGS + "\n    Raises:" + raises
    return function


@_with_curve_args
def pixel_roc(truth: Any, scores: Any, *, drop_intermediate: bool = True,
              chunk_pixels: int = CHUNK_PIXELS) -> RocCurve:
    """Pixel-level ROC curve and AUC in one pass, without sorting the pixels.

    With drop_intermediate (as scikit-learn's roc_curve) collinear points are dropped; the
    AUC is computed before and does not change. No positives or no negatives: AUC NaN.

    Raises:
        ValueError: shapes differ, truth holds values other than 0/1, or scores hold NaN.
    """
    return roc_from_histogram(score_histogram(truth, scores, chunk_pixels), drop_intermediate)


@_with_curve_args
def pixel_pr(truth: Any, scores: Any, *, chunk_pixels: int = CHUNK_PIXELS) -> PrCurve:
    """Pixel-level precision-recall curve and average precision in one pass.

    No positives: AP NaN. No negatives: AP 1 (see PrCurve).

    Raises:
        ValueError: shapes differ, truth holds values other than 0/1, or scores hold NaN.
    """
    return pr_from_histogram(score_histogram(truth, scores, chunk_pixels))


@_with_curve_args
def pixel_curves(truth: Any, scores: Any, *, drop_intermediate: bool = True,
                 chunk_pixels: int = CHUNK_PIXELS) -> tuple[RocCurve, PrCurve]:
    """`pixel_roc` and `pixel_pr` from a single pass over the pixels.

    Raises:
        ValueError: as `pixel_roc`.
    """
    histogram = score_histogram(truth, scores, chunk_pixels)
    return roc_from_histogram(histogram, drop_intermediate), pr_from_histogram(histogram)


def roc_curve_points(y_true_binary: Any, scores: Any, *, drop_intermediate: bool = True
                     ) -> RocCurve:
    """Exact ROC curve by sorting; for small arrays such as classifier probabilities.

    Args:
        y_true_binary: (N,) bool or 0/1 labels.
        scores: (N,) scores of any numeric dtype, no NaN; higher means more positive.

    Returns:
        RocCurve as `pixel_roc` (AUC NaN when one class is absent).

    Raises:
        ValueError: lengths differ, labels are not 0/1, or scores hold NaN.
    """
    return roc_from_histogram(exact_histogram(y_true_binary, scores), drop_intermediate)


def pr_curve_points(y_true_binary: Any, scores: Any) -> PrCurve:
    """Exact precision-recall curve by sorting (see `roc_curve_points` and `PrCurve`)."""
    return pr_from_histogram(exact_histogram(y_true_binary, scores))
