"""Compare page: the basic U-Net against the attention U-Net on the same test images.

Widgets -> btseg.evaluation (read from the run folders, no TensorFlow) -> btseg.viz -> drawing.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from btseg import config, evaluation, registry, viz
from btseg.errors import BtsegError, ImageError
from btseg.formatting import format_number, format_threshold
from btseg_app import common, evaluation_ui

MODELS = tuple(reversed(evaluation_ui.SEGMENTATION_RUNS))  # the baseline first
GALLERY_SIZE = 6
GALLERY_COLUMNS = 3
GALLERY_MODES = ("Best", "Worst", "Biggest differences", "Random")


def draw_chart(figure, key: str, **kwargs):
    return st.plotly_chart(figure, key=key, config={"displaylogo": False}, width="stretch", **kwargs)


# --------------------------------------------------------------------------------------------
# Sections


def draw_metric_table(evaluations: dict) -> None:
    st.header("Test metrics with 95% intervals", divider="gray")
    table = evaluation.comparison_table(evaluations)
    st.dataframe(table, hide_index=True, width="stretch", key="compare_metric_table",
                 height=36 + 35 * len(table),
                 column_config={"metric": st.column_config.TextColumn("metric", width="large")})
    st.caption(
        "Each model at its own validation threshold (its operating point). Intervals: bootstrap "
        "over surrogate patients of the test split. \"Best on test\" re-picks the threshold on "
        "the test answers and is optimistic."
    )


def draw_roc_pr(evaluations: dict) -> None:
    st.header("Pixel ROC and precision-recall", divider="gray")
    roc, pr, areas_roc, areas_pr, roc_points, pr_points = {}, {}, {}, {}, {}, {}
    prevalence = None
    for name, run in evaluations.items():
        curves, summary = run.curves, run.summary
        roc[name] = (curves["roc_fpr"], curves["roc_tpr"])
        pr[name] = (curves["pr_recall"], curves["pr_precision"])
        areas_roc[name] = summary.get("pixel_auc")
        areas_pr[name] = summary.get("average_precision")
        points = evaluation.curve_points(run)  # at the validation threshold
        roc_points[name], pr_points[name] = points.roc, points.pr
        prevalence = points.prevalence  # the same test pixels for every model
    left, right = st.columns(2)
    with left:
        draw_chart(viz.roc_figure(roc, areas_roc, roc_points, log_fpr=True), "compare_roc")
    with right:
        draw_chart(viz.pr_figure(pr, areas_pr, prevalence, pr_points), "compare_pr")
    st.caption("Diamonds: each model at its validation threshold. False-positive axis on a log scale.")


def draw_history(run_names=MODELS) -> None:
    st.header("Training curves", divider="gray")
    histories = {}
    for name in run_names:
        history = evaluation_ui.load_history(config.models_dir() / name)
        if history is not None:
            histories[name] = history
    if not histories:
        st.info("No training history found.", icon=":material/info:")
        return
    draw_chart(viz.history_figure(histories), "compare_history")
    st.caption(
        "Per epoch, as Keras logged them during training: loss, and Dice and IoU at threshold "
        "0.5 pooled over the epoch's images (the segmenters log no accuracy: pixel accuracy "
        "is meaningless here, see below). The basic U-Net trains with binary cross-entropy, the "
        "attention U-Net with Dice + focal loss, so their losses are not on one scale."
    )


def selected_from_chart(event) -> str | None:
    """The image id of the first selected point of the scatter, if any."""
    try:
        points = event.selection.points
    except AttributeError:
        return None
    for point in points or []:
        customdata = point.get("customdata")
        if customdata:
            return str(customdata[0])
    return None


def draw_scatter(evaluations: dict, table: pd.DataFrame, paired: pd.DataFrame) -> None:
    st.header("Per-image Dice", divider="gray")
    tumours = paired[paired["tumour"].astype(bool)]
    if tumours.empty:
        st.info("The test split has no image with an annotated tumour.")
        return
    gain = tumours["dice_attention_unet"] - tumours["dice_basic_unet"]
    ordered = tumours.assign(gain=gain).sort_values(["gain", "image_id"], ascending=[False, True])
    ids = ordered["image_id"].tolist()
    labels = {
        row.image_id: f"{row.image_id} · basic {format_number(row.dice_basic_unet, 2)} · "
        f"attention {format_number(row.dice_attention_unet, 2)}"
        for row in ordered.itertuples()
    }
    key = "compare_image"
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[0]
    left, right = st.columns([5, 6])
    with left:
        color_by = st.segmented_control(
            "Colour by", ["size_bucket", "label"], default="size_bucket",
            format_func={"size_bucket": "lesion size", "label": "class"}.get,
            key="compare_color_by",
        ) or "size_bucket"
        figure = viz.dice_scatter_figure(paired, color_by=color_by, selected=st.session_state[key])
        event = draw_chart(figure, "compare_scatter", on_select="rerun", selection_mode="points")
        # Follow the chart only when its selection changes, so that a choice made in the
        # selectbox is not overridden by a point selected earlier.
        picked = selected_from_chart(event)
        if picked != st.session_state.get("compare_last_pick"):
            st.session_state["compare_last_pick"] = picked
            if picked in ids and picked != st.session_state[key]:
                st.session_state[key] = picked
                st.rerun()
    with right:
        image_id = st.selectbox(
            "Test image (click a point, or choose here; ordered by attention minus basic Dice)",
            ids, key=key, format_func=labels.get,
        )
        draw_comparison(evaluations, table, paired, image_id)


def draw_comparison(evaluations: dict, table: pd.DataFrame, paired: pd.DataFrame,
                    image_id: str) -> None:
    """The image with its true outline, then each model's prediction at its validation threshold."""
    rows = table[table["image_id"] == image_id]
    if rows.empty:
        st.warning(f"{image_id} is not in the dataset table any more.", icon=":material/help:")
        return
    row = rows.iloc[0]
    try:
        image, truth, note = evaluation_ui.display_image(row)
    except ImageError as error:
        st.warning(f"{image_id}: {error}", icon=":material/broken_image:")
        return
    panels = evaluation_ui.comparison_panels(evaluations, image_id, image, truth)
    record = paired.set_index("image_id").loc[image_id] if image_id in set(paired["image_id"]) else None
    columns = st.columns(len(panels))
    for column, (name, panel) in zip(columns, panels.items(), strict=True):
        if name == "truth":
            caption = f"**{image_id}** · {row['label']}" + (f" · {row['subtype']}" if row["subtype"] else "")
        else:
            threshold = evaluations[name].validation_threshold
            dice = record[f"dice_{name}"] if record is not None else math.nan
            caption = f"**{viz.model_label(name)}** · Dice {format_number(dice, 2)} at {format_threshold(threshold)}"
        column.image(panel, caption=caption, width="stretch")
    st.caption(
        "Yellow outline: the annotated lesion. Tint and outline: the model's prediction "
        "(probability at least its validation threshold)."
    )
    if note:
        st.caption(f":material/warning: {note}")


