"""The Segment page: its helpers and figures with exact values, and the page under AppTest with
tiny trained models (model_fixtures.py): a test-split image, a threshold change, uploads good and
bad, a shape drawn on the canvas, Grad-CAM, and a missing model."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from dicom_support import write_dicom
from model_fixtures import models_env, trained_models  # noqa: F401  (pytest fixtures)
from PIL import Image
from pydicom.uid import generate_uid
from streamlit.testing.v1 import AppTest

from btseg import metrics, outputs, viz
from btseg.data.btxrd import open_dataset
from btseg.data.labelme import lesions_mask, parse_annotation, read_annotation
from btseg.data.splits import split_for
from btseg_app import segment_ui as ui

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/2_Segment.py"

# A rectangle and a closed polygon as streamlit-drawable-canvas 0.13 (Fabric.js 7) returns them.
RECT = {
    "type": "Rect",
    "originX": "left",
    "originY": "top",
    "left": 50,
    "top": 40,
    "width": 100,
    "height": 60,
    "strokeWidth": 2,
    "strokeUniform": True,
    "scaleX": 1,
    "scaleY": 1,
}
POLYGON = {"type": "Polygon", "originX": "center", "originY": "center", "left": 145, "top": 160,
           "width": 110, "height": 120, "strokeWidth": 2, "scaleX": 1, "scaleY": 1,
           "points": [{"x": 100, "y": 100}, {"x": 200, "y": 110}, {"x": 180, "y": 220},
                      {"x": 90, "y": 200}]}  # fmt: skip


def test_a_missing_model_names_the_command_that_trains_it(app_env):
    app = run_segment_page()
    assert not app.exception, [item.value for item in app.exception]
    assert "not trained yet" in app.warning[0].value
    commands = "\n".join(block.value for block in app.code)
    assert "make prepare" in commands
    assert f"btseg train --model attention --data {app_env}" in commands
    app.radio(key="segment_model").set_value("basic_unet").run()
    assert "btseg train --model basic" in "\n".join(block.value for block in app.code)


# --------------------------------------------------------------------------------------------
# Helpers and figures (no model)


def test_drawn_shapes_are_rescaled_from_canvas_to_original_pixels():
    # A 400 x 300 canvas standing for an 800 x 600 X-ray: 2 original pixels per canvas pixel.
    geometry = ui.canvas_geometry((600, 800), max_width=400, max_height=400)
    assert (geometry.width, geometry.height, geometry.scale_x, geometry.scale_y) == (400, 300, 2, 2)
    rect, polygon = ui.drawn_shapes({"objects": [RECT, POLYGON, {"type": "Path"}]}, geometry)
    assert rect.label == "rect" and rect.box == (100.0, 80.0, 300.0, 200.0)
    assert polygon.label == "polygon"
    expected = np.array([[200, 200], [400, 220], [360, 440], [180, 400]]) - 0.5
    np.testing.assert_allclose(polygon.polygon, expected)


def test_a_moved_and_scaled_polygon_keeps_its_shape_around_its_new_centre():
    geometry = ui.canvas_geometry((300, 400), max_width=400, max_height=400)
    moved = {**POLYGON, "left": 245, "top": 170, "scaleX": 2, "scaleY": 1}
    (shape,) = ui.drawn_shapes({"objects": [moved]}, geometry)
    # Centre (145, 160) -> (245, 170); x distances from the centre doubled.
    expected = np.array([[155, 110], [355, 120], [315, 230], [135, 210]]) - 0.5
    np.testing.assert_allclose(shape.polygon, expected)


def test_dice_and_iou_against_a_drawn_box_are_exact():
    geometry = ui.canvas_geometry((20, 20), max_width=10, max_height=10)  # 2 px per canvas px
    box = {**RECT, "left": 0, "top": 0, "width": 5, "height": 5}
    truth = ui.drawn_mask(ui.drawn_shapes({"objects": [box]}, geometry), (20, 20))
    assert truth.sum() == 100 and truth[:10, :10].all()
    prediction = np.zeros((20, 20), dtype=np.uint8)
    prediction[:10, :5] = 1  # 50 px, all inside the box
    prediction[15:, 15:] = 1  # 25 px outside
    scores = ui.mask_scores(truth, prediction)
    assert scores["dice"] == pytest.approx(2 * 50 / (100 + 75))
    assert scores["iou"] == pytest.approx(50 / 125)
    assert scores["sensitivity"] == pytest.approx(0.5)
    assert scores["precision"] == pytest.approx(50 / 75)
    assert (scores["true_pixels"], scores["predicted_pixels"]) == (100, 75)
    assert ui.clipped_box((-3.2, 4.5, 30.0, 9.1), (20, 20)) == (0, 4, 20, 10)
    assert ui.clipped_box((5.0, 5.0, 5.5, 9.0), (20, 20)) is None


def test_downloads_decode_to_the_original_size_and_read_back_into_btseg():
    mask = np.zeros((37, 53), dtype=np.uint8)
    mask[5:15, 10:30] = 1
    mask[25:35, 40:50] = 1
    decoded = cv2.imdecode(np.frombuffer(outputs.mask_png(mask), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (37, 53) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, mask * 255)

    probability = np.linspace(0, 1, 37 * 53, dtype=np.float32).reshape(37, 53)
    stored = cv2.imdecode(np.frombuffer(outputs.probability_png16(probability), np.uint8), -1)
    assert stored.dtype == np.uint16 and stored.shape == (37, 53)
    assert stored[0, 0] == 0 and stored[-1, -1] == 65535
    np.testing.assert_allclose(stored / 65535.0, probability, atol=0.5 / 65535 + 1e-7)

    payload = json.loads(outputs.labelme_json(mask, "x.png", "malignant"))
    assert (payload["imageHeight"], payload["imageWidth"], payload["imagePath"]) == (
        37,
        53,
        "x.png",
    )
    assert [shape["shape_type"] for shape in payload["shapes"]].count("polygon") == 2
    annotation = parse_annotation(payload)
    assert {lesion.label for lesion in annotation.lesions} == {"malignant"}
    restored = lesions_mask(annotation.lesions, (annotation.height, annotation.width))
    np.testing.assert_array_equal(restored, mask)
    assert outputs.output_stem("IMG 00012.final.jpeg") == "IMG_00012.final"


def test_lesion_label_and_table():
    from btseg.decisions import findings_from_mask, verdict_for

    lesion = findings_from_mask(np.pad(np.ones((5, 5), np.uint8), 10))
    assert verdict_for(lesion, None).lesion_label == "tumor"
    normal = {"normal": 0.6, "benign": 0.3, "malignant": 0.1}
    assert verdict_for(lesion, normal, lesion[0]).lesion_label == "tumor"
    malignant = {"normal": 0.1, "benign": 0.3, "malignant": 0.6}
    assert verdict_for(lesion, malignant, lesion[0]).lesion_label == "malignant"

    mask = np.zeros((100, 100), dtype=np.uint8)
    mask[10:20, 10:30] = 1
    table = ui.lesion_table(findings_from_mask(mask, pixel_spacing_mm=(0.5, 0.2)), with_mm2=True)
    assert table.to_dict("records")[0]["Area (px)"] == 200
    assert table["Area (%)"].tolist() == [2.0]
    assert table["Area (mm²)"].tolist() == [pytest.approx(20.0)]
    assert table["Box (px)"].tolist() == ["10, 10, 30, 20"]
    assert "Area (mm²)" not in ui.lesion_table([], with_mm2=False).columns


def test_segmentation_figures():
    image = np.full((40, 60), 100, dtype=np.uint8)
    mask = np.zeros((80, 120), dtype=np.uint8)  # at twice the display size
    mask[20:60, 30:90] = 1
    mask[70, 100] = 1  # one original pixel: still shown after downscaling
    shown = viz.resize_mask(mask, (40, 60))
    assert shown[10:30, 15:45].all() and shown[35, 50] == 1 and shown.sum() == 601

    overlay = viz.segmentation_overlay(image, mask, alpha=0.5)
    assert overlay.shape == (40, 60, 3) and overlay.dtype == np.uint8
    assert tuple(overlay[0, 0]) == (100, 100, 100)  # outside: the X-ray unchanged
    color = np.array(viz.hex_to_rgb(viz.SEGMENT_COLORS["prediction"]))
    assert tuple(overlay[20, 30]) == tuple(np.rint(0.5 * 100 + 0.5 * color).astype(int))
    contour = viz.segmentation_overlay(image, mask, alpha=0.0)
    assert tuple(contour[20, 30]) == (100, 100, 100)  # contour view: the inside untinted
    assert tuple(contour[10, 30]) == tuple(color)  # ... and the outline drawn
    boxed = viz.segmentation_overlay(
        image, mask, alpha=0.0, boxes=[(30, 20, 90, 60)], box_scale=0.5
    )
    assert tuple(boxed[29, 30]) == tuple(color)  # the box's bottom edge (last row 29)
    assert (boxed != contour).any(axis=2).sum() > 60  # the box and its number

    scale = viz.log_probability_scale(np.array([[0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1.0]]))
    np.testing.assert_allclose(scale, [[0, 0, 0, 0.25, 0.5, 1.0]], atol=1e-6)
    for log in (False, True):
        heat = viz.probability_heatmap(image, np.zeros((80, 120), np.float32), log=log)
        np.testing.assert_array_equal(heat, viz.to_rgb(image))  # nothing likely: the X-ray alone
    # Linear by default: a background probability of 0.1 stays faint, a lesion shows.
    faint = viz.probability_heatmap(image, np.full((80, 120), 0.1, np.float32))
    strong = viz.probability_heatmap(image, np.full((80, 120), 0.1, np.float32), log=True)
    change = lambda heat: np.abs(heat.astype(int) - viz.to_rgb(image).astype(int)).mean()  # noqa: E731
    assert change(faint) < 0.3 * change(strong)
    legend = viz.heatmap_legend(stops=5, log=True)
    assert [value for value, _ in legend] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    legend = viz.heatmap_legend(stops=5)
    assert [value for value, _ in legend] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert viz.gradcam_overlay(image, np.ones((40, 60), np.float32)).shape == (40, 60, 3)

    figure = viz.class_probability_figure({"malignant": 0.7, "normal": 0.1, "benign": 0.2})
    bar = figure.data[0]
    assert list(bar.y) == ["normal", "benign", "malignant"]
    assert list(bar.x) == [0.1, 0.2, 0.7]
    assert list(bar.text) == ["10.0%", "20.0%", "70.0%"]
    assert list(bar.marker.color) == [viz.CLASS_COLORS[name] for name in bar.y]


# --------------------------------------------------------------------------------------------
# The page


def run_segment_page() -> AppTest:
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=240).run()
    return app.switch_page(PAGE).run()


def metric_values(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def assert_clean(app: AppTest) -> None:
    assert not app.exception, [item.value for item in app.exception]
    assert not app.error, [item.value for item in app.error]


class Reference:
    """The first test-split image, segmented outside the page with the same library calls."""

    def __init__(self, models) -> None:
        from btseg.infer import Segmenter
        from btseg.runs import read_run_info

        table = open_dataset(models.data_dir).table
        split = split_for(table, cache_dir=models.cache_dir)
        rows = ui.rows_of_test_split(table, split.assignment)
        tumour = rows[rows["label"] != "normal"]
        self.row = tumour.iloc[0]
        self.source = ui.image_from_row(self.row)
        run = models.models_dir / "attention_unet"
        self.validation_threshold = read_run_info(run)["threshold"]
        self.segmenter = Segmenter.from_run(run)
        self.point = self.segmenter.operating_point
        self.probability = self.segmenter.probability_maps([self.source.image.pixels])[0]
        annotation = read_annotation(self.row["annotation_path"], self.source.image.shape)
        self.truth = lesions_mask(
            annotation.lesions, (annotation.height, annotation.width), self.source.image.shape
        )

    def threshold_with_lesions(self, probability: np.ndarray | None = None) -> float:
        """The highest threshold of the page's slider that leaves a lesion on this image (the
        tiny model's operating point may leave none)."""
        from btseg.decisions import decide, slider_thresholds

        probability = self.probability if probability is None else probability
        for value in sorted(slider_thresholds(self.point.threshold), reverse=True):
            if decide(probability, self.point.at_threshold(value))[1]:
                return value
        pytest.fail("the tiny model leaves no lesion at any threshold")

    def scores(self, threshold: float) -> dict[str, str]:
        from btseg.decisions import decide

        mask, lesions = decide(self.probability, self.point.at_threshold(threshold))
        return {
            "Lesions": str(len(lesions)),
            "Area (% of image)": f"{100.0 * mask.sum() / mask.size:.2f}%",
            "Dice": ui.format_score(metrics.dice(self.truth, mask)),
            "IoU": ui.format_score(metrics.iou(self.truth, mask)),
        }


