"""Losses and training metrics, written once as functions and wrapped as registered Keras objects.

Segmentation tensors are (batch, H, W, 1): truth in {0, 1}, predictions are probabilities in
[0, 1]. Every per-image loss returns (batch,) values that Keras averages over the batch.

Everything here is registered under the package "btseg", so a model saved with these objects
loads with keras.saving.load_model(path, safe_mode=True) and no custom_objects.

The training metrics are pooled over the epoch: DiceCoefficient and ForegroundIoU accumulate
true positives, false positives and false negatives over every pixel of every batch, then return
2TP / (2TP + FP + FN) and TP / (TP + FP + FN) — the same as btseg.metrics.dice and
btseg.metrics.iou on all images of the epoch stacked into one array. IoU is of the foreground
only: the background class is never averaged in. When there is no foreground in truth and
prediction both (TP + FP + FN = 0) they return 1.0, as btseg.metrics does for two empty masks.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

#: Clip of probabilities before log, so that log(0) never happens.
EPSILON = 1e-7
#: Added to numerator and denominator of the soft Dice loss so that empty masks are defined.
DICE_SMOOTH = 1.0
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0

_register = keras.saving.register_keras_serializable(package="btseg")


def _per_image(y_true, y_pred):
    """(batch, ...) tensors -> (batch, pixels) float32 truth and clipped probabilities."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.clip(ops.cast(y_pred, "float32"), EPSILON, 1.0 - EPSILON)
    batch = ops.shape(y_pred)[0]
    return ops.reshape(y_true, (batch, -1)), ops.reshape(y_pred, (batch, -1))


# ------------------------------------------------------------------------------------------------
# The math, once


@_register
def binary_cross_entropy(y_true, y_pred):
    """Mean pixel binary cross-entropy per image: (batch, H, W, 1) -> (batch,), in nats."""
    truth, probability = _per_image(y_true, y_pred)
    pixel = -(truth * ops.log(probability) + (1.0 - truth) * ops.log(1.0 - probability))
    return ops.mean(pixel, axis=-1)


@_register
def soft_dice_loss(y_true, y_pred, smooth: float = DICE_SMOOTH):
    """1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth) per image: -> (batch,) in [0, 1].

    With smooth = 1 an empty truth and an empty prediction give 0 (no penalty), so tumour-free
    images push the prediction towards zero instead of being undefined.
    """
    truth = ops.reshape(ops.cast(y_true, "float32"), (ops.shape(y_pred)[0], -1))
    probability = ops.reshape(ops.cast(y_pred, "float32"), (ops.shape(y_pred)[0], -1))
    intersection = ops.sum(truth * probability, axis=-1)
    total = ops.sum(truth, axis=-1) + ops.sum(probability, axis=-1)
    return 1.0 - (2.0 * intersection + smooth) / (total + smooth)


@_register
def focal_loss(y_true, y_pred, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA):
    """Binary focal loss, mean over pixels per image: -> (batch,).

    -alpha_t (1 - p_t)^gamma log(p_t), with p_t = p where t = 1 else 1 - p, and
    alpha_t = alpha where t = 1 else 1 - alpha (alpha 0.25, gamma 2: Lin et al. 2017).
    """
    truth, probability = _per_image(y_true, y_pred)
    p_t = truth * probability + (1.0 - truth) * (1.0 - probability)
    alpha_t = truth * alpha + (1.0 - truth) * (1.0 - alpha)
    pixel = -alpha_t * ops.power(1.0 - p_t, gamma) * ops.log(p_t)
    return ops.mean(pixel, axis=-1)


@_register
def dice_focal_loss(
    y_true, y_pred, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA, smooth: float = DICE_SMOOTH
):
    """Soft Dice loss + focal loss per image (the study's improved loss): -> (batch,)."""
    return soft_dice_loss(y_true, y_pred, smooth) + focal_loss(y_true, y_pred, alpha, gamma)


@_register
def bce_dice_loss(y_true, y_pred, alpha: float = 0.5, smooth: float = DICE_SMOOTH):
    """alpha * binary cross-entropy + (1 - alpha) * soft Dice loss per image: -> (batch,)."""
    return alpha * binary_cross_entropy(y_true, y_pred) + (1.0 - alpha) * soft_dice_loss(
        y_true, y_pred, smooth
    )


