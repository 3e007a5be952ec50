"""Score histograms: the one-pass core of pixel ROC and PR curves.

A ScoreHistogram holds, for each distinct score value, how many positive (truth 1) and
negative (truth 0) pixels have that score. ROC and PR curves at every threshold follow from
its cumulative sums (btseg.metrics.curves), so millions of pixels are never sorted.

Exact histograms: float16, uint8 and bool scores are counted over every representable value
(float16: one bin per 16-bit pattern, FLOAT16_KEYS of them), and small arrays are counted by
sorting (`exact_histogram`). Other float scores are quantised by `score_histogram` (see
there). Counts saved per float16 bit pattern, as `btseg evaluate` writes them, become a
histogram through `float16_histogram`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from btseg.metrics.utils import as_mask, paired_items, pixel_chunks

#: Pixels handled per step by the histogram passes; small enough to stay in cache.
CHUNK_PIXELS = 1 << 19

#: Number of float16 bit patterns: the length of a per-pattern float16 histogram.
FLOAT16_KEYS = 1 << 16

_FLOAT32_BINS_LOG2 = 20  # quantised scores: at most 2**20 bins between their min and max


@dataclass(frozen=True)
class ScoreHistogram:
    """Distinct score values (ascending) with positive and negative pixel counts.

    values: (K,) float64, strictly increasing (K = 0 when there are no pixels).
    positives, negatives: (K,) int64 counts of truth-1 and truth-0 pixels at each value;
    every value has at least one pixel.
    exact: False when float32/float64 scores were quantised (a value is then the smallest
    score of its bin).
    """

    values: np.ndarray      # (K,) float64, strictly increasing
    positives: np.ndarray   # (K,) int64
    negatives: np.ndarray   # (K,) int64
    exact: bool


@cache
def float16_values() -> np.ndarray:
    """float64 value of every float16 bit pattern 0..65535 (NaN where the pattern is NaN).

    Returns:
        (FLOAT16_KEYS,) read-only float64 array; index k is the value of bit pattern k, so
        ``float16_values()[scores.view(np.uint16)]`` equals ``scores.astype(np.float64)``.
    """
    values = np.arange(FLOAT16_KEYS, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(
        np.float64
    )
    values.setflags(write=False)
    return values


def histogram_from_counts(values: Any, positives: Any, negatives: Any, *,
                          exact: bool) -> ScoreHistogram:
    """Histogram from precomputed counts per score value.

    Keeps the occupied bins (positives + negatives > 0), sorts them by value and merges
    equal values (e.g. -0.0 and +0.0), so empty bins and their values are ignored.

    Args:
        values: (B,) score value of each bin, any order; NaN only in empty bins.
        positives, negatives: (B,) non-negative integer pixel counts per bin.
        exact: recorded in the result (True when each bin holds a single score value).

    Returns:
        ScoreHistogram with K <= B distinct values; K = 0 when every bin is empty.

    Raises:
        ValueError: the three arrays are not 1-D of the same length, or an occupied bin's
            value is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    positives = np.asarray(positives, dtype=np.int64)
    negatives = np.asarray(negatives, dtype=np.int64)
    if values.ndim != 1 or positives.shape != values.shape or negatives.shape != values.shape:
        raise ValueError(
            f"values, positives and negatives must be 1-D of the same length, got "
            f"{values.shape}, {positives.shape} and {negatives.shape}."
        )
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
    return ScoreHistogram(
        distinct,
        np.asarray(merged_positives, dtype=np.int64),
        np.asarray(merged_negatives, dtype=np.int64),
        exact,
    )


def float16_histogram(positives: Any, negatives: Any) -> ScoreHistogram:
    """Exact histogram from pixel counts per float16 bit pattern of the score.

    Args:
        positives, negatives: (FLOAT16_KEYS,) integer counts of truth-1 / truth-0 pixels whose
            float16 score has bit pattern k, e.g.
            ``np.bincount(scores.view(np.uint16)[truth], minlength=FLOAT16_KEYS)``.

    Returns:
        ScoreHistogram (exact) of the occupied patterns; +0.0 and -0.0 are merged.

    Raises:
        ValueError: a count array is not (FLOAT16_KEYS,), or a NaN pattern has pixels.
    """
    positives = np.asarray(positives, dtype=np.int64)
    negatives = np.asarray(negatives, dtype=np.int64)
    if positives.shape != (FLOAT16_KEYS,) or negatives.shape != (FLOAT16_KEYS,):
        raise ValueError(
            f"float16 histograms must be ({FLOAT16_KEYS},) counts, got {positives.shape} and "
            f"{negatives.shape}."
        )
    return histogram_from_counts(float16_values(), positives, negatives, exact=True)


def score_histogram(truth: Any, scores: Any, chunk_pixels: int = CHUNK_PIXELS) -> ScoreHistogram:
    """One pass over all pixels: integer histograms of scores for positives and negatives.

    Args:
        truth: masks (bool or 0/1) matching `scores`: one array of any shape, an (N, H, W)
            array, or a sequence of arrays whose shapes may differ between images.
        scores: scores with the same structure. float16, uint8 and bool scores give an exact
            histogram. Other dtypes are cast to float32 and quantised into at most 2**20
            bins of equal width in float32 order between the smallest and largest score
            (exact=False; each value is the smallest float32 of its bin).
        chunk_pixels: pixels per step; extra memory stays O(chunk_pixels + bins).

    Returns:
        ScoreHistogram of every pixel given (K = 0 for no pixels).

    Raises:
        ValueError: shapes or image counts differ, truth holds values other than 0/1, scores
            are not numeric or hold NaN, or chunk_pixels < 1.
    """
    if int(chunk_pixels) < 1:
        raise ValueError(f"chunk_pixels must be positive, got {chunk_pixels}.")
    items = paired_items(truth, scores)
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
        n_keys = 256 if kind == "uint8" else FLOAT16_KEYS
    totals = np.zeros(n_keys, dtype=np.int64)
    positives = np.zeros(n_keys, dtype=np.int64)
    for truth_item, score_item in items:
        for truth_chunk, score_chunk in pixel_chunks(truth_item, score_item, int(chunk_pixels)):
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
        return histogram_from_counts(
            grid.floor_values(occupied), positives[occupied], negatives[occupied], exact=False
        )
    values = np.arange(256, dtype=np.float64) if kind == "uint8" else float16_values()
    return histogram_from_counts(values, positives, negatives, exact=True)


def exact_histogram(y_true: Any, scores: Any, name: str = "scores") -> ScoreHistogram:
    """Exact histogram by sorting (for small arrays such as classifier outputs).

    Args:
        y_true: labels (bool or 0/1), any shape, flattened.
        scores: as many scores of any numeric dtype, compared in float64; no NaN.
        name: what to call `scores` in error messages.

    Returns:
        ScoreHistogram (exact) of the distinct scores (K = 0 for no values).

    Raises:
        ValueError: labels are not 0/1, scores are not numeric or hold NaN, or the numbers
            of values differ.
    """
    truth_mask = as_mask(y_true, "y_true").reshape(-1)
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
    return ScoreHistogram(values, positives.astype(np.int64),
                          (totals - positives).astype(np.int64), exact=True)


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
