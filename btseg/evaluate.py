"""Evaluate trained runs on the test split and write models/<run>/evaluation/ (`btseg evaluate`).

    evaluate_run("models/attention_unet", "data/synthetic")   # -> models/attention_unet/evaluation
    evaluate_all("models", "data/synthetic")                  # every complete run

The test split is the training split itself (btseg.data.splits.split_for with the run's
split_seed), and the images go through the cache the model was trained on, so the model sees
exactly the training preprocessing. Segmentation metrics are computed honestly at the original
resolution: each model-size probability map (kept as float16 in predictions.npz) is mapped back
onto its image with images.postprocess and compared with the LabelMe mask rasterised at that
size (zeros for normal images). One image is held at a time, so memory does not grow with image
size or count. btseg.evaluation describes the files and reads them back without TensorFlow.

A normal image counts as flagged at a threshold when the thresholded map holds a lesion under
the same rule as inference: an 8-connected region of at least btseg.infer.min_lesion_area(shape)
pixels. Dice, IoU and the pixel counts use the raw rule ``probability >= threshold``, so they
agree with the pixel histogram and the ROC curve.

TensorFlow is imported only when a model is loaded; an evaluation that is already up to date is
recognised without it.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from btseg import decisions, metrics
from btseg import evaluation as files
from btseg.config import CLASS_NAMES
from btseg.decisions import OperatingPoint
from btseg.errors import BtsegError, RunError
from btseg.registry import RUN_ORDER, SEGMENTATION_RUNS
from btseg.runs import (
    CONFIG_FILE,
    MODEL_FILE,
    RUN_NAMES,
    THRESHOLD_FILE,
    atomic_write_csv,
    atomic_write_json,
    is_complete,
    read_run_info,
    remove_dead_temporaries,
    run_name_for,
    swap_folder_into_place,
    train_command,
)

#: Bootstrap resamples of the 95% intervals (whole surrogate patients are resampled).
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
#: Order in which evaluate_all visits the runs.

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


def stage_progress(stream: TextIO | None = None) -> Progress:
    """A progress(stage, done, total) callback printing one ProgressPrinter line per stage."""
    from btseg.progress import ProgressPrinter

    printers: dict[str, ProgressPrinter] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in printers:
            printers[stage] = ProgressPrinter(stage, stream=stream or sys.stderr)
        printers[stage](done, total)

    return progress


# --------------------------------------------------------------------------------------------
# Fingerprints and the up-to-date check


def model_fingerprint(run_dir: str | Path) -> str:
    """16 hex digits of SHA-256 over model.keras and threshold.json (when present)."""
    digest = hashlib.sha256()
    for name in (MODEL_FILE, THRESHOLD_FILE):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        digest.update(name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _settings(config: dict[str, Any], n_resamples: int) -> dict[str, Any]:
    """What besides the model and data decides the numbers; a change re-evaluates."""
    return {
        "split_seed": _split_seed(config),
        "bootstrap_resamples": int(n_resamples),
        "bootstrap_seed": BOOTSTRAP_SEED,
    }


def _split_seed(config: dict[str, Any]) -> int:
    data = config.get("data") or {}
    if isinstance(data.get("split_seed"), int):
        return int(data["split_seed"])
    hyperparameters = config.get("hyperparameters") or {}
    return int(hyperparameters.get("split_seed", 0) or 0)


def _is_segmenter(config: dict[str, Any], run_dir: Path) -> bool:
    task = config.get("task")
    if task in ("segmentation", "classification"):
        return task == "segmentation"
    return str(config.get("run", run_dir.name)) in SEGMENTATION_RUNS


def _up_to_date(
    run_dir: Path,
    data_fingerprint: str,
    fingerprint: str,
    settings: dict[str, Any],
    segmenter: bool,
) -> bool:
    folder = files.evaluation_dir(run_dir)
    try:
        summary = files.read_summary(run_dir)
    except RunError:
        return False
    needed = files.SEGMENTATION_FILES if segmenter else files.CLASSIFIER_FILES
    return (
        summary.get("data_fingerprint") == data_fingerprint
        and summary.get("model_fingerprint") == fingerprint
        and summary.get("settings") == settings
        and summary.get("task") == ("segmentation" if segmenter else "classification")
        and all((folder / name).is_file() for name in needed)
    )


# --------------------------------------------------------------------------------------------
# Writing the folder atomically


def _remove_stale_folders(run_dir: Path) -> None:
    """Leftovers of evaluations that were killed: evaluation.tmp-<pid>, evaluation.old-<pid>."""
    for pattern in (f"{files.EVALUATION_FOLDER}.tmp-*", f"{files.EVALUATION_FOLDER}.old-*"):
        remove_dead_temporaries(run_dir, pattern)


# --------------------------------------------------------------------------------------------
# Data


SPLIT_FILE = "split.json"


class _TestData:
    """The test split as the run was trained with it: table rows, surrogate patients, ids.

    The split is the run folder's split.json (written at training) when it has one, else the
    split recomputed from the data with the run's seed; no cached arrays are needed, since every
    test image is read from its file and goes through the pipeline `btseg predict` uses.
    """

    def __init__(
        self,
        run_name: str,
        config: dict[str, Any],
        dataset: Any,
        data_fingerprint: str,
        cache_dir: Path,
        run_dir: Path,
        log: Log,
    ) -> None:
        from btseg.data.splits import load_split, split_for, surrogate_patient_ids

        self.warnings: list[str] = []
        recorded = config.get("data") or {}
        if recorded.get("fingerprint") and recorded["fingerprint"] != data_fingerprint:
            self.warnings.append(
                f"the dataset differs from the one the model was trained on (data fingerprint "
                f"{data_fingerprint}, training {recorded['fingerprint']}); the test split may "
                "then hold images the model was trained on"
            )
        if (run_dir / SPLIT_FILE).is_file():
            self.split = load_split(run_dir / SPLIT_FILE)
            self.split_source = f"{run_name}/{SPLIT_FILE}"
        else:
            self.split = split_for(dataset, cache_dir=cache_dir, seed=_split_seed(config))
            self.split_source = "recomputed from the data (the run folder has no split.json)"
        if recorded.get("split_id") and recorded["split_id"] != self.split.split_id:
            self.warnings.append(
                f"the test split (split id {self.split.split_id}) is not the split the model "
                f"was trained with ({recorded['split_id']}): test images may have been seen in "
                "training, so the numbers can be optimistic"
            )
        for warning in self.warnings:
            log(f"Warning ({run_name}): {warning}.")
        self.input_mode = str(config.get("input_mode") or "image")
        self.region: dict[str, Any] | None = None
        if self.input_mode == "region":
            self.region = _region_settings(config, run_name)
        usable = set(dataset.usable["image_id"].astype(str))
        test_ids = self.split.ids("test")
        self.image_ids = [image_id for image_id in test_ids if image_id in usable]
        left_out = [image_id for image_id in test_ids if image_id not in usable]
        if left_out:
            shown = ", ".join(left_out[:3])
            self.warnings.append(
                f"{len(left_out)} test image(s) have no usable image file and are left out "
                f"({shown})"
            )
            log(f"Warning ({run_name}): {self.warnings[-1]}.")
        if not self.image_ids:
            raise RunError(
                "the test split holds no usable image",
                where=str(dataset.root),
                fix="check the dataset with `btseg stats` and `btseg split`",
            )
        self.left_out = left_out
        table = dataset.table.drop_duplicates("image_id")
        groups = surrogate_patient_ids(dataset.table)
        group_of = dict(zip(dataset.table["image_id"].astype(str), groups.astype(int), strict=True))
        self.rows = table.set_index(table["image_id"].astype(str)).loc[self.image_ids]
        self.groups = np.array([group_of[image_id] for image_id in self.image_ids], dtype=np.int64)
        self.labels = np.array(
            [CLASS_NAMES.index(str(self.rows.loc[i, "label"])) for i in self.image_ids],
            dtype=np.int64,
        )

    def image(self, index: int) -> tuple[Any, np.ndarray]:
        """(DecodedImage, (H, W) uint8 true mask) of test image ``index``, read from its files.

        Raises:
            RunError: the image or its annotation cannot be read (names the file and the fix).
        """
        from btseg.data.images import read_image
        from btseg.data.labelme import lesions_mask, read_annotation

        image_id = self.image_ids[index]
        row = self.rows.loc[image_id]
        try:
            decoded = read_image(str(row["image_path"]))
            shape = decoded.shape
            truth = np.zeros(shape, dtype=np.uint8)
            annotation_path = _text(row.get("annotation_path"))
            if str(row["label"]) != "normal" and annotation_path:
                annotation = read_annotation(annotation_path, image_shape=shape)
                truth = lesions_mask(
                    annotation.lesions, (annotation.height, annotation.width), target_shape=shape
                )
        except BtsegError as error:
            raise RunError(
                f"test image {image_id} cannot be read ({error})",
                where=_text(row.get("image_path")),
                fix="fix or remove the file, then run `btseg evaluate` again",
            ) from None
        return decoded, truth


def _region_settings(config: dict[str, Any], run_name: str) -> dict[str, Any]:
    """The region settings of a region-mode classifier's config.json, checked."""
    region = config.get("region")
    try:
        low, high = (float(value) for value in region["side_range"])
        checked = dict(region, source_size=int(region["source_size"]), seed=int(region["seed"]))
        if not (0 < low <= high and checked["source_size"] > 0):
            raise ValueError
    except (TypeError, KeyError, ValueError):
        raise RunError(
            "config.json says the classifier classifies regions but has no valid region "
            "settings (source_size, side_range, seed)",
            where=f"{run_name}/config.json",
            fix=f"train the classifier again: {train_command('classifier')}",
        ) from None
    checked["side_range"] = [low, high]
    return checked


