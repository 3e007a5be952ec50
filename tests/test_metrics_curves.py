"""Pixel and exact ROC / PR curves (btseg.metrics.curves): agreement with scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from btseg import metrics


def _pixels(n: int = 120_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.05
    scores = np.clip(rng.normal(0.25 + 0.35 * truth, 0.18), 0.0, 1.0).astype(np.float32)
    return truth, scores


def test_roc_and_pr_agree_with_sklearn_on_float32_scores():
    truth, scores = _pixels()
    roc, pr = metrics.pixel_curves(truth, scores)
    assert not roc.exact
    assert abs(roc.auc - skm.roc_auc_score(truth, scores)) < 1e-3
    assert abs(pr.average_precision - skm.average_precision_score(truth, scores)) < 1e-3
    assert metrics.pixel_roc(truth, scores.astype(np.float64)).auc == roc.auc


@pytest.mark.parametrize("quantise", ["float16", "ties", "uint8", "float16_as_float32"])
def test_roc_and_pr_equal_sklearn_on_quantised_scores(quantise):
    truth, scores = _pixels(seed=1)
    quantised = {
        "float16": lambda: scores.astype(np.float16),
        "ties": lambda: np.round(scores, 2).astype(np.float16),
        "uint8": lambda: np.round(scores * 255).astype(np.uint8),
        "float16_as_float32": lambda: scores.astype(np.float16).astype(np.float32),
    }[quantise]()
    roc = metrics.pixel_roc(truth, quantised)
    pr = metrics.pixel_pr(truth, quantised)
    assert abs(roc.auc - skm.roc_auc_score(truth, quantised)) < 1e-12
    assert abs(pr.average_precision - skm.average_precision_score(truth, quantised)) < 1e-12
    assert roc.exact == (quantise != "float16_as_float32")


def test_curves_match_sklearn_point_by_point_on_float16():
    truth, scores = _pixels(seed=2)
    scores = scores.astype(np.float16)
    fpr, tpr, thresholds = skm.roc_curve(truth, scores)
    roc = metrics.pixel_roc(truth, scores)
    np.testing.assert_array_equal(roc.fpr, fpr)
    np.testing.assert_array_equal(roc.tpr, tpr)
    np.testing.assert_array_equal(roc.thresholds, thresholds)
    precision, recall, pr_thresholds = skm.precision_recall_curve(truth, scores)
    pr = metrics.pixel_pr(truth, scores)
    np.testing.assert_allclose(pr.precision, precision, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(pr.recall, recall)
    np.testing.assert_array_equal(pr.thresholds, pr_thresholds)


def test_curves_are_monotone_and_independent_of_chunking_and_layout():
    truth, scores = _pixels(seed=3)
    scores = scores.astype(np.float16)
    roc = metrics.pixel_roc(truth, scores, drop_intermediate=False)
    assert np.all(np.diff(roc.fpr) >= 0) and np.all(np.diff(roc.tpr) >= 0)
    assert np.all(np.diff(roc.thresholds) < 0)
    assert (roc.fpr[0], roc.tpr[0], roc.fpr[-1], roc.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    pr = metrics.pixel_pr(truth, scores)
    assert np.all(np.diff(pr.recall) <= 0) and np.all(np.diff(pr.thresholds) > 0)
    small_chunks = metrics.pixel_roc(truth, scores, drop_intermediate=False, chunk_pixels=999)
    np.testing.assert_array_equal(small_chunks.tpr, roc.tpr)
    # Images of different sizes in a list give the same curve as the pixels pooled.
    images_truth = [truth[:20_000].reshape(100, 200), truth[20_000:].reshape(-1, 50)]
    images_scores = [scores[:20_000].reshape(100, 200), scores[20_000:].reshape(-1, 50)]
    listed = metrics.pixel_roc(images_truth, images_scores, drop_intermediate=False)
    assert listed.auc == roc.auc
    np.testing.assert_array_equal(listed.fpr, roc.fpr)
    batch = (truth.reshape(6, 100, 200), scores.reshape(6, 100, 200))
    assert metrics.pixel_roc(list(batch[0]), batch[1]).auc == roc.auc


def test_signed_scores_and_zero_signs():
    rng = np.random.default_rng(4)
    truth = rng.random(20_000) < 0.3
    logits = rng.normal(truth * 1.0, 1.0)
    assert abs(metrics.pixel_roc(truth, logits).auc - skm.roc_auc_score(truth, logits)) < 1e-3
    zeros = np.array([0.0, -0.0, 0.0, -0.0, 1.0], dtype=np.float16)
    labels = np.array([1, 0, 0, 1, 1], dtype=bool)
    roc = metrics.pixel_roc(labels, zeros)
    assert roc.auc == skm.roc_auc_score(labels, zeros)
    assert roc.thresholds.size == 3  # inf, 1, 0: the two zeros are one threshold
    as_float32 = metrics.pixel_roc(labels, zeros.astype(np.float32))
    assert as_float32.auc == roc.auc
    np.testing.assert_array_equal(as_float32.thresholds, roc.thresholds)


def test_roc_and_pr_degenerate_inputs():
    scores = np.array([0.1, 0.4, 0.4], dtype=np.float16)
    no_positive = metrics.pixel_roc(np.zeros(3, bool), scores)
    assert math.isnan(no_positive.auc) and np.all(np.isnan(no_positive.tpr))
    assert math.isnan(metrics.pixel_pr(np.zeros(3, bool), scores).average_precision)
    no_negative = metrics.pixel_roc(np.ones(3, bool), scores)
    assert math.isnan(no_negative.auc)
    assert metrics.pixel_pr(np.ones(3, bool), scores).average_precision == 1.0
    nothing = metrics.pixel_roc(np.zeros(0, bool), np.zeros(0, np.float32))
    assert math.isnan(nothing.auc)
    with pytest.raises(ValueError, match="NaN"):
        metrics.pixel_roc(np.ones(2, bool), np.array([0.5, np.nan], dtype=np.float16))
    with pytest.raises(ValueError, match="NaN"):
        metrics.pixel_pr(np.ones(2, bool), np.array([0.5, np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match=r"truth \(3,\) and scores \(2,\)"):
        metrics.pixel_roc(np.ones(3, bool), scores[:2])
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics.pixel_roc(np.array([0, 2, 1], dtype=np.uint8), scores)


def test_tiny_roc_by_hand():
    # Scores 0.9 (pos), 0.8 (neg), 0.8 (pos), 0.1 (neg): 3 of 4 pairs ordered, 1 tied -> 3.5/4.
    roc = metrics.roc_curve_points([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    assert roc.auc == 3.5 / 4
    np.testing.assert_array_equal(roc.fpr, [0, 0, 0.5, 1])
    np.testing.assert_array_equal(roc.tpr, [0, 0.5, 1, 1])
    # AP: at 0.9 recall 1/2 precision 1; at 0.8 recall 1 precision 2/3.
    pr = metrics.pr_curve_points([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    assert pr.average_precision == pytest.approx(0.5 * 1 + 0.5 * 2 / 3, abs=1e-15)
