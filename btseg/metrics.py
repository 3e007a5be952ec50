"""Segmentation and classification metrics: the one definition used everywhere in btseg.

Training reports, `btseg evaluate` and the dashboard all call these functions, so a number
means the same thing wherever it appears. Pure NumPy (SciPy for distance transforms).

Conventions:
    Masks are bool arrays or integer/float arrays holding only 0 and 1; anything else raises
    ValueError (threshold probabilities with `binarize` first).
    Prediction rule: a pixel is positive when ``score >= threshold``, compared in float64.
    IoU and Dice are foreground-only: the background class is never averaged in, so a
    prediction with no foreground on a tumour image scores 0, not ~0.5 (the Keras MeanIoU trap).
    Empty policy: a ratio whose denominator is zero (0/0) is `empty_score`, NaN by default.
    For Dice and IoU that happens only when truth and prediction are both empty; NaN lets
    "mean over tumour images" exclude such images explicitly (use np.nanmean, or pass
    empty_score=1.0 to count a correctly empty prediction as perfect). Nothing is smoothed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: Pixels handled per step by the histogram passes; small enough to stay in cache.
CHUNK_PIXELS = 1 << 19

#: Thresholds the BTXRD study swept, always part of the default grid.
STUDY_THRESHOLDS: tuple[float, ...] = (0.5, 0.1, 0.01, 0.001, 0.0001)

#: Lesion-size buckets in display order (share of the image area).
LESION_SIZE_BUCKETS: tuple[str, ...] = ("<1%", "1-5%", ">=5%")

_FLOAT16_KEYS = 1 << 16
_FLOAT32_BINS_LOG2 = 20  # quantised scores: at most 2**20 bins between their min and max


# --------------------------------------------------------------------------------------------
# Masks and confusion counts
# --------------------------------------------------------------------------------------------


class ConfusionCounts(NamedTuple):
    """Pixel counts of a binary segmentation.

    Fields are Python ints for one image (or pooled), or (N,) int64 arrays per image.
    """

    tp: Any
    fp: Any
    fn: Any
    tn: Any

    def pooled(self) -> ConfusionCounts:
        """Sum per-image counts into one set of pooled counts (ints)."""
        return ConfusionCounts(*(int(np.sum(value)) for value in self))


def _as_mask(mask: Any, name: str) -> np.ndarray:
    """Return `mask` as a bool array; ValueError unless it holds only 0/1 (or bool)."""
    array = np.asarray(mask)
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind not in "uif":
        raise ValueError(
            f"{name} must be a bool or 0/1 numeric array, got dtype {array.dtype}."
        )
    if array.size and not np.all((array == 0) | (array == 1)):
        low, high = np.nanmin(array), np.nanmax(array)
        raise ValueError(
            f"{name} must hold only 0 and 1, found values in [{low}, {high}]. "
            "Threshold probabilities with btseg.metrics.binarize first."
        )
    return array != 0


def _check_same_shape(truth: np.ndarray, prediction: np.ndarray, names: str) -> None:
    if truth.shape != prediction.shape:
        first, second = names.split(",")
        raise ValueError(
            f"{first} and {second} must have the same shape, got {first} {truth.shape} "
            f"and {second} {prediction.shape}."
        )


def binarize(scores: Any, threshold: float) -> np.ndarray:
    """Apply the prediction rule: ``scores >= threshold`` compared in float64.

    Args:
        scores: probabilities or scores, any shape and float/integer dtype, no NaN.
        threshold: decision threshold in the units of `scores`.

    Returns:
        bool array of the same shape.

    Raises:
        ValueError: if `scores` holds NaN or `threshold` is NaN.
    """
    array = np.asarray(scores)
    if math.isnan(float(threshold)):
        raise ValueError("threshold must be a number, got NaN.")
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise ValueError("scores hold NaN; cannot threshold them.")
    # A NumPy float64 scalar is not demoted to the array dtype (NEP 50), so float16 maps
    # compare against the exact threshold, not against its float16 rounding.
    return np.greater_equal(array, np.float64(threshold))


def confusion_counts(truth: Any, prediction: Any) -> ConfusionCounts:
    """Count TP, FP, FN, TN over all pixels of `truth` and `prediction`.

    Args:
        truth, prediction: masks of any identical shape (bool or 0/1).

    Returns:
        ConfusionCounts of Python ints (pooled over every pixel given).

    Raises:
        ValueError: shapes differ, or a mask holds values other than 0/1.
    """
    truth_mask = _as_mask(truth, "truth")
    prediction_mask = _as_mask(prediction, "prediction")
    _check_same_shape(truth_mask, prediction_mask, "truth,prediction")
    tp = int(np.count_nonzero(truth_mask & prediction_mask))
    truth_count = int(np.count_nonzero(truth_mask))
    prediction_count = int(np.count_nonzero(prediction_mask))
    fp = prediction_count - tp
    fn = truth_count - tp
    return ConfusionCounts(tp, fp, fn, truth_mask.size - tp - fp - fn)


def confusion_counts_per_image(truth: Any, prediction: Any) -> ConfusionCounts:
    """Count TP, FP, FN, TN per image.

    Args:
        truth, prediction: (N, ...) arrays of masks, or sequences of N masks whose shapes may
            differ between images but match between truth and prediction.

    Returns:
        ConfusionCounts of (N,) int64 arrays.

    Raises:
        ValueError: image counts or shapes differ, or a mask holds values other than 0/1.
    """
    if isinstance(truth, np.ndarray) and isinstance(prediction, np.ndarray):
        truth_mask = _as_mask(truth, "truth")
        prediction_mask = _as_mask(prediction, "prediction")
        _check_same_shape(truth_mask, prediction_mask, "truth,prediction")
        if truth_mask.ndim < 2:
            raise ValueError(
                f"per-image counts need (N, ...) arrays, got shape {truth_mask.shape}."
            )
        n_images = truth_mask.shape[0]
        truth_flat = truth_mask.reshape(n_images, -1)
        prediction_flat = prediction_mask.reshape(n_images, -1)
        tp = np.count_nonzero(truth_flat & prediction_flat, axis=1).astype(np.int64)
        truth_count = np.count_nonzero(truth_flat, axis=1).astype(np.int64)
        prediction_count = np.count_nonzero(prediction_flat, axis=1).astype(np.int64)
        fp = prediction_count - tp
        fn = truth_count - tp
        tn = truth_flat.shape[1] - tp - fp - fn
        return ConfusionCounts(tp, fp, fn, tn)
    truth_list, prediction_list = list(truth), list(prediction)
    if len(truth_list) != len(prediction_list):
        raise ValueError(
            f"truth and prediction must hold the same number of images, got "
            f"{len(truth_list)} and {len(prediction_list)}."
        )
    rows = np.zeros((len(truth_list), 4), dtype=np.int64)
    for index, (truth_image, prediction_image) in enumerate(
        zip(truth_list, prediction_list, strict=True)
    ):
        try:
            rows[index] = confusion_counts(truth_image, prediction_image)
        except ValueError as error:
            raise ValueError(f"image {index}: {error}") from None
    return ConfusionCounts(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])


def _counts(truth: Any, prediction: Any, per_image: bool) -> ConfusionCounts:
    if per_image:
        return confusion_counts_per_image(truth, prediction)
    return confusion_counts(truth, prediction)


def _ratio(numerator: Any, denominator: Any, empty_score: float) -> Any:
    """numerator / denominator, with `empty_score` where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    result = np.full(np.broadcast(numerator, denominator).shape, float(empty_score))
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return float(result) if result.ndim == 0 else result