@_register
def weighted_categorical_cross_entropy(y_true, y_pred, class_weights):
    """-w[y] log p[y] per sample: y_true (batch,) or (batch, 1) class indices, y_pred (batch, K)
    probabilities, class_weights (K,) -> (batch,)."""
    indices = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    probability = ops.clip(ops.cast(y_pred, "float32"), EPSILON, 1.0)
    classes = ops.shape(probability)[-1]
    one_hot = ops.one_hot(indices, classes, dtype="float32")
    weights = ops.convert_to_tensor(class_weights, dtype="float32")
    return -ops.sum(one_hot * weights * ops.log(probability), axis=-1)


# ------------------------------------------------------------------------------------------------
# Keras losses


class _BtsegLoss(keras.losses.Loss):
    """Base: a loss with named parameters (DEFAULTS, each kept as an attribute) that get_config
    saves beside the name and reduction, so a saved model loads with safe_mode=True."""

    DEFAULT_NAME = ""
    #: parameter -> default value.
    DEFAULTS: dict[str, Any] = {}

    def __init__(self, *values, **parameters):
        # Positional values fill the parameters in DEFAULTS order, then name, reduction, dtype:
        # FocalLoss(0.5, 3.0) or WeightedCategoricalCrossEntropyLoss([1, 2, 3]).
        order = [*self.DEFAULTS, "name", "reduction", "dtype"]
        if len(values) > len(order):
            raise TypeError(f"{type(self).__name__} takes at most {len(order)} values")
        for key, value in zip(order, values, strict=False):
            if key in parameters:
                raise TypeError(f"{type(self).__name__} got two values for {key}")
            parameters[key] = value
        name = parameters.pop("name", None) or self.DEFAULT_NAME
        reduction = parameters.pop("reduction", "sum_over_batch_size")
        dtype = parameters.pop("dtype", None)
        unknown = sorted(set(parameters) - set(self.DEFAULTS))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameter {', '.join(unknown)}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        for key, default in self.DEFAULTS.items():
            setattr(self, key, self._checked(key, parameters.get(key, default)))

    def _checked(self, key: str, value: Any) -> Any:
        """A parameter's value as stored (a float unless a subclass says otherwise)."""
        return float(value)

    def get_config(self):
        return {
            "name": self.name,
            "reduction": self.reduction,
            **{key: getattr(self, key) for key in self.DEFAULTS},
        }


@_register
class BinaryCrossEntropyLoss(_BtsegLoss):
    """Mean pixel binary cross-entropy (the basic U-Net's loss)."""

    DEFAULT_NAME = "bce"

    def call(self, y_true, y_pred):
        return binary_cross_entropy(y_true, y_pred)


@_register
class SoftDiceLoss(_BtsegLoss):
    """Per-image soft Dice loss with additive smoothing."""

    DEFAULT_NAME = "dice"
    DEFAULTS = {"smooth": DICE_SMOOTH}

    def call(self, y_true, y_pred):
        return soft_dice_loss(y_true, y_pred, self.smooth)


@_register
class FocalLoss(_BtsegLoss):
    """Binary focal loss (alpha 0.25, gamma 2 by default)."""

    DEFAULT_NAME = "focal"
    DEFAULTS = {"alpha": FOCAL_ALPHA, "gamma": FOCAL_GAMMA}

    def call(self, y_true, y_pred):
        return focal_loss(y_true, y_pred, self.alpha, self.gamma)


@_register
class DiceFocalLoss(_BtsegLoss):
    """Soft Dice loss + focal loss (the attention U-Net's loss)."""

    DEFAULT_NAME = "dice_focal"
    DEFAULTS = {"alpha": FOCAL_ALPHA, "gamma": FOCAL_GAMMA, "smooth": DICE_SMOOTH}

    def call(self, y_true, y_pred):
        return dice_focal_loss(y_true, y_pred, self.alpha, self.gamma, self.smooth)