def assert_classifier_shown(app: AppTest, with_lesion: bool) -> None:
    """The class probabilities of the most probable lesion when there is one, else a caption that
    says there is no region to classify."""
    charts = app.get("plotly_chart")
    captions = " ".join(caption.value for caption in app.caption)
    if with_lesion:
        assert len(charts) == 1
        assert "most probable" in charts[0].proto.spec
        assert "no lesion at this threshold to classify" not in captions
    else:
        assert not charts
        assert "no lesion at this threshold to classify" in captions


@pytest.fixture(scope="module")
def reference(request):
    return Reference(request.getfixturevalue("trained_models"))


@pytest.mark.slow
@pytest.mark.usefixtures("models_env")
def test_a_test_split_image_shows_its_findings_ground_truth_and_metrics(reference):
    app = run_segment_page()
    assert_clean(app)
    assert app.selectbox(key="segment_test_image").value == reference.row["image_id"]
    threshold = app.select_slider(key="segment_threshold_attention_unet").value
    assert threshold == pytest.approx(reference.validation_threshold)
    shown = metric_values(app)
    for label, value in reference.scores(threshold).items():
        assert shown[label] == value, label
    assert len(app.get("image")) >= 3  # overlay, ground truth, prediction beside it
    # The class probabilities of the most probable lesion (the demo classifier classifies regions).
    assert_classifier_shown(app, int(shown["Lesions"]) > 0)
    labels = [button.proto.label for button in app.get("download_button")]
    assert labels == ["Mask", "Probability map", "LabelMe JSON", "Report"]  # no DICOM SEG: a JPEG
    assert "Ground truth" in [header.value for header in app.subheader]


