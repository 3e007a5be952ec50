"""Tables and text from evaluations, for the README, the CLI (`btseg evaluate` prints
format_evaluation_report) and the Compare page (metric_table). No TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from btseg.evaluation.classification import ClassifierEvaluation, load_classifier_evaluation
from btseg.evaluation.files import as_float, read_summary
from btseg.evaluation.segmentation import SegmentationEvaluation, load_segmentation_evaluation
from btseg.formatting import format_number, format_threshold
from btseg.registry import title_of

if TYPE_CHECKING:
    import pandas as pd


def load_evaluation(run_dir: str | Path) -> SegmentationEvaluation | ClassifierEvaluation:
    """The evaluation of any run, by the task its summary.json names."""
    summary = read_summary(run_dir)
    if summary.get("task") == "classification":
        return load_classifier_evaluation(run_dir)
    return load_segmentation_evaluation(run_dir)


METRIC_TABLE_COLUMNS = (
    "model", "operating_point", "threshold", "n_tumour_images", "n_normal_images",
    "mean_dice_tumour", "mean_dice_ci_low", "mean_dice_ci_high", "pooled_dice",
    "mean_iou_tumour", "sensitivity", "specificity", "normal_fp_rate", "pixel_auc",
    "average_precision",
)


def _block_interval(block: Mapping[str, Any], key: str) -> tuple[float, float]:
    interval = (block.get("ci95") or {}).get(key)
    if not interval:
        return math.nan, math.nan
    return as_float(interval[0]), as_float(interval[1])


def metric_table(evaluations: Mapping[str, SegmentationEvaluation],
                 include_best: bool = True) -> pd.DataFrame:
    """The segmenters' test metrics, one row per model and operating point.

    Args:
        evaluations: model name (run name) -> SegmentationEvaluation.
        include_best: add a row per model at the best threshold on test, labelled
            "best on test (optimistic)".

    Returns:
        DataFrame with METRIC_TABLE_COLUMNS: operating_point is "validation" or "best on test
        (optimistic)"; mean_dice_ci_low/high is the 95% interval (bootstrap over surrogate
        patients); sensitivity, specificity, pooled Dice and IoU are pooled over every test pixel
        at the original resolution; normal_fp_rate is the share of normal images with a predicted
        lesion; pixel_auc and average_precision do not depend on the threshold.
    """
    import pandas as pd

    rows = []
    for name, evaluation in evaluations.items():
        summary = evaluation.summary
        blocks = [("validation", summary.get("at_validation_threshold") or {})]
        if include_best and summary.get("best_on_test"):
            blocks.append(("best on test (optimistic)", summary["best_on_test"]))
        for label, block in blocks:
            low, high = _block_interval(block, "mean_dice_tumour")
            rows.append({
                "model": name,
                "operating_point": label,
                "threshold": as_float(block.get("threshold")),
                "n_tumour_images": summary.get("n_tumour_images"),
                "n_normal_images": summary.get("n_normal_images"),
                "mean_dice_tumour": as_float(block.get("mean_dice_tumour")),
                "mean_dice_ci_low": low,
                "mean_dice_ci_high": high,
                "pooled_dice": as_float(block.get("pooled_dice")),
                "mean_iou_tumour": as_float(block.get("mean_iou_tumour")),
                "sensitivity": as_float(block.get("sensitivity")),
                "specificity": as_float(block.get("specificity")),
                "normal_fp_rate": as_float(block.get("normal_fp_rate")),
                "pixel_auc": as_float(summary.get("pixel_auc")),
                "average_precision": as_float(summary.get("average_precision")),
            })
    return pd.DataFrame(rows, columns=list(METRIC_TABLE_COLUMNS))


def format_metric_table(table: pd.DataFrame) -> str:
    """metric_table's rows as a Markdown table (3 decimals; the 95% CI in brackets)."""
    lines = [
        "| Model | Operating point | Threshold | Mean Dice, tumour images [95% CI] | Pooled Dice "
        "| Mean IoU | Sensitivity | Specificity | Normal images flagged | Pixel AUC | AP |",
        "|" + "---|" * 11,
    ]
    for row in table.to_dict("records"):
        interval = ""
        if not math.isnan(row["mean_dice_ci_low"]):
            interval = (f" [{format_number(row['mean_dice_ci_low'])}, "
                        f"{format_number(row['mean_dice_ci_high'])}]")
        flagged = row["normal_fp_rate"]
        flagged_text = "–" if math.isnan(flagged) else f"{100 * flagged:.1f}%"
        lines.append(
            f"| {title_of(str(row['model']))} | {row['operating_point']} | "
            f"{format_threshold(row['threshold'])} | "
            f"{format_number(row['mean_dice_tumour'])}{interval} | {format_number(row['pooled_dice'])} | "
            f"{format_number(row['mean_iou_tumour'])} | {format_number(row['sensitivity'])} | "
            f"{format_number(row['specificity'])} | {flagged_text} | {format_number(row['pixel_auc'])} | "
            f"{format_number(row['average_precision'])} |"
        )
    return "\n".join(lines)


