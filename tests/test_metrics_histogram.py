"""Score histograms (btseg.metrics.histogram) and curves from them, with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from btseg import metrics


def _assert_histogram(histogram, values, positives, negatives, exact):
    assert histogram.values.dtype == np.float64
    assert histogram.positives.dtype == histogram.negatives.dtype == np.int64
    np.testing.assert_array_equal(histogram.values, values)
    np.testing.assert_array_equal(histogram.positives, positives)
    np.testing.assert_array_equal(histogram.negatives, negatives)
    assert histogram.exact is exact


def _float16_counts() -> tuple[np.ndarray, np.ndarray]:
    """Positives: two at 1.0 and one at +0.0; negatives: three at 0.5 and one at -0.0."""
    positives = np.zeros(metrics.FLOAT16_KEYS, dtype=np.int64)
    negatives = np.zeros(metrics.FLOAT16_KEYS, dtype=np.int64)
    positives[0x3C00] = 2  # 1.0
    positives[0x0000] = 1  # +0.0
    negatives[0x3800] = 3  # 0.5
    negatives[0x8000] = 1  # -0.0
    return positives, negatives


def test_float16_values_by_bit_pattern():
    values = metrics.float16_values()
    assert values.shape == (metrics.FLOAT16_KEYS,) == (65536,) and values.dtype == np.float64
    assert values[0x0000] == 0.0 and not np.signbit(values[0x0000])
    assert values[0x8000] == 0.0 and np.signbit(values[0x8000])
    assert values[0x3C00] == 1.0 and values[0x3800] == 0.5 and values[0xBC00] == -1.0
    assert values[0x0001] == 2.0**-24  # smallest subnormal
    assert values[0x7C00] == math.inf and values[0xFC00] == -math.inf
    assert math.isnan(values[0x7E00])
    scores = np.random.default_rng(0).random(1000).astype(np.float16)
    np.testing.assert_array_equal(values[scores.view(np.uint16)], scores.astype(np.float64))
    assert metrics.float16_values() is values
    with pytest.raises(ValueError, match="read-only"):
        values[0] = 1.0


def test_histogram_from_counts_sorts_merges_and_drops_empty_bins():
    histogram = metrics.histogram_from_counts(
        [0.5, -0.0, 0.0, 0.25, math.nan], [1, 2, 0, 0, 0], [0, 1, 3, 0, 0], exact=True)
    # 0.25 and NaN hold no pixels; -0.0 and +0.0 are one value.
    _assert_histogram(histogram, [0.0, 0.5], [2, 1], [4, 0], True)
    quantised = metrics.histogram_from_counts(np.array([0.2, 0.1]), np.array([1, 0]),
                                              np.array([0, 5]), exact=False)
    _assert_histogram(quantised, [0.1, 0.2], [0, 1], [5, 0], False)


def test_histogram_from_counts_empty_and_bad_input():
    nothing = metrics.histogram_from_counts([0.1, 0.2], [0, 0], [0, 0], exact=True)
    _assert_histogram(nothing, [], [], [], True)
    _assert_histogram(metrics.histogram_from_counts([], [], [], exact=True), [], [], [], True)
    with pytest.raises(ValueError, match="NaN"):
        metrics.histogram_from_counts([0.1, math.nan], [0, 1], [1, 0], exact=True)
    with pytest.raises(ValueError, match="same length"):
        metrics.histogram_from_counts([0.1, 0.2], [1], [0, 1], exact=True)


def test_float16_histogram_by_hand():
    histogram = metrics.float16_histogram(*_float16_counts())
    _assert_histogram(histogram, [0.0, 0.5, 1.0], [1, 0, 2], [1, 3, 0], True)
    with pytest.raises(ValueError, match="65536"):
        metrics.float16_histogram(np.zeros(10), np.zeros(10))
    positives, negatives = _float16_counts()
    positives[0x7E00] = 1  # a NaN pattern with a pixel
    with pytest.raises(ValueError, match="NaN"):
        metrics.float16_histogram(positives, negatives)


def test_curves_from_a_histogram_by_hand():
    histogram = metrics.float16_histogram(*_float16_counts())
    # Pairs (positive, negative): the two 1.0 beat all 4 negatives (8); the +0.0 positive
    # ties the -0.0 negative (0.5) and loses to the three 0.5: AUC 8.5 / 12.
    roc = metrics.roc_from_histogram(histogram, drop_intermediate=False)
    assert roc.auc == 17 / 24
    np.testing.assert_array_equal(roc.thresholds, [math.inf, 1.0, 0.5, 0.0])
    np.testing.assert_array_equal(roc.tpr, [0, 2 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(roc.fpr, [0, 0, 3 / 4, 1])
    assert (roc.n_positive, roc.n_negative, roc.exact) == (3, 4, True)
    assert metrics.roc_from_histogram(histogram).auc == roc.auc  # drop_intermediate default
    # Thresholds 1.0, 0.5, 0.0 predict 2, 5, 7 pixels holding 2, 2, 3 positives.
    pr = metrics.pr_from_histogram(histogram)
    np.testing.assert_array_equal(pr.thresholds, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(pr.precision, [3 / 7, 2 / 5, 1, 1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(pr.recall, [1, 2 / 3, 2 / 3, 0], rtol=0, atol=1e-15)
    assert pr.average_precision == pytest.approx((2 * 1 + 1 * 3 / 7) / 3, abs=1e-15)
    labels = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    scores = np.array([1.0, 1.0, 0.0, 0.5, 0.5, 0.5, -0.0])
    assert roc.auc == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-15)
    assert pr.average_precision == pytest.approx(
        skm.average_precision_score(labels, scores), abs=1e-15)


def test_curves_from_an_empty_histogram():
    empty = metrics.float16_histogram(np.zeros(65536, np.int64), np.zeros(65536, np.int64))
    _assert_histogram(empty, [], [], [], True)
    roc = metrics.roc_from_histogram(empty)
    assert math.isnan(roc.auc) and (roc.n_positive, roc.n_negative) == (0, 0)
    np.testing.assert_array_equal(roc.thresholds, [math.inf])
    assert np.isnan(roc.fpr).all() and np.isnan(roc.tpr).all() and roc.fpr.shape == (1,)
    pr = metrics.pr_from_histogram(empty)
    assert math.isnan(pr.average_precision) and pr.thresholds.size == 0
    np.testing.assert_array_equal(pr.precision, [1.0])
    np.testing.assert_array_equal(pr.recall, [0.0])


def test_score_histogram_by_hand_for_each_dtype():
    truth = np.array([1, 0, 1, 0], dtype=bool)
    as_float16 = np.array([0.9, 0.8, 0.8, 0.1], dtype=np.float16)
    expected_values = np.array([0.1, 0.8, 0.9], dtype=np.float16).astype(np.float64)
    _assert_histogram(metrics.score_histogram(truth, as_float16), expected_values,
                      [0, 1, 1], [1, 1, 0], True)
    _assert_histogram(metrics.score_histogram(truth, np.array([230, 204, 204, 26], np.uint8)),
                      [26, 204, 230], [0, 1, 1], [1, 1, 0], True)
    # Images of different sizes in a list, small chunks: the same histogram.
    listed = metrics.score_histogram([truth[:1], truth[1:]], [as_float16[:1], as_float16[1:]],
                                     chunk_pixels=1)
    _assert_histogram(listed, expected_values, [0, 1, 1], [1, 1, 0], True)
    # float32 scores are quantised: same counts, each value at most its scores.
    quantised = metrics.score_histogram(truth, np.array([0.9, 0.8, 0.8, 0.1], np.float32))
    assert quantised.exact is False
    np.testing.assert_array_equal(quantised.positives, [0, 1, 1])
    np.testing.assert_array_equal(quantised.negatives, [1, 1, 0])
    assert np.all(quantised.values <= np.array([0.1, 0.8, 0.9], np.float32))


def test_score_histogram_empty_and_bad_input():
    _assert_histogram(metrics.score_histogram(np.zeros(0, bool), np.zeros(0, np.float16)),
                      [], [], [], True)
    _assert_histogram(metrics.score_histogram(np.zeros(0, bool), np.zeros(0, np.float32)),
                      [], [], [], False)
    with pytest.raises(ValueError, match="chunk_pixels"):
        metrics.score_histogram(np.ones(2, bool), np.ones(2, np.float16), chunk_pixels=0)
    with pytest.raises(ValueError, match=r"truth \(3,\) and scores \(2,\)"):
        metrics.score_histogram(np.ones(3, bool), np.ones(2, np.float16))


def test_exact_histogram_by_hand():
    histogram = metrics.exact_histogram([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    _assert_histogram(histogram, [0.1, 0.8, 0.9], [0, 1, 1], [1, 1, 0], True)
    _assert_histogram(metrics.exact_histogram([1, 0], [0.0, -0.0]), [0.0], [1], [1], True)
    _assert_histogram(metrics.exact_histogram([], []), [], [], [], True)
    with pytest.raises(ValueError, match="probabilities hold NaN"):
        metrics.exact_histogram([1, 0], [0.5, math.nan], name="probabilities")
    with pytest.raises(ValueError, match="same number of values"):
        metrics.exact_histogram([1, 0, 1], [0.5, 0.2])


def test_public_histogram_path_equals_pixel_curves():
    rng = np.random.default_rng(7)
    truth = rng.random((3, 40, 50)) < 0.1
    scores = np.clip(rng.normal(0.3 + 0.4 * truth, 0.2), 0, 1).astype(np.float16)
    keys = scores.view(np.uint16)
    from_counts = metrics.float16_histogram(
        np.bincount(keys[truth], minlength=metrics.FLOAT16_KEYS),
        np.bincount(keys[~truth], minlength=metrics.FLOAT16_KEYS))
    one_pass = metrics.score_histogram(truth, scores)
    _assert_histogram(from_counts, one_pass.values, one_pass.positives, one_pass.negatives, True)
    roc, pr = metrics.pixel_curves(truth, scores)
    from_histogram = metrics.roc_from_histogram(from_counts)
    assert from_histogram.auc == roc.auc
    np.testing.assert_array_equal(from_histogram.fpr, roc.fpr)
    np.testing.assert_array_equal(from_histogram.thresholds, roc.thresholds)
    assert metrics.pr_from_histogram(from_counts).average_precision == pr.average_precision
