"""Helpers of the Segment page: cached model loaders and inference, image inputs, the drawing
canvas and the download payloads.

Models are loaded once per run folder and shared across sessions (st.cache_resource), keyed by
the folder and the mtimes of its files so that a retrained model is loaded again. A probability
map is computed once per image (SHA-1 of its bytes) and model; moving the threshold only cuts the
cached map again (btseg.decisions.decide). Decoded images and maps are kept with
st.cache_resource too: they are never modified, and st.cache_data would copy tens of megabytes
on every rerun. TensorFlow is imported by btseg.infer when the first model is loaded, never by
importing this module.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from btseg import config, metrics, registry, viz
from btseg.data.images import DecodedImage, read_image
from btseg.data.labelme import Lesion, lesions_mask
from btseg.data.labelme import read_annotation as read_labelme
from btseg.data.regions import BOX_MARGIN
from btseg.decisions import LesionFinding, OperatingPoint, most_probable_lesion
from btseg.formatting import format_number
from btseg.runs import CONFIG_FILE, MODEL_FILE, THRESHOLD_FILE, read_run_info, train_command

SEGMENTER_RUNS: dict[str, str] = {spec.run: spec.title for spec in registry.SEGMENTERS}
CLASSIFIER_RUN = registry.CLASSIFIER_RUN
UPLOAD_TYPES = ["jpg", "jpeg", "png", "dcm"]
#: Lesion boxes are numbered on the image up to this many lesions (more would hide the X-ray).
MAX_DRAWN_BOXES = 25
CANVAS_WIDTH = 640
CANVAS_MAX_HEIGHT = 560


# --------------------------------------------------------------------------------------------
# Runs and models


@dataclass(frozen=True)
class RunStatus:
    """What the page knows of a run folder without loading it (no TensorFlow)."""

    name: str
    path: str
    complete: bool
    problem: str | None
    threshold: float | None  # segmenters: the validation threshold
    operating_point: OperatingPoint | None  # segmenters: threshold and minimum lesion size
    stamp: tuple  # mtimes of its files: a new training gives a new stamp

    @property
    def label(self) -> str:
        return SEGMENTER_RUNS.get(
            self.name, "Classifier" if self.name == CLASSIFIER_RUN else self.name
        )


def run_status(models_dir: Path, run_name: str) -> RunStatus:
    """The run folder models_dir/run_name: complete or not, the problem, its threshold."""
    path = Path(models_dir) / run_name
    info = read_run_info(path)
    stamp = []
    # The calibration file too: a new temperature must reach the cached classifier.
    for name in (MODEL_FILE, CONFIG_FILE, THRESHOLD_FILE, "evaluation/calibration.json"):
        try:
            stamp.append((path / name).stat().st_mtime_ns)
        except OSError:
            stamp.append(-1)
    return RunStatus(
        name=run_name,
        path=str(path),
        complete=bool(info["complete"]),
        problem=info["problem"],
        threshold=info["threshold"],
        operating_point=info.get("operating_point"),
        stamp=tuple(stamp),
    )


def train_commands(run_name: str, data_dir: Path) -> str:
    """The shell commands that create a missing run (for st.code)."""
    return (
        "# train and evaluate the demo models on the configured dataset\n"
        "make prepare\n"
        "\n"
        "# or train this model only\n"
        f"{train_command(run_name, str(data_dir))}"
    )


def train_command_for(status: RunStatus, data_dir: Path | None = None) -> str:
    """The btseg command that trains this run on the configured dataset."""
    return train_command(status.name, str(data_dir or config.data_dir()))


@st.cache_resource(show_spinner="Loading the segmentation model…", max_entries=4)
def _segmenter(path: str, stamp: tuple):
    from btseg.infer import Segmenter

    return Segmenter.from_run(path)


def load_segmenter(status: RunStatus):
    """The Segmenter of a run, loaded once and shared by every session. Raises RunError."""
    return _segmenter(status.path, status.stamp)


@st.cache_resource(show_spinner=False, max_entries=2)
def _appearance(models_dir: str, stamp: int):
    from btseg.gate import load_appearance_gate

    return load_appearance_gate(models_dir)


def load_appearance(models_dir: Path):
    """The fitted appearance check of the input gate (None when not fitted). Raises RunError
    for an unreadable file."""
    from btseg.gate import APPEARANCE_FILE

    try:
        stamp = (Path(models_dir) / APPEARANCE_FILE).stat().st_mtime_ns
    except OSError:
        stamp = -1
    return _appearance(str(models_dir), stamp)


@st.cache_resource(show_spinner="Loading the classifier…", max_entries=2)
def _classifier(path: str, stamp: tuple):
    from btseg.infer import Classifier

    return Classifier.from_run(path)


def load_classifier(status: RunStatus):
    """The Classifier of a run, loaded once and shared by every session. Raises RunError."""
    return _classifier(status.path, status.stamp)


# --------------------------------------------------------------------------------------------
# Threshold grid


def nearest_threshold(grid: Sequence[float], value: float) -> float:
    """The grid value closest to `value` on a log scale."""
    target = math.log10(max(float(value), 1e-12))
    return min(grid, key=lambda item: abs(math.log10(item) - target))


# --------------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class ImageInput:
    """An image to segment: decoded pixels, a key (SHA-1 of the file's bytes) for the caches,
    and for a test-split image its id, class and LabelMe file."""

    key: str
    name: str
    image: DecodedImage
    data: bytes = b""  # the file's bytes, kept for DICOM inputs (a DICOM SEG references them)
    image_id: str = ""
    label: str = ""
    subtype: str = ""
    annotation_path: str = ""

    @property
    def from_test_split(self) -> bool:
        return bool(self.image_id)


@st.cache_resource(show_spinner="Decoding the image…", max_entries=16)
def _decode(key: str, name: str, _data: bytes) -> DecodedImage:
    return read_image(_data, name=name)


def image_from_bytes(name: str, data: bytes, **details: str) -> ImageInput:
    """Decode an upload (JPEG, PNG or DICOM bytes). Raises ImageError with what is wrong and
    what to do (empty, not an image, damaged, too large)."""
    key = hashlib.sha1(data).hexdigest()
    image = _decode(key, name, data)
    kept = data if image.format == "DICOM" else b""
    return ImageInput(key=key, name=name, image=image, data=kept, **details)


def image_from_row(row: Mapping[str, Any]) -> ImageInput:
    """A test-split image from its row of the tidy table. Raises ImageError."""
    path = Path(str(row["image_path"]))
    try:
        data = path.read_bytes()
    except OSError:
        read_image(path)  # raises ImageError naming the problem (missing, folder, unreadable)
        raise
    return image_from_bytes(
        path.name,
        data,
        image_id=str(row["image_id"]),
        label=str(row.get("label", "")),
        subtype=str(row.get("subtype", "") or ""),
        annotation_path=str(row.get("annotation_path", "") or ""),
    )


def rows_of_test_split(table: pd.DataFrame, assignment: Mapping[str, str]) -> pd.DataFrame:
    """Rows of the test split that have an image file, tumour images first, then by id."""
    rows = table[
        table["image_id"].astype(str).map(lambda image_id: assignment.get(image_id) == "test")
        & table["has_image"].astype(bool)
    ]
    order = rows["label"].map({"malignant": 0, "benign": 0, "normal": 1}).fillna(2)
    return rows.assign(_order=order).sort_values(["_order", "image_id"]).drop(columns="_order")


def image_caption(source: ImageInput) -> str:
    """One line about the image: name, size, format, bit depth, pixel spacing."""
    image = source.image
    height, width = image.shape
    parts = [
        f"**{source.name}**",
        f"{width:,} × {height:,} px",
        f"{image.format} {image.bit_depth}-bit",
    ]
    if image.pixel_spacing_mm is not None:
        row, column = image.pixel_spacing_mm
        parts.append(f"pixel spacing {row:.3g} × {column:.3g} mm")
    if source.from_test_split:
        parts.append(
            f"test split · {source.label}" + (f" ({source.subtype})" if source.subtype else "")
        )
    return " · ".join(parts)


@st.cache_resource(show_spinner=False, max_entries=16)
def _display_copy(key: str, _pixels: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    return viz.downscale(_pixels, max_side)


def display_copy(source: ImageInput) -> tuple[np.ndarray, float]:
    """(the image shrunk to at most viz.DISPLAY_MAX_SIDE px, scale = display / original)."""
    return _display_copy(source.key, source.image.pixels, viz.DISPLAY_MAX_SIDE)


@st.cache_resource(show_spinner=False, max_entries=16)
def _truth_mask(
    annotation_path: str, stamp: tuple, shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[str, ...]]:
    annotation = read_labelme(annotation_path, image_shape=shape)
    mask = lesions_mask(
        annotation.lesions, (annotation.height, annotation.width), target_shape=shape
    )
    return mask, tuple(annotation.warnings)


def truth_mask(source: ImageInput) -> tuple[np.ndarray, tuple[str, ...]]:
    """The ground-truth mask ((H, W) uint8 {0, 1}) of a test-split image from its LabelMe file
    (all zeros for an image without one) and the file's warnings. Raises AnnotationError."""
    shape = source.image.shape
    if not source.annotation_path:
        return np.zeros(shape, dtype=np.uint8), ()
    try:
        status = Path(source.annotation_path).stat()
        stamp: tuple = (status.st_size, status.st_mtime_ns)
    except OSError:
        stamp = (-1, -1)
    return _truth_mask(source.annotation_path, stamp, shape)


# --------------------------------------------------------------------------------------------
# Inference (cached)


@st.cache_resource(show_spinner=False, max_entries=8)
def _probability_map(
    image_key: str, run_path: str, stamp: tuple, _segmenter, _pixels: np.ndarray
) -> np.ndarray:
    probability = _segmenter.probability_maps([_pixels])[0]
    probability.setflags(write=False)  # shared by every session that shows this image
    return probability


def probability_map(source: ImageInput, status: RunStatus, segmenter) -> np.ndarray:
    """(H, W) float32 map in [0, 1] at the original resolution (read-only); the model runs once
    per image and model, later calls (threshold moves, other views) reuse it."""
    return _probability_map(source.key, status.path, status.stamp, segmenter, source.image.pixels)


@st.cache_resource(show_spinner=False, max_entries=8)
def _uncertainty(
    image_key: str, run_path: str, stamp: tuple, shape: tuple[int, int], _segmenter, _pixels
) -> np.ndarray:
    return viz.resize_map(_segmenter.uncertainty_map(_pixels), shape)


def uncertainty_map(
    source: ImageInput, status: RunStatus, segmenter, shape: tuple[int, int]
) -> np.ndarray:
    """The spread of the mirrored predictions (Segmenter.uncertainty_map) at the display size
    ``shape``, computed once per image and model."""
    return _uncertainty(
        source.key, status.path, status.stamp, tuple(shape), segmenter, source.image.pixels
    )


@st.cache_resource(show_spinner=False, max_entries=8)
def _display_map(
    image_key: str, run_path: str, stamp: tuple, shape: tuple[int, int], _probability
) -> np.ndarray:
    return viz.resize_map(_probability, shape)


def display_map(
    source: ImageInput, status: RunStatus, probability: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """The probability map at the display size `shape` (for the heatmap), computed once."""
    return _display_map(source.key, status.path, status.stamp, tuple(shape), probability)


@st.cache_data(show_spinner=False, max_entries=64)
def _class_probabilities(
    image_key: str, run_path: str, stamp: tuple, box: tuple | None, _classifier, _pixels
) -> dict[str, float]:
    return _classifier.predict(_pixels, box=box)


def class_probabilities(
    source: ImageInput, status: RunStatus, classifier, box: tuple[int, int, int, int] | None = None
) -> dict[str, float]:
    """{class: probability} of the whole image, or of `box` (x0, y0, x1, y1 original pixels)."""
    return _class_probabilities(
        source.key, status.path, status.stamp, box, classifier, source.image.pixels
    )


@st.cache_resource(show_spinner=False, max_entries=8)
def _grad_cam(
    image_key: str,
    run_path: str,
    stamp: tuple,
    shape: tuple[int, int],
    box: tuple | None,
    _classifier,
    _pixels,
) -> np.ndarray:
    return viz.resize_map(_classifier.grad_cam(_pixels, box=box), shape)


def grad_cam(
    source: ImageInput,
    status: RunStatus,
    classifier,
    shape: tuple[int, int],
    box: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Grad-CAM of the predicted class at the display size `shape` (of the region of `box`,
    zero elsewhere), computed once per image and box."""
    return _grad_cam(
        source.key, status.path, status.stamp, tuple(shape), box, classifier, source.image.pixels
    )


def classifier_region(classifier, lesions) -> tuple[LesionFinding | None, str]:
    """(the lesion to classify, what is classified in words): None and "Whole image" for a
    classifier of whole images; the most probable lesion for one trained on regions (None when
    there is no lesion), as btseg.predict.Predictor.classify serves it."""
    if not classifier.classifies_regions:
        return None, "Whole image"
    lesion = most_probable_lesion(lesions)
    if lesion is None:
        return None, "No lesion to classify"
    return lesion, f"Lesion {lesion.index} (most probable) + {BOX_MARGIN:.0%} margin"


# --------------------------------------------------------------------------------------------
# Tables and metrics


def lesion_table(lesions: Sequence[LesionFinding], with_mm2: bool) -> pd.DataFrame:
    """One row per lesion: number, area (px, % of the image, mm² when known), box (x0, y0, x1,
    y1 in original pixels, x1 and y1 exclusive), mean probability."""
    columns = ["#", "Area (px)", "Area (%)"] + (["Area (mm²)"] if with_mm2 else [])
    columns += ["Box (px)", "Mean probability"]
    rows = []
    for lesion in lesions:
        row = {"#": lesion.index, "Area (px)": lesion.area_px, "Area (%)": lesion.area_percent}
        if with_mm2:
            row["Area (mm²)"] = lesion.area_mm2
        row["Box (px)"] = ", ".join(str(value) for value in lesion.box)
        row["Mean probability"] = lesion.mean_probability
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def mask_scores(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Dice, IoU, sensitivity, precision and pixel counts of a predicted mask against a true
    one, both (H, W) {0, 1} at the original resolution (btseg.metrics: NaN for 0/0)."""
    counts = metrics.confusion_counts(truth, prediction)
    scores = metrics.metrics_from_counts(counts)
    return {
        "dice": float(scores["dice"]),
        "iou": float(scores["iou"]),
        "sensitivity": float(scores["sensitivity"]),
        "precision": float(scores["precision"]),
        "true_pixels": int(counts.tp + counts.fn),
        "predicted_pixels": int(counts.tp + counts.fp),
        "false_positive_pixels": int(counts.fp),
    }


def format_score(value: float) -> str:
    """A score on the Segment page: btseg.formatting.format_number, with this page's em dash
    for an undefined score (Dice of an empty truth and an empty prediction)."""
    return format_number(value, missing="—")


# --------------------------------------------------------------------------------------------
# Drawing canvas


@dataclass(frozen=True)
class CanvasGeometry:
    """The canvas's size in pixels and the X-ray's size it stands for."""

    width: int
    height: int
    image_width: int
    image_height: int

    @property
    def scale_x(self) -> float:
        """Original pixels per canvas pixel, horizontally."""
        return self.image_width / self.width

    @property
    def scale_y(self) -> float:
        return self.image_height / self.height


def canvas_geometry(
    shape: tuple[int, int], max_width: int = CANVAS_WIDTH, max_height: int = CANVAS_MAX_HEIGHT
) -> CanvasGeometry:
    """A canvas of the image's aspect ratio, at most max_width x max_height pixels."""
    height, width = (int(value) for value in shape[:2])
    scale = min(max_width / width, max_height / height)
    return CanvasGeometry(
        width=max(1, round(width * scale)),
        height=max(1, round(height * scale)),
        image_width=width,
        image_height=height,
    )


def canvas_background(display: np.ndarray, geometry: CanvasGeometry):
    """The display copy resized to the canvas, as a PIL image (the canvas's background)."""
    from PIL import Image

    resized = cv2.resize(
        viz.to_rgb(display), (geometry.width, geometry.height), interpolation=cv2.INTER_AREA
    )
    return Image.fromarray(resized)


_ORIGIN = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}


def _rect_box(item: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    width = float(item.get("width", 0)) * float(item.get("scaleX", 1) or 1)
    height = float(item.get("height", 0)) * float(item.get("scaleY", 1) or 1)
    left = float(item.get("left", 0)) - _ORIGIN.get(item.get("originX", "left"), 0.0) * width
    top = float(item.get("top", 0)) - _ORIGIN.get(item.get("originY", "top"), 0.0) * height
    if width <= 0 or height <= 0:
        return None
    return (left, top, left + width, top + height)


def _polygon_points(item: Mapping[str, Any]) -> np.ndarray | None:
    """A Fabric.js polygon's vertices in canvas pixels. Its points are stored as drawn; when it
    was moved or scaled afterwards (the toolbar's edit toggle), left/top/scale place them."""
    try:
        points = np.array(
            [[float(point["x"]), float(point["y"])] for point in item.get("points", [])]
        )
    except (KeyError, TypeError, ValueError):
        return None
    if len(points) < 3:
        return None
    scale = np.array([float(item.get("scaleX", 1) or 1), float(item.get("scaleY", 1) or 1)])
    low, high = points.min(axis=0), points.max(axis=0)
    offset = item.get("pathOffset")
    middle = (
        np.array([float(offset["x"]), float(offset["y"])])
        if isinstance(offset, Mapping)
        else (low + high) / 2
    )
    stroke = float(item.get("strokeWidth", 0) or 0)
    size = np.array(
        [float(item.get("width", high[0] - low[0])), float(item.get("height", high[1] - low[1]))]
    )
    # The object's centre: its left/top corner plus half its size (stroke included).
    corner = np.array([float(item.get("left", low[0])), float(item.get("top", low[1]))])
    origin = np.array(
        [
            _ORIGIN.get(item.get("originX", "left"), 0.0),
            _ORIGIN.get(item.get("originY", "top"), 0.0),
        ]
    )
    total = (size + stroke) * scale
    centre = corner + (0.5 - origin) * total
    return (points - middle) * scale + centre


def drawn_shapes(json_data: Mapping[str, Any] | None, geometry: CanvasGeometry) -> list[Lesion]:
    """The rectangles and closed polygons drawn on the canvas, in the X-ray's original pixels
    (canvas coordinates times original / canvas size), as Lesion objects labelled "rect" or
    "polygon"; other objects are ignored."""
    shapes: list[Lesion] = []
    for item in (json_data or {}).get("objects", []) or []:
        kind = str(item.get("type", "")).lower()
        if kind == "rect":
            box = _rect_box(item)
            if box is not None:
                x0, y0, x1, y1 = box
                shapes.append(
                    Lesion(
                        "rect",
                        None,
                        (
                            x0 * geometry.scale_x,
                            y0 * geometry.scale_y,
                            x1 * geometry.scale_x,
                            y1 * geometry.scale_y,
                        ),
                    )
                )
        elif kind == "polygon":
            points = _polygon_points(item)
            if points is not None:
                # Canvas coordinates run along pixel edges; LabelMe vertices are pixel centres.
                original = points * np.array([geometry.scale_x, geometry.scale_y]) - 0.5
                shapes.append(Lesion("polygon", original, None))
    return shapes


def drawn_mask(shapes: Sequence[Lesion], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 {0, 1}: the union of the drawn shapes at the original resolution."""
    return lesions_mask(list(shapes), shape)


def clipped_box(box: Sequence[float], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A drawn box rounded to whole original pixels inside the image; None if nothing is left."""
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if right - left < 2 or bottom - top < 2:
        return None
    return (left, top, right, bottom)


# --------------------------------------------------------------------------------------------
# Reading room


def thumbnail_uri(pixels: np.ndarray, side: int = 96) -> str:
    """A small PNG of a grayscale image as a data URI (for an image column)."""
    import base64

    from btseg.outputs import gray_png

    height, width = pixels.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return "data:image/png;base64," + base64.b64encode(gray_png(small)).decode("ascii")


READING_COLUMNS = {
    "X-ray": st.column_config.ImageColumn("X-ray", width="small"),
    "Verdict": st.column_config.TextColumn("Verdict", width="small"),
    "Why": st.column_config.TextColumn("Why", help="The rule that gave the verdict"),
    "Lesions": st.column_config.NumberColumn("Lesions", format="%d", width="small"),
    "Largest (px)": st.column_config.NumberColumn("Largest (px)", format="%d"),
    "Largest (%)": st.column_config.NumberColumn("Largest (%)", format="%.2f"),
    "Largest (mm²)": st.column_config.NumberColumn("Largest (mm²)", format="%.1f"),
}


def reading_row(name: str, source: ImageInput | None, prediction, error: str) -> dict[str, Any]:
    """One row of the reading-room table: thumbnail, verdict and why, lesions, the largest
    lesion's area, notes and gate warnings (or the reason the file could not be read)."""
    row: dict[str, Any] = {"X-ray": None, "File": name, "Study": "", "Verdict": "unreadable",
                           "Why": "", "Lesions": None, "Largest (px)": None, "Largest (%)": None,
                           "Largest (mm²)": None, "Notes": error}  # fmt: skip
    if source is None or prediction is None:
        return row
    largest = max(prediction.lesions, key=lambda lesion: lesion.area_px, default=None)
    notes = list(prediction.notes)
    if not prediction.gate.accepted:
        notes.insert(0, f"not analysed: {prediction.gate.reason}")
    row.update(
        {
            "X-ray": thumbnail_uri(source.image.pixels),
            "Verdict": prediction.verdict.label,
            "Why": prediction.verdict.reason,
            "Lesions": len(prediction.lesions),
            "Largest (px)": None if largest is None else largest.area_px,
            "Largest (%)": None if largest is None else largest.area_percent,
            "Largest (mm²)": None if largest is None else largest.area_mm2,
            "Notes": "; ".join(notes),
        }
    )
    return row


# --------------------------------------------------------------------------------------------
# Report and DICOM SEG downloads


def report_runs(status: RunStatus, classifier_status: RunStatus) -> dict[str, dict[str, Any]]:
    """What the report says of the runs, from their config.json (no TensorFlow)."""
    from btseg.report import run_summary

    runs = {"segmentation": run_summary(read_run_info(Path(status.path))["config"])}
    if classifier_status.complete:
        runs["classifier"] = run_summary(read_run_info(Path(classifier_status.path))["config"])
    return runs


def report_html(
    source: ImageInput, prediction, runs: dict[str, dict[str, Any]], segmenter=None
) -> bytes:
    """The self-contained HTML report of the prediction shown (btseg.report), with the
    uncertainty panel when the segmenter is given (four model calls)."""
    from btseg.report import ReportCase, dataset_summary, html_report

    config_of_run = read_run_info(Path(config.models_dir()) / prediction.segmentation_run)
    spread = None if segmenter is None else segmenter.uncertainty_map(source.image.pixels)
    case = ReportCase.from_prediction(
        prediction, source.image, source.name, runs=runs,
        dataset=dataset_summary(config_of_run["config"]), uncertainty_map=spread,
    )  # fmt: skip
    return html_report(case).encode("utf-8")


def dicom_seg(source: ImageInput, prediction) -> bytes:
    """The mask as a DICOM SEG referencing the uploaded DICOM file (btseg.dicom_seg)."""
    import btseg
    from btseg.dicom_seg import dicom_seg_bytes

    return dicom_seg_bytes(
        source.data,
        prediction.mask,
        algorithm_name=prediction.segmentation_run,
        algorithm_version=btseg.__version__,
    )

