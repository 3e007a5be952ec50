"""Uncertainty: percentile bootstrap intervals that resample whole groups (patients)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from btseg.metrics.utils import ratio


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
        resampled = ratio(weights @ group_sum, weights @ group_count, math.nan)
        estimate = ratio(group_sum.sum(), group_count.sum(), math.nan)
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
