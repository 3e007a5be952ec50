"""btseg.metrics: exact values on hand-drawn masks, agreement with scikit-learn and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist, directed_hausdorff
from sklearn import metrics as skm

from btseg import metrics

# 5x5 image: truth 4 px, prediction 6 px, overlap 3 px.
TRUTH = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=np.uint8,
)
PREDICTION = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 1, 0, 1, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=bool,
)


# --- confusion counts and ratio metrics ------------------------------------------------------


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


# --- pixel ROC and PR ---------------------------------------------------------------------


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


# --- threshold sweep ---------------------------------------------------------------------


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


# --- Hausdorff --------------------------------------------------------------------------------


def _boundary_points(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-neighbour outside the mask or the image."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    interior = inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return np.argwhere(inner & ~interior).astype(np.float64)


def _blob_masks() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[:40, :50]
    first = (rows - 15) ** 2 + (cols - 18) ** 2 <= 64
    second = ((rows - 22) ** 2) / 4 + (cols - 27) ** 2 / 9 <= 16
    second[35:40, 45:50] = True  # a far island touching the image border
    return first, second


def _nested_masks() -> tuple[np.ndarray, np.ndarray]:
    first = np.zeros((14, 16), dtype=bool)
    first[2:12, 3:13] = True
    second = np.zeros_like(first)
    second[5:8, 6:10] = True  # inside the first: set distances would be 0 one way
    return first, second


@pytest.mark.parametrize("make_masks", [_blob_masks, _nested_masks])
def test_hausdorff_matches_scipy_directed_hausdorff_on_boundaries(make_masks):
    first, second = make_masks()
    points_first, points_second = _boundary_points(first), _boundary_points(second)
    expected = max(directed_hausdorff(points_first, points_second)[0],
                   directed_hausdorff(points_second, points_first)[0])
    assert metrics.hausdorff(first, second) == pytest.approx(expected, abs=1e-12)
    assert metrics.hausdorff(second, first) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("make_masks", [_blob_masks, _nested_masks])
@pytest.mark.parametrize("percentile", [95, 50])
def test_percentile_hausdorff_and_spacing_match_brute_force(make_masks, percentile):
    first, second = make_masks()
    spacing = (0.5, 2.0)
    points_first = _boundary_points(first) * spacing
    points_second = _boundary_points(second) * spacing
    distances = cdist(points_first, points_second)
    expected = max(np.percentile(distances.min(axis=1), percentile),
                   np.percentile(distances.min(axis=0), percentile))
    assert metrics.hausdorff(first, second, percentile, spacing=spacing) == pytest.approx(
        expected, abs=1e-9)
    in_pixels = metrics.hausdorff(first, second, percentile)
    assert metrics.hausdorff(first, second, percentile, spacing=(3.0, 3.0)) == pytest.approx(
        3 * in_pixels, abs=1e-9)


def test_hausdorff_by_hand_and_empty_policy():
    first = np.zeros((6, 10), dtype=bool)
    second = np.zeros((6, 10), dtype=bool)
    first[2, 1] = True
    second[2, 7] = True
    assert metrics.hausdorff(first, second) == 6.0
    assert metrics.hausdorff(first, first) == 0.0
    empty = np.zeros_like(first)
    assert metrics.hausdorff(empty, empty) == 0.0
    assert math.isnan(metrics.hausdorff(first, empty))
    with pytest.raises(ValueError, match=r"mask_a \(6, 10\) and mask_b \(6, 9\)"):
        metrics.hausdorff(first, second[:, :9])
    with pytest.raises(ValueError, match="spacing"):
        metrics.hausdorff(first, second, spacing=(1.0,))


# --- classification ---------------------------------------------------------------------------


def _classifier_outputs(n: int = 240, seed: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.5, 0.4, 0.1])
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[labels]
    logits = np.round(logits, 1)  # ties between samples
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def test_classification_report_agrees_with_sklearn():
    labels, probabilities = _classifier_outputs()
    predicted = probabilities.argmax(axis=1)
    report = metrics.classification_report(labels, probabilities, ("normal", "benign",
                                                                   "malignant"))
    precision, recall, f1_score, support = skm.precision_recall_fscore_support(labels, predicted)
    for index, name in enumerate(("normal", "benign", "malignant")):
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(precision[index], abs=1e-12)
        assert row["recall"] == pytest.approx(recall[index], abs=1e-12)
        assert row["f1"] == pytest.approx(f1_score[index], abs=1e-12)
        assert row["support"] == support[index]
        assert row["roc_auc"] == pytest.approx(
            skm.roc_auc_score(labels == index, probabilities[:, index]), abs=1e-12)
        assert row["average_precision"] == pytest.approx(
            skm.average_precision_score(labels == index, probabilities[:, index]), abs=1e-12)
    assert report["macro_auc"] == pytest.approx(
        skm.roc_auc_score(labels, probabilities, multi_class="ovr"), abs=1e-12)
    assert report["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(labels, predicted), abs=1e-12)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=1e-12)
    macro = skm.precision_recall_fscore_support(labels, predicted, average="macro")
    assert (report["macro_precision"], report["macro_recall"], report["macro_f1"]) == (
        pytest.approx(macro[0], abs=1e-12), pytest.approx(macro[1], abs=1e-12),
        pytest.approx(macro[2], abs=1e-12))
    np.testing.assert_array_equal(report["confusion_matrix"],
                                  skm.confusion_matrix(labels, predicted))
    binary = report["normal_vs_tumour"]
    assert binary["auc"] == pytest.approx(
        skm.roc_auc_score(labels != 0, 1 - probabilities[:, 0]), abs=1e-12)
    assert binary["sensitivity"] == pytest.approx(
        skm.recall_score(labels != 0, predicted != 0), abs=1e-12)
    assert binary["specificity"] == pytest.approx(
        skm.recall_score(labels == 0, predicted == 0), abs=1e-12)
    assert binary["n_tumour"] + binary["n_normal"] == labels.size


def test_classification_report_with_an_absent_class_and_bad_input():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.3, 0.6, 0.1],
                              [0.2, 0.2, 0.6]])
    report = metrics.classification_report(labels, probabilities)
    assert math.isnan(report["per_class"]["malignant"]["roc_auc"])
    assert report["macro_auc_classes"] == ["normal", "benign"]
    assert math.isnan(report["per_class"]["malignant"]["recall"])
    assert report["per_class"]["malignant"]["precision"] == 0.0
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        metrics.classification_report(np.array([0, 3, 1, 1]), probabilities)
    with pytest.raises(ValueError, match=r"y_true \(3,\) and probabilities \(4, 3\)"):
        metrics.classification_report(labels[:3], probabilities)
    with pytest.raises(ValueError, match="class_names"):
        metrics.classification_report(labels, probabilities, ("a", "b"))


def test_confusion_matrix_by_hand():
    matrix = metrics.confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])


def test_calibration_by_hand():
    labels = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.55, 0.45]])
    # Confidences 0.9 (right), 0.8 (right), 0.7 (wrong), 0.55 (right) with 2 bins:
    # bin (0, 0.5] is empty; bin (0.5, 1] conf 0.7375, accuracy 0.75.
    curve = metrics.reliability_curve(labels, probabilities, n_bins=2)
    np.testing.assert_array_equal(curve.count, [0, 4])
    assert math.isnan(curve.confidence[0])
    assert curve.confidence[1] == pytest.approx(0.7375)
    assert curve.accuracy[1] == 0.75
    assert metrics.expected_calibration_error(labels, probabilities, n_bins=2) == pytest.approx(
        0.0125)
    # With 10 bins each sample is alone: |1-0.9| + |1-0.8| + |0-0.7| + |1-0.55| over 4.
    assert metrics.expected_calibration_error(labels, probabilities, n_bins=10) == pytest.approx(
        (0.1 + 0.2 + 0.7 + 0.45) / 4)


# --- bootstrap and buckets ----------------------------------------------------------------


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