@_register
class BceDiceLoss(_BtsegLoss):
    """alpha * binary cross-entropy + (1 - alpha) * soft Dice loss."""

    DEFAULT_NAME = "bce_dice"
    DEFAULTS = {"alpha": 0.5, "smooth": DICE_SMOOTH}

    def _checked(self, key: str, value: Any) -> Any:
        if key == "alpha" and not 0.0 <= value <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {value}")
        return float(value)

    def call(self, y_true, y_pred):
        return bce_dice_loss(y_true, y_pred, self.alpha, self.smooth)


@_register
class WeightedCategoricalCrossEntropyLoss(_BtsegLoss):
    """Categorical cross-entropy on class indices, each sample weighted by its class's weight."""

    DEFAULT_NAME = "weighted_ce"
    DEFAULTS = {"class_weights": (1.0, 1.0, 1.0)}

    def _checked(self, key: str, value: Any) -> Any:
        weights = [float(weight) for weight in value]
        if not weights or min(weights) < 0:
            raise ValueError(f"class_weights must be non-negative, got {weights}")
        return weights

    def call(self, y_true, y_pred):
        return weighted_categorical_cross_entropy(y_true, y_pred, self.class_weights)


#: Loss names accepted in training configs.
LOSSES = {
    "bce": BinaryCrossEntropyLoss,
    "dice": SoftDiceLoss,
    "focal": FocalLoss,
    "dice_focal": DiceFocalLoss,
    "bce_dice": BceDiceLoss,
    "weighted_ce": WeightedCategoricalCrossEntropyLoss,
}