def draw_gallery(evaluations: dict, table: pd.DataFrame, paired: pd.DataFrame) -> None:
    st.header("Gallery: the same test images, both models", divider="gray")
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    with left:
        mode = st.segmented_control(
            "Show", list(GALLERY_MODES), default=GALLERY_MODES[0], key="compare_gallery_mode",
            help="Best and worst by the attention U-Net's Dice; biggest differences between the "
            "two models; random includes normal images (where any prediction is a false alarm).",
        ) or GALLERY_MODES[0]
    with right:
        if mode == "Random" and st.button("Other images", key="compare_gallery_shuffle",
                                          icon=":material/shuffle:"):
            st.session_state["compare_gallery_seed"] = st.session_state.get("compare_gallery_seed", 0) + 1
    chosen = evaluation.gallery_ids(
        paired, mode, GALLERY_SIZE, seed=st.session_state.get("compare_gallery_seed", 0)
    )
    if not chosen:
        st.info("No test image to show.")
        return
    st.caption(
        "Each card: the **basic U-Net** (left, grey) and the **attention U-Net** (right, teal), "
        "each at its validation threshold; yellow outline: the annotated lesion."
    )
    for start in range(0, len(chosen), GALLERY_COLUMNS):
        for column, image_id in zip(st.columns(GALLERY_COLUMNS), chosen[start:start + GALLERY_COLUMNS],
                                    strict=False):
            with column, st.container(border=True):
                draw_gallery_card(evaluations, table, paired, image_id)