def dice_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Dice = 2 TP / (2 TP + FP + FN), foreground only; in [0, 1].

    Both truth and prediction empty (denominator 0) gives `empty_score` (NaN by default).
    Returns a float for scalar counts, an (N,) array for per-image counts.
    """
    tp, fp, fn, _ = counts
    return _ratio(2 * np.asarray(tp), 2 * np.asarray(tp) + fp + fn, empty_score)


def iou_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """IoU (Jaccard) = TP / (TP + FP + FN), foreground only; in [0, 1].

    Both truth and prediction empty gives `empty_score` (NaN by default). An empty prediction
    on a non-empty truth scores 0 (never the ~0.5 of a background-averaged mean IoU).
    """
    tp, fp, fn, _ = counts
    return _ratio(tp, np.asarray(tp) + fp + fn, empty_score)


def sensitivity_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Sensitivity (recall) = TP / (TP + FN); empty truth gives `empty_score` (NaN)."""
    tp, _, fn, _ = counts
    return _ratio(tp, np.asarray(tp) + fn, empty_score)


def specificity_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Specificity = TN / (TN + FP); no background pixels gives `empty_score` (NaN)."""
    _, fp, _, tn = counts
    return _ratio(tn, np.asarray(tn) + fp, empty_score)


def precision_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Precision = TP / (TP + FP); empty prediction gives `empty_score` (NaN)."""
    tp, fp, _, _ = counts
    return _ratio(tp, np.asarray(tp) + fp, empty_score)


def f1_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """F1 = 2 TP / (2 TP + FP + FN), identical to Dice; both empty gives `empty_score`."""
    return dice_from_counts(counts, empty_score)


