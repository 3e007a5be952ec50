"""Group bootstrap intervals (btseg.metrics.bootstrap)."""

from __future__ import annotations

import numpy as np
import pytest

from btseg import metrics


def test_cluster_bootstrap_resamples_groups():
    # Ten patients with five images each: all variation is between patients.
    patient_values = np.random.default_rng(0).random(10)
    values = np.repeat(patient_values, 5)
    groups = np.repeat(np.arange(10), 5)
    clustered = metrics.bootstrap_ci(values, groups, n_resamples=2000)
    naive = metrics.bootstrap_ci(values, np.arange(values.size), n_resamples=2000)
    assert clustered.estimate == pytest.approx(patient_values.mean()) == naive.estimate
    assert clustered.low < naive.low < naive.high < clustered.high
    assert (clustered.high - clustered.low) > 1.8 * (naive.high - naive.low)
    assert metrics.bootstrap_ci(values, groups, n_resamples=2000) == clustered
    assert metrics.bootstrap_ci(values, groups, n_resamples=2000, seed=1) != clustered


def test_bootstrap_ignores_nan_and_accepts_a_statistic():
    values = np.array([0.5, np.nan, 0.7, 0.9])
    groups = np.array(["a", "a", "b", "c"])
    result = metrics.bootstrap_ci(values, groups, n_resamples=200)
    assert result.estimate == pytest.approx(0.7)
    assert 0.5 <= result.low <= result.high <= 0.9
    counts = np.array([[3, 1, 1, 20], [0, 0, 0, 25], [5, 0, 5, 15]])  # tp, fp, fn, tn
    pooled = metrics.bootstrap_ci(
        counts, [1, 2, 3], n_resamples=200,
        statistic=lambda rows: metrics.dice_from_counts(metrics.ConfusionCounts(*rows.sum(0))))
    assert pooled.estimate == pytest.approx(16 / 23)  # tp 8, fp 1, fn 6
    assert pooled.low <= pooled.estimate <= pooled.high
    with pytest.raises(ValueError, match=r"groups \(2,\) and values \(4,\)"):
        metrics.bootstrap_ci(values, groups[:2])