def make_loss(name: str, **parameters) -> keras.losses.Loss:
    """The loss called `name` (a key of LOSSES) with its parameters.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return LOSSES[name](**parameters)


# ------------------------------------------------------------------------------------------------
# Training metrics (stateful, pooled over the epoch)


class _PooledOverlap(keras.metrics.Metric):
    """Accumulates pixel TP, FP, FN of (probability >= threshold) against truth over batches."""

    def __init__(self, threshold: float = 0.5, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)
        # float64: an epoch of 224 px images exceeds the 2^24 exact integers of float32.
        self.true_positives = self.add_variable((), initializer="zeros", dtype="float64", name="true_positives")
        self.false_positives = self.add_variable((), initializer="zeros", dtype="float64", name="false_positives")
        self.false_negatives = self.add_variable((), initializer="zeros", dtype="float64", name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.cast(ops.greater_equal(ops.cast(y_true, "float32"), 0.5), "float32")
        predicted = ops.cast(ops.greater_equal(ops.cast(y_pred, "float32"), self.threshold), "float32")
        # Per-batch sums stay exact in float32 (fewer than 2^24 pixels a batch).
        self.true_positives.assign_add(ops.cast(ops.sum(truth * predicted), "float64"))
        self.false_positives.assign_add(ops.cast(ops.sum((1.0 - truth) * predicted), "float64"))
        self.false_negatives.assign_add(ops.cast(ops.sum(truth * (1.0 - predicted)), "float64"))

    def reset_state(self):
        for variable in (self.true_positives, self.false_positives, self.false_negatives):
            variable.assign(ops.zeros((), dtype="float64"))

    def _ratio(self, numerator, denominator):
        safe = ops.where(denominator > 0, denominator, ops.ones_like(denominator))
        value = ops.where(denominator > 0, numerator / safe, ops.ones_like(denominator))
        return ops.cast(value, "float32")

    def get_config(self):
        return {"threshold": self.threshold, "name": self.name, "dtype": self.dtype}


@_register
class DiceCoefficient(_PooledOverlap):
    """Pooled Dice over the epoch: 2TP / (2TP + FP + FN) of (probability >= threshold); 1.0 when
    truth and prediction are both empty."""

    def __init__(self, threshold: float = 0.5, name: str = "dice", dtype=None):
        super().__init__(threshold=threshold, name=name, dtype=dtype)

    def result(self):
        return self._ratio(
            2.0 * self.true_positives,
            2.0 * self.true_positives + self.false_positives + self.false_negatives,
        )


@_register
class ForegroundIoU(_PooledOverlap):
    """Pooled foreground IoU over the epoch: TP / (TP + FP + FN) (no background class averaged
    in); 1.0 when truth and prediction are both empty."""

    def __init__(self, threshold: float = 0.5, name: str = "iou", dtype=None):
        super().__init__(threshold=threshold, name=name, dtype=dtype)

    def result(self):
        return self._ratio(
            self.true_positives,
            self.true_positives + self.false_positives + self.false_negatives,
        )


#: Thresholds over which BestThresholdDice looks for the best Dice.
BEST_DICE_THRESHOLDS: tuple[float, ...] = (
    0.001, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
    0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95,
)  # fmt: skip


@_register
class BestThresholdDice(keras.metrics.Metric):
    """Pooled Dice over the epoch at the best of several thresholds: max_j 2TP_j / (2TP_j + FP_j
    + FN_j) with (probability >= thresholds[j]); 1.0 when truth and prediction are both empty.

    Equal to the maximum of the "dice" column of btseg.metrics.threshold_sweep over the same
    thresholds. Early in training probabilities rarely reach 0.5, so the Dice at 0.5 stays 0 for
    epochs while the model improves; this metric follows the improvement and is what the
    threshold chosen after training will exploit. Counts per threshold are kept as a histogram of
    the scores, so the cost does not grow with the number of thresholds.
    """

    def __init__(self, thresholds=BEST_DICE_THRESHOLDS, name: str = "best_dice", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.thresholds = sorted(float(value) for value in thresholds)
        if not self.thresholds:
            raise ValueError("BestThresholdDice needs at least one threshold")
        bins = len(self.thresholds) + 1
        self.totals = self.add_variable((bins,), initializer="zeros", dtype="float64", name="totals")
        self.positives = self.add_variable((bins,), initializer="zeros", dtype="float64", name="positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.cast(ops.greater_equal(ops.reshape(ops.cast(y_true, "float32"), (-1,)), 0.5), "float32")
        scores = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
        thresholds = ops.convert_to_tensor(self.thresholds, dtype="float32")
        # bins[i] = number of thresholds <= score i: pixel i is positive at thresholds[j] iff bins[i] > j.
        bins = ops.searchsorted(thresholds, scores, side="right")
        length = len(self.thresholds) + 1
        self.totals.assign_add(ops.cast(ops.bincount(bins, minlength=length), "float64"))
        self.positives.assign_add(
            ops.cast(ops.bincount(bins, weights=truth, minlength=length), "float64")
        )

    def reset_state(self):
        bins = len(self.thresholds) + 1
        self.totals.assign(ops.zeros((bins,), dtype="float64"))
        self.positives.assign(ops.zeros((bins,), dtype="float64"))

    def result(self):
        # Suffix sums over bins j+1.. give predicted positives and true positives at threshold j.
        predicted = ops.flip(ops.cumsum(ops.flip(self.totals, 0)), 0)[1:]
        true_positives = ops.flip(ops.cumsum(ops.flip(self.positives, 0)), 0)[1:]
        denominator = predicted + ops.sum(self.positives)
        dice = ops.where(
            denominator > 0,
            2.0 * true_positives / ops.where(denominator > 0, denominator, ops.ones_like(denominator)),
            ops.ones_like(denominator),
        )
        return ops.cast(ops.max(dice), "float32")

    def get_config(self):
        return {"thresholds": list(self.thresholds), "name": self.name, "dtype": self.dtype}


@_register
class BalancedAccuracy(keras.metrics.Metric):
    """Mean per-class recall of argmax predictions over the epoch, over the classes present in
    the truth; y_true (batch,) or (batch, 1) class indices, y_pred (batch, K) probabilities."""

    def __init__(self, num_classes: int = 3, name: str = "balanced_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.confusion = self.add_variable(
            (self.num_classes, self.num_classes), initializer="zeros", dtype="float64", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        pairs = ops.one_hot(truth, self.num_classes, dtype="float32")[:, :, None] * ops.one_hot(
            predicted, self.num_classes, dtype="float32"
        )[:, None, :]
        self.confusion.assign_add(ops.cast(ops.sum(pairs, axis=0), "float64"))

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float64"))

    def result(self):
        support = ops.sum(self.confusion, axis=1)
        correct = ops.diagonal(self.confusion)
        present = ops.cast(support > 0, "float64")
        recall = correct / ops.where(support > 0, support, ops.ones_like(support))
        value = ops.sum(recall * present) / ops.maximum(ops.sum(present), 1.0)
        return ops.cast(value, "float32")

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}