def format_classifier_summary(evaluation: ClassifierEvaluation) -> str:
    """A few lines on the classifier's test results (accuracy, balanced accuracy, macro AUC
    with its 95% interval, per-class recall, calibration)."""
    summary = evaluation.summary
    ci = summary.get("ci95") or {}

    def with_ci(key: str) -> str:
        interval = ci.get(key)
        text = format_number(summary.get(key))
        if interval and interval[0] is not None:
            text += f" [{format_number(interval[0])}, {format_number(interval[1])}]"
        return text

    recalls = ", ".join(
        f"{name} {format_number((values or {}).get('recall'))}"
        for name, values in (summary.get("per_class") or {}).items()
    )
    binary = summary.get("normal_vs_tumour") or {}
    return "\n".join([
        f"Classifier on {summary.get('n_test_images')} test images: accuracy "
        f"{format_number(summary.get('accuracy'))}, balanced accuracy {with_ci('balanced_accuracy')}, "
        f"macro AUC {with_ci('macro_auc')} (95% CI over surrogate patients).",
        f"Recall per class: {recalls}. Normal vs tumour AUC {format_number(binary.get('auc'))}; "
        f"calibration error (ECE) {format_number(summary.get('ece'))}.",
    ])


def format_verdict_summary(verdict: Mapping[str, Any]) -> str:
    """Two lines on the image-level verdict (balanced accuracy with its interval, recall by
    class)."""
    interval = (verdict.get("ci95") or {}).get("balanced_accuracy")
    text = format_number(verdict.get("balanced_accuracy"))
    if interval and interval[0] is not None:
        text += f" [{format_number(interval[0])}, {format_number(interval[1])}]"
    recalls = ", ".join(f"{name} {format_number(value)}"
                        for name, value in (verdict.get("recall") or {}).items())
    return (
        f"Verdict on {verdict.get('n_images')} whole test images ({title_of(verdict.get('segmentation_run', '?'))} "
        f"+ classifier, as served): balanced accuracy {text} (chance "
        f"{format_number(verdict.get('chance_balanced_accuracy'))}); recall {recalls}."
    )


def format_evaluation_report(run_dirs: Mapping[str, str | Path] | Iterable[str | Path]) -> str:
    """What `btseg evaluate` prints: the segmenters' metric table, the classifier's summary,
    how to read them, and any warning recorded during evaluation.

    Args:
        run_dirs: evaluated run folders or their evaluation/ folders (evaluate_all's result,
            or a list).

    Raises:
        RunError: an evaluation cannot be read.
    """
    folders = list(run_dirs.values()) if isinstance(run_dirs, Mapping) else list(run_dirs)
    segmenters: dict[str, SegmentationEvaluation] = {}
    classifiers: list[ClassifierEvaluation] = []
    for folder in folders:
        loaded = load_evaluation(folder)
        if isinstance(loaded, ClassifierEvaluation):
            classifiers.append(loaded)
        else:
            segmenters[loaded.model] = loaded
    parts = []
    if segmenters:
        first = next(iter(segmenters.values())).summary
        parts.append(
            f"Segmentation on the test split ({first.get('n_test_images')} images: "
            f"{first.get('n_tumour_images')} with a tumour, {first.get('n_normal_images')} "
            "normal), at the original resolution:"
        )
        parts.append(format_metric_table(metric_table(segmenters)))
        parts.append(
            "Read it so: the validation threshold is each model's operating point, chosen "
            "without the test images; the 'best on test' row is optimistic. Mean Dice averages "
            "the test images with a tumour; normal images count only in 'normal images "
            "flagged' (any predicted lesion). Pooled metrics sum every pixel, so large lesions "
            "dominate them."
        )
    for classifier in classifiers:
        parts.append(format_classifier_summary(classifier))
        if classifier.verdict is not None:
            parts.append(format_verdict_summary(classifier.verdict))
    for evaluation in [*segmenters.values(), *classifiers]:
        for warning in evaluation.summary.get("warnings") or []:
            parts.append(f"Warning ({title_of(evaluation.summary.get('model', '?'))}): {warning}")
    if not parts:
        return "No evaluation to report."
    return "\n\n".join(parts)
