"""Threshold sweeps (btseg.metrics.sweep): equal to thresholding each image directly."""

from __future__ import annotations

import numpy as np
import pytest

from btseg import metrics


def test_default_thresholds_hold_the_grid_and_the_study_values():
    thresholds = metrics.default_thresholds()
    assert thresholds[0] == 1e-4 and thresholds[-1] == 0.99
    assert np.all(np.diff(thresholds) > 0)
    assert set(metrics.STUDY_THRESHOLDS) <= set(thresholds.tolist())
    assert 41 <= thresholds.size <= 46


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_threshold_sweep_equals_direct_computation(dtype):
    rng = np.random.default_rng(5)
    truth = np.zeros((4, 16, 24), dtype=np.uint8)
    truth[0, 3:9, 4:12] = 1
    truth[1, 10:15, 1:5] = 1
    truth[3, 0:2, 0:24] = 1  # image 2 is normal (no tumour)
    scores = np.clip(rng.normal(0.2 + 0.5 * truth, 0.25), 0, 1).astype(dtype)
    scores[0, 0, 0] = 0.1  # a score exactly at a study threshold
    table = metrics.threshold_sweep(truth, scores)
    assert list(table.columns[:9]) == [
        "threshold", "dice", "iou", "sensitivity", "specificity", "precision", "f1",
        "accuracy", "mean_dice",
    ]
    for threshold in (1e-4, 0.01, 0.1, 0.5, 0.99):
        row = table.loc[table.threshold == threshold].iloc[0]
        predicted = metrics.binarize(scores, threshold)
        assert row.dice == metrics.dice(truth, predicted)
        assert row.iou == metrics.iou(truth, predicted)
        assert row.sensitivity == metrics.sensitivity(truth, predicted)
        assert row.specificity == metrics.specificity(truth, predicted)
        assert row.precision == metrics.precision(truth, predicted)
        per_image = metrics.dice(truth, predicted, per_image=True)
        assert row.mean_dice == pytest.approx(np.mean(per_image[[0, 1, 3]]), abs=1e-15)
        assert row.n_tumour_images == 3
    with_channel = metrics.threshold_sweep(truth[..., None], scores[..., None])
    assert with_channel.mean_dice.tolist() == table.mean_dice.tolist()
    as_list = metrics.threshold_sweep(list(truth), list(scores), [0.5, 0.1])
    assert as_list.threshold.tolist() == [0.1, 0.5]
    assert as_list.dice.tolist() == table.loc[table.threshold.isin([0.1, 0.5])].dice.tolist()


def test_threshold_sweep_without_tumour_images_and_bad_thresholds():
    truth = np.zeros((2, 4, 4), dtype=bool)
    scores = np.full((2, 4, 4), 0.3, dtype=np.float32)
    table = metrics.threshold_sweep(truth, scores, [0.2, 0.4])
    assert table.mean_dice.isna().all()
    assert table.fp.tolist() == [32, 0] and table.specificity.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="finite"):
        metrics.threshold_sweep(truth, scores, [np.nan])
    with pytest.raises(ValueError, match="NaN"):
        metrics.threshold_sweep(truth, np.full((2, 4, 4), np.nan, dtype=np.float16))