def accuracy_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Pixel accuracy = (TP + TN) / all pixels; zero pixels gives `empty_score` (NaN)."""
    tp, fp, fn, tn = counts
    return _ratio(np.asarray(tp) + tn, np.asarray(tp) + fp + fn + tn, empty_score)


_FROM_COUNTS: dict[str, Callable[..., Any]] = {
    "dice": dice_from_counts,
    "iou": iou_from_counts,
    "sensitivity": sensitivity_from_counts,
    "specificity": specificity_from_counts,
    "precision": precision_from_counts,
    "f1": f1_from_counts,
    "accuracy": accuracy_from_counts,
}


def metrics_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> dict[str, Any]:
    """All of dice, iou, sensitivity, specificity, precision, f1, accuracy from `counts`.

    Values are floats for scalar counts and (N,) arrays for per-image counts; each follows
    the empty policy of its *_from_counts function.
    """
    return {name: function(counts, empty_score) for name, function in _FROM_COUNTS.items()}


def dice(truth: Any, prediction: Any, *, per_image: bool = False,
         empty_score: float = math.nan) -> Any:
    """Foreground Dice of two masks: pooled float, or (N,) array with per_image=True.

    Args:
        truth, prediction: same-shape masks; with per_image, (N, ...) arrays or sequences.
        empty_score: value when truth and prediction are both empty (NaN by default).

    Raises:
        ValueError: shapes differ or masks hold values other than 0/1.
    """
    return dice_from_counts(_counts(truth, prediction, per_image), empty_score)


def iou(truth: Any, prediction: Any, *, per_image: bool = False,
        empty_score: float = math.nan) -> Any:
    """Foreground IoU of two masks (see `dice` for arguments and `iou_from_counts` for policy)."""
    return iou_from_counts(_counts(truth, prediction, per_image), empty_score)


def sensitivity(truth: Any, prediction: Any, *, per_image: bool = False,
                empty_score: float = math.nan) -> Any:
    """TP / (TP + FN) of two masks; NaN (empty_score) where truth is empty."""
    return sensitivity_from_counts(_counts(truth, prediction, per_image), empty_score)


def specificity(truth: Any, prediction: Any, *, per_image: bool = False,
                empty_score: float = math.nan) -> Any:
    """TN / (TN + FP) of two masks; NaN (empty_score) where truth covers every pixel."""
    return specificity_from_counts(_counts(truth, prediction, per_image), empty_score)


def precision(truth: Any, prediction: Any, *, per_image: bool = False,
              empty_score: float = math.nan) -> Any:
    """TP / (TP + FP) of two masks; NaN (empty_score) where the prediction is empty."""
    return precision_from_counts(_counts(truth, prediction, per_image), empty_score)


def f1(truth: Any, prediction: Any, *, per_image: bool = False,
       empty_score: float = math.nan) -> Any:
    """F1 of two masks, identical to `dice`."""
    return f1_from_counts(_counts(truth, prediction, per_image), empty_score)


def accuracy(truth: Any, prediction: Any, *, per_image: bool = False,
             empty_score: float = math.nan) -> Any:
    """(TP + TN) / pixels of two masks; NaN (empty_score) only for zero pixels."""
    return accuracy_from_counts(_counts(truth, prediction, per_image), empty_score)


# --------------------------------------------------------------------------------------------
# Score histograms: the one-pass core of pixel ROC, PR and threshold sweeps
# --------------------------------------------------------------------------------------------


def _as_sequence(data: Any) -> list[np.ndarray]:
    """A single array (or a flat list of numbers) is one item; a list of arrays is one per image."""
    if isinstance(data, np.ndarray):
        return [data]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if len(data) and np.ndim(data[0]) == 0:
            return [np.asarray(data)]
        return [np.asarray(item) for item in data]
    return [np.asarray(data)]


def _paired_items(truth: Any, scores: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(truth, np.ndarray) and isinstance(scores, np.ndarray):
        truth_items, score_items = [truth], [scores]
    else:  # a list on one side: split an (N, H, W) array on the other into images
        truth_items, score_items = _image_items(truth), _image_items(scores)
    if len(truth_items) != len(score_items):
        raise ValueError(
            f"truth and scores must hold the same number of images, got {len(truth_items)} "
            f"and {len(score_items)}."
        )
    for index, (truth_item, score_item) in enumerate(zip(truth_items, score_items, strict=True)):
        if truth_item.shape != score_item.shape:
            where = f" (image {index})" if len(truth_items) > 1 else ""
            raise ValueError(
                f"truth and scores must have the same shape{where}, got truth "
                f"{truth_item.shape} and scores {score_item.shape}."
            )
        if score_item.dtype.kind not in "biuf":
            raise ValueError(f"scores must be numeric, got dtype {score_item.dtype}.")
    return list(zip(truth_items, score_items, strict=True))


def _mask_chunk(chunk: np.ndarray) -> np.ndarray:
    """A chunk of truth as bool, checking 0/1 without copying bool or uint8 input."""
    if chunk.dtype == np.bool_:
        return chunk
    if chunk.dtype.kind in "iu":
        if chunk.size and (chunk.min() < 0 or chunk.max() > 1):
            raise ValueError(
                f"truth must hold only 0 and 1, found values in [{chunk.min()}, {chunk.max()}]."
            )
        return chunk.view(np.bool_) if chunk.dtype.itemsize == 1 else chunk != 0
    return _as_mask(chunk, "truth")


def _chunks(truth_item: np.ndarray, score_item: np.ndarray, chunk_pixels: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    truth_flat = truth_item.reshape(-1)
    score_flat = np.ascontiguousarray(score_item.reshape(-1))
    for start in range(0, score_flat.size, chunk_pixels):
        stop = start + chunk_pixels
        yield _mask_chunk(truth_flat[start:stop]), score_flat[start:stop]


def _score_kind(items: list[tuple[np.ndarray, np.ndarray]]) -> str:
    """'uint8' and 'float16' histograms are exact; anything else is quantised as 'float32'."""
    kinds = set()
    for _, score_item in items:
        if score_item.dtype in (np.uint8, np.bool_):
            kinds.add("uint8")
        elif score_item.dtype == np.float16:
            kinds.add("float16")
        else:
            kinds.add("float32")
    if "float32" in kinds:
        return "float32"
    return "float16" if "float16" in kinds else "uint8"


@cache
def _float16_values() -> np.ndarray:
    """float64 value of every float16 bit pattern 0..65535 (NaN where the pattern is NaN)."""
    return np.arange(_FLOAT16_KEYS, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(
        np.float64
    )


def _ordered_key32(bits: np.ndarray) -> np.ndarray:
    """Map float32 bit patterns (uint32) to keys whose unsigned order is the float order."""
    sign = bits >> np.uint32(31)
    return bits ^ (sign * np.uint32(0x7FFFFFFF) + np.uint32(0x80000000))


def _float32_from_key(keys: np.ndarray) -> np.ndarray:
    """Inverse of `_ordered_key32`, as float64 values."""
    keys = keys.astype(np.uint32)
    positive = keys >= np.uint32(0x80000000)
    bits = np.where(positive, keys ^ np.uint32(0x80000000), ~keys)
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


@dataclass(frozen=True)
class _Float32Grid:
    """Quantisation of float32 scores: bin = (ordered key - low_key) >> shift."""

    low_key: int
    shift: int
    n_bins: int
    nonnegative: bool

    @classmethod
    def spanning(cls, low: float, high: float) -> _Float32Grid:
        low_key, high_key = (
            int(_ordered_key32(np.array([value], dtype=np.float32).view(np.uint32))[0])
            for value in (low + 0.0, high + 0.0)
        )
        shift = max(0, (high_key - low_key).bit_length() - _FLOAT32_BINS_LOG2)
        return cls(low_key, shift, ((high_key - low_key) >> shift) + 1, low >= 0)

    def bins(self, chunk: np.ndarray) -> np.ndarray:
        # Adding +0.0 turns -0.0 into +0.0, so the two zeros share a bin as they compare equal.
        bits = np.add(chunk, np.float32(0.0), dtype=np.float32).view(np.uint32)
        if self.nonnegative:  # bit patterns of non-negative floats are already ordered
            keys = bits - np.uint32(self.low_key - 0x80000000)
        else:
            keys = _ordered_key32(bits) - np.uint32(self.low_key)
        return keys >> np.uint32(self.shift) if self.shift else keys

    def floor_values(self, bins: np.ndarray) -> np.ndarray:
        """Smallest float32 value of each bin: score >= it exactly when the bin is >= this one."""
        return _float32_from_key(self.low_key + (bins.astype(np.uint64) << np.uint64(self.shift)))


@dataclass(frozen=True)
class _Histogram:
    """Distinct score values (ascending) with positive and negative pixel counts."""

    values: np.ndarray      # (K,) float64, strictly increasing
    positives: np.ndarray   # (K,) int64
    negatives: np.ndarray   # (K,) int64
    exact: bool


def _finish_histogram(values: np.ndarray, positives: np.ndarray, negatives: np.ndarray,
                      exact: bool) -> _Histogram:
    """Keep occupied bins, sort them by value and merge equal values (e.g. -0.0 and +0.0)."""
    occupied = (positives + negatives) > 0
    values, positives, negatives = values[occupied], positives[occupied], negatives[occupied]
    if np.isnan(values).any():
        raise ValueError("scores hold NaN; ROC and PR curves need finite scores.")
    order = np.argsort(values, kind="stable")
    values, positives, negatives = values[order], positives[order], negatives[order]
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if values.size else order
    if starts.size == values.size:
        distinct, merged_positives, merged_negatives = values, positives, negatives
    else:
        distinct = values[starts]
        merged_positives = np.add.reduceat(positives, starts)
        merged_negatives = np.add.reduceat(negatives, starts)
    return _Histogram(
        distinct,
        np.asarray(merged_positives, dtype=np.int64),
        np.asarray(merged_negatives, dtype=np.int64),
        exact,
    )


def _score_histogram(truth: Any, scores: Any, chunk_pixels: int = CHUNK_PIXELS) -> _Histogram:
    """One pass over all pixels: integer histograms of scores for positives and negatives."""
    if int(chunk_pixels) < 1:
        raise ValueError(f"chunk_pixels must be positive, got {chunk_pixels}.")
    items = _paired_items(truth, scores)
    kind = _score_kind(items)
    grid = None
    if kind == "float32":
        nonempty = [score_item for _, score_item in items if score_item.size]
        low = min((float(np.min(item)) for item in nonempty), default=0.0)
        high = max((float(np.max(item)) for item in nonempty), default=0.0)
        if math.isnan(low) or math.isnan(high):
            raise ValueError("scores hold NaN; ROC and PR curves need finite scores.")
        grid = _Float32Grid.spanning(low, high)
        n_keys = grid.n_bins
    else:
        n_keys = 256 if kind == "uint8" else _FLOAT16_KEYS
    totals = np.zeros(n_keys, dtype=np.int64)
    positives = np.zeros(n_keys, dtype=np.int64)
    for truth_item, score_item in items:
        for truth_chunk, score_chunk in _chunks(truth_item, score_item, int(chunk_pixels)):
            if grid is not None:
                keys = grid.bins(score_chunk)
            elif kind == "uint8":
                keys = score_chunk.view(np.uint8)
            else:
                keys = score_chunk.astype(np.float16, copy=False).view(np.uint16)
            # Negatives are totals minus positives, so only the few positives are gathered.
            totals += np.bincount(keys, minlength=n_keys)
            positives += np.bincount(keys[truth_chunk], minlength=n_keys)
    negatives = totals - positives
    if grid is not None:
        occupied = np.flatnonzero(totals)
        return _finish_histogram(
            grid.floor_values(occupied), positives[occupied], negatives[occupied], exact=False
        )
    values = np.arange(256, dtype=np.float64) if kind == "uint8" else _float16_values()
    return _finish_histogram(values, positives, negatives, exact=True)


def _exact_histogram(y_true: Any, scores: Any, name: str = "scores") -> _Histogram:
    """Exact histogram by sorting (for small arrays such as classifier outputs)."""
    truth_mask = _as_mask(y_true, "y_true").reshape(-1)
    score_array = np.asarray(scores)
    if score_array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {score_array.dtype}.")
    score_array = score_array.reshape(-1).astype(np.float64)
    if truth_mask.shape != score_array.shape:
        raise ValueError(
            f"y_true and {name} must have the same number of values, got y_true "
            f"{np.shape(y_true)} and {name} {np.shape(scores)}."
        )
    if np.isnan(score_array).any():
        raise ValueError(f"{name} hold NaN; curves need finite scores.")
    values, inverse = np.unique(score_array + 0.0, return_inverse=True)
    totals = np.bincount(inverse, minlength=values.size)
    positives = np.bincount(inverse[truth_mask], minlength=values.size)
    return _Histogram(values, positives.astype(np.int64), (totals - positives).astype(np.int64),
                      exact=True)


# --------------------------------------------------------------------------------------------
# ROC and PR curves
# --------------------------------------------------------------------------------------------


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


def _roc_from_histogram(histogram: _Histogram, drop_intermediate: bool) -> RocCurve:
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


def _pr_from_histogram(histogram: _Histogram) -> PrCurve:
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
    return _roc_from_histogram(_score_histogram(truth, scores, chunk_pixels), drop_intermediate)


@_with_curve_args
def pixel_pr(truth: Any, scores: Any, *, chunk_pixels: int = CHUNK_PIXELS) -> PrCurve:
    """Pixel-level precision-recall curve and average precision in one pass.

    No positives: AP NaN. No negatives: AP 1 (see PrCurve).

    Raises:
        ValueError: shapes differ, truth holds values other than 0/1, or scores hold NaN.
    """
    return _pr_from_histogram(_score_histogram(truth, scores, chunk_pixels))


@_with_curve_args
def pixel_curves(truth: Any, scores: Any, *, drop_intermediate: bool = True,
                 chunk_pixels: int = CHUNK_PIXELS) -> tuple[RocCurve, PrCurve]:
    """`pixel_roc` and `pixel_pr` from a single pass over the pixels.

    Raises:
        ValueError: as `pixel_roc`.
    """
    histogram = _score_histogram(truth, scores, chunk_pixels)
    return _roc_from_histogram(histogram, drop_intermediate), _pr_from_histogram(histogram)


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
    return _roc_from_histogram(_exact_histogram(y_true_binary, scores), drop_intermediate)


def pr_curve_points(y_true_binary: Any, scores: Any) -> PrCurve:
    """Exact precision-recall curve by sorting (see `roc_curve_points` and `PrCurve`)."""
    return _pr_from_histogram(_exact_histogram(y_true_binary, scores))


# --------------------------------------------------------------------------------------------
# Threshold sweep
# --------------------------------------------------------------------------------------------


def default_thresholds() -> np.ndarray:
    """41 log-spaced thresholds from 1e-4 to 0.99 (3 significant digits) plus the study's.

    Returns:
        (K,) float64 sorted unique thresholds in [1e-4, 0.99].
    """
    grid = [float(f"{value:.3g}") for value in np.logspace(-4, math.log10(0.99), 41)]
    return np.unique(np.array(grid + list(STUDY_THRESHOLDS), dtype=np.float64))


def _image_items(data: Any) -> list[np.ndarray]:
    """(N, H, W) or (N, H, W, 1) array -> N images; (H, W) or 1-D array -> one image;
    sequence -> its items."""
    if isinstance(data, np.ndarray):
        if data.ndim == 4 and data.shape[-1] == 1:
            data = data[..., 0]
        if data.ndim == 3:
            return list(data)
        if data.ndim in (1, 2):
            return [data]
        raise ValueError(
            f"expected an (N, H, W) array, one (H, W) array or a list of arrays, got shape "
            f"{data.shape}."
        )
    return _as_sequence(data)


def _interval_counts(truth: Any, scores: Any, thresholds: np.ndarray, chunk_pixels: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per image, pixels (all and positive) whose score has k thresholds <= it, k = 0..T."""
    items = _paired_items(_image_items(truth), _image_items(scores))
    n_bins = thresholds.size + 1
    totals = np.zeros((len(items), n_bins), dtype=np.int64)
    positives = np.zeros((len(items), n_bins), dtype=np.int64)
    nan_bin = n_bins  # the float16 lookup sends NaN patterns here so that they can be refused
    interval_of_key = None
    for index, (truth_item, score_item) in enumerate(items):
        for truth_chunk, score_chunk in _chunks(truth_item, score_item, chunk_pixels):
            if score_chunk.dtype in (np.float16, np.uint8, np.bool_):
                if interval_of_key is None:
                    values = _float16_values()
                    interval_of_key = np.searchsorted(thresholds, values, side="right")
                    interval_of_key[np.isnan(values)] = nan_bin
                # Histogram the 65536 float16 patterns, then fold the histogram into the
                # threshold intervals: much faster than mapping every pixel.
                keys = score_chunk.astype(np.float16, copy=False).view(np.uint16)
                key_totals = np.bincount(keys, minlength=_FLOAT16_KEYS)
                key_positives = np.bincount(keys[truth_chunk], minlength=_FLOAT16_KEYS)
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


