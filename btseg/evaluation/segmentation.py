"""Segmenters on the test split: the writer (scores every test image at original resolution and
writes the segmentation artifacts) beside their reader, SegmentationEvaluation.

Segmentation metrics are computed honestly at the original resolution: each model-size
probability map (kept as float16 in predictions.npz) is mapped back onto its image with
images.postprocess and compared with the LabelMe mask rasterised at that size (zeros for normal
images). One image is held at a time, so memory does not grow with image size or count.

A normal image counts as flagged at a threshold when the thresholded map holds a lesion under
the same rule as inference: an 8-connected region of at least the operating point's minimum
lesion area (btseg.decisions). Dice, IoU and the pixel counts use the raw rule
``probability >= threshold``, so they agree with the pixel histogram and the ROC curve.

Reading needs no TensorFlow; the writer imports it (through btseg.infer) only when it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg import decisions, metrics
from btseg.decisions import OperatingPoint
from btseg.errors import RunError
from btseg.evaluation import files
from btseg.evaluation.files import (
    CURVES_FILE,
    FLOAT16_KEYS,
    HISTOGRAM_FILE,
    MAX_CURVE_POINTS,
    PER_IMAGE_FILE,
    PER_IMAGE_SWEEP_FILE,
    PREDICTIONS_NPZ_FILE,
    SCHEMA_VERSION,
    SWEEP_FILE,
    Progress,
    check_task,
    evaluate_fix,
    evaluation_dir,
    load_csv,
    load_npz,
    missing_error,
    read_summary,
    run_folder,
    unreadable_error,
)
from btseg.runs import atomic_write_csv

if TYPE_CHECKING:
    import pandas as pd

    from btseg.evaluation.runner import TestData

# --------------------------------------------------------------------------------------------
# Histogram helpers (shared by the writer and the reader)


@cache
def float16_key_values() -> np.ndarray:
    """(65536,) float64: the value of each float16 bit pattern (NaN where it is NaN)."""
    values = np.arange(FLOAT16_KEYS, dtype=np.uint32).astype(np.uint16).view(np.float16)
    values = values.astype(np.float64)
    values.setflags(write=False)
    return values


def confusion_from_histogram(positives: np.ndarray, negatives: np.ndarray,
                             threshold: float) -> metrics.ConfusionCounts:
    """Pooled pixel counts at `threshold` from a float16 score histogram, exactly.

    Args:
        positives, negatives: (65536,) int64 counts of tumour / background pixels per float16
            bit pattern of their probability.
        threshold: a pixel is predicted tumour when its probability >= threshold (float64).

    Returns:
        metrics.ConfusionCounts of Python ints.
    """
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError("threshold must be a number, got NaN.")
    selected = float16_key_values() >= threshold  # NaN patterns compare False
    tp = int(np.asarray(positives)[selected].sum())
    fp = int(np.asarray(negatives)[selected].sum())
    return metrics.ConfusionCounts(tp, fp, int(np.sum(positives)) - tp,
                                   int(np.sum(negatives)) - fp)


def curves_from_histogram(positives: np.ndarray, negatives: np.ndarray
                          ) -> tuple[metrics.RocCurve, metrics.PrCurve]:
    """Pixel ROC and PR curves (full resolution) from a float16 score histogram.

    The same computation as metrics.pixel_curves on float16 scores, so AUC and AP equal
    scikit-learn's on those pixels (btseg.metrics.float16_histogram, then
    roc_from_histogram and pr_from_histogram).
    """
    histogram = metrics.float16_histogram(positives, negatives)  # checks the shapes
    return (metrics.roc_from_histogram(histogram, drop_intermediate=True),
            metrics.pr_from_histogram(histogram))


def downsample_curve(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS
                     ) -> np.ndarray:
    """Indices of at most `max_points` curve points to draw, first and last included.

    Half are spread evenly along the curve's length in (x, y) (where it bends on screen), half
    evenly over the point index (where the thresholds are dense).
    """
    count = len(x)
    if count <= max_points:
        return np.arange(count)
    xs = np.nan_to_num(np.asarray(x, dtype=np.float64))
    ys = np.nan_to_num(np.asarray(y, dtype=np.float64))
    length = np.r_[0.0, np.cumsum(np.abs(np.diff(xs)) + np.abs(np.diff(ys)))]
    half = max_points // 2
    by_index = np.round(np.linspace(0, count - 1, half)).astype(np.int64)
    if length[-1] > 0:
        by_length = np.searchsorted(length, np.linspace(0.0, length[-1], max_points - half))
        by_length = np.clip(by_length, 0, count - 1)
    else:
        by_length = by_index
    chosen = np.unique(np.r_[0, by_index, by_length, count - 1])
    if chosen.size > max_points:  # overlap is rare; trim evenly, keeping both ends
        chosen = chosen[np.round(np.linspace(0, chosen.size - 1, max_points)).astype(np.int64)]
    return chosen


def nearest_threshold_index(thresholds: np.ndarray, threshold: float) -> int:
    """Index of the value of `thresholds` nearest `threshold` on a log scale (ties: lower)."""
    values = np.asarray(thresholds, dtype=np.float64)
    exact = np.flatnonzero(values == float(threshold))
    if exact.size:
        return int(exact[0])
    floor = 1e-12
    distance = np.abs(np.log10(np.clip(values, floor, None))
                      - math.log10(max(float(threshold), floor)))
    return int(np.argmin(distance))


# --------------------------------------------------------------------------------------------
# Writing: scoring a segmenter


def _pooled_dice(rows: np.ndarray) -> float:
    return float(metrics.dice_from_counts(metrics.ConfusionCounts(*rows.sum(axis=0))))



class _ImageScores:
    """Everything kept of one test image once its original-size maps are dropped."""

    __slots__ = (
        "height",
        "width",
        "true_area",
        "counts",
        "has_lesion",
        "at_point",
        "lesions",
        "hd95",
        "hd95_mm",
        "min_area",
        "max_probability",
    )


def _lesion_level(truth: np.ndarray, mask: np.ndarray) -> dict[str, int]:
    """Lesion-level counts of a decided mask against the truth (8-connected regions): true
    lesions, true lesions touched by a predicted lesion, predicted lesions, predicted lesions
    touching no true lesion (false positives)."""
    import cv2

    true_count, true_labels = cv2.connectedComponents(
        (np.asarray(truth) != 0).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    pred_count, pred_labels = cv2.connectedComponents(
        (np.asarray(mask) != 0).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    overlap = (true_labels > 0) & (pred_labels > 0)
    found = np.unique(true_labels[overlap])
    hit = np.unique(pred_labels[overlap])
    return {
        "true_lesions": true_count - 1,
        "true_lesions_found": int(found.size),
        "predicted_lesions": pred_count - 1,
        "false_lesions": pred_count - 1 - int(hit.size),
    }


def _score_image(
    truth: np.ndarray,
    probability_map: np.ndarray,
    spacing: tuple[float, float] | None,
    thresholds: np.ndarray,
    point: OperatingPoint,
    histogram: tuple[np.ndarray, np.ndarray],
) -> _ImageScores:
    """Score one original-size probability map: the pixel histogram (float16 keys), the decided
    mask at every threshold (btseg.decisions.sweep_decisions) and, at the operating point, the
    mask `btseg predict` writes (btseg.decisions.decide)."""
    shape = truth.shape
    keys = probability_map.astype(np.float16).view(np.uint16).reshape(-1)
    truth_flat = truth.reshape(-1).view(bool)
    totals = np.bincount(keys, minlength=files.FLOAT16_KEYS)
    tumour_keys = np.bincount(keys[truth_flat], minlength=files.FLOAT16_KEYS)
    histogram[0][:] += tumour_keys
    histogram[1][:] += totals - tumour_keys
    del keys, truth_flat

    result = _ImageScores()
    result.height, result.width = int(shape[0]), int(shape[1])
    result.true_area = int(np.count_nonzero(truth))
    result.min_area = point.min_area(shape)
    result.counts, result.has_lesion = decisions.sweep_decisions(
        truth, probability_map, thresholds, result.min_area
    )
    mask, _ = decisions.decide(probability_map, point)
    prediction = mask.astype(bool)
    truth_bool = truth.astype(bool)
    tp = int(np.count_nonzero(prediction & truth_bool))
    predicted = int(np.count_nonzero(prediction))
    fp, fn = predicted - tp, result.true_area - tp
    result.at_point = metrics.ConfusionCounts(tp, fp, fn, truth.size - tp - fp - fn)
    result.lesions = _lesion_level(truth, mask)
    result.max_probability = float(probability_map.max()) if probability_map.size else math.nan
    result.hd95 = metrics.hausdorff(truth, prediction, percentile=95)
    result.hd95_mm = (
        metrics.hausdorff(truth, prediction, percentile=95, spacing=spacing)
        if spacing is not None
        else math.nan
    )
    return result


def _threshold_block(
    counts: np.ndarray,
    has_lesion: np.ndarray,
    tumour: np.ndarray,
    normal: np.ndarray,
    buckets: list[str],
    centers: list[str],
    groups: np.ndarray,
    n_resamples: int,
) -> dict[str, Any]:
    """Summary numbers at one threshold.

    Args:
        counts: (N, 4) per-image tp, fp, fn, tn. has_lesion: (N,) bool.
        tumour: (N,) images with a non-empty true mask. normal: (N,) images labelled normal.
        buckets: lesion-size bucket per image ("" for images without a tumour).
        centers: centre per image as text. groups: surrogate patient per image.
    """
    per_image = metrics.ConfusionCounts(*counts.T)
    pooled = per_image.pooled()
    dice = np.asarray(metrics.dice_from_counts(per_image), dtype=np.float64)
    iou = np.asarray(metrics.iou_from_counts(per_image), dtype=np.float64)
    pixel = metrics.metrics_from_counts(pooled)
    flagged = has_lesion.astype(np.float64)
    block: dict[str, Any] = {
        "mean_dice_tumour": files.mean(dice[tumour]),
        "median_dice_tumour": files.median(dice[tumour]),
        "pooled_dice": pixel["dice"],
        "mean_iou_tumour": files.mean(iou[tumour]),
        "pooled_iou": pixel["iou"],
        "sensitivity": pixel["sensitivity"],
        "specificity": pixel["specificity"],
        "precision": pixel["precision"],
        "f1": pixel["f1"],
        "tumour_detection_rate": files.mean(flagged[tumour]),
        "normal_fp_rate": files.mean(flagged[normal]),
        "counts": {"tp": pooled.tp, "fp": pooled.fp, "fn": pooled.fn, "tn": pooled.tn},
    }
    bucket_array = np.asarray(buckets, dtype=object)
    block["by_size"] = {}
    for bucket in metrics.LESION_SIZE_BUCKETS:
        members = tumour & (bucket_array == bucket)
        block["by_size"][bucket] = {
            "n": int(members.sum()),
            "mean_dice": files.mean(dice[members]),
            "median_dice": files.median(dice[members]),
            "mean_iou": files.mean(iou[members]),
            "detection_rate": files.mean(flagged[members]),
        }
    center_array = np.asarray(centers, dtype=object)
    block["by_center"] = {}
    for center in sorted(set(centers), key=lambda value: (len(value), value)):
        members = center_array == center
        block["by_center"][center] = {
            "n_images": int(members.sum()),
            "n_tumour_images": int((members & tumour).sum()),
            "n_normal_images": int((members & normal).sum()),
            "mean_dice_tumour": files.mean(dice[members & tumour]),
            "pooled_dice": _pooled_dice(counts[members]),
            "normal_fp_rate": files.mean(flagged[members & normal]),
        }
    block["ci95"] = {
        "mean_dice_tumour": files.bootstrap_interval(dice[tumour], groups[tumour], n_resamples),
        "mean_iou_tumour": files.bootstrap_interval(iou[tumour], groups[tumour], n_resamples),
        "pooled_dice": files.bootstrap_interval(counts.astype(np.float64), groups, n_resamples, _pooled_dice),
        "normal_fp_rate": files.bootstrap_interval(flagged[normal], groups[normal], n_resamples),
        "tumour_detection_rate": files.bootstrap_interval(flagged[tumour], groups[tumour], n_resamples),
    }
    return block


def evaluate_segmenter(
    run: Any, data: TestData, out: Path, n_resamples: int, progress: Progress | None
) -> dict[str, Any]:
    """Write the segmentation artifacts into `out`; return the summary without the header.

    Each test image goes through the pipeline `btseg predict` uses: read from its file,
    Segmenter.probability_maps (here model_probabilities, then the same postprocess), and the
    mask decided at the run's operating point."""
    from btseg.data.images import postprocess
    from btseg.infer import Segmenter

    segmenter = Segmenter(run)
    size = segmenter.inference_size
    name = run.name
    point = segmenter.operating_point
    thresholds = decisions.evaluation_thresholds(point.threshold)
    validation_index = int(np.flatnonzero(thresholds == point.threshold)[0])
    histogram = (
        np.zeros(files.FLOAT16_KEYS, dtype=np.int64),
        np.zeros(files.FLOAT16_KEYS, dtype=np.int64),
    )
    count = len(data.image_ids)
    probabilities = np.zeros((count, size, size), dtype=np.float16)
    counts = np.zeros((count, len(thresholds), 4), dtype=np.int64)
    has_lesion = np.zeros((count, len(thresholds)), dtype=bool)
    per_image_rows = []
    stage = f"{name}: predicting and scoring at original resolution"
    if progress is not None:
        progress(stage, 0, count)
    for index, image_id in enumerate(data.image_ids):
        row = data.rows.loc[image_id]
        decoded, truth = data.image(index)
        small = files.check_probabilities(segmenter.model_probabilities([decoded.pixels])[0], run)
        probabilities[index] = small
        probability_map = postprocess(small, decoded.shape)
        scores = _score_image(
            truth, probability_map, decoded.pixel_spacing_mm, thresholds, point, histogram
        )
        del decoded, truth, probability_map
        counts[index] = scores.counts
        has_lesion[index] = scores.has_lesion
        pixels = scores.height * scores.width
        fraction = scores.true_area / pixels
        tumour = scores.true_area > 0
        at_point = scores.at_point
        per_image_rows.append(
            {
                "image_id": image_id,
                "label": str(row["label"]),
                "subtype": files.text(row.get("subtype")),
                "center": int(row["center"]) if files.text(row.get("center")) else "",
                "site": files.text(row.get("site")),
                "region": files.text(row.get("region")),
                "view": files.text(row.get("view")),
                "group": int(data.groups[index]),
                "image_height": scores.height,
                "image_width": scores.width,
                "true_area_px": scores.true_area,
                "true_area_percent": 100.0 * fraction,
                "size_bucket": metrics.lesion_size_bucket(fraction) if tumour else "",
                "tumour": tumour,
                "pred_area_px": at_point.tp + at_point.fp,
                "tp": at_point.tp,
                "fp": at_point.fp,
                "fn": at_point.fn,
                "tn": at_point.tn,
                "dice": metrics.dice_from_counts(at_point),
                "iou": metrics.iou_from_counts(at_point),
                "hd95": scores.hd95,
                "hd95_mm": scores.hd95_mm,
                "predicted_lesion": bool(scores.has_lesion[validation_index]),
                **scores.lesions,
                "min_lesion_area_px": scores.min_area,
                "max_probability": scores.max_probability,
            }
        )
        if progress is not None:
            progress(stage, index + 1, count)
    np.savez_compressed(
        out / files.PREDICTIONS_NPZ_FILE,
        image_ids=np.array(data.image_ids),
        probabilities=probabilities,
        input_size=np.int64(size),
        schema_version=np.int64(files.SCHEMA_VERSION),
    )
    del probabilities

    tumour = np.array([row["tumour"] for row in per_image_rows], dtype=bool)
    labels = np.array([row["label"] for row in per_image_rows], dtype=object)
    normal = labels == "normal"
    buckets = [row["size_bucket"] for row in per_image_rows]
    centers = [str(row["center"]) for row in per_image_rows]

    # sweep.csv: pooled pixel metrics and per-image means at every threshold.
    pooled = metrics.ConfusionCounts(*(counts[:, :, k].sum(axis=0) for k in range(4)))
    sweep: dict[str, Any] = {"threshold": thresholds}
    sweep.update(metrics.metrics_from_counts(pooled))
    tumour_counts = metrics.ConfusionCounts(*(counts[tumour][:, :, k] for k in range(4)))
    if tumour.any():
        sweep["mean_dice"] = np.asarray(metrics.dice_from_counts(tumour_counts)).mean(axis=0)
        sweep["mean_iou"] = np.asarray(metrics.iou_from_counts(tumour_counts)).mean(axis=0)
        sweep["tumour_detection_rate"] = has_lesion[tumour].mean(axis=0)
    else:
        sweep["mean_dice"] = sweep["mean_iou"] = np.full(len(thresholds), math.nan)
        sweep["tumour_detection_rate"] = np.full(len(thresholds), math.nan)
    sweep["normal_fp_rate"] = (
        has_lesion[normal].mean(axis=0) if normal.any() else np.full(len(thresholds), math.nan)
    )
    sweep.update({"tp": pooled.tp, "fp": pooled.fp, "fn": pooled.fn, "tn": pooled.tn})
    columns = list(sweep)
    atomic_write_csv(
        out / files.SWEEP_FILE,
        [{key: sweep[key][k].item() for key in columns} for k in range(len(thresholds))],
        columns,
    )
    atomic_write_csv(out / files.PER_IMAGE_FILE, per_image_rows, list(per_image_rows[0]))
    np.savez_compressed(
        out / files.PER_IMAGE_SWEEP_FILE,
        image_ids=np.array(data.image_ids),
        thresholds=thresholds,
        tp=counts[:, :, 0],
        fp=counts[:, :, 1],
        fn=counts[:, :, 2],
        tn=counts[:, :, 3],
        has_lesion=has_lesion,
        schema_version=np.int64(files.SCHEMA_VERSION),
    )
    np.savez_compressed(
        out / files.HISTOGRAM_FILE,
        positives=histogram[0],
        negatives=histogram[1],
        schema_version=np.int64(files.SCHEMA_VERSION),
    )
    roc, pr = curves_from_histogram(*histogram)
    roc_kept = downsample_curve(roc.fpr, roc.tpr)
    pr_kept = downsample_curve(pr.recall, pr.precision)
    pr_threshold_kept = pr_kept[pr_kept < len(pr.thresholds)]
    np.savez_compressed(
        out / files.CURVES_FILE,
        roc_fpr=roc.fpr[roc_kept],
        roc_tpr=roc.tpr[roc_kept],
        roc_thresholds=roc.thresholds[roc_kept],
        pr_precision=pr.precision[pr_kept],
        pr_recall=pr.recall[pr_kept],
        # thresholds[k] belongs to point k; the last PR point (recall 0) has none (NaN).
        pr_thresholds=np.r_[
            pr.thresholds[pr_threshold_kept],
            np.full(len(pr_kept) - len(pr_threshold_kept), math.nan),
        ],
        schema_version=np.int64(files.SCHEMA_VERSION),
    )

    def block_at(index: int) -> dict[str, Any]:
        block = {"threshold": float(thresholds[index])}
        block.update(
            _threshold_block(
                counts[:, index],
                has_lesion[:, index],
                tumour,
                normal,
                buckets,
                centers,
                data.groups,
                n_resamples,
            )
        )
        return block

    at_validation = block_at(validation_index)
    hd95 = np.array([row["hd95"] for row in per_image_rows], dtype=np.float64)[tumour]
    at_validation.update(
        {
            "mean_hd95_tumour_px": float(np.nanmean(hd95)) if np.isfinite(hd95).any() else math.nan,
            "median_hd95_tumour_px": files.median(hd95),
            "hd95_undefined_images": int(np.isnan(hd95).sum()),
        }
    )
    best_index = decisions.choose_best_index(
        np.asarray(sweep["mean_dice"], dtype=np.float64), thresholds
    )
    best_on_test = None
    if best_index is not None:
        best_on_test = {
            "optimistic": True,
            "note": files.OPTIMISTIC_NOTE,
            "criterion": "max mean Dice over the test tumour images",
        }
        best_on_test.update(block_at(best_index))
    lesion_totals = {
        key: int(sum(row[key] for row in per_image_rows))
        for key in ("true_lesions", "true_lesions_found", "predicted_lesions", "false_lesions")
    }
    at_validation["lesion_sensitivity"] = (
        lesion_totals["true_lesions_found"] / lesion_totals["true_lesions"]
        if lesion_totals["true_lesions"]
        else math.nan
    )
    at_validation["false_lesions_per_image"] = lesion_totals["false_lesions"] / count
    at_validation["lesion_counts"] = lesion_totals
    unscored = int((~tumour & ~normal).sum())
    return {
        "n_tumour_images": int(tumour.sum()),
        "n_normal_images": int(normal.sum()),
        "n_tumour_without_mask": unscored,
        "input_size": run.input_size,
        "inference_size": size,
        "resolution": "original",
        "validation_threshold": point.threshold,
        "operating_point": point.to_json(),
        "thresholds": "btseg.decisions.evaluation_thresholds(operating threshold)",
        "lesion_rule": (
            "btseg.decisions.decide: an 8-connected region of probability >= threshold covering "
            f"at least max(16, ceil({point.min_lesion_fraction:g} * height * width)) pixels; "
            "every threshold of the sweep uses the same rule"
        ),
        "hd95_units": "original pixels",
        "at_validation_threshold": at_validation,
        "best_on_test": best_on_test,
        "pixel_auc": roc.auc,
        "average_precision": pr.average_precision,
        "n_pixels": int(roc.n_positive + roc.n_negative),
        "n_tumour_pixels": int(roc.n_positive),
    }


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class SegmentationEvaluation:
    """A segmenter's test-split evaluation (see the module docstring for the files).

    Attributes:
        summary: summary.json.
        sweep: sweep.csv, one row per threshold ascending.
        per_image: per_image.csv, one row per test image at the validation threshold.
        curves: curves.npz arrays (roc_fpr, roc_tpr, roc_thresholds, pr_precision, pr_recall,
            pr_thresholds), downsampled for drawing.
        histogram: (positives, negatives), each (65536,) int64 pixel counts per float16 pattern.
        run_dir: the run folder.
        per_image_sweep: per_image_sweep.npz arrays: image_ids (N,), thresholds (T,), tp, fp,
            fn, tn (N, T) int64, has_lesion (N, T) bool.
    """

    summary: dict[str, Any]
    sweep: pd.DataFrame
    per_image: pd.DataFrame
    curves: dict[str, np.ndarray]
    histogram: tuple[np.ndarray, np.ndarray]
    run_dir: Path
    per_image_sweep: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return str(self.summary.get("model", self.run_dir.name))

    @property
    def validation_threshold(self) -> float:
        return float(self.summary["validation_threshold"])

    @property
    def best_threshold(self) -> float | None:
        """The best threshold on test (optimistic), or None."""
        value = (self.summary.get("best_on_test") or {}).get("threshold")
        return None if value is None else float(value)

    @property
    def thresholds(self) -> np.ndarray:
        """(T,) float64 sweep thresholds, ascending."""
        return np.asarray(self.per_image_sweep["thresholds"], dtype=np.float64)

    def confusion_at(self, threshold: float) -> metrics.ConfusionCounts:
        """Pooled pixel counts over the test split at any threshold, exactly (no model)."""
        return confusion_from_histogram(*self.histogram, threshold)

    def metrics_at(self, threshold: float) -> dict[str, float]:
        """Pooled pixel dice, iou, sensitivity, specificity, precision, f1, accuracy, exactly."""
        return {name: float(value) for name, value in
                metrics.metrics_from_counts(self.confusion_at(threshold)).items()}

    def results_at(self, threshold: float) -> dict[str, float]:
        """Every number the Thresholds page shows at one threshold: metrics_at (exact), the
        pixel counts tp, fp, fn, tn (ints, exact), and per-image numbers at the nearest sweep
        threshold (per_image_at; `threshold` itself for a sweep threshold): mean_dice and
        mean_iou over the tumour images, tumour_detection_rate (tumour images with a predicted
        lesion) and normal_fp_rate (normal images with one); NaN without such images.
        """
        counts = self.confusion_at(threshold)
        per_image = self.per_image_at(threshold)
        tumour = per_image[per_image["tumour"].astype(bool)]
        normal = per_image[per_image["label"] == "normal"]
        return {
            **self.metrics_at(threshold),
            "mean_dice": float(tumour["dice"].mean()) if len(tumour) else math.nan,
            "mean_iou": float(tumour["iou"].mean()) if len(tumour) else math.nan,
            "normal_fp_rate": float(normal["predicted_lesion"].mean()) if len(normal) else math.nan,
            "tumour_detection_rate": (
                float(tumour["predicted_lesion"].mean()) if len(tumour) else math.nan
            ),
            "tp": int(counts.tp), "fp": int(counts.fp), "fn": int(counts.fn), "tn": int(counts.tn),
        }

    def nearest_sweep_threshold(self, threshold: float) -> float:
        """The sweep threshold nearest `threshold` on a log scale."""
        return float(self.thresholds[nearest_threshold_index(self.thresholds, threshold)])

    def per_image_at(self, threshold: float) -> pd.DataFrame:
        """Per-image results at the sweep threshold nearest `threshold` (log scale).

        Returns:
            per_image's image columns plus threshold (the sweep threshold used), tp, fp, fn, tn,
            pred_area_px, dice, iou (metrics' empty policy: NaN when truth and prediction are
            both empty) and predicted_lesion (a lesion of at least the minimum area found).
            hd95 is kept only at the validation threshold (NaN elsewhere).
        """
        index = nearest_threshold_index(self.thresholds, threshold)
        chosen = float(self.thresholds[index])
        data = self.per_image_sweep
        order = _positions(self.per_image["image_id"].astype(str).tolist(),
                           [str(value) for value in data["image_ids"]])
        counts = metrics.ConfusionCounts(*(np.asarray(data[key])[order, index]
                                           for key in ("tp", "fp", "fn", "tn")))
        table = self.per_image.copy()
        table["threshold"] = chosen
        table["tp"], table["fp"], table["fn"], table["tn"] = counts
        table["pred_area_px"] = counts.tp + counts.fp
        table["dice"] = metrics.dice_from_counts(counts)
        table["iou"] = metrics.iou_from_counts(counts)
        table["predicted_lesion"] = np.asarray(data["has_lesion"])[order, index].astype(bool)
        if chosen != self.validation_threshold and "hd95" in table.columns:
            table["hd95"] = math.nan
            if "hd95_mm" in table.columns:
                table["hd95_mm"] = math.nan
        return table

    def probabilities(self) -> tuple[list[str], np.ndarray]:
        """(image ids, (N, S, S) float16 letterboxed probabilities) from predictions.npz.

        Read on demand: the array is the largest file of the evaluation.
        """
        arrays = load_npz(self.run_dir, PREDICTIONS_NPZ_FILE, ("image_ids", "probabilities"))
        return [str(value) for value in arrays["image_ids"]], arrays["probabilities"]