def draw_gallery_card(evaluations: dict, table: pd.DataFrame, paired: pd.DataFrame, image_id: str) -> None:
    rows = table[table["image_id"] == image_id]
    if rows.empty:
        st.caption(f"{image_id}: not in the dataset table")
        return
    try:
        image, truth, _ = evaluation_ui.display_image(rows.iloc[0], side=320)
    except ImageError as error:
        st.caption(f"{image_id}: {error}")
        return
    panels = evaluation_ui.comparison_panels(evaluations, image_id, image, truth)
    record = paired.set_index("image_id").loc[image_id]
    label = rows.iloc[0]["label"]
    short = {name: registry.BY_RUN[name].key for name in MODELS}
    if bool(record["tumour"]):
        scores = "Dice " + " · ".join(
            f"{short[name]} {format_number(record[f'dice_{name}'], 2)}" for name in MODELS)
    else:  # no lesion to overlap: say whether each model raised a false alarm
        scores = " · ".join(
            f"{short[name]} {'flagged' if record[f'flagged_{name}'] else 'clear'}"
            for name in MODELS)
    st.image(
        evaluation_ui.side_by_side([panels[name] for name in MODELS]),
        caption=f"**{image_id}** · {label} · {scores}",
        width="stretch",
    )


def draw_pixel_accuracy(evaluations: dict) -> None:
    st.header("Why pixel accuracy misleads here", divider="gray")
    explanation = evaluation.pixel_accuracy_explanation(evaluations)
    empty = explanation["empty"]
    st.markdown("A model that predicts **no tumour anywhere** on the test split scores:")
    common.metric_cards([
        ("Pixel accuracy", f"{100 * empty['pixel_accuracy']:.2f}%",
         "Share of test pixels it gets right: every background pixel."),
        ("Keras MeanIoU", format_number(empty["keras_mean_iou"]),
         "Background IoU and tumour IoU (0) averaged, as keras.metrics.MeanIoU does."),
        ("Dice (tumour)", format_number(empty["dice"]), "Foreground Dice, as btseg reports it."),
        ("Tumour pixels", f"{100 * empty['tumour_share']:.2f}%",
         "Share of all test pixels (original resolution) inside an annotated lesion."),
    ])
    st.markdown(explanation["text"])


# --------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="Compare · btseg", page_icon=":material/compare:", layout="wide")
    data_dir = config.data_dir()
    try:
        dataset = common.load_dataset(data_dir)
    except BtsegError as error:
        common.sidebar_dataset_badge(data_dir, None)
        st.title("Compare")
        common.dataset_error_box(error, data_dir)
        return
    common.sidebar_dataset_badge(data_dir, dataset)
    common.research_notice()

    st.title("Compare")
    st.markdown(
        "The study's question: does the **attention U-Net** (attention gates, Dice + focal loss, "
        "tumour-balanced sampling, augmentation) segment bone tumours better than the **basic "
        "U-Net** (binary cross-entropy)? Both are measured on the same test images, each at the "
        "threshold it chose on validation."
    )
    evaluations, missing = {}, {}
    for name in MODELS:
        try:
            evaluations[name] = evaluation_ui.load_segmentation(config.models_dir() / name)
        except BtsegError as error:
            missing[name] = error
    for name, error in missing.items():
        evaluation_ui.missing_evaluation_box(name, error)
    if missing:
        if len(evaluations) < len(MODELS):
            st.caption("The comparison appears once both models are trained and evaluated.")
        draw_history([name for name in MODELS if name not in missing] or MODELS)
        return
    for name, result in evaluations.items():
        evaluation_ui.stale_warning(result, name)
    warning = evaluation.split_mismatch(evaluations)
    if warning:
        st.warning(warning, icon=":material/warning:")
    paired = evaluation.paired_per_image(evaluations)
    draw_metric_table(evaluations)
    draw_roc_pr(evaluations)
    draw_history()
    draw_scatter(evaluations, dataset.table, paired)
    draw_gallery(evaluations, dataset.table, paired)
    draw_pixel_accuracy(evaluations)


main()
