"""Comparing segmenters' evaluations, and judging whether an evaluation is current: the tables
and text the Thresholds and Compare pages draw, as pure functions (no Streamlit, no TensorFlow).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg import metrics
from btseg.evaluation.files import BOOTSTRAP_RESAMPLES, model_fingerprint
from btseg.evaluation.report import metric_table
from btseg.evaluation.runner import evaluation_inputs, out_of_date_reasons
from btseg.evaluation.segmentation import SegmentationEvaluation
from btseg.formatting import format_number, format_threshold
from btseg.registry import MODELS, title_of
from btseg.runs import read_run_info

if TYPE_CHECKING:
    import pandas as pd

# --------------------------------------------------------------------------------------------
# One segmenter at its operating point


@dataclass(frozen=True)
class CurvePoints:
    """Where a segmenter's operating point sits on its pixel curves.

    Attributes:
        roc: (false-positive rate, sensitivity) at the threshold.
        pr: (recall, precision) at the threshold.
        prevalence: share of tumour pixels among the test pixels (the PR curve's chance
            level), or None without pixels.
    """

    roc: tuple[float, float]
    pr: tuple[float, float]
    prevalence: float | None


def curve_points(evaluation: SegmentationEvaluation, threshold: float | None = None
                 ) -> CurvePoints:
    """The ROC and PR points at `threshold` (default: the validation threshold, the operating
    point), exact from the pixel histogram, and the tumour-pixel prevalence."""
    if threshold is None:
        threshold = evaluation.validation_threshold
    values = evaluation.metrics_at(threshold)
    positives, negatives = (int(np.sum(part)) for part in evaluation.histogram)
    return CurvePoints(
        roc=(1.0 - float(values["specificity"]), float(values["sensitivity"])),
        pr=(float(values["sensitivity"]), float(values["precision"])),
        prevalence=positives / (positives + negatives) if positives + negatives else None,
    )


# --------------------------------------------------------------------------------------------
# Two segmenters on the same test images


def _with_interval(value, interval) -> str:
    text = format_number(value)
    if interval and interval[0] is not None and not math.isnan(float(interval[0])):
        text += f"  [{format_number(interval[0])}, {format_number(interval[1])}]"
    return text


#: (label, key in summary blocks, key of its interval in ci95 or None)
COMPARISON_ROWS = (
    ("Mean Dice, tumour images", "mean_dice_tumour", "mean_dice_tumour"),
    ("Mean IoU, tumour images", "mean_iou_tumour", "mean_iou_tumour"),
    ("Pooled Dice (all pixels)", "pooled_dice", "pooled_dice"),
    ("Sensitivity (pixels)", "sensitivity", None),
    ("Specificity (pixels)", "specificity", None),
    ("Precision (pixels)", "precision", None),
    ("Tumour images found", "tumour_detection_rate", "tumour_detection_rate"),
    ("Normal images flagged (lower is better)", "normal_fp_rate", "normal_fp_rate"),
)


def comparison_table(evaluations: dict) -> pd.DataFrame:
    """One row per metric, one column per model ("value  [95% CI]") and the difference
    (second model minus first). Values at each model's validation threshold; the threshold,
    pixel AUC and AP, and the optimistic best-on-test mean Dice follow."""
    import pandas as pd

    names = list(evaluations)
    table = metric_table(evaluations)
    validation_rows = {row["model"]: row for row in table.to_dict("records")
                       if row["operating_point"] == "validation"}
    best_rows = {row["model"]: row for row in table.to_dict("records")
                 if row["operating_point"] != "validation"}
    rows = []

    def add(label: str, values: dict, texts: dict) -> None:
        row = {"metric": label}
        row.update({title_of(name): texts[name] for name in names})
        if len(names) == 2:
            first, second = (values.get(name) for name in names)
            valid = all(v is not None and not math.isnan(float(v)) for v in (first, second))
            row["difference"] = f"{float(second) - float(first):+.3f}" if valid else "–"
        rows.append(row)

    for label, key, interval_key in COMPARISON_ROWS:
        values, texts = {}, {}
        for name in names:
            block = evaluations[name].summary.get("at_validation_threshold") or {}
            value = block.get(key)
            value = math.nan if value is None else float(value)
            values[name] = value
            interval = (block.get("ci95") or {}).get(interval_key) if interval_key else None
            texts[name] = _with_interval(value, interval)
        add(label, values, texts)
    for label, key in (("Pixel ROC AUC", "pixel_auc"), ("Average precision (pixels)",
                                                       "average_precision")):
        values = {name: float(validation_rows[name][key]) for name in names}
        add(label, values, {name: format_number(values[name]) for name in names})
    thresholds = {name: float(validation_rows[name]["threshold"]) for name in names}
    rows.append({"metric": "Validation threshold (operating point)",
                 **{title_of(name): format_threshold(thresholds[name]) for name in names},
                 **({"difference": ""} if len(names) == 2 else {})})
    if all(name in best_rows for name in names):
        values = {name: float(best_rows[name]["mean_dice_tumour"]) for name in names}
        texts = {name: f"{format_number(values[name])} at {format_threshold(best_rows[name]['threshold'])}"
                 for name in names}
        add("Mean Dice at the best threshold on test (optimistic)", values, texts)
    return pd.DataFrame(rows)


def paired_per_image(evaluations: dict) -> pd.DataFrame:
    """Test images of both evaluations with each model's Dice and predicted area at its
    validation threshold: image_id, label, subtype, size_bucket, true_area_percent, tumour,
    dice_<run>, pred_area_<run>, flagged_<run> (a lesion predicted)."""
    import pandas as pd

    merged = None
    for name, item in evaluations.items():
        table = item.per_image
        part = table[["image_id", "dice", "pred_area_px", "predicted_lesion"]].rename(columns={
            "dice": f"dice_{name}", "pred_area_px": f"pred_area_{name}",
            "predicted_lesion": f"flagged_{name}",
        })
        if merged is None:
            info = table[["image_id", "label", "subtype", "size_bucket", "true_area_percent",
                          "tumour"]].copy()
            info["size_bucket"] = info["size_bucket"].fillna("").astype(str)
            info["subtype"] = info["subtype"].fillna("").astype(str)
            merged = info.merge(part, on="image_id")
        else:
            merged = merged.merge(part, on="image_id")
    return merged if merged is not None else pd.DataFrame()


def split_mismatch(evaluations: dict) -> str | None:
    """A warning when the evaluations were not made on the same test split and data."""
    summaries = [item.summary for item in evaluations.values()]
    for key, what in (("split_id", "test splits"), ("data_fingerprint", "dataset versions")):
        values = {summary.get(key) for summary in summaries}
        if len(values) > 1:
            return (f"The models were evaluated on different {what}, so the per-image comparison "
                    "covers only the images they share. Re-evaluate both: `btseg evaluate`.")
    return None


def gallery_ids(paired: pd.DataFrame, mode: str, count: int, seed: int = 0,
                model: str = MODELS["attention"].run,
                baseline: str = MODELS["basic"].run) -> list[str]:
    """Image ids for the gallery.

    Modes: "Best" / "Worst" — tumour images by `model`'s Dice (ties by image id);
    "Biggest differences" — tumour images by |Dice(model) - Dice(baseline)|; "Random" — any test
    image, normal ones included, drawn with `seed`.
    """
    if paired.empty:
        return []
    tumours = paired[paired["tumour"].astype(bool)]
    if mode == "Best":
        ordered = tumours.sort_values([f"dice_{model}", "image_id"], ascending=[False, True])
    elif mode == "Worst":
        ordered = tumours.sort_values([f"dice_{model}", "image_id"], ascending=[True, True])
    elif mode == "Biggest differences":
        gap = (tumours[f"dice_{model}"] - tumours[f"dice_{baseline}"]).abs()
        ordered = tumours.assign(gap=gap).sort_values(["gap", "image_id"], ascending=[False, True])
    else:
        rng = np.random.default_rng(seed)
        positions = rng.permutation(len(paired))[:count]
        return paired.iloc[positions]["image_id"].astype(str).tolist()
    return ordered["image_id"].astype(str).head(count).tolist()


def pixel_accuracy_explanation(evaluations: dict) -> dict:
    """Numbers and Markdown on why pixel accuracy (and Keras' MeanIoU) mislead on this split.

    Returns {"empty": btseg.metrics.empty_prediction_scores of the test pixels, "models": {run:
    {"accuracy", "dice", "threshold", "predicted_pixels"}}, "text": Markdown}.
    """
    first = next(iter(evaluations.values()))
    positives, negatives = (int(np.sum(part)) for part in first.histogram)
    empty = metrics.empty_prediction_scores(positives, negatives)
    models = {}
    for name, item in evaluations.items():
        threshold = item.validation_threshold
        values = item.metrics_at(threshold)
        counts = item.confusion_at(threshold)
        models[name] = {"accuracy": values["accuracy"], "dice": values["dice"],
                        "threshold": threshold, "predicted_pixels": int(counts.tp + counts.fp)}
    total = positives + negatives
    lines = [
        f"On this test split tumour pixels are only **{100 * empty['tumour_share']:.2f}%** of "
        f"all {total:,} pixels. A model that predicts **no tumour anywhere** is right on every "
        f"background pixel, so it scores **{100 * empty['pixel_accuracy']:.2f}% pixel "
        "accuracy** while finding nothing: its Dice and tumour IoU are 0.",
        "",
        f"The Keras `MeanIoU` trap: averaging the background class in gives that empty "
        f"prediction a mean IoU of **{empty['keras_mean_iou']:.3f}** (background IoU "
        f"{empty['pixel_accuracy']:.3f} and tumour IoU 0, averaged), which looks like a "
        "half-decent model.",
        "",
    ]
    for name, values in models.items():
        gain = 100 * (values["accuracy"] - empty["pixel_accuracy"])
        lines.append(
            f"- **{title_of(name)}** at its validation threshold "
            f"{format_threshold(values['threshold'])}: pixel accuracy {100 * values['accuracy']:.2f}% "
            f"({gain:+.2f} points against predicting nothing), pooled Dice "
            f"{format_number(values['dice'])}"
            + (" — it predicts no tumour pixel at all." if values["predicted_pixels"] == 0
               else ".")
        )
    lines += [
        "",
        "So btseg reports tumour-only Dice and IoU, per image and pooled, with normal images "
        "counted separately; pixel accuracy and background-averaged IoU are never used to "
        "choose or compare models.",
    ]
    return {"empty": empty, "models": models, "text": "\n".join(lines)}


# --------------------------------------------------------------------------------------------
# Is an evaluation current?


def staleness(evaluation: Any, data_dir: str | Path, data_fingerprint: str | None,
              fingerprint: Callable[[Path], str] = model_fingerprint) -> list[str]:
    """Why an evaluation no longer describes the run and the dataset in use ([] when current).

    The rule is `btseg evaluate`'s (runner.out_of_date_reasons): another dataset (by its data
    fingerprint), another model file or threshold, or a changed attention U-Net under the
    classifier's verdict. The bootstrap resamples are the evaluation's own, since they are an
    option of `btseg evaluate` and not a property of the run.

    Args:
        evaluation: a SegmentationEvaluation or ClassifierEvaluation.
        data_dir: the dataset folder in use (named in the reasons).
        data_fingerprint: btseg.data.cache.data_fingerprint of its usable rows, or None when it
            cannot be opened.
        fingerprint: model_fingerprint, or a cached version of it.
    """
    run_dir = Path(evaluation.run_dir)
    summary = evaluation.summary
    config = read_run_info(run_dir)["config"]
    resamples = (summary.get("settings") or {}).get("bootstrap_resamples", BOOTSTRAP_RESAMPLES)
    inputs = evaluation_inputs(run_dir, config, data_fingerprint, int(resamples), fingerprint)
    return out_of_date_reasons(run_dir, inputs, summary, data_dir)
