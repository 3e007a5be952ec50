"""Overlap metrics: binarize, confusion counts, Dice, foreground IoU and their ratios.

Every ratio comes from ConfusionCounts through one *_from_counts function, so a pooled,
per-image or swept value follows the same empty policy: 0/0 gives `empty_score` (NaN by
default). Also the lesion size buckets reports group images by.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from btseg.metrics.utils import as_mask, check_same_shape, ratio

#: Lesion-size buckets in display order (share of the image area).
LESION_SIZE_BUCKETS: tuple[str, ...] = ("<1%", "1-5%", ">=5%")


class ConfusionCounts(NamedTuple):
    """Pixel counts of a binary segmentation.

    Fields are Python ints for one image (or pooled), or (N,) int64 arrays per image.
    """

    tp: Any
    fp: Any
    fn: Any
    tn: Any

    def pooled(self) -> ConfusionCounts:
        """Sum per-image counts into one set of pooled counts (ints)."""
        return ConfusionCounts(*(int(np.sum(value)) for value in self))


def binarize(scores: Any, threshold: float) -> np.ndarray:
    """Apply the prediction rule: ``scores >= threshold`` compared in float64.

    Args:
        scores: probabilities or scores, any shape and float/integer dtype, no NaN.
        threshold: decision threshold in the units of `scores`.

    Returns:
        bool array of the same shape.

    Raises:
        ValueError: if `scores` holds NaN or `threshold` is NaN.
    """
    array = np.asarray(scores)
    if math.isnan(float(threshold)):
        raise ValueError("threshold must be a number, got NaN.")
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise ValueError("scores hold NaN; cannot threshold them.")
    # A NumPy float64 scalar is not demoted to the array dtype (NEP 50), so float16 maps
    # compare against the exact threshold, not against its float16 rounding.
    return np.greater_equal(array, np.float64(threshold))


def confusion_counts(truth: Any, prediction: Any) -> ConfusionCounts:
    """Count TP, FP, FN, TN over all pixels of `truth` and `prediction`.

    Args:
        truth, prediction: masks of any identical shape (bool or 0/1).

    Returns:
        ConfusionCounts of Python ints (pooled over every pixel given).

    Raises:
        ValueError: shapes differ, or a mask holds values other than 0/1.
    """
    truth_mask = as_mask(truth, "truth")
    prediction_mask = as_mask(prediction, "prediction")
    check_same_shape(truth_mask, prediction_mask, "truth,prediction")
    tp = int(np.count_nonzero(truth_mask & prediction_mask))
    truth_count = int(np.count_nonzero(truth_mask))
    prediction_count = int(np.count_nonzero(prediction_mask))
    fp = prediction_count - tp
    fn = truth_count - tp
    return ConfusionCounts(tp, fp, fn, truth_mask.size - tp - fp - fn)


def confusion_counts_per_image(truth: Any, prediction: Any) -> ConfusionCounts:
    """Count TP, FP, FN, TN per image.

    Args:
        truth, prediction: (N, ...) arrays of masks, or sequences of N masks whose shapes may
            differ between images but match between truth and prediction.

    Returns:
        ConfusionCounts of (N,) int64 arrays.

    Raises:
        ValueError: image counts or shapes differ, or a mask holds values other than 0/1.
    """
    if isinstance(truth, np.ndarray) and isinstance(prediction, np.ndarray):
        truth_mask = as_mask(truth, "truth")
        prediction_mask = as_mask(prediction, "prediction")
        check_same_shape(truth_mask, prediction_mask, "truth,prediction")
        if truth_mask.ndim < 2:
            raise ValueError(
                f"per-image counts need (N, ...) arrays, got shape {truth_mask.shape}."
            )
        n_images = truth_mask.shape[0]
        truth_flat = truth_mask.reshape(n_images, -1)
        prediction_flat = prediction_mask.reshape(n_images, -1)
        tp = np.count_nonzero(truth_flat & prediction_flat, axis=1).astype(np.int64)
        truth_count = np.count_nonzero(truth_flat, axis=1).astype(np.int64)
        prediction_count = np.count_nonzero(prediction_flat, axis=1).astype(np.int64)
        fp = prediction_count - tp
        fn = truth_count - tp
        tn = truth_flat.shape[1] - tp - fp - fn
        return ConfusionCounts(tp, fp, fn, tn)
    truth_list, prediction_list = list(truth), list(prediction)
    if len(truth_list) != len(prediction_list):
        raise ValueError(
            f"truth and prediction must hold the same number of images, got "
            f"{len(truth_list)} and {len(prediction_list)}."
        )
    rows = np.zeros((len(truth_list), 4), dtype=np.int64)
    for index, (truth_image, prediction_image) in enumerate(
        zip(truth_list, prediction_list, strict=True)
    ):
        try:
            rows[index] = confusion_counts(truth_image, prediction_image)
        except ValueError as error:
            raise ValueError(f"image {index}: {error}") from None
    return ConfusionCounts(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])


def _counts(truth: Any, prediction: Any, per_image: bool) -> ConfusionCounts:
    if per_image:
        return confusion_counts_per_image(truth, prediction)
    return confusion_counts(truth, prediction)


def dice_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Dice = 2 TP / (2 TP + FP + FN), foreground only; in [0, 1].

    Both truth and prediction empty (denominator 0) gives `empty_score` (NaN by default).
    Returns a float for scalar counts, an (N,) array for per-image counts.
    """
    tp, fp, fn, _ = counts
    return ratio(2 * np.asarray(tp), 2 * np.asarray(tp) + fp + fn, empty_score)


