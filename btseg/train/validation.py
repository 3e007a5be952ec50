"""Validation of a trained model on the validation split: the segmenters' operating point
(threshold and minimum lesion size, chosen on every validation image predicted whole at the
working size, normal images counted), the classifier's metrics.

    validation, threshold_json = segmentation_validation(model, config, data)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from btseg.config import CLASS_NAMES
from btseg.train.data import TrainingData
from btseg.train.recipes import TrainConfig

#: Old runs' criterion (threshold only, tumour images only); new runs write the operating point's.
THRESHOLD_CRITERION = "max mean Dice over validation tumour images"


def _predict(model, arrays, positions: np.ndarray, batch_size: int) -> np.ndarray:
    from btseg.pipeline import image_dataset

    return np.asarray(model.predict(image_dataset(arrays, positions, batch_size), verbose=0))


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def json_ready(value: Any) -> Any:
    """value with numpy scalars as Python numbers and tuples as lists, through dicts and lists
    (for json)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return _plain(value)


def whole_image_inputs(arrays, positions: np.ndarray) -> np.ndarray:
    """(K, S, S, 3) float32 model inputs of cached letterboxed images (images.preprocess)."""
    images = np.asarray(arrays.images[np.asarray(positions, dtype=np.int64)])
    return np.repeat(images[..., None].astype(np.float32) / np.float32(255.0), 3, axis=-1)


def validation_maps(
    model,
    config: TrainConfig,
    data: TrainingData,
    *,
    mirror: bool | None = None,
    window: int | None = ...,  # type: ignore[assignment]
    chunk: int = 16,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, float]:
    """Every validation image predicted whole at the working size with btseg.patches.predict_whole
    (the inference function), each map and its truth cropped to the image content (the letterbox
    padding removed).

    Returns:
        (truths, maps, normal (K,) bool from the table label, seconds per image).
    """
    from btseg.patches import crop_to_content, predict_whole

    mirror = config.tta_mirror if mirror is None else mirror
    window = config.inference_window if window is ... else window
    positions = data.validation
    boxes = data.content_boxes(positions)
    truths, maps = [], []
    started = time.monotonic()
    for begin in range(0, positions.size, chunk):
        part = positions[begin : begin + chunk]
        predicted = predict_whole(
            model.predict_on_batch,
            whole_image_inputs(data.arrays, part),
            window=window,
            mirror=mirror,
            batch_size=max(1, min(config.batch_size, 8)),
        )
        for offset, position in enumerate(part):
            box = boxes[begin + offset]
            maps.append(np.ascontiguousarray(crop_to_content(predicted[offset], box)))
            truths.append(np.ascontiguousarray(crop_to_content(np.asarray(data.arrays.masks[position]), box)))
    seconds = (time.monotonic() - started) / max(1, positions.size)
    normal = np.asarray(data.arrays.labels)[positions] == CLASS_NAMES.index("normal")
    return truths, maps, normal, seconds


def operating_point_on_validation(
    truths: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    normal: np.ndarray,
    max_normal_flagged: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(validation block for config.json, threshold.json content) of the operating point chosen
    by btseg.decisions.choose_operating_point on the validation maps."""
    from btseg.decisions import choose_operating_point

    point, table = choose_operating_point(
        truths, maps, normal, max_normal_flagged=max_normal_flagged
    )
    table = [{key: _plain(value) for key, value in row.items()} for row in table]
    chosen = next(
        row
        for row in table
        if row["threshold"] == point.threshold
        and row["min_lesion_fraction"] == point.min_lesion_fraction
    )
    at_half = next(
        (
            row
            for row in table
            if row["threshold"] == 0.5 and row["min_lesion_fraction"] == point.min_lesion_fraction
        ),
        {},
    )
    tumour = np.array([bool(np.any(truth)) for truth in truths]) & ~np.asarray(normal)
    validation = {
        "images": len(truths),
        "tumour_images": int(tumour.sum()),
        "normal_images": int(np.sum(normal)),
        "threshold": point.threshold,
        "min_lesion_fraction": point.min_lesion_fraction,
        "criterion": point.criterion,
        "max_normal_flagged": float(max_normal_flagged),
        "mean_dice": chosen["mean_dice_tumour"],
        "normal_flagged": chosen["normal_flagged"],
        "tumour_found": chosen["tumour_found"],
        "mean_dice_at_0.5": at_half.get("mean_dice_tumour"),
    }
    threshold_json = {
        **point.to_json(),
        "split": "val",
        "max_normal_flagged": float(max_normal_flagged),
        "images": len(truths),
        "mean_dice_tumour": chosen["mean_dice_tumour"],
        "normal_flagged": chosen["normal_flagged"],
        "tumour_found": chosen["tumour_found"],
        "table": table,
    }
    return validation, threshold_json


def segmentation_validation(
    model,
    config: TrainConfig,
    data: TrainingData,
    *,
    mirror: bool | None = None,
    max_normal_flagged: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(validation metrics for config.json, threshold.json content): the operating point chosen
    on every validation image (tumour and normal) predicted whole at the working size.
    ``mirror`` and ``max_normal_flagged`` default to the config's."""
    truths, maps, normal, seconds = validation_maps(model, config, data, mirror=mirror)
    limit = config.max_normal_flagged if max_normal_flagged is None else max_normal_flagged
    validation, threshold_json = operating_point_on_validation(truths, maps, normal, limit)
    settings = {
        "working_size": config.inference_size,
        "inference_window": config.inference_window,
        "tta_mirror": config.tta_mirror if mirror is None else bool(mirror),
    }
    validation.update(settings, seconds_per_image=round(seconds, 4))
    threshold_json.update(settings)
    return validation, threshold_json


def classification_validation(model, config, inputs: tuple[Any, np.ndarray]) -> dict[str, Any]:
    """The classifier's validation metrics for config.json, on the (arrays, positions) it was
    validated on (whole images or region crops)."""
    from btseg import metrics

    arrays, positions = inputs
    probabilities = _predict(model, arrays, positions, config.batch_size).astype(np.float64)
    truth = np.asarray(arrays.labels[positions]).astype(np.int64)
    report = metrics.classification_report(truth, probabilities, CLASS_NAMES)
    keys = (
        "n_samples",
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "macro_auc",
        "confusion_matrix",
        "per_class",
        "normal_vs_tumour",
    )
    validation = {key: report.get(key) for key in keys}
    validation["images"] = int(truth.size)
    return json_ready(validation)
