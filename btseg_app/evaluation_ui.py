"""Cached evaluation loaders and the messages the Thresholds and Compare pages share.

Evaluations are read by btseg.evaluation (no TensorFlow) and kept with st.cache_resource, keyed
by the run folder and a signature of its files, so every session shares one copy and a new
`btseg evaluate` is picked up on the next rerun. The objects are read-only for the pages.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from btseg import config, evaluation, registry, runs, viz
from btseg.data.images import postprocess, read_image
from btseg.data.labelme import lesions_mask, read_annotation
from btseg.errors import AnnotationError, BtsegError

SEGMENTATION_RUNS = tuple(spec.run for spec in registry.SEGMENTERS)
#: Longest side of the test images shown beside their predictions.
DISPLAY_SIDE = 512
#: Outline of the annotated lesion on every panel.
TRUTH_COLOR = "#FFD400"


# --------------------------------------------------------------------------------------------
# Signatures and loaders


def folder_signature(run_dir: Path) -> tuple:
    """(relative name, size, mtime_ns) of the run's top-level files and its evaluation files."""
    entries = []
    for folder in (run_dir, evaluation.evaluation_dir(run_dir)):
        try:
            children = sorted(folder.iterdir())
        except OSError:
            continue
        for child in children:
            try:
                status = child.stat()
            except OSError:
                continue
            if child.is_file():
                entries.append((str(child.relative_to(run_dir)), status.st_size, status.st_mtime_ns))
    return tuple(entries)


@st.cache_resource(show_spinner="Reading the segmentation evaluation…", max_entries=8)
def _segmentation(run_dir: str, signature: tuple):
    return evaluation.load_segmentation_evaluation(Path(run_dir))


def load_segmentation(run_dir: Path):
    """btseg.evaluation.SegmentationEvaluation of a run folder (shared, read-only).

    Raises RunError (the evaluation or the run is missing or unreadable)."""
    return _segmentation(str(run_dir), folder_signature(run_dir))


@st.cache_resource(show_spinner="Reading the classifier evaluation…", max_entries=4)
def _classifier(run_dir: str, signature: tuple):
    return evaluation.load_classifier_evaluation(Path(run_dir))


def load_classifier(run_dir: Path):
    """btseg.evaluation.ClassifierEvaluation of a run folder (shared, read-only)."""
    return _classifier(str(run_dir), folder_signature(run_dir))


@st.cache_data(show_spinner=False, max_entries=8)
def _history(path: str, stamp: tuple):
    import pandas as pd

    return pd.read_csv(path)


def load_history(run_dir: Path):
    """history.csv of a run as a DataFrame, or None when it is missing or unreadable."""
    path = run_dir / runs.HISTORY_FILE
    try:
        status = path.stat()
        return _history(str(path), (status.st_size, status.st_mtime_ns))
    except (OSError, ValueError):
        return None


@st.cache_data(show_spinner=False, max_entries=64)
def _display_image(image_path: str, annotation_path: str, stamp: tuple, side: int):
    pixels = read_image(image_path).pixels
    small, _ = viz.downscale(pixels, side)
    truth = np.zeros(small.shape[:2], dtype=np.uint8)
    note = ""
    if annotation_path:
        try:
            lesions = read_annotation(annotation_path, image_shape=pixels.shape[:2]).lesions
            truth = lesions_mask(lesions, pixels.shape[:2], target_shape=small.shape[:2])
        except AnnotationError as error:
            note = str(error)
    return small, truth, note


def display_image(row, side: int = DISPLAY_SIDE) -> tuple[np.ndarray, np.ndarray, str]:
    """A test image for display: ((h, w) uint8 gray at most `side` px, (h, w) {0,1} true mask,
    a note when the annotation could not be read). `row` is the image's row of the tidy table.

    Raises ImageError when the image cannot be decoded."""
    image_path, annotation_path = str(row["image_path"]), str(row["annotation_path"] or "")
    stamp = []
    for path in (image_path, annotation_path):
        try:
            status = Path(path).stat() if path else None
        except OSError:
            status = None
        stamp.append((status.st_size, status.st_mtime_ns) if status else (-1, -1))
    return _display_image(image_path, annotation_path, tuple(stamp), side)


# --------------------------------------------------------------------------------------------
# Probability maps and panels


@st.cache_resource(show_spinner="Reading the test predictions…", max_entries=4)
def _probabilities(run_dir: str, signature: tuple) -> tuple[dict[str, int], np.ndarray]:
    image_ids, probabilities = _segmentation(run_dir, signature).probabilities()
    return {image_id: index for index, image_id in enumerate(image_ids)}, probabilities