def iou_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """IoU (Jaccard) = TP / (TP + FP + FN), foreground only; in [0, 1].

    Both truth and prediction empty gives `empty_score` (NaN by default). An empty prediction
    on a non-empty truth scores 0 (never the ~0.5 of a background-averaged mean IoU).
    """
    tp, fp, fn, _ = counts
    return ratio(tp, np.asarray(tp) + fp + fn, empty_score)


def sensitivity_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Sensitivity (recall) = TP / (TP + FN); empty truth gives `empty_score` (NaN)."""
    tp, _, fn, _ = counts
    return ratio(tp, np.asarray(tp) + fn, empty_score)


def specificity_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Specificity = TN / (TN + FP); no background pixels gives `empty_score` (NaN)."""
    _, fp, _, tn = counts
    return ratio(tn, np.asarray(tn) + fp, empty_score)


def precision_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Precision = TP / (TP + FP); empty prediction gives `empty_score` (NaN)."""
    tp, fp, _, _ = counts
    return ratio(tp, np.asarray(tp) + fp, empty_score)


def f1_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """F1 = 2 TP / (2 TP + FP + FN), identical to Dice; both empty gives `empty_score`."""
    return dice_from_counts(counts, empty_score)


def accuracy_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> Any:
    """Pixel accuracy = (TP + TN) / all pixels; zero pixels gives `empty_score` (NaN)."""
    tp, fp, fn, tn = counts
    return ratio(np.asarray(tp) + tn, np.asarray(tp) + fp + fn + tn, empty_score)


_FROM_COUNTS: dict[str, Callable[..., Any]] = {
    "dice": dice_from_counts,
    "iou": iou_from_counts,
    "sensitivity": sensitivity_from_counts,
    "specificity": specificity_from_counts,
    "precision": precision_from_counts,
    "f1": f1_from_counts,
    "accuracy": accuracy_from_counts,
}


def metrics_from_counts(counts: ConfusionCounts, empty_score: float = math.nan) -> dict[str, Any]:
    """All of dice, iou, sensitivity, specificity, precision, f1, accuracy from `counts`.

    Values are floats for scalar counts and (N,) arrays for per-image counts; each follows
    the empty policy of its *_from_counts function.
    """
    return {name: function(counts, empty_score) for name, function in _FROM_COUNTS.items()}


def _on_masks(from_counts: Callable[..., Any], name: str, doc: str) -> Callable[..., Any]:
    """The mask form of a *_from_counts metric: metric(truth, prediction, *, per_image=False,
    empty_score=NaN) -> a pooled float, or an (N,) array with per_image=True.

    Args of the metric: truth, prediction: same-shape masks; with per_image, (N, ...) arrays
    or sequences of N masks. empty_score: the value where the ratio is 0/0 (NaN by default).
    Raises ValueError where shapes differ or a mask holds values other than 0/1.
    """

    def metric(truth: Any, prediction: Any, *, per_image: bool = False,
               empty_score: float = math.nan) -> Any:
        return from_counts(_counts(truth, prediction, per_image), empty_score)

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = doc + "\n\n" + (_on_masks.__doc__ or "").split("\n\n", 1)[1]
    return metric


dice = _on_masks(
    dice_from_counts, "dice", "Foreground Dice of two masks; NaN where both are empty."
)
iou = _on_masks(
    iou_from_counts,
    "iou",
    "Foreground IoU of two masks (see `iou_from_counts` for its empty policy).",
)
sensitivity = _on_masks(
    sensitivity_from_counts, "sensitivity", "TP / (TP + FN) of two masks; NaN where truth is empty."
)
specificity = _on_masks(
    specificity_from_counts,
    "specificity",
    "TN / (TN + FP) of two masks; NaN where truth covers every pixel.",
)
precision = _on_masks(
    precision_from_counts,
    "precision",
    "TP / (TP + FP) of two masks; NaN where the prediction is empty.",
)
f1 = _on_masks(f1_from_counts, "f1", "F1 of two masks, identical to `dice`.")
accuracy = _on_masks(
    accuracy_from_counts,
    "accuracy",
    "(TP + TN) / pixels of two masks; NaN only for zero pixels.",
)


def empty_prediction_scores(tumour_pixels: int, background_pixels: int) -> dict[str, float]:
    """What a model that predicts no tumour anywhere scores on a set of pixels.

    The Compare page's warning about pixel accuracy and Keras' MeanIoU. Dice, foreground IoU and
    pixel accuracy are this module's on the counts of an empty prediction (TP = FP = 0,
    FN = tumour, TN = background).

    Returns:
        {"tumour_share": tumour / all pixels, "pixel_accuracy": background / all (every
        background pixel is right), "keras_mean_iou": mean of background IoU
        (background / all) and tumour IoU (0): the Keras MeanIoU of an empty prediction,
        "foreground_iou": 0, "dice": 0}. NaN where there are no pixels; with no tumour pixel the
        tumour IoU is 0/0 and Keras' mean falls back to the background IoU alone (1.0).
    """
    tumour, background = int(tumour_pixels), int(background_pixels)
    total = tumour + background
    if total == 0:
        nan = float("nan")
        return {"tumour_share": nan, "pixel_accuracy": nan, "keras_mean_iou": nan,
                "foreground_iou": nan, "dice": nan}
    empty = ConfusionCounts(tp=0, fp=0, fn=tumour, tn=background)
    # Background taken as the positive class: its IoU is TN / (TN + FN + FP).
    background_iou = iou_from_counts(
        ConfusionCounts(tp=empty.tn, fp=empty.fn, fn=empty.fp, tn=empty.tp)
    )
    foreground_iou = iou_from_counts(empty)  # 0, or NaN (0/0) without tumour pixels
    # Keras' MeanIoU averages the classes present in truth or prediction.
    keras_mean_iou = background_iou / 2 if tumour else background_iou
    return {
        "tumour_share": tumour / total,
        "pixel_accuracy": accuracy_from_counts(empty),
        "keras_mean_iou": keras_mean_iou,
        "foreground_iou": foreground_iou,
        "dice": dice_from_counts(empty),
    }


def lesion_size_bucket(area_fraction: float) -> str:
    """Bucket a lesion by its share of the image area: "<1%", "1-5%" or ">=5%".

    Args:
        area_fraction: lesion pixels / image pixels, in [0, 1]. 0 (a lesion that vanished at
            model resolution) counts as "<1%".

    Raises:
        ValueError: NaN or outside [0, 1].
    """
    fraction = float(area_fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"area_fraction must be in [0, 1], got {area_fraction}.")
    if fraction < 0.01:
        return LESION_SIZE_BUCKETS[0]
    if fraction < 0.05:
        return LESION_SIZE_BUCKETS[1]
    return LESION_SIZE_BUCKETS[2]
