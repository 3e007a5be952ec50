"""Overlap metrics (btseg.metrics.overlap): hand-drawn masks, empty policies, size buckets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from btseg import metrics

# 5x5 image: truth 4 px (left), prediction 6 px (right), overlap 3 px.
_DRAWN = np.array([
    [0, 0, 0, 0, 0,    0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0,    0, 1, 1, 1, 0],
    [0, 1, 1, 0, 0,    0, 1, 0, 1, 0],
    [0, 0, 0, 0, 0,    0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0,    0, 0, 0, 0, 0],
])  # fmt: skip
TRUTH = _DRAWN[:, :5].astype(np.uint8)
PREDICTION = _DRAWN[:, 5:].astype(bool)


def test_hand_drawn_masks_give_exact_values():
    counts = metrics.confusion_counts(TRUTH, PREDICTION)
    assert counts == (3, 3, 1, 18)
    assert metrics.dice(TRUTH, PREDICTION) == pytest.approx(6 / 10, abs=1e-15)
    assert metrics.iou(TRUTH, PREDICTION) == pytest.approx(3 / 7, abs=1e-15)
    assert metrics.sensitivity(TRUTH, PREDICTION) == pytest.approx(3 / 4, abs=1e-15)
    assert metrics.precision(TRUTH, PREDICTION) == pytest.approx(3 / 6, abs=1e-15)
    assert metrics.specificity(TRUTH, PREDICTION) == pytest.approx(18 / 21, abs=1e-15)
    assert metrics.accuracy(TRUTH, PREDICTION) == pytest.approx(21 / 25, abs=1e-15)
    assert metrics.f1(TRUTH, PREDICTION) == metrics.dice(TRUTH, PREDICTION)
    assert metrics.metrics_from_counts(counts)["iou"] == metrics.iou_from_counts(counts)


def test_empty_prediction_on_tumour_scores_zero_and_precision_is_nan():
    empty = np.zeros_like(TRUTH)
    assert metrics.dice(TRUTH, empty) == 0.0
    assert metrics.iou(TRUTH, empty) == 0.0
    assert metrics.sensitivity(TRUTH, empty) == 0.0
    assert math.isnan(metrics.precision(TRUTH, empty))
    assert metrics.precision(TRUTH, empty, empty_score=0.0) == 0.0


def test_empty_truth_policies():
    empty = np.zeros((5, 5), dtype=bool)
    # Both empty: undefined, NaN unless the caller chooses a score.
    assert math.isnan(metrics.dice(empty, empty))
    assert math.isnan(metrics.iou(empty, empty))
    assert metrics.dice(empty, empty, empty_score=1.0) == 1.0
    assert metrics.iou(empty, empty, empty_score=1.0) == 1.0
    assert metrics.specificity(empty, empty) == 1.0
    # Empty truth with a false positive: Dice 0, sensitivity undefined.
    assert metrics.dice(empty, PREDICTION) == 0.0
    assert math.isnan(metrics.sensitivity(empty, PREDICTION))


def test_foreground_iou_avoids_the_background_averaging_trap():
    truth = np.zeros((10, 10), dtype=bool)
    truth[:1, :] = True  # 10% tumour
    nothing = np.zeros_like(truth)
    assert metrics.iou(truth, nothing) == 0.0
    # A mean over background and foreground classes (Keras MeanIoU) would report 0.45.
    background_iou = metrics.iou(~truth, ~nothing)
    assert (background_iou + metrics.iou(truth, nothing)) / 2 == pytest.approx(0.45)


def test_per_image_counts_for_batches_and_lists_of_different_sizes():
    batch_truth = np.stack([TRUTH, np.zeros_like(TRUTH), TRUTH])
    batch_prediction = np.stack([PREDICTION, np.zeros_like(PREDICTION), TRUTH.astype(bool)])
    per_image = metrics.dice(batch_truth, batch_prediction, per_image=True)
    np.testing.assert_array_equal(per_image, [0.6, np.nan, 1.0])
    assert np.nanmean(per_image) == pytest.approx(0.8)
    counts = metrics.confusion_counts_per_image(batch_truth, batch_prediction)
    assert counts.pooled() == metrics.confusion_counts(batch_truth, batch_prediction)
    np.testing.assert_array_equal(counts.tp, [3, 0, 4])

    big_truth = np.zeros((3, 7), dtype=bool)
    big_truth[1, 1:4] = True
    big_prediction = np.zeros((3, 7), dtype=bool)
    big_prediction[1, 2:6] = True
    listed = metrics.iou([TRUTH, big_truth], [PREDICTION, big_prediction], per_image=True)
    np.testing.assert_allclose(listed, [3 / 7, 2 / 5], rtol=0, atol=1e-15)


def test_bad_shapes_and_values_raise_value_error_naming_them():
    with pytest.raises(ValueError, match=r"truth \(5, 5\).*prediction \(4, 5\)"):
        metrics.dice(TRUTH, PREDICTION[:4])
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics.dice(TRUTH, PREDICTION * 0.7)
    with pytest.raises(ValueError, match="same number of images"):
        metrics.dice([TRUTH, TRUTH], [PREDICTION], per_image=True)
    with pytest.raises(ValueError, match=r"image 1"):
        metrics.dice([TRUTH, TRUTH], [PREDICTION, PREDICTION[:3]], per_image=True)


def test_binarize_compares_in_float64():
    scores = np.array([0.1, 0.5, 0.0999], dtype=np.float16)
    # float16(0.1) is 0.0999755859375, below the threshold 0.1.
    np.testing.assert_array_equal(metrics.binarize(scores, 0.1), [False, True, False])
    np.testing.assert_array_equal(metrics.binarize(scores, 0.5), [False, True, False])
    with pytest.raises(ValueError, match="NaN"):
        metrics.binarize(np.array([np.nan, 0.2]), 0.5)


def test_lesion_size_bucket_edges():
    assert metrics.lesion_size_bucket(0.0) == "<1%"
    assert metrics.lesion_size_bucket(0.0099) == "<1%"
    assert metrics.lesion_size_bucket(0.01) == "1-5%"
    assert metrics.lesion_size_bucket(0.0499) == "1-5%"
    assert metrics.lesion_size_bucket(0.05) == ">=5%"
    with pytest.raises(ValueError, match="area_fraction"):
        metrics.lesion_size_bucket(1.5)
    with pytest.raises(ValueError, match="area_fraction"):
        metrics.lesion_size_bucket(float("nan"))


def test_empty_prediction_scores_are_the_metric_traps():
    scores = metrics.empty_prediction_scores(tumour_pixels=2, background_pixels=98)
    assert scores["tumour_share"] == pytest.approx(0.02)
    assert scores["pixel_accuracy"] == pytest.approx(0.98)
    assert scores["keras_mean_iou"] == pytest.approx(0.49)  # (98/100 + 0) / 2
    assert scores["foreground_iou"] == 0.0 and scores["dice"] == 0.0
    assert metrics.empty_prediction_scores(0, 10)["keras_mean_iou"] == 1.0
    assert math.isnan(metrics.empty_prediction_scores(0, 0)["pixel_accuracy"])