@pytest.mark.slow
@pytest.mark.usefixtures("models_env")
def test_moving_the_threshold_recuts_the_map(reference):
    app = run_segment_page()
    slider = app.select_slider(key="segment_threshold_attention_unet")
    seen = []
    for threshold in (1e-4, 0.99):
        slider.set_value(threshold).run()
        assert_clean(app)
        shown = metric_values(app)
        for label, value in reference.scores(threshold).items():
            assert shown[label] == value, (threshold, label)
        assert_classifier_shown(app, shown["Lesions"] != "0")
        seen.append(shown["Area (% of image)"])
    assert seen[0] != seen[1]
    assert seen[0] == "100.00%"  # every pixel is at least 1e-4 likely under the sigmoid

    app.button(key="segment_threshold_reset").click().run()
    reset = app.select_slider(key="segment_threshold_attention_unet").value
    assert reset == pytest.approx(reference.validation_threshold)
    assert_clean(app)
    assert not app.warning

    app.radio(key="segment_model").set_value("basic_unet").run()
    assert_clean(app)
    assert "Basic U-Net" in " ".join(element.value for element in app.markdown)
    assert app.select_slider(key="segment_threshold_basic_unet").value > 0


@pytest.mark.slow
@pytest.mark.usefixtures("models_env")
def test_views_and_grad_cam(reference):
    app = run_segment_page()
    app.select_slider(key="segment_threshold_attention_unet").set_value(1e-4).run()
    images = len(app.get("image"))
    views = (("Probability heatmap", 0), ("Uncertainty", 0), ("Contour", 0), ("Side by side", 1))
    for view, extra in views:
        app.segmented_control(key="segment_view").set_value(view).run()
        assert_clean(app)
        assert len(app.get("image")) == images + extra, view
        captions = " ".join(caption.value for caption in app.caption)
        assert ("from 0 to 1" in captions) == (view == "Probability heatmap")  # heatmap legend
        assert ("mirrored copies" in captions) == (view == "Uncertainty")
        if view == "Probability heatmap":
            app.toggle(key="segment_heatmap_log").set_value(True).run()
            assert_clean(app)
            assert len(app.get("image")) == images
            assert "on a log scale" in " ".join(caption.value for caption in app.caption)
    app.segmented_control(key="segment_view").set_value("Overlay")
    app.toggle(key="segment_gradcam").set_value(True).run()
    assert_clean(app)
    assert len(app.get("image")) == images + 1
    assert any("Grad-CAM" in caption for image in app.get("image") for caption in image.captions)