def _positions(wanted: list[str], available: list[str]) -> np.ndarray:
    where = {image_id: position for position, image_id in enumerate(available)}
    missing = [image_id for image_id in wanted if image_id not in where]
    if missing:
        raise ValueError(f"per_image_sweep.npz has no row for {', '.join(missing[:3])}")
    return np.array([where[image_id] for image_id in wanted], dtype=np.int64)


def load_segmentation_evaluation(run_dir: str | Path) -> SegmentationEvaluation:
    """Read a segmenter's evaluation/ folder (no TensorFlow, no model).

    predictions.npz is checked for presence only and read by `probabilities()` on demand.

    Raises:
        RunError: a file is missing, unreadable or from another schema version (the message
            names the file and the `btseg evaluate` command that rewrites it).
    """
    run_dir = run_folder(run_dir)
    summary = read_summary(run_dir)
    check_task(run_dir, summary, "segmentation")
    predictions = evaluation_dir(run_dir) / PREDICTIONS_NPZ_FILE
    if not predictions.is_file():
        raise missing_error(run_dir, predictions, PREDICTIONS_NPZ_FILE)
    sweep = load_csv(run_dir, SWEEP_FILE, ("threshold", "dice", "mean_dice", "normal_fp_rate"))
    per_image = load_csv(run_dir, PER_IMAGE_FILE, ("image_id", "label", "dice", "group"))
    curves = load_npz(run_dir, CURVES_FILE, ("roc_fpr", "roc_tpr", "pr_precision", "pr_recall"))
    histogram = load_npz(run_dir, HISTOGRAM_FILE, ("positives", "negatives"))
    per_image_sweep = load_npz(run_dir, PER_IMAGE_SWEEP_FILE,
                                ("image_ids", "thresholds", "tp", "fp", "fn", "tn", "has_lesion"))
    for name, arrays in ((CURVES_FILE, curves), (HISTOGRAM_FILE, histogram),
                         (PER_IMAGE_SWEEP_FILE, per_image_sweep)):
        version = arrays.pop("schema_version", None)
        if version is None or int(version) != SCHEMA_VERSION:
            raise RunError(f"{name} is not a schema_version {SCHEMA_VERSION} evaluation file",
                           where=str(evaluation_dir(run_dir) / name), fix=evaluate_fix(run_dir))
    positives = np.asarray(histogram["positives"], dtype=np.int64)
    negatives = np.asarray(histogram["negatives"], dtype=np.int64)
    if positives.shape != (FLOAT16_KEYS,) or negatives.shape != (FLOAT16_KEYS,):
        raise unreadable_error(run_dir, evaluation_dir(run_dir) / HISTOGRAM_FILE,
                          ValueError(f"histograms are not ({FLOAT16_KEYS},)"))
    evaluation = SegmentationEvaluation(
        summary=summary, sweep=sweep, per_image=per_image, curves=curves,
        histogram=(positives, negatives), run_dir=run_dir, per_image_sweep=per_image_sweep,
    )
    try:
        _positions(per_image["image_id"].astype(str).tolist(),
                   [str(value) for value in per_image_sweep["image_ids"]])
    except ValueError as error:
        raise unreadable_error(run_dir, evaluation_dir(run_dir) / PER_IMAGE_SWEEP_FILE, error) from None
    return evaluation


