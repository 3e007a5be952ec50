"""Classification metrics from class probabilities: confusion matrix and the full report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from btseg.metrics.calibration import expected_calibration_error
from btseg.metrics.curves import pr_from_histogram, roc_from_histogram
from btseg.metrics.histogram import exact_histogram
from btseg.metrics.overlap import confusion_counts, sensitivity_from_counts, specificity_from_counts
from btseg.metrics.utils import class_labels, class_probabilities, ratio


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class.

    Args:
        y_true, y_pred: (N,) integer class indices in [0, n_classes).

    Returns:
        (n_classes, n_classes) int64 counts.

    Raises:
        ValueError: not 1-D, different lengths, or indices out of range.
    """
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be positive, got {n_classes}.")
    true_labels = class_labels(y_true, n_classes, "y_true")
    predicted_labels = class_labels(y_pred, n_classes, "y_pred")
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got y_true {true_labels.shape} and "
            f"y_pred {predicted_labels.shape}."
        )
    flat = np.bincount(true_labels * n_classes + predicted_labels, minlength=n_classes**2)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def _present_mean(values: np.ndarray, present: np.ndarray) -> float:
    return float(np.mean(values[present])) if present.any() else math.nan


def classification_report(y_true: Any, probabilities: Any,
                          class_names: Sequence[str] | None = None, *,
                          n_bins: int = 15) -> dict[str, Any]:
    """Classification metrics from class probabilities; the decision is the argmax.

    Args:
        y_true: (N,) class indices. probabilities: (N, C) probabilities (rows sum to 1).
        class_names: C names; default btseg.config.CLASS_NAMES.
        n_bins: bins for the expected calibration error.

    Returns:
        JSON-ready dict: n_samples, class_names, confusion_matrix (C x C list, rows true),
        accuracy, balanced_accuracy (mean recall over classes present in y_true, as
        scikit-learn), macro_precision, macro_recall, macro_f1 (means over the classes
        present in y_true; a present class never predicted counts precision 0, as
        scikit-learn's zero_division=0), per_class {name: precision,
        recall, f1, support, roc_auc, average_precision} (one-vs-rest, exact), macro_auc and
        macro_average_precision (mean over classes whose AUC/AP is defined; the classes used
        are listed in macro_auc_classes), expected_calibration_error, and normal_vs_tumour
        (tumour score 1 - p_normal: auc, average_precision, sensitivity and specificity of
        the argmax decision, n_tumour, n_normal) when a class is named "normal", else None.
        Undefined values (0/0, a class absent) are NaN.

    Raises:
        ValueError: shapes disagree, labels are out of range, or class_names has the wrong
            length.
    """
    labels, probability_array = class_probabilities(y_true, probabilities)
    n_classes = probability_array.shape[1]
    if class_names is None:
        from btseg.config import CLASS_NAMES

        class_names = CLASS_NAMES
    names = [str(name) for name in class_names]
    if len(names) != n_classes:
        raise ValueError(
            f"class_names has {len(names)} names but probabilities have {n_classes} columns."
        )
    predicted = probability_array.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, n_classes)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    true_positive = np.diag(matrix)
    class_precision = ratio(true_positive, predicted_count, math.nan)
    class_recall = ratio(true_positive, support, math.nan)
    class_f1 = ratio(2 * true_positive, support + predicted_count, math.nan)
    per_class: dict[str, dict[str, Any]] = {}
    aucs, average_precisions = [], []
    for index, name in enumerate(names):
        is_class = labels == index
        histogram = exact_histogram(is_class, probability_array[:, index], "probabilities")
        auc = roc_from_histogram(histogram, drop_intermediate=False).auc
        average_precision = pr_from_histogram(histogram).average_precision
        aucs.append(auc)
        average_precisions.append(average_precision)
        per_class[name] = {
            "precision": float(class_precision[index]),
            "recall": float(class_recall[index]),
            "f1": float(class_f1[index]),
            "support": int(support[index]),
            "roc_auc": float(auc),
            "average_precision": float(average_precision),
        }
    auc_array, ap_array = np.array(aucs), np.array(average_precisions)
    present = support > 0
    report: dict[str, Any] = {
        "n_samples": int(labels.size),
        "class_names": names,
        "confusion_matrix": matrix.tolist(),
        "accuracy": ratio(int(true_positive.sum()), int(labels.size), math.nan),
        "balanced_accuracy": _present_mean(class_recall, present),
        "macro_precision": _present_mean(np.nan_to_num(class_precision, nan=0.0), present),
        "macro_recall": _present_mean(class_recall, present),
        "macro_f1": _present_mean(class_f1, present),
        "per_class": per_class,
        "macro_auc": float(np.nanmean(auc_array)) if np.isfinite(auc_array).any() else math.nan,
        "macro_auc_classes": [name for name, auc in zip(names, aucs, strict=True)
                              if math.isfinite(auc)],
        "macro_average_precision": float(np.nanmean(ap_array)) if np.isfinite(
            ap_array).any() else math.nan,
        "expected_calibration_error": expected_calibration_error(labels, probability_array,
                                                                 n_bins),
        "normal_vs_tumour": None,
    }
    if "normal" in names:
        normal = names.index("normal")
        is_tumour = labels != normal
        tumour_score = 1.0 - probability_array[:, normal]
        histogram = exact_histogram(is_tumour, tumour_score, "probabilities")
        counts = confusion_counts(is_tumour, predicted != normal)
        report["normal_vs_tumour"] = {
            "auc": roc_from_histogram(histogram, drop_intermediate=False).auc,
            "average_precision": pr_from_histogram(histogram).average_precision,
            "sensitivity": sensitivity_from_counts(counts),
            "specificity": specificity_from_counts(counts),
            "n_tumour": int(is_tumour.sum()),
            "n_normal": int((~is_tumour).sum()),
        }
    return report
