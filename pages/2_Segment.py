"""Segment page: upload an X-ray (or pick one of the test split) and see where the tumour is and
what kind it may be.

Widgets -> btseg (images, infer, labelme, metrics) -> btseg.viz overlays and figures -> drawing.
The models are loaded once and shared across sessions; the model runs once per image, and moving
the threshold only cuts the cached probability map again.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from btseg import config, outputs, viz
from btseg.data.regions import BOX_MARGIN
from btseg.decisions import OperatingPoint, Verdict, decide, slider_thresholds
from btseg.errors import BtsegError
from btseg.formatting import format_threshold
from btseg.gate import RADIOGRAPH_MODALITIES, UNSPECIFIED_MODALITIES, check_input
from btseg.predict import compose_prediction
from btseg_app import common
from btseg_app import segment_ui as ui

SOURCES = ("Test-split image", "Upload an X-ray")
VIEWS = ("Overlay", "Probability heatmap", "Uncertainty", "Contour", "Side by side")
DRAW_MODES = {"Box": "rect", "Outline": "polygon"}
#: The reading room leaves (file name, bytes) here to open one of its rows in this view.
HANDOFF_KEY = "segment_handoff"


# --------------------------------------------------------------------------------------------
# Widgets


def model_ui(models_dir: Path) -> tuple[ui.RunStatus, ui.RunStatus]:
    """Sidebar: the segmentation model. Returns (segmenter run, classifier run)."""
    statuses = {name: ui.run_status(models_dir, name) for name in ui.SEGMENTER_RUNS}
    st.sidebar.subheader("Model")
    chosen = st.sidebar.radio(
        "Segmentation model",
        list(ui.SEGMENTER_RUNS),
        format_func=lambda name: (
            ui.SEGMENTER_RUNS[name] + ("" if statuses[name].complete else " (not trained)")
        ),
        key="segment_model",
        help="The attention U-Net is the study's improved model; the basic U-Net its baseline.",
    )
    return statuses[chosen], ui.run_status(models_dir, ui.CLASSIFIER_RUN)


def threshold_ui(status: ui.RunStatus) -> tuple[float, float]:
    """Sidebar: threshold on a log scale (default: the model's validation threshold) and the
    overlay opacity. Returns (threshold, opacity 0..1)."""
    validation = status.threshold if status.threshold is not None else 0.5
    grid = slider_thresholds(validation)
    default = ui.nearest_threshold(grid, validation)
    key = f"segment_threshold_{status.name}"

    def reset() -> None:
        st.session_state[key] = default

    if key not in st.session_state:  # the state, not value=, so that reset() may change it
        st.session_state[key] = default
    threshold = st.sidebar.select_slider(
        "Threshold (log scale)",
        options=grid,
        format_func=format_threshold,
        key=key,
        help="A pixel is tumour when the model's probability is at least this. "
        "Lower thresholds find more (and more false) tumour.",
    )
    note, button = st.sidebar.columns([3, 2], vertical_alignment="center")
    note.caption(f"Validation threshold: **{format_threshold(validation)}**")
    button.button(
        "Reset",
        key="segment_threshold_reset",
        on_click=reset,
        icon=":material/restart_alt:",
        disabled=threshold == default,
        width="stretch",
    )
    opacity = st.sidebar.slider(
        "Overlay opacity", 0, 100, 45, step=5, format="%d%%", key="segment_opacity"
    )
    return float(threshold), opacity / 100.0


def source_ui(dataset) -> ui.ImageInput | None:
    """The image to segment: an upload or a test-split image. Shows a BtsegError and returns
    None when it cannot be read."""
    handoff = st.session_state.get(HANDOFF_KEY)
    if handoff is not None:  # a row opened from the reading room
        name, data = handoff
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.caption(f":material/view_module: From the reading room: **{name}**")
        if right.button("Choose another image", key="segment_handoff_clear"):
            del st.session_state[HANDOFF_KEY]
            st.rerun()
        try:
            return ui.image_from_bytes(name, data)
        except BtsegError as error:
            common.error_box(error)
            return None
    sources = SOURCES if dataset is not None else SOURCES[1:]
    left, right = st.columns([1, 2], vertical_alignment="bottom")
    source = left.radio("Image", sources, key="segment_source", horizontal=False)
    try:
        if source == SOURCES[0]:
            return split_image_ui(dataset, right)
        return upload_ui(right)
    except BtsegError as error:
        common.error_box(error)
        st.caption("Choose another file; the page keeps working.")
        return None


def upload_ui(container) -> ui.ImageInput | None:
    uploaded = container.file_uploader(
        "X-ray (JPEG, PNG or DICOM)",
        type=ui.UPLOAD_TYPES,
        key="segment_upload",
        help="The image stays in this session's memory; nothing is written to disk.",
    )
    if uploaded is None:
        st.info(
            "Upload a radiograph to segment it, or pick a test-split image.",
            icon=":material/upload_file:",
        )
        return None
    return ui.image_from_bytes(uploaded.name, uploaded.getvalue())


def split_image_ui(dataset, container) -> ui.ImageInput | None:
    split = common.load_split()
    rows = ui.rows_of_test_split(dataset.table, split.assignment)
    if rows.empty:
        container.warning("The test split holds no image with a file.", icon=":material/warning:")
        return None
    by_id = {str(row["image_id"]): row for _, row in rows.iterrows()}

    def describe(image_id: str) -> str:
        row = by_id[image_id]
        subtype = f" ({row['subtype']})" if row["subtype"] else ""
        return f"{image_id} · {row['label']}{subtype}"

    image_id = container.selectbox(
        f"Test-split image ({len(rows)} images, never seen in training)",
        list(by_id),
        format_func=describe,
        key="segment_test_image",
    )
    return ui.image_from_row(by_id[image_id])


# --------------------------------------------------------------------------------------------
# Drawing


def show(container, image: np.ndarray, caption: str | None = None, width="stretch") -> None:
    """An image (at the column's width by default), sent as JPEG: PNG takes seconds at 1200 px."""
    container.image(image, caption=caption, width=width, output_format="JPEG")


def draw_missing_model(status: ui.RunStatus, data_dir: Path) -> None:
    if Path(status.path).exists() and status.problem:
        st.error(
            f"**The {status.label} cannot be used.** {status.problem}", icon=":material/error:"
        )
    else:
        st.warning(
            f"**The {status.label} is not trained yet** (no run folder at `{status.path}`). "
            "Train it, then reload this page:",
            icon=":material/model_training:",
        )
    st.code(ui.train_commands(status.name, data_dir), language="bash")


def draw_image_view(
    view, display, scale, probability, mask, lesions, opacity, show_boxes, uncertainty
) -> None:
    """The chosen view; ``uncertainty`` is called (four model calls, cached) only for its view."""
    boxes = (
        [lesion.box for lesion in lesions]
        if show_boxes and len(lesions) <= ui.MAX_DRAWN_BOXES
        else []
    )
    overlay = partial(viz.segmentation_overlay, display, mask, boxes=boxes, box_scale=scale)
    if view == "Overlay":
        show(st, overlay(alpha=opacity))
    elif view == "Probability heatmap":
        log = st.toggle(
            "Log scale", value=False, key="segment_heatmap_log",
            help="Spread the small probabilities (0.0001 to 0.1) over the colours, as the "
            "threshold slider does: it shows where the model is faintly suspicious, and colours "
            "most of the image.",
        )  # fmt: skip
        show(st, viz.probability_heatmap(display, probability, alpha=max(opacity, 0.15), log=log))
        stops = viz.heatmap_legend(stops=9, log=log)
        gradient = ", ".join(color for _, color in stops)
        low = "10<sup>−4</sup>" if log else "0"
        st.markdown(
            "<div style='display:flex;align-items:center;gap:0.5em;font-size:0.85em'>"
            f"<span>{low}</span><div style='flex:1;height:0.8em;border-radius:3px;"
            f"background:linear-gradient(to right, {gradient})'></div><span>1</span></div>",
            unsafe_allow_html=True,
        )
        st.caption(
            "Lesion probability on a log scale, like the threshold slider."
            if log
            else "Lesion probability from 0 to 1: the more likely, the more opaque the colour."
        )
    elif view == "Uncertainty":
        with st.spinner("Comparing the mirrored predictions…"):
            spread = uncertainty()
        show(st, viz.gradcam_overlay(display, spread, alpha=max(opacity, 0.3)))
        st.caption(
            "Where the model is unsure: the spread of its predictions on the image and its three "
            "mirrored copies (bright = they disagree). A lesion drawn where the spread is high is "
            "a weak finding."
        )
    elif view == "Contour":
        show(st, overlay(alpha=0.0))
    else:
        left, right = st.columns(2)
        show(left, display, "X-ray")
        show(right, overlay(alpha=opacity), "Prediction")
    if show_boxes and len(lesions) > ui.MAX_DRAWN_BOXES:
        st.caption(f"{len(lesions)} lesions: boxes are drawn up to {ui.MAX_DRAWN_BOXES}.")


def draw_findings(lesions, mask, spacing) -> None:
    area_px = int(mask.sum(dtype=np.int64))
    count_column, area_column = st.columns(2)
    count_column.metric("Lesions", len(lesions), border=True)
    area_column.metric("Area (% of image)", f"{100.0 * area_px / mask.size:.2f}%", border=True)
    if spacing is not None:
        area_mm2 = area_px * float(np.prod(spacing))
        st.caption(f"{area_px:,} px · **{area_mm2:,.1f} mm²** (from the DICOM pixel spacing)")
    else:
        st.caption(f"{area_px:,} px · no mm²: only a DICOM file gives the pixel spacing")
    if lesions:
        st.dataframe(
            ui.lesion_table(lesions, with_mm2=spacing is not None),
            hide_index=True,
            width="stretch",
            height=min(38 + 35 * len(lesions), 250),
            column_config={
                "#": st.column_config.NumberColumn(width=40),
                "Area (px)": st.column_config.NumberColumn(format="%d"),
                "Area (%)": st.column_config.NumberColumn(format="%.3f"),
                "Area (mm²)": st.column_config.NumberColumn(format="%.1f"),
                "Box (px)": st.column_config.TextColumn(
                    help="x0, y0, x1, y1 in the X-ray's pixels (x1 and y1 exclusive)"
                ),
                "Mean probability": st.column_config.ProgressColumn(
                    "Mean prob.", min_value=0.0, max_value=1.0, format="%.2f", width="small"
                ),
            },
        )
    else:
        st.caption("No lesion at this threshold. Lower the threshold to see weaker findings.")


def draw_classifier(source, status, display, lesions):
    """The classifier's probabilities for the region it is served. Returns (probabilities or
    None, the lesion classified or None)."""
    st.markdown("##### Classifier")
    if not status.complete:
        st.caption("No classifier trained yet. Train it with:")
        st.code(ui.train_command_for(status), language="bash")
        return None, None
    try:
        classifier = ui.load_classifier(status)
        lesion, subtitle = ui.classifier_region(classifier, lesions)
        box = None if lesion is None else lesion.box
        if classifier.classifies_regions and box is None:
            st.caption(
                "This classifier was trained on lesion regions, and there is no lesion at this "
                "threshold to classify. Lower the threshold, or draw a box on the image below "
                "to classify a region."
            )
            return None, None
        with st.spinner("Classifying…"):
            probabilities = ui.class_probabilities(source, status, classifier, box)
    except BtsegError as error:
        common.error_box(error)
        return None, None
    predicted = max(probabilities, key=probabilities.get)
    st.plotly_chart(
        viz.class_probability_figure(
            probabilities, title=f"Most likely: {predicted}", subtitle=subtitle
        ),
        key="segment_class_chart",
        config={"displayModeBar": False},
        width="stretch",
    )
    if st.toggle("Grad-CAM: where the classifier looked", key="segment_gradcam"):
        with st.spinner("Computing Grad-CAM…"):
            cam = ui.grad_cam(source, status, classifier, display.shape[:2], box)
        show(st, viz.gradcam_overlay(display, cam), f"Grad-CAM of “{predicted}”")
    return probabilities, lesion


def gate_ui(source, models_dir: Path) -> bool:
    """The input gate (btseg.gate) before any model runs: True when the image may be segmented;
    otherwise the verdict is inconclusive, with the reason and the fix."""
    override_key = "segment_any_modality"
    try:
        appearance = ui.load_appearance(models_dir)
    except BtsegError as error:
        common.error_box(error)
        appearance = None
    gate = check_input(
        source.image, bool(st.session_state.get(override_key)), appearance
    )
    for note in gate.notes:
        st.caption(f":material/info: {note}")
    if gate.accepted:
        return True
    st.caption(ui.image_caption(source))
    draw_verdict(Verdict("inconclusive", "the input gate stopped the image before any model ran"), st)
    st.warning(f"Not analysed: {source.name} {gate.reason}. To fix: {gate.fix}.", icon=":material/block:")
    modality = (source.image.modality or "").upper()
    if source.image.format == "DICOM" and modality not in RADIOGRAPH_MODALITIES + UNSPECIFIED_MODALITIES:
        st.checkbox(
            f"Run the models on this {modality} image anyway (they were trained on radiographs only)",
            key=override_key,
        )
    return False


def draw_verdict(verdict, container) -> None:
    """The image-level answer, with the rule that gave it."""
    icons = {"normal": ":material/check_circle:", "benign": ":material/info:",
             "malignant": ":material/warning:", "tumour": ":material/help:",
             "inconclusive": ":material/block:"}  # fmt: skip
    container.markdown(f"#### {icons.get(verdict.label, '')} Verdict: **{verdict.label}**")
    container.caption(verdict.reason)


def draw_downloads(source, prediction, runs, segmenter) -> None:
    """Mask, probability map, LabelMe JSON, the HTML report and (DICOM inputs) a DICOM SEG."""
    mask, probability = prediction.mask, prediction.probability_map
    label, threshold = prediction.verdict.lesion_label, prediction.point.threshold
    stem = outputs.output_stem(source.name)
    height, width = mask.shape
    st.markdown("##### Downloads")
    downloads = [
        (
            "Mask",
            partial(outputs.mask_png, mask),
            f"{stem}_mask.png",
            "image/png",
            "mask",
            f"8-bit PNG, {width} × {height} px like the X-ray: 255 = lesion at threshold "
            f"{format_threshold(threshold)}, 0 = background.",
        ),
        (
            "Probability map",
            partial(outputs.probability_png16, probability),
            f"{stem}_probability.png",
            "image/png",
            "probability",
            f"16-bit grayscale PNG, {width} × {height} px: value = probability × 65535.",
        ),
        (
            "LabelMe JSON",
            partial(outputs.labelme_json, mask, source.name, label),
            f"{stem}.json",
            "application/json",
            "labelme",
            "One rectangle and one polygon per lesion (LabelMe 5); opens in LabelMe and in btseg.",
        ),
        (
            "Report",
            partial(ui.report_html, source, prediction, runs, segmenter),
            f"{stem}_report.html",
            "text/html",
            "report",
            "One self-contained HTML page: the X-ray, overlay, heatmap, verdict, lesions, "
            "operating point and models; print it (one A4 page) or attach it.",
        ),
    ]
    seg_problem = None
    if source.image.format == "DICOM" and source.data:
        try:
            downloads.append(
                (
                    "DICOM SEG",
                    ui.dicom_seg(source, prediction),
                    f"{stem}_seg.dcm",
                    "application/dicom",
                    "seg",
                    "The mask as a DICOM Segmentation referencing this image: opens beside it "
                    "in OHIF, 3D Slicer or a PACS.",
                )
            )
        except BtsegError as error:  # e.g. a DICOM without the identifiers a SEG must copy
            seg_problem = str(error)
    row = st.container(horizontal=True, gap="small")
    for title, data, file_name, mime, key, help_text in downloads:
        row.download_button(
            title,
            data,
            file_name=file_name,
            mime=mime,
            key=f"segment_download_{key}",
            icon=":material/description:" if key == "report" else ":material/download:",
            on_click="ignore",
            help=help_text,
        )
    if seg_problem:
        st.caption(f"No DICOM SEG: {seg_problem}")
    st.caption("PNG files at the X-ray's full resolution.")


def draw_ground_truth(source, display, mask, opacity) -> None:
    st.subheader("Ground truth", anchor=False)
    try:
        truth, warnings = ui.truth_mask(source)
    except BtsegError as error:
        common.error_box(error)
        return
    scores = ui.mask_scores(truth, mask)
    left, right, numbers = st.columns([2, 2, 1.3])
    show(
        left,
        viz.segmentation_overlay(display, truth, alpha=opacity, color=viz.SEGMENT_COLORS["truth"]),
        "Ground truth (LabelMe outline)",
    )
    show(
        right,
        viz.segmentation_overlay(display, mask, alpha=opacity, truth=truth),
        "Prediction, true outline in yellow",
    )
    with numbers:
        if scores["true_pixels"] == 0:
            st.metric("False-positive pixels", f"{scores['false_positive_pixels']:,}", border=True)
            st.caption(
                "A normal image: Dice and IoU are undefined without a true lesion. Every "
                "predicted pixel is a false positive."
            )
        else:
            st.metric("Dice", ui.format_score(scores["dice"]), border=True)
            st.metric("IoU", ui.format_score(scores["iou"]), border=True)
            st.metric("Sensitivity", ui.format_score(scores["sensitivity"]), border=True)
            st.metric("Precision", ui.format_score(scores["precision"]), border=True)
        st.caption("At the current threshold, at full resolution.")
    for warning in warnings:
        st.caption(f":material/info: {warning}")


def draw_canvas_check(source, display, mask, classifier_status) -> None:
    st.subheader("Check against your own outline", anchor=False)
    st.caption(
        "Draw the true lesion: drag a box, or click around the lesion and click the first point "
        "again to close an outline. Dice and IoU compare the model's mask with what you drew, "
        "at full resolution; a box is also classified on its own."
    )
    mode_name = st.radio("Draw", list(DRAW_MODES), key="segment_draw_mode", horizontal=True)
    geometry = ui.canvas_geometry(source.image.shape)
    canvas_column, result_column = st.columns([geometry.width, max(400, geometry.width // 2)])
    with canvas_column:
        drawing = st_canvas(
            fill_color="rgba(255, 127, 14, 0.18)",
            stroke_width=2,
            stroke_color=viz.SEGMENT_COLORS["drawn"],
            background_image=ui.canvas_background(display, geometry),
            update_streamlit=True,
            width=geometry.width,
            height=geometry.height,
            drawing_mode=DRAW_MODES[mode_name],
            key=f"segment_canvas_{DRAW_MODES[mode_name]}_{source.key[:16]}",
        )
    shapes = ui.drawn_shapes(drawing.json_data, geometry)
    with result_column:
        if not shapes:
            st.info("Nothing drawn yet.", icon=":material/draw:")
            return
        truth = ui.drawn_mask(shapes, source.image.shape)
        scores = ui.mask_scores(truth, mask)
        first, second = st.columns(2)
        first.metric("Dice", ui.format_score(scores["dice"]), border=True)
        second.metric("IoU", ui.format_score(scores["iou"]), border=True)
        kinds = {shape.label for shape in shapes}
        st.caption(
            f"Model mask against your {len(shapes)} shape{'s' if len(shapes) > 1 else ''} "
            f"({scores['true_pixels']:,} px drawn, {scores['predicted_pixels']:,} px predicted)."
            + (" A box also covers healthy bone around the lesion." if kinds == {"rect"} else "")
        )
        boxes = [shape.box for shape in shapes if shape.box is not None]
        box = ui.clipped_box(boxes[-1], source.image.shape) if boxes else None
        probabilities = None
        if box is not None and classifier_status.complete:
            try:
                classifier = ui.load_classifier(classifier_status)
                with st.spinner("Classifying the region…"):
                    probabilities = ui.class_probabilities(
                        source, classifier_status, classifier, box
                    )
            except BtsegError as error:
                common.error_box(error)
        if box is not None and probabilities is not None:
            st.plotly_chart(
                viz.class_probability_figure(
                    probabilities,
                    title="Your box",
                    subtitle=f"x {box[0]}–{box[2]}, y {box[1]}–{box[3]} px, "
                    f"classified with a {BOX_MARGIN:.0%} margin on each side",
                ),
                key="segment_region_chart",
                config={"displayModeBar": False},
                width="stretch",
            )
        show(
            st,
            viz.segmentation_overlay(
                display, mask, alpha=0.3, truth=truth, truth_color=viz.SEGMENT_COLORS["drawn"]
            ),
            "Prediction, your shape in orange",
            width=360,
        )


# --------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(
        page_title="Segment · btseg", page_icon=":material/radiology:", layout="wide"
    )
    data_dir, models_dir = config.data_dir(), config.models_dir()
    dataset = None
    try:
        dataset = common.load_dataset(data_dir)
    except BtsegError:
        pass  # uploads still work; the Dataset page explains what is wrong with the folder
    common.sidebar_dataset_badge(data_dir, dataset)
    status, classifier_status = model_ui(models_dir)
    threshold, opacity = threshold_ui(status)
    common.research_notice()

    st.title("Segment")
    st.caption(
        "Where is the tumour, and what kind may it be? Pick a test-split image or upload an "
        "X-ray; tune the threshold in the sidebar."
    )
    if not status.complete:
        draw_missing_model(status, data_dir)
        return
    source = source_ui(dataset)
    if source is None:
        return
    if not gate_ui(source, models_dir):
        return
    try:
        segmenter = ui.load_segmenter(status)
        with st.spinner(f"Segmenting with the {status.label}…"):
            probability = ui.probability_map(source, status, segmenter)
    except BtsegError as error:
        common.error_box(error, ui.train_commands(status.name, data_dir))
        return

    spacing = source.image.pixel_spacing_mm
    point = status.operating_point or OperatingPoint(0.5)
    if threshold != point.threshold:  # a slider move keeps the run's minimum lesion size
        point = point.at_threshold(threshold)
    mask, lesions = decide(probability, point, pixel_spacing_mm=spacing)
    display, scale = ui.display_copy(source)

    st.caption(ui.image_caption(source))
    for note in source.image.notes:
        st.caption(f":material/info: {note}")
    image_column, side_column = st.columns([3, 2], gap="large")
    with image_column:
        view = st.segmented_control(
            "View", VIEWS, default=VIEWS[0], key="segment_view", required=True
        )
        show_boxes = st.toggle(
            "Lesion boxes", value=True, key="segment_boxes",
            help="Draw each lesion's box and number over the Overlay and Contour views.",
        )  # fmt: skip
        display_probability = ui.display_map(source, status, probability, display.shape[:2])
        draw_image_view(
            view, display, scale, display_probability, mask, lesions, opacity, show_boxes,
            partial(ui.uncertainty_map, source, status, segmenter, display.shape[:2]),
        )  # fmt: skip
    with side_column:
        st.markdown(
            f"##### Findings · {status.label} at threshold {format_threshold(threshold)}"
        )
        verdict_box = st.container()
        draw_findings(lesions, mask, spacing)
        classified = draw_classifier(source, classifier_status, display, lesions)
        prediction = compose_prediction(
            source.image, probability, point, (mask, lesions), classified,
            segmentation_run=status.name,
            classifier_run=classifier_status.name if classified[0] else "",
        )  # fmt: skip
        draw_verdict(prediction.verdict, verdict_box)
        draw_downloads(source, prediction, ui.report_runs(status, classifier_status), segmenter)

    if source.from_test_split:
        st.divider()
        draw_ground_truth(source, display, mask, opacity)
    st.divider()
    draw_canvas_check(source, display, mask, classifier_status)


main()
