"""Thresholds page: how each segmenter behaves across thresholds on the test split, and the
classifier's ROC curves, confusion matrix and calibration.

Widgets -> btseg.evaluation (read from the run folders, no TensorFlow) -> btseg.viz -> drawing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from btseg import config, metrics, viz
from btseg.errors import BtsegError
from btseg.evaluation import curve_points
from btseg.formatting import format_interval, format_number, format_threshold, interval_note
from btseg_app import common, evaluation_ui

STUDY_THRESHOLDS = metrics.STUDY_THRESHOLDS
PIXEL_LABELS = ("background", "tumour")


METRIC_ROWS = (
    ("mean_dice", "Mean Dice (tumour images)"),
    ("mean_iou", "Mean IoU (tumour images)"),
    ("dice", "Pooled Dice"),
    ("iou", "Pooled IoU"),
    ("sensitivity", "Sensitivity (recall)"),
    ("specificity", "Specificity"),
    ("precision", "Precision"),
    ("f1", "F1"),
    ("accuracy", "Pixel accuracy"),
    ("tumour_detection_rate", "Tumour images found"),
    ("normal_fp_rate", "Normal images flagged"),
)


# --------------------------------------------------------------------------------------------
# Widgets


def model_ui() -> str:
    """The segmenter to study (attention U-Net by default)."""
    choice = st.segmented_control(
        "Segmentation model",
        list(evaluation_ui.SEGMENTATION_RUNS),
        default=evaluation_ui.SEGMENTATION_RUNS[0],
        format_func=viz.model_label,
        key="thresholds_model",
    )
    return choice or evaluation_ui.SEGMENTATION_RUNS[0]


def threshold_ui(model: str, evaluation) -> float:
    """A threshold slider over the evaluation's sweep thresholds (log-spaced, so the slider is
    a log scale from 1e-4 to 0.99), starting at the validation threshold, with quick settings."""
    options = [float(value) for value in evaluation.thresholds]
    validation, best = evaluation.validation_threshold, evaluation.best_threshold
    key = f"thresholds_threshold_{model}"
    if st.session_state.get(key) not in options:
        st.session_state[key] = evaluation.nearest_sweep_threshold(validation)

    def set_to(value: float) -> None:
        st.session_state[key] = evaluation.nearest_sweep_threshold(value)

    slider_column, buttons_column = st.columns([5, 4], vertical_alignment="bottom")
    with slider_column:
        threshold = st.select_slider(
            "Threshold (log scale): a pixel is tumour when its probability is at least this",
            options=options,
            format_func=format_threshold,
            key=key,
        )
    with buttons_column:
        left, middle, right = st.columns(3)
        left.button(
            "Validation", key=f"thresholds_set_validation_{model}", icon=":material/flag:",
            on_click=set_to, args=(validation,), width="stretch",
            help=f"{format_threshold(validation)}: the operating point, chosen on the validation "
            "images only.",
        )
        if best is not None:
            middle.button(
                "Best on test", key=f"thresholds_set_best_{model}", icon=":material/warning:",
                on_click=set_to, args=(best,), width="stretch",
                help=f"{format_threshold(best)}: optimistic, picked by looking at the test answers.",
            )
        right.button("0.5", key=f"thresholds_set_half_{model}", on_click=set_to, args=(0.5,),
                     width="stretch", help="The default of most code, and the study's first row.")
    return float(threshold)


# --------------------------------------------------------------------------------------------
# Segmentation sections


def draw_summary(evaluation, validation: float) -> None:
    summary = evaluation.summary
    at_validation = summary.get("at_validation_threshold", {}) or {}
    ci = at_validation.get("ci95", {}) or {}
    best = summary.get("best_on_test", {}) or {}
    interval = ci.get("mean_dice_tumour")
    flagged = at_validation.get("normal_fp_rate")
    common.metric_cards([
        ("Validation threshold", format_threshold(validation),
         "Chosen on the validation images (max mean Dice): the operating point."),
        ("Mean Dice at it", format_number(at_validation.get("mean_dice_tumour")),
         "Mean of per-image Dice over the test images with a tumour" + interval_note(interval) + "."),
        ("Pixel ROC AUC", format_number(summary.get("pixel_auc")),
         "Over every test pixel at original resolution."),
        ("Average precision", format_number(summary.get("average_precision")),
         "Area under the pixel precision-recall curve."),
        ("Normals flagged", "–" if flagged is None else f"{100 * flagged:.0f}%",
         "Normal test images with any predicted lesion at the validation threshold."),
    ])
    parts = [
        f"Test split: {summary.get('n_test_images', '?')} images, "
        f"{summary.get('n_tumour_images', '?')} with a tumour, "
        f"{summary.get('n_normal_images', '?')} normal; metrics at the original resolution."
    ]
    if interval:
        parts.append(f"Mean Dice 95% interval (bootstrap over patients): {format_interval(interval)}.")
    if best.get("threshold") is not None:
        parts.append(
            f"Best on test: threshold {format_threshold(best['threshold'])}, mean Dice "
            f"{format_number(best.get('mean_dice_tumour'))} — optimistic, since it was chosen on the test answers."
        )
    st.caption(" ".join(parts))


def draw_threshold_section(evaluation, model: str, validation: float) -> float:
    st.header("Move the threshold", divider="gray")
    threshold = threshold_ui(model, evaluation)
    chosen = evaluation.results_at(threshold)
    reference = evaluation.results_at(validation)

    cards = st.columns(5)
    for column, (key, label) in zip(
        cards,
        (("mean_dice", "Mean Dice"), ("dice", "Pooled Dice"), ("iou", "Pooled IoU"),
         ("sensitivity", "Sensitivity"), ("specificity", "Specificity")),
        strict=True,
    ):
        delta = chosen[key] - reference[key]
        column.metric(
            label, format_number(chosen[key]), border=True,
            delta=None if threshold == validation or math.isnan(delta) else f"{delta:+.3f}",
            help="Below the value: the change against the validation threshold (the operating "
            "point).",
        )
    left, right = st.columns([2, 3])
    with left:
        matrix = np.array([[chosen["tn"], chosen["fp"]], [chosen["fn"], chosen["tp"]]])
        figure = viz.confusion_matrix_figure(
            matrix, PIXEL_LABELS, title=f"Pixels at threshold {format_threshold(threshold)}",
            subtitle="Every test pixel at original resolution; exact at this threshold",
            compact=True,
        )
        st.plotly_chart(figure, key="thresholds_pixel_confusion", config={"displaylogo": False},
                        width="stretch")
    with right:
        rows = [
            {
                "metric": label,
                f"at {format_threshold(threshold)}": chosen[key],
                f"validation {format_threshold(validation)}": reference[key],
            }
            for key, label in METRIC_ROWS
        ]
        table = pd.DataFrame(rows)
        st.dataframe(
            table, hide_index=True, width="stretch", key="thresholds_metric_table",
            height=36 + 35 * len(table),
            column_config={
                column: st.column_config.NumberColumn(column, format="%.3f")
                for column in table.columns[1:]
            },
        )
        st.caption(
            f"Pixel counts: TP {chosen['tp']:,} · FP {chosen['fp']:,} · FN {chosen['fn']:,} · "
            f"TN {chosen['tn']:,}. Pixel F1 equals pooled Dice. Mean Dice averages the Dice of "
            "each test image with a tumour; normal images are counted separately as "
            "\"flagged\" when any lesion is predicted."
        )
    return threshold


def draw_curves(evaluation, model: str, threshold: float, validation: float, best: float | None) -> None:
    sweep = evaluation.sweep
    st.plotly_chart(
        viz.threshold_curves_figure(
            sweep, chosen=threshold, validation_threshold=validation, best_on_test=best,
            subtitle="Pooled over every test pixel; mean Dice over the test images with a tumour",
        ),
        key="thresholds_curves", config={"displaylogo": False}, width="stretch",
    )
    left, right = st.columns(2)
    with left:
        if "normal_fp_rate" in sweep.columns:
            st.plotly_chart(
                viz.normal_fp_figure(
                    {model: (sweep["threshold"], sweep["normal_fp_rate"])},
                    chosen=threshold, validation_threshold=validation,
                    n_normal_images=evaluation.summary.get("n_normal_images"),
                ),
                key="thresholds_normal_fp", config={"displaylogo": False}, width="stretch",
            )
    with right:
        per_image = evaluation.per_image_at(threshold)
        st.plotly_chart(
            viz.size_bucket_figure(
                {model: per_image[per_image["tumour"].astype(bool)]},
                title=f"Mean Dice by lesion size at {format_threshold(threshold)}",
                subtitle="Bucket: share of the image the true lesion covers",
            ),
            key="thresholds_size_buckets", config={"displaylogo": False}, width="stretch",
        )


def draw_roc_pr(evaluation, model: str, validation: float) -> None:
    st.header("Pixel ROC and precision-recall", divider="gray")
    curves = evaluation.curves
    summary = evaluation.summary
    points = curve_points(evaluation, validation)
    log_fpr = st.toggle(
        "Log false-positive axis", value=True, key="thresholds_log_fpr",
        help="Tumour pixels are rare, so the useful part of the ROC is at tiny false-positive rates.",
    )
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            viz.roc_figure(
                {model: (curves["roc_fpr"], curves["roc_tpr"])},
                areas={model: summary.get("pixel_auc")}, points={model: points.roc}, log_fpr=log_fpr,
            ),
            key="thresholds_roc", config={"displaylogo": False}, width="stretch",
        )
    with right:
        st.plotly_chart(
            viz.pr_figure(
                {model: (curves["pr_recall"], curves["pr_precision"])},
                areas={model: summary.get("average_precision")}, prevalence=points.prevalence,
                points={model: points.pr},
            ),
            key="thresholds_pr", config={"displaylogo": False}, width="stretch",
        )
    st.caption(
        "The diamond is the validation threshold. With tumour pixels this rare, a ROC AUC near 1 "
        "says little: the precision-recall curve and its average precision show how many "
        "predicted pixels are really tumour."
    )


STUDY_COLUMNS = (
    ("mean_dice", "Mean Dice"),
    ("mean_iou", "Mean IoU"),
    ("dice", "Pooled Dice"),
    ("iou", "Pooled IoU"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("precision", "Precision"),
    ("accuracy", "Pixel accuracy"),
    ("tumour_detection_rate", "Tumours found"),
    ("normal_fp_rate", "Normals flagged"),
)


def draw_study_table(evaluation, validation: float) -> None:
    st.header("The study's thresholds", divider="gray")
    rows = []
    for threshold, label in [*((value, format_threshold(value)) for value in STUDY_THRESHOLDS),
                             (validation, f"{format_threshold(validation)} (validation)")]:
        values = evaluation.results_at(threshold)
        rows.append({"threshold": label, **{name: values[key] for key, name in STUDY_COLUMNS}})
    table = pd.DataFrame(rows)
    st.dataframe(
        table, hide_index=True, width="stretch", key="thresholds_study_table",
        height=36 + 35 * len(table),
        column_config={
            "threshold": st.column_config.TextColumn("threshold"),
            **{name: st.column_config.NumberColumn(name, format="%.3f", width="small")
               for _, name in STUDY_COLUMNS},
        },
    )
    st.caption(
        "The BTXRD study swept these thresholds and reported the best on test; the attention "
        "U-Net it describes reached its best mean Dice at 0.001. Here the operating point is the "
        f"validation threshold ({format_threshold(validation)}, last row); a best row picked from "
        "this table is optimistic. Mean Dice and IoU average the test images with a tumour; "
        "\"tumours found\" and \"normals flagged\" count images with any predicted lesion."
    )


def draw_segmentation(model: str) -> None:
    run_dir = config.models_dir() / model
    try:
        evaluation = evaluation_ui.load_segmentation(run_dir)
    except BtsegError as error:
        evaluation_ui.missing_evaluation_box(model, error)
        return
    evaluation_ui.stale_warning(evaluation, model)
    validation = evaluation.validation_threshold
    best = evaluation.best_threshold
    draw_summary(evaluation, validation)
    threshold = draw_threshold_section(evaluation, model, validation)
    draw_curves(evaluation, model, threshold, validation, best)
    draw_roc_pr(evaluation, model, validation)
    draw_study_table(evaluation, validation)


# --------------------------------------------------------------------------------------------
# Classifier


def draw_classifier() -> None:
    st.header("Classifier: normal, benign, malignant", divider="gray")
    run_name = "classifier"
    try:
        evaluation = evaluation_ui.load_classifier(config.models_dir() / run_name)
    except BtsegError as error:
        evaluation_ui.missing_evaluation_box(run_name, error)
        return
    evaluation_ui.stale_warning(evaluation, run_name)
    summary = evaluation.summary
    if summary.get("input_mode") == "region":
        st.caption(
            ":material/crop_free: This classifier was trained and is tested on regions, not whole "
            "images: on a test image with a tumour, the box of its largest annotated lesion with a "
            f"{(summary.get('region') or {}).get('margin', 0.15):.0%} margin; on a normal image, a "
            "region of similar size sampled on the bone. Its numbers say how well it tells what "
            "a region is once the lesion has been found."
        )
    ci = summary.get("ci95", {}) or {}
    macro_ci = ci.get("macro_auc")
    common.metric_cards([
        ("Accuracy", format_number(summary.get("accuracy")), None),
        ("Balanced accuracy", format_number(summary.get("balanced_accuracy")),
         "Mean recall of the three classes: malignant images count as much as normal ones."),
        ("Macro AUC", format_number(summary.get("macro_auc")),
         "Mean of the one-vs-rest AUCs" + interval_note(macro_ci) + "."),
        ("Calibration error (ECE)", format_number(summary.get("ece")),
         "Mean gap between confidence and accuracy over confidence bins."),
    ])
    if macro_ci:
        st.caption(f"Macro AUC 95% interval (bootstrap over patients): {format_interval(macro_ci)}. "
                   f"{len(evaluation.predictions)} test images.")

    names = evaluation.class_names or list(config.CLASS_NAMES)
    left, right = st.columns(2)
    with left:
        roc = evaluation.class_roc_curves()
        st.plotly_chart(
            viz.class_roc_figure(
                {name: (curve["fpr"], curve["tpr"]) for name, curve in roc.items()},
                areas={name: curve["auc"] for name, curve in roc.items()},
                macro_auc=summary.get("macro_auc"),
                macro_ci=tuple(macro_ci) if macro_ci else None,
            ),
            key="thresholds_class_roc", config={"displaylogo": False}, width="stretch",
        )
    with right:
        st.plotly_chart(
            viz.confusion_matrix_figure(
                evaluation.confusion_matrix(), names, title="Classifier confusion matrix",
                subtitle="Test images; shares of the true class (recall on the diagonal)",
                colors=[viz.CLASS_COLORS.get(name, "#5b6b75") for name in names],
            ),
            key="thresholds_class_confusion", config={"displaylogo": False}, width="stretch",
        )
    left, right = st.columns(2)
    with left:
        st.markdown("**Per class** (one class against the rest)")
        st.dataframe(
            evaluation.per_class_table(),
            hide_index=True, width="stretch", key="thresholds_class_table",
            column_config={
                "class": st.column_config.TextColumn("class", width="small"),
                "precision": st.column_config.NumberColumn("precision", format="%.3f"),
                "recall": st.column_config.NumberColumn("recall", format="%.3f"),
                "f1": st.column_config.NumberColumn("F1", format="%.3f"),
                "auc": st.column_config.NumberColumn("AUC", format="%.3f"),
                "average_precision": st.column_config.NumberColumn("AP", format="%.3f"),
                "support": st.column_config.NumberColumn("images", format="%d"),
            },
        )
        st.caption(
            "Recall of a class is the diagonal share of its row in the confusion matrix; "
            "balanced accuracy is the mean of the recalls, so the rare malignant class counts "
            "as much as the others. None: undefined (a class never predicted, or absent from "
            "the test split)."
        )
    with right:
        curve = evaluation.reliability_curve()
        calibration = evaluation.calibration
        before, after = st.tabs(["As trained", "After temperature scaling"])
        before.plotly_chart(
            viz.reliability_figure(
                curve["confidence"], curve["accuracy"], curve["count"], curve["edges"],
                ece=summary.get("ece"),
            ),
            key="thresholds_reliability", config={"displaylogo": False}, width="stretch",
        )
        if calibration is None:
            after.caption("No temperature fitted yet: run `btseg evaluate`.")
        else:
            scaled = {key: np.array([np.nan if value is None else value for value in values],
                                    dtype=np.float64)
                      for key, values in calibration["reliability_after"].items()}  # fmt: skip
            after.plotly_chart(
                viz.reliability_figure(
                    scaled["confidence"], scaled["accuracy"], scaled["count"], scaled["edges"],
                    ece=calibration.get("test_ece_after"),
                ),
                key="thresholds_reliability_after", config={"displaylogo": False},
                width="stretch",
            )
            st.caption(
                f"Temperature {calibration['temperature']:.2f}, fitted on "
                f"{calibration['validation_images']} validation images; expected calibration "
                f"error on test {format_number(calibration['test_ece_before'])} as trained, "
                f"{format_number(calibration['test_ece_after'])} after scaling. The dashboard and "
                "`btseg predict` show the scaled probabilities; the most probable class is "
                "unchanged."
            )


def draw_verdict() -> None:
    """The answer for a whole X-ray: normal, benign or malignant, as the pipeline serves it."""
    st.header("Verdict: the answer for a whole X-ray", divider="gray")
    try:
        evaluation = evaluation_ui.load_classifier(config.models_dir() / "classifier")
    except BtsegError:
        st.caption("Evaluate the classifier (and the attention U-Net) to see the verdict.")
        return
    verdict = evaluation.verdict
    if verdict is None:
        st.caption(
            "No verdict evaluation yet: it needs the attention U-Net and the classifier, both "
            "trained; then run `btseg evaluate`."
        )
        return
    st.caption(
        f"{verdict.get('n_images')} whole test images through the pipeline `btseg predict` "
        f"uses. Rule: {verdict.get('rule')}. Operating point of the "
        f"{viz.model_label(verdict.get('segmentation_run', ''))}: threshold "
        f"{format_threshold((verdict.get('operating_point') or {}).get('threshold'))}, smallest lesion "
        f"{100 * (verdict.get('operating_point') or {}).get('min_lesion_fraction', 0):.2g}% of the image."
    )
    recall = verdict.get("recall") or {}
    ci = verdict.get("ci95") or {}
    balanced_ci = ci.get("balanced_accuracy")
    common.metric_cards([
        ("Balanced accuracy", format_number(verdict.get("balanced_accuracy")),
         f"Chance is {format_number(verdict.get('chance_balanced_accuracy'))}"
         + interval_note(balanced_ci) + "."),
        *(
            (f"Recall {name}", format_number(recall.get(name)),
             "Share of the test images of this class given this verdict"
             + interval_note(ci.get(f"recall_{name}")) + ".")
            for name in ("normal", "benign", "malignant")
        ),
    ])
    names = list(verdict.get("classes") or config.CLASS_NAMES)
    st.plotly_chart(
        viz.confusion_matrix_figure(
            np.asarray(verdict["confusion"], dtype=np.int64)[:, : len(names)], names,
            title="Verdict confusion matrix",
            subtitle="Whole test images; shares of the true class (recall on the diagonal)",
            colors=[viz.CLASS_COLORS.get(name, "#5b6b75") for name in names],
        ),
        key="thresholds_verdict_confusion", config={"displaylogo": False}, width="stretch",
    )
    refused = int(verdict.get("inconclusive") or 0)
    st.caption(
        f"{refused} test image{'' if refused == 1 else 's'} refused by the input gate "
        f"(verdict inconclusive, counted as wrong); input gate: {verdict.get('input_gate', '–')}."
    )


# --------------------------------------------------------------------------------------------


def main() -> None:
    common.start_page("Thresholds", ":material/tune:")

    st.title("Thresholds")
    st.markdown(
        "How the segmentation models behave as the threshold moves, measured on the **test "
        "split** (patients the models never saw). The **validation threshold** is each model's "
        "operating point, chosen without looking at the test images; the **best threshold on "
        "test** is shown for reference and is **optimistic**."
    )
    model = model_ui()
    draw_segmentation(model)
    draw_verdict()
    draw_classifier()


main()