def probability_map(segmentation, image_id: str) -> np.ndarray | None:
    """(S, S) float16 letterboxed test probabilities of one image, or None if not predicted."""
    run_dir = Path(segmentation.run_dir)
    index, probabilities = _probabilities(str(run_dir), folder_signature(run_dir))
    position = index.get(str(image_id))
    return None if position is None else probabilities[position]


def probability_at_display(probabilities: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(S, S) letterboxed model-size probabilities -> (h, w) float32 on the display image."""
    return postprocess(np.asarray(probabilities, dtype=np.float32), shape)


def comparison_panels(evaluations: dict, image_id: str, image: np.ndarray, truth: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """{"truth": image with the true outline, run name: its prediction at its validation
    threshold with the true outline}, each (h, w, 3) uint8."""
    panels = {"truth": viz.outline_mask(image, truth, TRUTH_COLOR)}
    for name, segmentation in evaluations.items():
        probabilities = probability_map(segmentation, image_id)
        if probabilities is None:
            probability = np.zeros(image.shape[:2], dtype=np.float32)
        else:
            probability = probability_at_display(probabilities, image.shape[:2])
        panels[name] = viz.prediction_overlay(
            image, probability, segmentation.validation_threshold, color=viz.model_color(name),
            truth=truth, truth_color=TRUTH_COLOR,
        )
    return panels


def side_by_side(panels: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Panels of one height joined left to right with a white gap."""
    height = max(panel.shape[0] for panel in panels)
    parts = []
    for index, panel in enumerate(panels):
        if index:
            parts.append(np.full((height, gap, 3), 255, dtype=np.uint8))
        parts.append(panel)
    return np.concatenate(parts, axis=1)


# --------------------------------------------------------------------------------------------
# Tables and text (pure; the pages draw them)


def metrics_at(segmentation, threshold: float) -> dict[str, float]:
    """Every number the Thresholds page shows at one threshold.

    Pixel metrics and counts are exact at `threshold` (the score histogram); per-image numbers
    (mean Dice of tumour images, normal images flagged, tumour images found) are at the nearest
    sweep threshold, which is `threshold` itself for the slider's values.
    """
    counts = segmentation.confusion_at(threshold)
    pixel = segmentation.metrics_at(threshold)
    per_image = segmentation.per_image_at(threshold)
    tumour = per_image[per_image["tumour"].astype(bool)]
    normal = per_image[per_image["label"] == "normal"]
    return {
        **pixel,
        "mean_dice": float(tumour["dice"].mean()) if len(tumour) else math.nan,
        "mean_iou": float(tumour["iou"].mean()) if len(tumour) else math.nan,
        "normal_fp_rate": float(normal["predicted_lesion"].mean()) if len(normal) else math.nan,
        "tumour_detection_rate": (
            float(tumour["predicted_lesion"].mean()) if len(tumour) else math.nan
        ),
        "tp": int(counts.tp), "fp": int(counts.fp), "fn": int(counts.fn), "tn": int(counts.tn),
    }


def _text(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _with_interval(value, interval) -> str:
    text = _text(value)
    if interval and interval[0] is not None and not math.isnan(float(interval[0])):
        text += f"  [{_text(interval[0])}, {_text(interval[1])}]"
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
    names = list(evaluations)
    table = evaluation.metric_table(evaluations)
    validation_rows = {row["model"]: row for row in table.to_dict("records")
                       if row["operating_point"] == "validation"}
    best_rows = {row["model"]: row for row in table.to_dict("records")
                 if row["operating_point"] != "validation"}
    rows = []

    def add(label: str, values: dict, texts: dict) -> None:
        row = {"metric": label}
        row.update({viz.model_label(name): texts[name] for name in names})
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
        add(label, values, {name: _text(values[name]) for name in names})
    thresholds = {name: float(validation_rows[name]["threshold"]) for name in names}
    rows.append({"metric": "Validation threshold (operating point)",
                 **{viz.model_label(name): f"{thresholds[name]:.4g}" for name in names},
                 **({"difference": ""} if len(names) == 2 else {})})
    if all(name in best_rows for name in names):
        values = {name: float(best_rows[name]["mean_dice_tumour"]) for name in names}
        texts = {name: f"{_text(values[name])} at {float(best_rows[name]['threshold']):.4g}"
                 for name in names}
        add("Mean Dice at the best threshold on test (optimistic)", values, texts)
    return pd.DataFrame(rows)


def paired_per_image(evaluations: dict) -> pd.DataFrame:
    """Test images of both evaluations with each model's Dice and predicted area at its
    validation threshold: image_id, label, subtype, size_bucket, true_area_percent, tumour,
    dice_<run>, pred_area_<run>, flagged_<run> (a lesion predicted)."""
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
                model: str = "attention_unet", baseline: str = "basic_unet") -> list[str]:
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

    Returns {"empty": viz.empty_prediction_scores of the test pixels, "models": {run:
    {"accuracy", "dice", "threshold", "predicted_pixels"}}, "text": Markdown}.
    """
    first = next(iter(evaluations.values()))
    positives, negatives = (int(np.sum(part)) for part in first.histogram)
    empty = viz.empty_prediction_scores(positives, negatives)
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
            f"- **{viz.model_label(name)}** at its validation threshold "
            f"{values['threshold']:.4g}: pixel accuracy {100 * values['accuracy']:.2f}% "
            f"({gain:+.2f} points against predicting nothing), pooled Dice "
            f"{_text(values['dice'])}"
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
# Messages


def _custom_data_dir() -> str | None:
    """The dataset folder when it is not the default one (commands must then name it)."""
    data_dir = config.data_dir()
    try:
        default = data_dir.resolve() == config.default_data_dir().resolve()
    except OSError:
        default = False
    return None if default else str(data_dir)


def train_command(run_name: str) -> str:
    """'attention_unet' -> 'btseg train --model attention' (with --data for another dataset)."""
    key = {name: key for key, name in runs.RUN_NAMES.items()}.get(run_name, run_name)
    data_dir = _custom_data_dir()
    return f"btseg train --model {key}" + (f" --data {data_dir}" if data_dir else "")


def evaluate_command(run_name: str) -> str:
    """'attention_unet' -> 'btseg evaluate --models attention' (with --data when needed)."""
    return evaluation.evaluate_command(config.models_dir() / run_name, _custom_data_dir())


@st.cache_data(show_spinner=False, max_entries=16)
def _model_fingerprint(run_dir: str, stamp: tuple) -> str:
    # btseg.evaluate imports TensorFlow only to run a model; its fingerprint is plain hashing.
    from btseg.evaluate import model_fingerprint

    return model_fingerprint(run_dir)


def staleness(result) -> list[str]:
    """Why an evaluation may no longer describe the run and dataset in use ([] when current):
    it was made on another dataset folder, or the model was trained again since."""
    summary = result.summary
    run_dir = Path(result.run_dir)
    reasons = []
    evaluated_on = summary.get("data_dir")
    if evaluated_on:
        try:
            same = Path(evaluated_on).resolve() == config.data_dir().resolve()
        except OSError:
            same = False
        if not same:
            reasons.append(f"it was made on the dataset at `{evaluated_on}`, not on the one "
                           f"loaded now (`{config.data_dir()}`)")
    stamp = []
    for name in (runs.MODEL_FILE, runs.THRESHOLD_FILE):
        try:
            status = (run_dir / name).stat()
            stamp.append((name, status.st_size, status.st_mtime_ns))
        except OSError:
            stamp.append((name, -1, -1))
    recorded = summary.get("model_fingerprint")
    if recorded and recorded != _model_fingerprint(str(run_dir), tuple(stamp)):
        reasons.append("the model was trained again after it")
    return reasons


def stale_warning(result, run_name: str) -> None:
    """st.warning with the command that refreshes an out-of-date evaluation (nothing if current)."""
    reasons = staleness(result)
    if reasons:
        st.warning(
            f"The evaluation of the {viz.model_label(run_name)} may be out of date: "
            f"{'; '.join(reasons)}. Refresh it with `{evaluate_command(run_name)}`.",
            icon=":material/history:",
        )


def missing_evaluation_box(run_name: str, error: BtsegError | None = None) -> None:
    """Say why a run has no readable evaluation and give the exact commands that make one."""
    run_dir = config.models_dir() / run_name
    label = viz.model_label(run_name)
    if not runs.is_complete(run_dir):
        st.info(
            f"**The {label} is not trained yet** (no complete run folder at `{run_dir}`). "
            "Train it, then evaluate it on the test split:",
            icon=":material/model_training:",
        )
        st.code(f"{train_command(run_name)}\n{evaluate_command(run_name)}", language="bash")
        return
    if not evaluation.evaluation_dir(run_dir).is_dir():
        st.info(
            f"**The {label} has not been evaluated on the test split yet.** Run:",
            icon=":material/analytics:",
        )
        st.code(evaluate_command(run_name), language="bash")
        return
    st.error(
        f"**The evaluation of the {label} cannot be read.**\n\n{error or ''}",
        icon=":material/error:",
    )
    st.code(evaluate_command(run_name), language="bash")
