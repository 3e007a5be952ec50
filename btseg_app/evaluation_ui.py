"""Cached evaluation loaders, messages and drawing helpers the Thresholds and Compare pages share.

Evaluations are read by btseg.evaluation (no TensorFlow) and kept with st.cache_resource, keyed
by the run folder and a signature of its files, so every session shares one copy and a new
`btseg evaluate` is picked up on the next rerun. The objects are read-only for the pages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from btseg import config, evaluation, registry, runs, viz
from btseg.data.cache import data_fingerprint
from btseg.data.images import postprocess, read_image
from btseg.data.labelme import lesions_mask, read_annotation
from btseg.errors import AnnotationError, BtsegError
from btseg_app import common

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
    return evaluation.model_fingerprint(run_dir)


def cached_model_fingerprint(run_dir: Path) -> str:
    """evaluation.model_fingerprint, recomputed only when model.keras or threshold.json change."""
    stamp = []
    for name in (runs.MODEL_FILE, runs.THRESHOLD_FILE):
        try:
            status = (Path(run_dir) / name).stat()
            stamp.append((name, status.st_size, status.st_mtime_ns))
        except OSError:
            stamp.append((name, -1, -1))
    return _model_fingerprint(str(run_dir), tuple(stamp))


@st.cache_data(show_spinner=False, max_entries=4)
def _data_fingerprint(data_dir: str, signature: tuple) -> str:
    return data_fingerprint(common.load_dataset(Path(data_dir)).usable)


def current_data_fingerprint() -> str | None:
    """The data fingerprint of the dataset in use, or None when it cannot be opened."""
    data_dir = config.data_dir()
    try:
        return _data_fingerprint(str(data_dir), common.dataset_signature(data_dir))
    except BtsegError:
        return None


def stale_warning(result, run_name: str) -> None:
    """st.warning with the command that refreshes an out-of-date evaluation (nothing if current):
    evaluation.staleness against the dataset and run folder in use."""
    reasons = evaluation.staleness(result, config.data_dir(), current_data_fingerprint(),
                                   fingerprint=cached_model_fingerprint)
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