def _check_probabilities(values: np.ndarray, run: Any) -> np.ndarray:
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        raise RunError(
            "the model outputs values that are not probabilities (NaN, infinite or outside "
            "[0, 1]) on the test images",
            where=str(run.path / MODEL_FILE),
            fix=f"train the model again: {train_command(run.name)}",
        )
    return values


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _interval(
    values: np.ndarray,
    groups: np.ndarray,
    n_resamples: int,
    statistic: Callable[[np.ndarray], float] | None = None,
) -> list[float] | None:
    """[low, high] of the 95% bootstrap interval over groups; None without data."""
    if len(values) == 0:
        return None
    interval = metrics.bootstrap_ci(
        values, groups, statistic=statistic, n_resamples=n_resamples, seed=BOOTSTRAP_SEED
    )
    return [interval.low, interval.high]


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else math.nan


def _median(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def _plain(value: Any) -> Any:
    """NumPy arrays and scalars inside dicts and lists -> lists and Python numbers (for JSON)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def _pooled_dice(rows: np.ndarray) -> float:
    return float(metrics.dice_from_counts(metrics.ConfusionCounts(*rows.sum(axis=0))))


# --------------------------------------------------------------------------------------------
# Segmentation


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
        "mean_dice_tumour": _mean(dice[tumour]),
        "median_dice_tumour": _median(dice[tumour]),
        "pooled_dice": pixel["dice"],
        "mean_iou_tumour": _mean(iou[tumour]),
        "pooled_iou": pixel["iou"],
        "sensitivity": pixel["sensitivity"],
        "specificity": pixel["specificity"],
        "precision": pixel["precision"],
        "f1": pixel["f1"],
        "tumour_detection_rate": _mean(flagged[tumour]),
        "normal_fp_rate": _mean(flagged[normal]),
        "counts": {"tp": pooled.tp, "fp": pooled.fp, "fn": pooled.fn, "tn": pooled.tn},
    }
    bucket_array = np.asarray(buckets, dtype=object)
    block["by_size"] = {}
    for bucket in metrics.LESION_SIZE_BUCKETS:
        members = tumour & (bucket_array == bucket)
        block["by_size"][bucket] = {
            "n": int(members.sum()),
            "mean_dice": _mean(dice[members]),
            "median_dice": _median(dice[members]),
            "mean_iou": _mean(iou[members]),
            "detection_rate": _mean(flagged[members]),
        }
    center_array = np.asarray(centers, dtype=object)
    block["by_center"] = {}
    for center in sorted(set(centers), key=lambda value: (len(value), value)):
        members = center_array == center
        block["by_center"][center] = {
            "n_images": int(members.sum()),
            "n_tumour_images": int((members & tumour).sum()),
            "n_normal_images": int((members & normal).sum()),
            "mean_dice_tumour": _mean(dice[members & tumour]),
            "pooled_dice": _pooled_dice(counts[members]),
            "normal_fp_rate": _mean(flagged[members & normal]),
        }
    block["ci95"] = {
        "mean_dice_tumour": _interval(dice[tumour], groups[tumour], n_resamples),
        "mean_iou_tumour": _interval(iou[tumour], groups[tumour], n_resamples),
        "pooled_dice": _interval(counts.astype(np.float64), groups, n_resamples, _pooled_dice),
        "normal_fp_rate": _interval(flagged[normal], groups[normal], n_resamples),
        "tumour_detection_rate": _interval(flagged[tumour], groups[tumour], n_resamples),
    }
    return block


def _evaluate_segmenter(
    run: Any,
    data: _TestData,
    out: Path,
    n_resamples: int,
    progress: Progress | None,
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
        small = _check_probabilities(segmenter.model_probabilities([decoded.pixels])[0], run)
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
                "subtype": _text(row.get("subtype")),
                "center": int(row["center"]) if _text(row.get("center")) else "",
                "site": _text(row.get("site")),
                "region": _text(row.get("region")),
                "view": _text(row.get("view")),
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
    roc, pr = files.curves_from_histogram(*histogram)
    roc_kept = files.downsample_curve(roc.fpr, roc.tpr)
    pr_kept = files.downsample_curve(pr.recall, pr.precision)
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
            "median_hd95_tumour_px": _median(hd95),
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
# Classification


def _classification_statistic(key: str, n_classes: int) -> Callable[[np.ndarray], float]:
    def statistic(rows: np.ndarray) -> float:
        report = metrics.classification_report(
            rows[:, 0].astype(np.int64), rows[:, 1:], CLASS_NAMES[:n_classes]
        )
        value = report[key]
        return math.nan if value is None else float(value)

    return statistic


def _classifier_probabilities(
    classifier: Any, data: _TestData, progress: Progress | None
) -> np.ndarray:
    """(N, n_classes) float64: the classifier on each test image as it is served, from the
    original file: the whole image, or (region mode) the crop `Classifier.predict` makes of the
    largest annotated lesion's box (a region sampled on the bone of a normal image, seeded by
    the run's region seed and the image id)."""
    from btseg.data.regions import image_rng, lesion_boxes, region_of

    stage = f"{classifier.name}: classifying"
    count = len(data.image_ids)
    probabilities = np.zeros((count, len(classifier.class_names)), dtype=np.float64)
    for index, image_id in enumerate(data.image_ids):
        decoded, truth = data.image(index)
        box = None
        if data.region is not None:
            rng = image_rng(int(data.region["seed"]), image_id)
            sides = tuple(data.region["side_range"])
            box = region_of(decoded.pixels, lesion_boxes(truth), sides, rng, jitter=False)
        predicted = classifier.predict(decoded, box=box)
        probabilities[index] = [predicted[name] for name in classifier.class_names]
        if progress is not None:
            progress(stage, index + 1, count)
    return probabilities


def _evaluate_classifier(
    run: Any,
    data: _TestData,
    out: Path,
    n_resamples: int,
    progress: Progress | None,
) -> dict[str, Any]:
    from btseg.infer import Classifier

    classifier = Classifier(run)
    probabilities = _check_probabilities(_classifier_probabilities(classifier, data, progress), run)
    names = list(CLASS_NAMES)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(names):
        raise RunError(
            f"the classifier outputs shape {probabilities.shape[1:]}, not {len(names)} class "
            "probabilities",
            where=str(run.path / MODEL_FILE),
            fix=f"train the classifier again: {train_command('classifier')}",
        )
    labels = data.labels
    report = metrics.classification_report(labels, probabilities, names)
    predicted = probabilities.argmax(axis=1)
    rows = []
    for index, image_id in enumerate(data.image_ids):
        row = data.rows.loc[image_id]
        entry = {"image_id": image_id, "label": names[labels[index]]}
        entry.update(
            {f"prob_{name}": float(probabilities[index, k]) for k, name in enumerate(names)}
        )
        entry.update(
            {
                "predicted": names[predicted[index]],
                "correct": bool(predicted[index] == labels[index]),
                "center": int(row["center"]) if _text(row.get("center")) else "",
                "subtype": _text(row.get("subtype")),
                "group": int(data.groups[index]),
            }
        )
        rows.append(entry)
    atomic_write_csv(out / files.PREDICTIONS_CSV_FILE, rows, list(rows[0]))

    stacked = np.column_stack([labels.astype(np.float64), probabilities])
    ci95 = {
        key: _interval(
            stacked, data.groups, n_resamples, _classification_statistic(key, len(names))
        )
        for key in ("macro_auc", "balanced_accuracy", "accuracy")
    }
    centers = np.array([str(row["center"]) for row in rows], dtype=object)
    by_center = {}
    for center in sorted(set(centers), key=lambda value: (len(value), value)):
        members = centers == center
        part = metrics.classification_report(labels[members], probabilities[members], names)
        by_center[center] = {
            key: part[key] for key in ("n_samples", "accuracy", "balanced_accuracy", "macro_auc")
        }

    roc_classes = {}
    for k, name in enumerate(names):
        roc = metrics.roc_curve_points(labels == k, probabilities[:, k])
        pr = metrics.pr_curve_points(labels == k, probabilities[:, k])
        roc_classes[name] = {
            "fpr": roc.fpr,
            "tpr": roc.tpr,
            "thresholds": roc.thresholds,
            "auc": roc.auc,
            "precision": pr.precision,
            "recall": pr.recall,
            "pr_thresholds": pr.thresholds,
            "average_precision": pr.average_precision,
            "support": int((labels == k).sum()),
        }
    tumour = labels != names.index("normal")
    tumour_score = 1.0 - probabilities[:, names.index("normal")]
    binary = metrics.roc_curve_points(tumour, tumour_score)
    atomic_write_json(
        out / files.ROC_FILE,
        _plain(
            {
                "schema_version": files.SCHEMA_VERSION,
                "classes": roc_classes,
                "normal_vs_tumour": {
                    "fpr": binary.fpr,
                    "tpr": binary.tpr,
                    "thresholds": binary.thresholds,
                    "auc": binary.auc,
                    "score": "1 - prob_normal",
                },
                "note": "one-vs-rest curves; a threshold of null stands for +infinity",
            }
        ),
    )
    curve = metrics.reliability_curve(labels, probabilities)
    ece = metrics.expected_calibration_error(labels, probabilities)
    atomic_write_json(
        out / files.RELIABILITY_FILE,
        _plain(
            {
                "schema_version": files.SCHEMA_VERSION,
                "confidence": curve.confidence,
                "accuracy": curve.accuracy,
                "count": curve.count,
                "edges": curve.edges,
                "ece": ece,
                "n_bins": len(curve.count),
                "note": "top-class probability in equal-width bins (edges[k], edges[k+1]]",
            }
        ),
    )
    summary = dict(report)
    summary.update(
        {
            "ece": ece,
            "ci95": ci95,
            "by_center": by_center,
            "input_size": run.input_size,
        }
    )
    return summary


# --------------------------------------------------------------------------------------------
# The image-level verdict (segmenter + classifier, as served)


def _verdict_segmenter_dir(classifier_dir: Path) -> Path | None:
    """The attention U-Net run beside the classifier, when it is complete."""
    folder = classifier_dir.parent / run_name_for("attention")
    return folder if is_complete(folder) else None


def _verdict_scores(rows: np.ndarray) -> dict[str, Any]:
    """rows (N, 2) int: truth, predicted class index -> balanced accuracy, recall by class,
    confusion (rows truth, columns verdict)."""
    names = decisions.VERDICT_CLASSES
    confusion = metrics.confusion_matrix(rows[:, 0], rows[:, 1], len(names))
    support = confusion.sum(axis=1)
    recall = {
        name: (float(confusion[k, k] / support[k]) if support[k] else None)
        for k, name in enumerate(names)
    }
    present = [value for value in recall.values() if value is not None]
    return {
        "balanced_accuracy": float(np.mean(present)) if present else math.nan,
        "accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        "recall": recall,
        "confusion": confusion.tolist(),
        "support": {name: int(support[k]) for k, name in enumerate(names)},
    }


def _evaluate_verdict(
    segmenter_dir: Path,
    classifier_run: Any,
    data: _TestData,
    out: Path,
    n_resamples: int,
    progress: Progress | None,
) -> dict[str, Any]:
    """Score the verdict of the whole pipeline (btseg.predict.Predictor with the attention U-Net
    and this classifier) on the whole test images; write verdict.json and its per-image CSV."""
    from btseg.infer import Classifier, Segmenter
    from btseg.predict import Predictor
    from btseg.runs import load_run

    segmenter_run = load_run(segmenter_dir)
    predictor = Predictor(Segmenter(segmenter_run), Classifier(classifier_run))
    names = list(decisions.VERDICT_CLASSES)
    stage = "verdict: segmenting and classifying whole test images"
    rows = []
    predicted = np.zeros(len(data.image_ids), dtype=np.int64)
    for index, image_id in enumerate(data.image_ids):
        decoded, _ = data.image(index)
        prediction = predictor.predict(decoded)
        verdict = prediction.verdict
        predicted[index] = names.index(verdict.label)
        rows.append(
            {
                "image_id": image_id,
                "label": names[data.labels[index]],
                "verdict": verdict.label,
                "correct": verdict.label == names[data.labels[index]],
                "lesions": len(prediction.lesions),
                "classified_lesion": verdict.lesion_index or "",
                **{
                    f"prob_{name}": verdict.probabilities.get(name, "")
                    for name in CLASS_NAMES
                },
                "reason": verdict.reason,
                "group": int(data.groups[index]),
            }
        )
        if progress is not None:
            progress(stage, index + 1, len(data.image_ids))
    atomic_write_csv(out / files.VERDICT_CSV_FILE, rows, list(rows[0]))
    pairs = np.column_stack([data.labels, predicted])
    scores = _verdict_scores(pairs)

    def statistic(key: str, name: str | None = None) -> Callable[[np.ndarray], float]:
        def compute(sample: np.ndarray) -> float:
            value = _verdict_scores(sample.astype(np.int64))[key]
            value = value if name is None else value[name]
            return math.nan if value is None else float(value)

        return compute

    ci95: dict[str, Any] = {
        "balanced_accuracy": _interval(
            pairs.astype(np.float64), data.groups, n_resamples, statistic("balanced_accuracy")
        )
    }
    for k, name in enumerate(names):
        members = data.labels == k
        ci95[f"recall_{name}"] = _interval(
            (predicted[members] == k).astype(np.float64), data.groups[members], n_resamples
        )
    payload = {
        "schema_version": files.SCHEMA_VERSION,
        "rule": (
            "btseg.decisions.verdict_for: no lesion at the segmenter's operating point -> "
            "normal; otherwise the classifier's most probable class for the most probable "
            "lesion (region classifier) or the whole image (image classifier)"
        ),
        "segmentation_run": segmenter_run.name,
        "segmentation_model_fingerprint": model_fingerprint(segmenter_dir),
        "operating_point": predictor.operating_point.to_json(),
        "classifier_run": classifier_run.name,
        "classes": names,
        "n_images": len(data.image_ids),
        **scores,
        "ci95": ci95,
        "chance_balanced_accuracy": 1.0 / len(names),
    }
    atomic_write_json(out / files.VERDICT_FILE, _plain(payload))
    return {key: payload[key] for key in ("balanced_accuracy", "recall", "confusion", "ci95")}


# --------------------------------------------------------------------------------------------
# Entry points


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    force: bool = False,
    progress: Progress | None = None,
    *,
    cache_dir: str | Path | None = None,
    log: Log | None = print,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> Path:
    """Evaluate one run on the test split; write and return run_dir/evaluation.

    Skipped (nothing written, no TensorFlow) when evaluation/summary.json already records the
    same data fingerprint, model fingerprint (model.keras and threshold.json) and settings,
    unless `force`. The folder is written as evaluation.tmp-<pid>/ and renamed over
    evaluation/ when complete.

    Args:
        run_dir: a complete run folder (models/<run>).
        data_dir: the BTXRD-layout dataset the run was trained on.
        force: evaluate even when up to date.
        progress: progress(stage, done, total), called per cached image, per predicted batch
            and per scored image (see stage_progress).
        cache_dir: cache of splits and arrays; default btseg.config.cache_dir().
        log: receives messages (skipped, warnings); None is silent.
        n_resamples: bootstrap resamples of the 95% intervals.

    Raises:
        RunError: the run is incomplete or its model does not load, or a test image cannot be
            scored. DataError: the dataset cannot be opened.
    """
    from btseg.config import cache_dir as default_cache_dir
    from btseg.data.btxrd import open_dataset
    from btseg.data.cache import data_fingerprint
    from btseg.runs import load_run

    say = log or (lambda message: None)
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    if not info["complete"]:
        raise RunError(
            info["problem"] or "the run folder is incomplete",
            where=str(run_dir),
            fix=f"train the model: {train_command(run_dir.name, str(data_dir))}",
        )
    config = info["config"]
    segmenter = _is_segmenter(config, run_dir)
    dataset = open_dataset(data_dir)
    fingerprint_of_data = data_fingerprint(dataset.usable)
    fingerprint_of_model = model_fingerprint(run_dir)
    settings = _settings(config, n_resamples)
    if not segmenter:  # the verdict also depends on the attention U-Net beside the classifier
        verdict_segmenter = _verdict_segmenter_dir(run_dir)
        settings["verdict_segmenter_fingerprint"] = (
            None if verdict_segmenter is None else model_fingerprint(verdict_segmenter)
        )
    destination = files.evaluation_dir(run_dir)
    if not force and _up_to_date(
        run_dir, fingerprint_of_data, fingerprint_of_model, settings, segmenter
    ):
        say(
            f"{run_dir.name}: evaluation is up to date (same model and data); "
            "use --force to redo it"
        )
        return destination

    started = time.monotonic()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    run_name = str(config.get("run", run_dir.name))
    data = _TestData(run_name, config, dataset, fingerprint_of_data, cache, run_dir, say)
    run = load_run(run_dir)
    _remove_stale_folders(run_dir)
    temporary = run_dir / f"{files.EVALUATION_FOLDER}.tmp-{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    try:
        evaluate = _evaluate_segmenter if segmenter else _evaluate_classifier
        results = evaluate(run, data, temporary, n_resamples, progress)
        if not segmenter:
            verdict_segmenter = _verdict_segmenter_dir(run_dir)
            if verdict_segmenter is not None:
                results["verdict"] = _evaluate_verdict(
                    verdict_segmenter, run, data, temporary, n_resamples, progress
                )
        summary = {
            "schema_version": files.SCHEMA_VERSION,
            "task": "segmentation" if segmenter else "classification",
            "model": run_name,
            "run_dir": str(run_dir.resolve()),
            "data_dir": str(Path(dataset.root).resolve()),
            "synthetic": bool(dataset.is_synthetic),
            "split": "test",
            "split_id": data.split.split_id,
            "split_source": data.split_source,
            "split_seed": _split_seed(config),
            "data_fingerprint": fingerprint_of_data,
            "model_fingerprint": fingerprint_of_model,
            "settings": settings,
            "n_test_images": len(data.image_ids),
            "input_mode": data.input_mode,
            **({"region": data.region} if data.region is not None else {}),
            "test_images_left_out": data.left_out,
            "n_groups": int(len(np.unique(data.groups))),
            "bootstrap": {
                "n_resamples": int(n_resamples),
                "seed": BOOTSTRAP_SEED,
                "unit": "surrogate patient (btseg.data.splits.surrogate_patient_ids)",
                "level": 0.95,
            },
            "warnings": data.warnings,
            **results,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "evaluation_seconds": round(time.monotonic() - started, 1),
        }
        atomic_write_json(temporary / files.SUMMARY_FILE, _plain(summary))
        swap_folder_into_place(
            temporary, destination, destination.with_name(f"{destination.name}.old-{os.getpid()}")
        )
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    say(
        f"{run_name}: evaluated {len(data.image_ids)} test images in "
        f"{summary['evaluation_seconds']:.0f}s -> {destination}"
    )
    return destination


def evaluate_all(
    models_dir: str | Path,
    data_dir: str | Path,
    force: bool = False,
    progress: Progress | None = None,
    *,
    models: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    log: Log | None = print,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Path]:
    """Evaluate every complete run under models_dir (or those named in `models`).

    A run that is missing or incomplete is skipped with a message naming the command that
    trains it. A run whose evaluation fails is reported and the others still run; a RunError
    naming the failed runs is raised at the end.

    Args:
        models: model keys or run names ("basic", "attention_unet", "classifier"); None means
            every complete run found.

    Returns:
        {run name: evaluation folder} of the runs evaluated or already up to date.
    """
    say = log or (lambda message: None)
    models_dir = Path(models_dir)
    if models:
        wanted = [run_name_for(str(model).strip().lower()) for model in models]
    else:
        found = (
            sorted(
                (
                    folder.name
                    for folder in models_dir.iterdir()
                    if folder.is_dir() and not folder.name.startswith((".", "_"))
                ),
                key=lambda name: (
                    RUN_ORDER.index(name) if name in RUN_ORDER else len(RUN_ORDER),
                    name,
                ),
            )
            if models_dir.is_dir()
            else []
        )
        wanted = [
            name
            for name in found
            if (models_dir / name / CONFIG_FILE).exists() or name in RUN_NAMES.values()
        ]
    results: dict[str, Path] = {}
    failures: list[str] = []
    for name in wanted:
        run_dir = models_dir / name
        if not is_complete(run_dir):
            state = "is not trained" if not run_dir.exists() else "is incomplete"
            say(
                f"Skipping {name}: {run_dir} {state}; train it with "
                f"`{train_command(name, str(data_dir))}`."
            )
            continue
        try:
            results[name] = evaluate_run(
                run_dir,
                data_dir,
                force=force,
                progress=progress,
                cache_dir=cache_dir,
                log=log,
                n_resamples=n_resamples,
            )
        except RunError as error:
            say(f"{name}: evaluation failed: {error}")
            failures.append(name)
    if not wanted:
        say(
            f"No trained model in {models_dir}; train them with "
            f"`{train_command('all', str(data_dir))}`."
        )
    if failures:
        raise RunError(
            f"the evaluation of {', '.join(failures)} failed (see the messages above)",
            where=str(models_dir),
            fix="fix the problem named for each run, then run `btseg evaluate` again",
        )
    return results
