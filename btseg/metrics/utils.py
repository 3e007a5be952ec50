"""Input checks and helpers shared by the metric families (not re-exported by btseg.metrics).

Masks are bool or 0/1 arrays; pixel data come as one array, an (N, H, W) batch or a list of
images whose sizes may differ, and are read in chunks so that memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


def _as_sequence(data: Any) -> list[np.ndarray]:
    """A single array (or a flat list of numbers) is one item; a list of arrays is one per image."""
    if isinstance(data, np.ndarray):
        return [data]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if len(data) and np.ndim(data[0]) == 0:
            return [np.asarray(data)]
        return [np.asarray(item) for item in data]
    return [np.asarray(data)]


def image_items(data: Any) -> list[np.ndarray]:
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


def paired_items(truth: Any, scores: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pair truth and score items (images) and check their counts, shapes and dtypes."""
    if isinstance(truth, np.ndarray) and isinstance(scores, np.ndarray):
        truth_items, score_items = [truth], [scores]
    else:  # a list on one side: split an (N, H, W) array on the other into images
        truth_items, score_items = image_items(truth), image_items(scores)
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


def as_mask(mask: Any, name: str) -> np.ndarray:
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


def check_same_shape(truth: np.ndarray, prediction: np.ndarray, names: str) -> None:
    """ValueError naming both arrays (names "first,second") unless their shapes match."""
    if truth.shape != prediction.shape:
        first, second = names.split(",")
        raise ValueError(
            f"{first} and {second} must have the same shape, got {first} {truth.shape} "
            f"and {second} {prediction.shape}."
        )


def mask_chunk(chunk: np.ndarray) -> np.ndarray:
    """A chunk of truth as bool, checking 0/1 without copying bool or uint8 input."""
    if chunk.dtype == np.bool_:
        return chunk
    if chunk.dtype.kind in "iu":
        if chunk.size and (chunk.min() < 0 or chunk.max() > 1):
            raise ValueError(
                f"truth must hold only 0 and 1, found values in [{chunk.min()}, {chunk.max()}]."
            )
        return chunk.view(np.bool_) if chunk.dtype.itemsize == 1 else chunk != 0
    return as_mask(chunk, "truth")


def pixel_chunks(truth_item: np.ndarray, score_item: np.ndarray, chunk_pixels: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Flat (truth as bool, scores) chunks of at most `chunk_pixels` pixels of one image."""
    truth_flat = truth_item.reshape(-1)
    score_flat = np.ascontiguousarray(score_item.reshape(-1))
    for start in range(0, score_flat.size, chunk_pixels):
        stop = start + chunk_pixels
        yield mask_chunk(truth_flat[start:stop]), score_flat[start:stop]


def ratio(numerator: Any, denominator: Any, empty_score: float) -> Any:
    """numerator / denominator, with `empty_score` where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    result = np.full(np.broadcast(numerator, denominator).shape, float(empty_score))
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return float(result) if result.ndim == 0 else result


def class_labels(y_true: Any, n_classes: int, name: str = "y_true") -> np.ndarray:
    """(N,) int64 class indices in [0, n_classes); ValueError naming `name` otherwise."""
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


def class_probabilities(y_true: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked (N,) labels and (N, C) float64 probabilities (C >= 2, finite, same N)."""
    probability_array = np.asarray(probabilities, dtype=np.float64)
    if probability_array.ndim != 2 or probability_array.shape[1] < 2:
        raise ValueError(
            f"probabilities must be (N, C) with C >= 2, got shape {probability_array.shape}."
        )
    if not np.all(np.isfinite(probability_array)):
        raise ValueError("probabilities hold NaN or infinite values.")
    labels = class_labels(y_true, probability_array.shape[1])
    if labels.shape[0] != probability_array.shape[0]:
        raise ValueError(
            f"y_true and probabilities must have the same number of samples, got y_true "
            f"{labels.shape} and probabilities {probability_array.shape}."
        )
    return labels, probability_array