def upload(app: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    app.radio(key="segment_source").set_value("Upload an X-ray").run()
    app.file_uploader(key="segment_upload").set_value((name, data, mime))
    return app.run()


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.usefixtures("models_env")
def test_an_upload_is_segmented(reference):
    pixels = reference.source.image.pixels
    app = upload(run_segment_page(), "my xray.png", png_bytes(pixels))
    assert_clean(app)
    assert any("my xray.png" in caption.value for caption in app.caption)
    threshold = app.select_slider(key="segment_threshold_attention_unet").value
    expected = reference.scores(threshold)
    shown = metric_values(app)
    assert shown["Lesions"] == expected["Lesions"]
    assert shown["Area (% of image)"] == expected["Area (% of image)"]
    assert "Dice" not in shown  # no ground truth for an upload, nothing drawn yet
    assert "Ground truth" not in [header.value for header in app.subheader]


def png_claiming(width: int, height: int) -> bytes:
    """A 2 x 2 PNG whose header claims width x height pixels (a decompression bomb's header)."""
    data = bytearray(png_bytes(np.zeros((2, 2), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the IHDR chunk's CRC
    return bytes(data)


def dicom_bytes(pixels: np.ndarray, spacing: tuple[float, float]) -> bytes:
    """A 12-bit MONOCHROME2 DICOM of `pixels` (x 16) with a PixelSpacing."""
    buffer = io.BytesIO()
    write_dicom(
        buffer, pixels.astype(np.uint16) * 16, PixelSpacing=list(spacing),
        PatientID="TEST-1", PatientName="TEST^ONE",
        StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(),
    )  # fmt: skip
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.usefixtures("models_env")
def test_a_dicom_upload_gives_areas_in_square_millimetres(reference):
    from btseg.data.images import read_image
    from btseg.decisions import decide

    data = dicom_bytes(reference.source.image.pixels, (0.2, 0.25))
    image = read_image(data, name="knee.dcm")
    probability = reference.segmenter.probability_maps([image.pixels])[0]
    app = upload(run_segment_page(), "knee.dcm", data, "application/dicom")
    app.select_slider(key="segment_threshold_attention_unet").set_value(
        reference.threshold_with_lesions(probability)
    ).run()
    assert_clean(app)
    threshold = app.select_slider(key="segment_threshold_attention_unet").value
    point = reference.point.at_threshold(threshold)
    mask, lesions = decide(probability, point, pixel_spacing_mm=(0.2, 0.25))
    captions = " ".join(caption.value for caption in app.caption)
    assert "DICOM 12-bit" in captions and "pixel spacing 0.2 × 0.25 mm" in captions
    assert f"{int(mask.sum()):,} px · **{mask.sum() * 0.05:,.1f} mm²**" in captions
    table = app.dataframe[0].value
    assert table["Area (mm²)"].tolist() == pytest.approx([lesion.area_mm2 for lesion in lesions])
    labels = [button.proto.label for button in app.get("download_button")]
    assert {"Mask", "Report", "DICOM SEG"} <= set(labels), labels


@pytest.mark.slow
@pytest.mark.usefixtures("models_env")
@pytest.mark.parametrize(
    "name, data, message",
    [
        ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "damaged JPEG"),
        ("empty.png", b"", "empty"),
        ("notes.png", b"these are notes, not an image", "not an image"),
        ("scan.dcm", b"\x00" * 300, "scan.dcm"),
        ("huge.png", png_claiming(9000, 8000), "72 megapixels"),
    ],
    ids=["corrupt-jpeg", "empty-file", "text-file", "not-dicom", "huge-image"],
)
def test_a_bad_upload_shows_what_is_wrong_and_the_page_keeps_working(
    reference, name, data, message
):
    app = upload(run_segment_page(), name, data)
    assert not app.exception, [item.value for item in app.exception]
    assert len(app.error) == 1 and message in app.error[0].value
    assert "Lesions" not in metric_values(app)
    app.file_uploader(key="segment_upload").set_value(
        ("good.png", png_bytes(reference.source.image.pixels), "image/png")
    )
    app.run()
    assert_clean(app)
    assert "Lesions" in metric_values(app)


@pytest.mark.slow
@pytest.mark.usefixtures("models_env")
def test_a_box_drawn_on_the_canvas_gives_dice_iou_and_a_region_class(reference):
    app = run_segment_page()
    source = reference.source
    geometry = ui.canvas_geometry(source.image.shape)
    digest = hashlib.sha1(Path(reference.row["image_path"]).read_bytes()).hexdigest()
    key = f"segment_canvas_rect_{digest[:16]}"
    drawn = {
        **RECT,
        "left": 10,
        "top": 20,
        "width": geometry.width / 2,
        "height": geometry.height / 3,
    }
    app.session_state[key] = {"drawing": {"raw": {"objects": [drawn]}, "data": None}}
    app.run()
    # A threshold that leaves a lesion, so that the region classifier has one to classify.
    app.select_slider(key="segment_threshold_attention_unet").set_value(
        reference.threshold_with_lesions()
    ).run()
    assert_clean(app)
    threshold = app.select_slider(key="segment_threshold_attention_unet").value
    from btseg.decisions import decide

    mask, _ = decide(reference.probability, reference.point.at_threshold(threshold))
    truth = ui.drawn_mask(ui.drawn_shapes({"objects": [drawn]}, geometry), source.image.shape)
    dice_values = [metric.value for metric in app.metric if metric.label == "Dice"]
    assert ui.format_score(metrics.dice(truth, mask)) in dice_values
    iou_values = [metric.value for metric in app.metric if metric.label == "IoU"]
    assert ui.format_score(metrics.iou(truth, mask)) in iou_values
    assert len(app.get("plotly_chart")) == 2  # whole image and the drawn box


def test_a_reading_room_row_says_why_and_what_could_not_be_read():
    from types import SimpleNamespace

    from btseg.decisions import Verdict
    from btseg.gate import GateResult

    source = SimpleNamespace(image=SimpleNamespace(pixels=np.full((40, 30), 90, np.uint8)))
    reason = "no lesion found at the operating point"
    prediction = SimpleNamespace(lesions=[], notes=("appearance distance 2.0 (limit 7.7)",),
                                 gate=GateResult(True), verdict=Verdict("normal", reason))  # fmt: skip
    row = ui.reading_row("a.jpeg", source, prediction, "")
    assert (row["Verdict"], row["Why"], row["Lesions"]) == ("normal", reason, 0)
    assert row["X-ray"].startswith("data:image/") and "appearance distance" in row["Notes"]
    unreadable = ui.reading_row("b.jpeg", None, None, "b.jpeg: the file is empty")
    assert (unreadable["Verdict"], unreadable["Why"]) == ("unreadable", "")
    assert unreadable["Notes"] == "b.jpeg: the file is empty"
    assert set(row) == set(unreadable) and "Why" in ui.READING_COLUMNS


@pytest.mark.slow
@pytest.mark.usefixtures("models_env")
def test_a_ct_upload_is_refused_with_the_fix_and_can_be_run_anyway(reference, tmp_path):
    """The input gate on the page: a CT DICOM gets the verdict inconclusive, says why and how to
    fix it, runs no model; the override checkbox then runs the models on it."""
    pixels = reference.source.image.pixels
    path = write_dicom(tmp_path / "scan.dcm", pixels, bits=8, Modality="CT")
    app = upload(run_segment_page(), "scan.dcm", path.read_bytes(), "application/dicom")
    assert not app.exception and not app.error
    markdown = " ".join(item.value for item in app.markdown)
    assert "Verdict: **inconclusive**" in markdown
    assert len(app.warning) == 1
    warning = app.warning[0].value
    assert "CT image" in warning and "To fix:" in warning and "--allow-any-modality" in warning
    assert "Lesions" not in metric_values(app)  # no model ran
    app.checkbox(key="segment_any_modality").check().run()
    assert_clean(app)
    assert "Lesions" in metric_values(app)
    assert "Verdict: **inconclusive**" not in " ".join(item.value for item in app.markdown)
