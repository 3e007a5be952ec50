"""Segmentation and classification metrics: the one definition used everywhere in btseg.

Training reports, `btseg evaluate` and the dashboard all call these functions, so a number
means the same thing wherever it appears. Pure NumPy (SciPy for distance transforms).

One module per family; every public name is importable from btseg.metrics itself:
    overlap         binarize, ConfusionCounts, Dice / IoU / ... from masks or counts,
                    lesion size buckets
    histogram       ScoreHistogram and how to build one: from pixels in one pass, by sorting,
                    or from saved float16 counts
    curves          ROC and PR curves (pixel-level and exact), also from a ScoreHistogram
    sweep           threshold sweeps and the default threshold grid
    distance        Hausdorff distance and HD95
    classification  confusion matrix and classification report
    calibration     reliability curve and expected calibration error
    bootstrap       group (patient-level) bootstrap intervals
    utils           input checks shared by the modules above (not re-exported)

Conventions:
    Masks are bool arrays or integer/float arrays holding only 0 and 1; anything else raises
    ValueError (threshold probabilities with `binarize` first).
    Prediction rule: a pixel is positive when ``score >= threshold``, compared in float64.
    IoU and Dice are foreground-only: the background class is never averaged in, so a
    prediction with no foreground on a tumour image scores 0, not ~0.5 (the Keras MeanIoU trap).
    Empty policy: a ratio whose denominator is zero (0/0) is `empty_score`, NaN by default.
    For Dice and IoU that happens only when truth and prediction are both empty; NaN lets
    "mean over tumour images" exclude such images explicitly (use np.nanmean, or pass
    empty_score=1.0 to count a correctly empty prediction as perfect). Nothing is smoothed.
"""

from __future__ import annotations

from btseg.metrics.bootstrap import BootstrapInterval, bootstrap_ci
from btseg.metrics.calibration import (
    ReliabilityCurve,
    expected_calibration_error,
    reliability_curve,
)
from btseg.metrics.classification import classification_report, confusion_matrix
from btseg.metrics.curves import (
    PrCurve,
    RocCurve,
    pixel_curves,
    pixel_pr,
    pixel_roc,
    pr_curve_points,
    pr_from_histogram,
    roc_curve_points,
    roc_from_histogram,
)
from btseg.metrics.distance import hausdorff
from btseg.metrics.histogram import (
    CHUNK_PIXELS,
    FLOAT16_KEYS,
    ScoreHistogram,
    exact_histogram,
    float16_histogram,
    float16_values,
    histogram_from_counts,
    score_histogram,
)
from btseg.metrics.overlap import (
    LESION_SIZE_BUCKETS,
    ConfusionCounts,
    accuracy,
    accuracy_from_counts,
    binarize,
    confusion_counts,
    confusion_counts_per_image,
    dice,
    dice_from_counts,
    empty_prediction_scores,
    f1,
    f1_from_counts,
    iou,
    iou_from_counts,
    lesion_size_bucket,
    metrics_from_counts,
    precision,
    precision_from_counts,
    sensitivity,
    sensitivity_from_counts,
    specificity,
    specificity_from_counts,
)
from btseg.metrics.sweep import STUDY_THRESHOLDS, default_thresholds, threshold_sweep

__all__ = [
    # overlap
    "LESION_SIZE_BUCKETS", "ConfusionCounts", "accuracy", "accuracy_from_counts", "binarize",
    "confusion_counts", "confusion_counts_per_image", "dice", "dice_from_counts",
    "empty_prediction_scores", "f1",
    "f1_from_counts", "iou", "iou_from_counts", "lesion_size_bucket", "metrics_from_counts",
    "precision", "precision_from_counts", "sensitivity", "sensitivity_from_counts",
    "specificity", "specificity_from_counts",
    # histogram
    "CHUNK_PIXELS", "FLOAT16_KEYS", "ScoreHistogram", "exact_histogram", "float16_histogram",
    "float16_values", "histogram_from_counts", "score_histogram",
    # curves
    "PrCurve", "RocCurve", "pixel_curves", "pixel_pr", "pixel_roc", "pr_curve_points",
    "pr_from_histogram", "roc_curve_points", "roc_from_histogram",
    # sweep
    "STUDY_THRESHOLDS", "default_thresholds", "threshold_sweep",
    # distance
    "hausdorff",
    # classification
    "classification_report", "confusion_matrix",
    # calibration
    "ReliabilityCurve", "expected_calibration_error", "reliability_curve",
    # bootstrap
    "BootstrapInterval", "bootstrap_ci",
]
