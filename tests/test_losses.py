"""Losses and training metrics against hand-computed values and against btseg.metrics."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from btseg import metrics
from btseg.models import losses


def _image(values) -> np.ndarray:
    """A list of pixel values -> one (1, 1, len, 1) float32 image batch."""
    return np.asarray(values, dtype=np.float32).reshape(1, 1, -1, 1)


TRUTH = _image([1, 1, 0, 0])
PREDICTION = _image([1.0, 0.5, 0.5, 0.0])


def test_soft_dice_loss_of_known_tensors():
    # intersection 1.5, sum(t) 2, sum(p) 2: 1 - (3 + 1) / (4 + 1) = 0.2; unsmoothed 1 - 3/4.
    assert float(losses.soft_dice_loss(TRUTH, PREDICTION)[0]) == pytest.approx(0.2, abs=1e-6)
    assert float(losses.soft_dice_loss(TRUTH, PREDICTION, smooth=0.0)[0]) == pytest.approx(0.25, abs=1e-6)


def test_soft_dice_loss_does_not_penalise_an_empty_prediction_on_an_empty_mask():
    empty = _image([0, 0, 0, 0])
    assert float(losses.soft_dice_loss(empty, empty)[0]) == pytest.approx(0.0, abs=1e-7)
    assert float(losses.soft_dice_loss(empty, _image([1, 0, 0, 0]))[0]) == pytest.approx(0.5, abs=1e-6)


def test_soft_dice_loss_is_per_image():
    truth = np.concatenate([TRUTH, _image([0, 0, 0, 0])])
    prediction = np.concatenate([PREDICTION, _image([0, 0, 0, 0])])
    np.testing.assert_allclose(np.asarray(losses.soft_dice_loss(truth, prediction)), [0.2, 0.0], atol=1e-6)


def test_binary_cross_entropy_of_known_tensors():
    value = losses.binary_cross_entropy(_image([1, 0]), _image([0.8, 0.4]))
    assert float(value[0]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2, rel=1e-5)


def test_focal_loss_of_known_tensors():
    # t=1, p=0.8: 0.25 * 0.2^2 * -ln 0.8; t=0, p=0.4: 0.75 * 0.4^2 * -ln 0.6; mean of the two.
    expected = (0.25 * 0.04 * -math.log(0.8) + 0.75 * 0.16 * -math.log(0.6)) / 2
    value = losses.focal_loss(_image([1, 0]), _image([0.8, 0.4]))
    assert float(value[0]) == pytest.approx(expected, rel=1e-5)


def test_combined_losses_add_their_parts():
    truth, prediction = _image([1, 0, 1, 0]), _image([0.9, 0.2, 0.3, 0.6])
    dice = float(losses.soft_dice_loss(truth, prediction)[0])
    focal = float(losses.focal_loss(truth, prediction)[0])
    bce = float(losses.binary_cross_entropy(truth, prediction)[0])
    assert float(losses.dice_focal_loss(truth, prediction)[0]) == pytest.approx(dice + focal, rel=1e-6)
    assert float(losses.bce_dice_loss(truth, prediction, alpha=0.3)[0]) == pytest.approx(
        0.3 * bce + 0.7 * dice, rel=1e-6
    )


def test_weighted_categorical_cross_entropy_of_known_tensors():
    labels = np.array([0, 2])
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], np.float32)
    loss = losses.WeightedCategoricalCrossEntropyLoss(class_weights=[1.0, 2.0, 3.0])
    expected = (-1.0 * math.log(0.5) - 3.0 * math.log(0.8)) / 2
    assert float(loss(labels, probabilities)) == pytest.approx(expected, rel=1e-5)


def test_keras_losses_average_the_per_image_values_over_the_batch():
    truth = np.concatenate([TRUTH, _image([0, 0, 0, 0])])
    prediction = np.concatenate([PREDICTION, _image([0, 0, 0, 0])])
    assert float(losses.SoftDiceLoss()(truth, prediction)) == pytest.approx(0.1, abs=1e-6)


@pytest.mark.parametrize(
    "loss",
    [
        losses.BinaryCrossEntropyLoss(),
        losses.SoftDiceLoss(smooth=0.5),
        losses.FocalLoss(alpha=0.3, gamma=1.5),
        losses.DiceFocalLoss(),
        losses.BceDiceLoss(alpha=0.3),
        losses.WeightedCategoricalCrossEntropyLoss([0.5, 1.0, 3.0]),
    ],
    ids=lambda loss: loss.name,
)
def test_losses_serialise_under_the_btseg_package(loss):
    serialised = keras.saving.serialize_keras_object(loss)
    assert serialised["registered_name"].startswith("btseg>")
    restored = keras.saving.deserialize_keras_object(serialised, safe_mode=True)
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


def test_make_loss_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown loss"):
        losses.make_loss("hinge")
    assert isinstance(losses.make_loss("bce_dice", alpha=0.2), losses.BceDiceLoss)


def _batches():
    rng = np.random.default_rng(3)
    truth = (rng.random((2, 4, 16, 16, 1)) < 0.2).astype(np.float32)
    scores = rng.random((2, 4, 16, 16, 1)).astype(np.float32)
    scores[0, 0, 0, 0, 0] = 0.5  # exactly at the threshold: positive, as in btseg.metrics
    return truth, scores


@pytest.mark.parametrize(
    ("metric", "reference"),
    [(losses.DiceCoefficient(), metrics.dice), (losses.ForegroundIoU(), metrics.iou)],
    ids=["dice", "iou"],
)
def test_training_metrics_equal_btseg_metrics_pooled_over_the_epoch(metric, reference):
    truth, scores = _batches()
    for batch_truth, batch_scores in zip(truth, scores, strict=True):
        metric.update_state(batch_truth, batch_scores)
    expected = reference(truth.astype(bool), metrics.binarize(scores, 0.5))
    assert float(metric.result()) == pytest.approx(float(expected), abs=1e-6)
    metric.reset_state()
    metric.update_state(truth[1], scores[1])
    assert float(metric.result()) == pytest.approx(
        float(reference(truth[1].astype(bool), metrics.binarize(scores[1], 0.5))), abs=1e-6
    )


def test_training_metrics_of_hand_drawn_masks():
    truth = _image([1, 1, 1, 0, 0, 0])
    scores = _image([0.9, 0.6, 0.1, 0.7, 0.2, 0.0])  # TP 2, FN 1, FP 1
    dice, iou = losses.DiceCoefficient(), losses.ForegroundIoU()
    dice.update_state(truth, scores)
    iou.update_state(truth, scores)
    assert float(dice.result()) == pytest.approx(4 / 6)
    assert float(iou.result()) == pytest.approx(2 / 4)


def test_training_metrics_score_empty_truth_and_prediction_as_btseg_metrics_with_empty_score_1():
    empty = _image([0, 0, 0, 0])
    dice, iou = losses.DiceCoefficient(), losses.ForegroundIoU()
    dice.update_state(empty, empty)
    iou.update_state(empty, empty)
    assert float(dice.result()) == metrics.dice(empty, empty, empty_score=1.0) == 1.0
    assert float(iou.result()) == metrics.iou(empty, empty, empty_score=1.0) == 1.0


def test_foreground_iou_ignores_the_background_of_an_empty_prediction():
    dice, iou = losses.DiceCoefficient(), losses.ForegroundIoU()
    dice.update_state(_image([1, 0, 0, 0]), _image([0, 0, 0, 0]))
    iou.update_state(_image([1, 0, 0, 0]), _image([0, 0, 0, 0]))
    assert float(iou.result()) == 0.0
    assert float(dice.result()) == 0.0


def test_balanced_accuracy_equals_btseg_metrics():
    labels = np.array([0, 0, 0, 1, 1, 2])
    probabilities = np.array(
        [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1],
         [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.2, 0.2, 0.6]], np.float32
    )
    metric = losses.BalancedAccuracy(num_classes=3)
    metric.update_state(labels[:3], probabilities[:3])
    metric.update_state(labels[3:], probabilities[3:])
    # recalls 2/3, 1/2, 1/1
    assert float(metric.result()) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3, abs=1e-6)
    report = metrics.classification_report(labels, probabilities.astype(np.float64))
    assert float(metric.result()) == pytest.approx(report["balanced_accuracy"], abs=1e-6)


def test_balanced_accuracy_averages_only_the_classes_present():
    metric = losses.BalancedAccuracy(num_classes=3)
    metric.update_state(np.array([0, 0]), np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0]], np.float32))
    assert float(metric.result()) == pytest.approx(0.5)


def test_best_threshold_dice_equals_the_best_pooled_dice_of_the_threshold_sweep():
    truth, scores = _batches()
    metric = losses.BestThresholdDice()
    for batch_truth, batch_scores in zip(truth, scores, strict=True):
        metric.update_state(batch_truth, batch_scores)
    table = metrics.threshold_sweep(truth[..., 0].reshape(-1, 16, 16),
                                    scores[..., 0].reshape(-1, 16, 16),
                                    losses.BEST_DICE_THRESHOLDS)
    assert float(metric.result()) == pytest.approx(table["dice"].max(), abs=1e-6)


def test_best_threshold_dice_finds_low_probabilities_that_dice_at_0_5_misses():
    truth = _image([1, 1, 0, 0])
    scores = _image([0.3, 0.25, 0.1, 0.0])
    best, at_half = losses.BestThresholdDice(), losses.DiceCoefficient()
    best.update_state(truth, scores)
    at_half.update_state(truth, scores)
    assert float(at_half.result()) == 0.0
    assert float(best.result()) == pytest.approx(1.0)  # thresholds 0.15 to 0.25
    empty = losses.BestThresholdDice()
    empty.update_state(_image([0, 0]), _image([0.0, 0.0]))
    assert float(empty.result()) == 1.0