# --------------------------------------------------------------------------------------------
# Hausdorff distance
# --------------------------------------------------------------------------------------------


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

    first = _as_mask(mask_a, "mask_a")
    second = _as_mask(mask_b, "mask_b")
    _check_same_shape(first, second, "mask_a,mask_b")
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


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def _labels(y_true: Any, n_classes: int, name: str = "y_true") -> np.ndarray:
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {labels.shape}.")
    if labels.dtype.kind not in "biuf" or (
            labels.dtype.kind == "f" and not np.all(labels == np.round(labels))):
        raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{name} must hold class indices in [0, {n_classes - 1}], found "
            f"[{labels.min()}, {labels.max()}]."
        )
    return labels


def _probabilities(y_true: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    probability_array = np.asarray(probabilities, dtype=np.float64)
    if probability_array.ndim != 2 or probability_array.shape[1] < 2:
        raise ValueError(
            f"probabilities must be (N, C) with C >= 2, got shape {probability_array.shape}."
        )
    if not np.all(np.isfinite(probability_array)):
        raise ValueError("probabilities hold NaN or infinite values.")
    labels = _labels(y_true, probability_array.shape[1])
    if labels.shape[0] != probability_array.shape[0]:
        raise ValueError(
            f"y_true and probabilities must have the same number of samples, got y_true "
            f"{labels.shape} and probabilities {probability_array.shape}."
        )
    return labels, probability_array


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class.

    Args:
        y_true, y_pred: (N,) integer class indices in [0, n_classes).

    Returns:
        (n_classes, n_classes) int64 counts.

    Raises:
        ValueError: not 1-D, different lengths, or indices out of range.
    """
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be positive, got {n_classes}.")
    true_labels = _labels(y_true, n_classes, "y_true")
    predicted_labels = _labels(y_pred, n_classes, "y_pred")
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got y_true {true_labels.shape} and "
            f"y_pred {predicted_labels.shape}."
        )
    flat = np.bincount(true_labels * n_classes + predicted_labels, minlength=n_classes**2)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


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
    labels, probability_array = _probabilities(y_true, probabilities)
    confidence = probability_array.max(axis=1)
    correct = (probability_array.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    confidence_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    return ReliabilityCurve(
        _ratio(confidence_sum, count, math.nan),
        _ratio(correct_sum, count, math.nan),
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


def _present_mean(values: np.ndarray, present: np.ndarray) -> float:
    return float(np.mean(values[present])) if present.any() else math.nan


def classification_report(y_true: Any, probabilities: Any,
                          class_names: Sequence[str] | None = None, *,
                          n_bins: int = 15) -> dict[str, Any]:
    """Classification metrics from class probabilities; the decision is the argmax.

    Args:
        y_true: (N,) class indices. probabilities: (N, C) probabilities (rows sum to 1).
        class_names: C names; default btseg.config.CLASS_NAMES.
        n_bins: bins for the expected calibration error.

    Returns:
        JSON-ready dict: n_samples, class_names, confusion_matrix (C x C list, rows true),
        accuracy, balanced_accuracy (mean recall over classes present in y_true, as
        scikit-learn), macro_precision, macro_recall, macro_f1 (means over the classes
        present in y_true; a present class never predicted counts precision 0, as
        scikit-learn's zero_division=0), per_class {name: precision,
        recall, f1, support, roc_auc, average_precision} (one-vs-rest, exact), macro_auc and
        macro_average_precision (mean over classes whose AUC/AP is defined; the classes used
        are listed in macro_auc_classes), expected_calibration_error, and normal_vs_tumour
        (tumour score 1 - p_normal: auc, average_precision, sensitivity and specificity of
        the argmax decision, n_tumour, n_normal) when a class is named "normal", else None.
        Undefined values (0/0, a class absent) are NaN.

    Raises:
        ValueError: shapes disagree, labels are out of range, or class_names has the wrong
            length.
    """
    labels, probability_array = _probabilities(y_true, probabilities)
    n_classes = probability_array.shape[1]
    if class_names is None:
        from btseg.config import CLASS_NAMES

        class_names = CLASS_NAMES
    names = [str(name) for name in class_names]
    if len(names) != n_classes:
        raise ValueError(
            f"class_names has {len(names)} names but probabilities have {n_classes} columns."
        )
    predicted = probability_array.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, n_classes)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    true_positive = np.diag(matrix)
    class_precision = _ratio(true_positive, predicted_count, math.nan)
    class_recall = _ratio(true_positive, support, math.nan)
    class_f1 = _ratio(2 * true_positive, support + predicted_count, math.nan)
    per_class: dict[str, dict[str, Any]] = {}
    aucs, average_precisions = [], []
    for index, name in enumerate(names):
        is_class = labels == index
        histogram = _exact_histogram(is_class, probability_array[:, index], "probabilities")
        auc = _roc_from_histogram(histogram, drop_intermediate=False).auc
        average_precision = _pr_from_histogram(histogram).average_precision
        aucs.append(auc)
        average_precisions.append(average_precision)
        per_class[name] = {
            "precision": float(class_precision[index]),
            "recall": float(class_recall[index]),
            "f1": float(class_f1[index]),
            "support": int(support[index]),
            "roc_auc": float(auc),
            "average_precision": float(average_precision),
        }
    auc_array, ap_array = np.array(aucs), np.array(average_precisions)
    present = support > 0
    report: dict[str, Any] = {
        "n_samples": int(labels.size),
        "class_names": names,
        "confusion_matrix": matrix.tolist(),
        "accuracy": _ratio(int(true_positive.sum()), int(labels.size), math.nan),
        "balanced_accuracy": _present_mean(class_recall, present),
        "macro_precision": _present_mean(np.nan_to_num(class_precision, nan=0.0), present),
        "macro_recall": _present_mean(class_recall, present),
        "macro_f1": _present_mean(class_f1, present),
        "per_class": per_class,
        "macro_auc": float(np.nanmean(auc_array)) if np.isfinite(auc_array).any() else math.nan,
        "macro_auc_classes": [name for name, auc in zip(names, aucs, strict=True)
                              if math.isfinite(auc)],
        "macro_average_precision": float(np.nanmean(ap_array)) if np.isfinite(
            ap_array).any() else math.nan,
        "expected_calibration_error": expected_calibration_error(labels, probability_array,
                                                                 n_bins),
        "normal_vs_tumour": None,
    }
    if "normal" in names:
        normal = names.index("normal")
        is_tumour = labels != normal
        tumour_score = 1.0 - probability_array[:, normal]
        histogram = _exact_histogram(is_tumour, tumour_score, "probabilities")
        counts = confusion_counts(is_tumour, predicted != normal)
        report["normal_vs_tumour"] = {
            "auc": _roc_from_histogram(histogram, drop_intermediate=False).auc,
            "average_precision": _pr_from_histogram(histogram).average_precision,
            "sensitivity": sensitivity_from_counts(counts),
            "specificity": specificity_from_counts(counts),
            "n_tumour": int(is_tumour.sum()),
            "n_normal": int((~is_tumour).sum()),
        }
    return report


# --------------------------------------------------------------------------------------------
# Uncertainty and buckets
# --------------------------------------------------------------------------------------------


class BootstrapInterval(NamedTuple):
    """Statistic on all data with a percentile bootstrap interval (NaN if undefined)."""

    estimate: float
    low: float
    high: float


def bootstrap_ci(values: Any, groups: Any, *, statistic: Callable[[np.ndarray], float] | None = None,
                 n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
                 ) -> BootstrapInterval:
    """Cluster bootstrap interval: resamples whole groups (surrogate patients), not images.

    Each resample draws as many groups as there are, with replacement, and keeps every image
    of each drawn group, so images of one patient never count as independent evidence.

    Args:
        values: (N,) per-image values (NaN allowed: the default statistic is np.nanmean), or
            (N, K) rows for a custom statistic, e.g. per-image ConfusionCounts stacked as
            (N, 4) with ``statistic=lambda rows: dice_from_counts(ConfusionCounts(*rows.sum(0)))``
            for a pooled Dice.
        groups: (N,) group id per image (ints or strings).
        statistic: function of the selected rows returning a float; default nanmean.
        n_resamples: bootstrap resamples. seed: random seed (same seed, same interval).
        alpha: 0.05 gives a 95% interval (percentiles alpha/2 and 1 - alpha/2).

    Returns:
        BootstrapInterval(estimate on all data, low, high); resamples whose statistic is NaN
        are ignored, and all-NaN gives NaN bounds.

    Raises:
        ValueError: no values, lengths differ, or alpha/n_resamples out of range.
    """
    value_array = np.asarray(values, dtype=np.float64)
    group_array = np.asarray(groups)
    if value_array.ndim not in (1, 2) or value_array.shape[0] == 0:
        raise ValueError(f"values must be a non-empty (N,) or (N, K) array, got shape "
                         f"{value_array.shape}.")
    if group_array.shape != (value_array.shape[0],):
        raise ValueError(
            f"groups must be (N,) with one id per value, got groups {group_array.shape} and "
            f"values {value_array.shape}."
        )
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}.")
    _, group_index = np.unique(group_array, return_inverse=True)
    group_index = group_index.reshape(-1)
    n_groups = int(group_index.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(int(n_resamples), n_groups))
    # How often each group was drawn in each resample: (R, G).
    offsets = np.arange(int(n_resamples))[:, None] * n_groups
    weights = np.bincount((draws + offsets).ravel(), minlength=int(n_resamples) * n_groups)
    weights = weights.reshape(int(n_resamples), n_groups).astype(np.float64)
    if statistic is None:
        if value_array.ndim != 1:
            raise ValueError("the default statistic (nanmean) needs (N,) values; pass statistic.")
        finite = np.isfinite(value_array)
        group_sum = np.bincount(group_index, weights=np.where(finite, value_array, 0.0),
                                minlength=n_groups)
        group_count = np.bincount(group_index, weights=finite.astype(np.float64),
                                  minlength=n_groups)
        resampled = _ratio(weights @ group_sum, weights @ group_count, math.nan)
        estimate = _ratio(group_sum.sum(), group_count.sum(), math.nan)
    else:
        members = [np.flatnonzero(group_index == group) for group in range(n_groups)]
        resampled = np.empty(int(n_resamples))
        for resample, drawn in enumerate(draws):
            rows = value_array[np.concatenate([members[group] for group in drawn])]
            resampled[resample] = float(statistic(rows))
        estimate = float(statistic(value_array))
    resampled = np.asarray(resampled, dtype=np.float64)
    if not np.isfinite(resampled).any():
        return BootstrapInterval(float(estimate), math.nan, math.nan)
    low, high = np.nanquantile(resampled, [float(alpha) / 2, 1 - float(alpha) / 2])
    return BootstrapInterval(float(estimate), float(low), float(high))


def lesion_size_bucket(area_fraction: float) -> str:
    """Bucket a lesion by its share of the image area: "<1%", "1-5%" or ">=5%".

    Args:
        area_fraction: lesion pixels / image pixels, in [0, 1]. 0 (a lesion that vanished at
            model resolution) counts as "<1%".

    Raises:
        ValueError: NaN or outside [0, 1].
    """
    fraction = float(area_fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"area_fraction must be in [0, 1], got {area_fraction}.")
    if fraction < 0.01:
        return LESION_SIZE_BUCKETS[0]
    if fraction < 0.05:
        return LESION_SIZE_BUCKETS[1]
    return LESION_SIZE_BUCKETS[2]
