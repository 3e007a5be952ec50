"""Inference: image -> probability map -> mask, lesions, class probabilities, Grad-CAM.

    segmenter = Segmenter.from_run("models/attention_unet")
    result = segmenter.segment(read_image("x.png"))          # Segmentation at original pixels
    mask, lesions = threshold_probability_map(result.probability_map, 0.2)   # slider, no model
    classifier = Classifier.from_run("models/classifier")
    classifier.predict(image, box=(x0, y0, x1, y1))           # {"normal": p, "benign": p, ...}
    run_predict(["scans/"], "out/", "models/")                # `btseg predict`

Every model input goes through ``btseg.data.images.preprocess`` (the training transform) and every
model-size map comes back through ``postprocess`` (its exact inverse), so masks and heatmaps lie
on the original pixels. TensorFlow is imported only when a model is loaded or called.

Lesion rule: a connected region (8-connected) of the thresholded map counts as a lesion when it
covers at least ``min_lesion_area(shape)`` pixels; smaller specks are removed from the mask.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from btseg.config import CLASS_NAMES
from btseg.data.images import DecodedImage, postprocess, preprocess
from btseg.data.regions import crop, crop_box
from btseg.errors import ConfigError, ImageError, RunError

if TYPE_CHECKING:
    import pandas as pd

#: A region smaller than this many pixels is a speck, not a lesion (at any image size) ...
MIN_LESION_AREA_PX = 16
#: ... nor is one smaller than this fraction of the image (0.01 %: 720 px of a 3000x2400 X-ray,
#: about 1.3 model pixels of a 128 px model upsampled to that size).
MIN_LESION_AREA_FRACTION = 1e-4

#: File extensions taken from a folder (compared case-insensitively).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm")

SUMMARY_FILE = "summary.csv"
_TEXT_COLUMNS = ("error", "predicted_class", "classifier_run", "mask_file", "annotation_file")
SUMMARY_COLUMNS = (
    "file", "status", "error", "height", "width", "lesions", "lesion_area_percent",
    "prob_normal", "prob_benign", "prob_malignant", "predicted_class", "threshold",
    "segmentation_run", "classifier_run", "lesion_area_mm2", "mask_file", "annotation_file",
)  # fmt: skip


def min_lesion_area(shape: tuple[int, int]) -> int:
    """Smallest region, in pixels, that counts as a lesion in an image of (height, width)."""
    height, width = (int(value) for value in shape[:2])
    return max(MIN_LESION_AREA_PX, math.ceil(MIN_LESION_AREA_FRACTION * height * width))


# ------------------------------------------------------------------------------------------------
# Lesions from masks (no model)


@dataclass(frozen=True)
class LesionFinding:
    """One predicted lesion.

    Attributes:
        index: 1-based, ordered top to bottom, then left to right (by box corner).
        area_px: pixels of the region at original resolution.
        area_percent: 100 * area_px / (height * width).
        area_mm2: area_px times the pixel area when the DICOM gives a pixel spacing, else None.
        box: (x0, y0, x1, y1) in original pixels, x1 and y1 exclusive.
        mean_probability: mean of the probability map over the region (NaN without a map).
    """

    index: int
    area_px: int
    area_percent: float
    area_mm2: float | None
    box: tuple[int, int, int, int]
    mean_probability: float


@dataclass(frozen=True, eq=False)
class Segmentation:
    """A segmented image at original resolution.

    Attributes:
        probability_map: (H, W) float32 in [0, 1].
        threshold: the threshold the mask was cut at.
        mask: (H, W) uint8 {0, 1}: probability_map >= threshold, regions smaller than
            ``min_lesion_area`` removed.
        lesions: one LesionFinding per remaining region.
        model_name: the run that made the map, e.g. "attention_unet".
        pixel_spacing_mm: (row, column) mm per pixel when known (DICOM), else None.
    """

    probability_map: np.ndarray
    threshold: float
    mask: np.ndarray
    lesions: list[LesionFinding]
    model_name: str
    pixel_spacing_mm: tuple[float, float] | None = None

    @property
    def lesion_area_percent(self) -> float:
        """Share of the image covered by the mask, in percent."""
        return 100.0 * float(sum(lesion.area_px for lesion in self.lesions)) / self.mask.size

    def at_threshold(self, threshold: float) -> Segmentation:
        """The same map cut at another threshold (no model call)."""
        mask, lesions = threshold_probability_map(
            self.probability_map, threshold, pixel_spacing_mm=self.pixel_spacing_mm
        )
        return replace(self, threshold=float(threshold), mask=mask, lesions=lesions)


def _check_threshold(threshold: float, where: str = "threshold") -> float:
    value = float(threshold)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ConfigError(
            f"the threshold {threshold!r} is not a probability between 0 and 1",
            where=where,
            fix="pass a threshold such as 0.5 (0 marks every pixel, 1 only certain ones)",
        )
    return value


#: Up to this many regions, per-region work runs inside each region's box; beyond, whole-image
#: passes (np.bincount, a lookup table) are cheaper.
_FEW_REGIONS = 32


def _region_boxes(mask: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray | None:
    """(count, 4) int64 x0, y0, x1, y1 (exclusive) of each labelled region, from the outer
    contours (one per 8-connected region, islands in holes included); None if one is missing.

    Several times quicker than connectedComponentsWithStats' per-pixel statistics.
    """
    import cv2

    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    boxes = np.full((count, 4), -1, dtype=np.int64)
    for contour, links in zip(contours, hierarchy[0], strict=True):
        if links[3] != -1:  # the border of a hole
            continue
        x, y = contour[0, 0]
        left, top, width, height = cv2.boundingRect(contour)
        boxes[labels[y, x]] = (left, top, left + width, top + height)
    return None if (boxes[1:, 0] < 0).any() else boxes


def _components(
    binary: np.ndarray,
    pixel_spacing_mm: tuple[float, float] | None,
    probability_map: np.ndarray | None,
    min_area_px: int | None,
) -> tuple[np.ndarray, list[LesionFinding]]:
    """(mask (H, W) uint8 without specks, findings) of a boolean (H, W) array."""
    import cv2

    height, width = binary.shape
    minimum = min_lesion_area(binary.shape) if min_area_px is None else int(min_area_px)
    mask = binary.astype(np.uint8)
    count, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
    if count == 1:
        return mask, []
    boxes = _region_boxes(mask, labels, count)
    few = count - 1 <= _FEW_REGIONS and boxes is not None
    if boxes is None:  # not expected; the slower statistics are always right
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        boxes = stats[:, :4].astype(np.int64)
        boxes[:, 2:] += boxes[:, :2]

    def inside(label: int) -> tuple[tuple[slice, slice], np.ndarray]:
        x0, y0, x1, y1 = boxes[label]
        window = (slice(y0, y1), slice(x0, x1))
        return window, labels[window] == label

    areas = np.zeros(count, dtype=np.int64)
    sums = np.zeros(count)
    if few:
        for label in range(1, count):
            window, selected = inside(label)
            areas[label] = np.count_nonzero(selected)
            if probability_map is not None:
                sums[label] = np.sum(probability_map[window], where=selected, dtype=np.float64)
    else:
        flat = labels.ravel()
        areas = np.bincount(flat, minlength=count)
        if probability_map is not None:
            sums = np.bincount(flat, weights=probability_map.ravel(), minlength=count)

    specks = np.flatnonzero(areas[1:] < minimum) + 1
    if specks.size > _FEW_REGIONS:
        keep = np.ones(count, dtype=np.uint8)
        keep[0] = 0
        keep[specks] = 0
        mask = keep[labels]
    else:
        for label in specks:
            window, selected = inside(label)
            mask[window][selected] = 0

    kept = np.flatnonzero(areas[1:] >= minimum) + 1
    pixel_area = None if pixel_spacing_mm is None else float(np.prod(pixel_spacing_mm))
    order = sorted(kept, key=lambda label: (boxes[label, 1], boxes[label, 0]))
    findings = []
    for index, label in enumerate(order, start=1):
        x0, y0, x1, y1 = (int(value) for value in boxes[label])
        area = int(areas[label])
        findings.append(
            LesionFinding(
                index=index,
                area_px=area,
                area_percent=100.0 * area / (height * width),
                area_mm2=None if pixel_area is None else area * pixel_area,
                box=(x0, y0, x1, y1),
                mean_probability=(
                    float("nan") if probability_map is None else float(sums[label] / area)
                ),
            )
        )
    return mask, findings


def findings_from_mask(
    mask: np.ndarray,
    pixel_spacing_mm: tuple[float, float] | None = None,
    probability_map: np.ndarray | None = None,
    min_area_px: int | None = None,
) -> list[LesionFinding]:
    """The lesions of a (H, W) mask (non-zero = lesion): 8-connected regions of at least
    ``min_area_px`` pixels (default ``min_lesion_area(mask.shape)``), areas in px, % and mm²."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    if probability_map is not None and np.shape(probability_map) != mask.shape:
        raise ValueError(
            f"probability_map {np.shape(probability_map)} and mask {mask.shape} differ in shape"
        )
    return _components(mask != 0, pixel_spacing_mm, probability_map, min_area_px)[1]


def threshold_probability_map(
    probability_map: np.ndarray,
    threshold: float,
    min_area_px: int | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> tuple[np.ndarray, list[LesionFinding]]:
    """Cut a (H, W) probability map: (mask (H, W) uint8 {0, 1}, lesions). No model; tens of
    milliseconds for a 3000x2400 map, so a threshold slider can call it on every move.

    The mask is probability_map >= threshold with regions smaller than ``min_area_px`` (default
    ``min_lesion_area``) removed.
    """
    probability_map = np.asarray(probability_map)
    if probability_map.ndim != 2:
        raise ValueError(f"probability_map must be (H, W), got shape {probability_map.shape}")
    threshold = _check_threshold(threshold)
    binary = probability_map >= np.asarray(threshold, dtype=probability_map.dtype)
    return _components(binary, pixel_spacing_mm, probability_map, min_area_px)


# ------------------------------------------------------------------------------------------------
# Models


def _pixels(image: DecodedImage | np.ndarray) -> np.ndarray:
    """The (H, W) uint8 grayscale pixels of a DecodedImage or an array ((H, W, 1) squeezed)."""
    pixels = image.pixels if isinstance(image, DecodedImage) else np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or min(pixels.shape) < 1:
        raise ValueError(
            f"expected an (H, W) uint8 grayscale image, got {pixels.shape} {pixels.dtype}"
        )
    return pixels


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(
            f"the batch size {batch_size!r} is not a positive whole number",
            where="--batch-size",
            fix="pass a batch size such as 8",
        )
    return batch_size


class _Model:
    """A loaded run: the Keras model called on letterboxed batches, one call at a time."""

    task = ""

    def __init__(self, run) -> None:
        self.run = run
        self.model = run.model
        self.config: dict[str, Any] = run.config
        self.name: str = run.name
        self.input_size: int = run.input_size
        self.path = Path(run.path)
        # Streamlit shares one instance across sessions (threads): Keras models are not
        # guaranteed to be thread-safe, and two calls at once would only compete for the cores.
        self._lock = threading.Lock()

    @classmethod
    def _load(cls, path: str | Path):
        from btseg.runs import load_run, read_run_info, train_command

        info = read_run_info(path)  # no TensorFlow: refuse a run of the wrong kind quickly
        config = info["config"] if info["complete"] else {}
        run = None
        if not config:
            run = load_run(path)  # raises the RunError that says what is missing
            config = run.config
        task = config.get("task") or (
            "segmentation" if info["threshold"] is not None else "classification"
        )
        if task != cls.task:
            name = config.get("run", Path(path).name)
            raise RunError(
                f"{name} is a {task} run, not a {cls.task} run",
                where=str(path),
                fix=f"point to a {cls.task} run folder; {train_command(name)} trains this one",
            )
        return cls(run if run is not None else load_run(path))

    def _call(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)

    def _inputs(self, images: Sequence[DecodedImage | np.ndarray]) -> np.ndarray:
        """(N, S, S, 3) float32 model inputs (the training transform)."""
        return np.stack([preprocess(_pixels(image), self.input_size) for image in images])

    def _outputs(self, inputs: np.ndarray, batch_size: int) -> np.ndarray:
        """The model's outputs for (N, S, S, 3) inputs, one call per ``batch_size`` rows."""
        _check_batch_size(batch_size)
        return np.concatenate(
            [
                self._call(inputs[first : first + batch_size])
                for first in range(0, len(inputs), batch_size)
            ]
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, input_size={self.input_size}, path={str(self.path)!r})"


class Segmenter(_Model):
    """A segmentation run (basic or attention U-Net); from_run(path) loads it.

    Attributes: name (run name), input_size (model side in px), threshold (the operating
    threshold chosen on validation), config (config.json).
    """

    task = "segmentation"

    def __init__(self, run) -> None:
        super().__init__(run)
        self.threshold: float = float(run.threshold if run.threshold is not None else 0.5)

    @classmethod
    def from_run(cls, path: str | Path) -> Segmenter:
        """Load a run folder. Raises RunError (missing, incomplete, corrupt, not a segmenter)."""
        return cls._load(path)

    def warm_up(self) -> None:
        """Trace the model once (a few seconds) so that the first real image is quick."""
        self.model_probabilities([np.zeros((self.input_size, self.input_size), np.uint8)])

    def model_probabilities(
        self, images: Sequence[DecodedImage | np.ndarray], batch_size: int = 8
    ) -> np.ndarray:
        """(N, S, S) float32 in [0, 1]: the letterboxed maps at model size, one call per batch."""
        _check_batch_size(batch_size)
        images = list(images)
        if not images:
            return np.zeros((0, self.input_size, self.input_size), dtype=np.float32)
        outputs = [
            self._outputs(self._inputs(images[first : first + batch_size]), batch_size)[..., 0]
            for first in range(0, len(images), batch_size)
        ]
        return np.clip(np.concatenate(outputs), 0.0, 1.0)

    def probability_maps(
        self, images: Sequence[DecodedImage | np.ndarray], batch_size: int = 8
    ) -> list[np.ndarray]:
        """(H, W) uint8 grayscale images -> (H, W) float32 maps in [0, 1] at original resolution."""
        images = list(images)
        maps = self.model_probabilities(images, batch_size)
        return [
            postprocess(small, _pixels(image).shape[:2])
            for small, image in zip(maps, images, strict=True)
        ]

    def segment(
        self, image: DecodedImage | np.ndarray, threshold: float | None = None
    ) -> Segmentation:
        """Segment one image at ``threshold`` (default: the run's validation threshold).

        A DecodedImage's pixel spacing gives lesion areas in mm².
        """
        threshold = self.threshold if threshold is None else _check_threshold(threshold)
        spacing = image.pixel_spacing_mm if isinstance(image, DecodedImage) else None
        probability_map = self.probability_maps([image])[0]
        mask, lesions = threshold_probability_map(
            probability_map, threshold, pixel_spacing_mm=spacing
        )
        return Segmentation(probability_map, threshold, mask, lesions, self.name, spacing)


class Classifier(_Model):
    """A classification run (normal / benign / malignant); from_run(path) loads it.

    Attributes: input_mode: "image" (trained on whole radiographs) or "region" (trained on crops
    around lesions: give it the box of ``lesion_to_classify(lesions)``; see btseg.data.regions).
    """

    task = "classification"

    def __init__(self, run) -> None:
        super().__init__(run)
        self.class_names: tuple[str, ...] = tuple(run.config.get("class_names") or CLASS_NAMES)
        self.input_mode: str = str(run.config.get("input_mode") or "image")
        self._grad_cam_function = None

    @property
    def classifies_regions(self) -> bool:
        """True when the model was trained on lesion regions rather than whole images."""
        return self.input_mode == "region"

    @staticmethod
    def lesion_to_classify(lesions: Sequence[LesionFinding]) -> LesionFinding | None:
        """The largest lesion (its box is the region a region-mode classifier is given; ties go
        to the first), or None when there is no lesion."""
        if not lesions:
            return None
        return max(lesions, key=lambda lesion: (lesion.area_px, -lesion.index))

    @classmethod
    def from_run(cls, path: str | Path) -> Classifier:
        """Load a run folder. Raises RunError (missing, incomplete, corrupt, not a classifier)."""
        return cls._load(path)

    def warm_up(self) -> None:
        """Trace the model and Grad-CAM once (seconds) so that the first real image is quick."""
        blank = np.zeros((self.input_size, self.input_size), np.uint8)
        self.predict_batch([blank])
        self.grad_cam(blank)

    def predict_batch(
        self, images: Sequence[DecodedImage | np.ndarray], batch_size: int = 8
    ) -> np.ndarray:
        """(N, n_classes) float32 probabilities (rows sum to 1), one model call per batch."""
        _check_batch_size(batch_size)
        images = list(images)
        if not images:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return np.concatenate(
            [
                self._outputs(self._inputs(images[first : first + batch_size]), batch_size)
                for first in range(0, len(images), batch_size)
            ]
        )

    def predict(
        self,
        image: DecodedImage | np.ndarray,
        box: tuple[float, float, float, float] | None = None,
    ) -> dict[str, float]:
        """{class name: probability} for the image, or for the region of ``box`` (x0, y0, x1,
        y1 in original pixels) widened by BOX_MARGIN on each side."""
        pixels = _pixels(image)
        if box is not None:
            pixels = crop(pixels, box)
        probabilities = self.predict_batch([pixels])[0]
        return {
            name: float(value) for name, value in zip(self.class_names, probabilities, strict=True)
        }

    def grad_cam(
        self,
        image: DecodedImage | np.ndarray,
        class_index: int | None = None,
        box: tuple[float, float, float, float] | None = None,
    ) -> np.ndarray:
        """Grad-CAM of ``class_index`` (default: the predicted class) on the last convolutional
        activation: (H, W) float32 in [0, 1] at original resolution (all zeros when no
        location raises the class score). With ``box``, of the region ``predict`` classifies
        for that box, zero outside it. Overlay it with btseg.viz."""
        pixels = _pixels(image)
        if box is None:
            return self._grad_cam_of(pixels, class_index)
        left, top, right, bottom = crop_box(pixels.shape, box)
        cam = np.zeros(pixels.shape, dtype=np.float32)
        cam[top:bottom, left:right] = self._grad_cam_of(
            np.ascontiguousarray(pixels[top:bottom, left:right]), class_index
        )
        return cam

    def _grad_cam_of(self, pixels: np.ndarray, class_index: int | None) -> np.ndarray:
        import cv2
        import tensorflow as tf

        if class_index is not None and not 0 <= int(class_index) < len(self.class_names):
            raise ValueError(
                f"class_index must be in 0..{len(self.class_names) - 1}, got {class_index}"
            )
        batch = tf.constant(self._inputs([pixels]))
        chosen = tf.constant(-1 if class_index is None else int(class_index), dtype=tf.int32)
        with self._lock:
            if self._grad_cam_function is None:
                self._grad_cam_function = self._build_grad_cam()
            cam = self._grad_cam_function(batch, chosen)
        cam = np.asarray(cam, dtype=np.float32)
        peak = float(cam.max())
        cam = cam / peak if peak > 0 else np.zeros_like(cam)
        size = self.input_size
        cam = cv2.resize(cam, (size, size), interpolation=cv2.INTER_LINEAR)
        return np.clip(postprocess(cam, pixels.shape[:2]), 0.0, 1.0)

    def _build_grad_cam(self):
        """A compiled function (1, S, S, 3) batch, class index (-1: predicted) -> (S/32, S/32)
        class activation map: ReLU of the activations weighted by their mean gradients."""
        import keras
        import tensorflow as tf

        from btseg.models.classifier import CLASSIFIER_GRADCAM_LAYER

        try:
            layer = self.model.get_layer(CLASSIFIER_GRADCAM_LAYER)
        except ValueError:
            raise RunError(
                f"the model has no layer {CLASSIFIER_GRADCAM_LAYER!r} for Grad-CAM",
                where=str(self.path),
                fix="train the classifier again with this version of btseg: "
                "btseg train --model classifier --data DIR",
            ) from None
        grad_model = keras.Model(self.model.inputs, [layer.output, self.model.output])
        size = self.input_size

        @tf.function(
            input_signature=[
                tf.TensorSpec((1, size, size, 3), tf.float32),
                tf.TensorSpec((), tf.int32),
            ]
        )
        def grad_cam(batch, class_index):
            with tf.GradientTape() as tape:
                activations, probabilities = grad_model(batch, training=False)
                predicted = tf.argmax(probabilities[0], output_type=tf.int32)
                chosen = tf.where(class_index < 0, predicted, class_index)
                score = tf.gather(probabilities, chosen, axis=1)
            gradients = tape.gradient(score, activations)
            weights = tf.reduce_mean(gradients, axis=(1, 2))  # (1, channels)
            return tf.nn.relu(tf.reduce_sum(activations * weights[:, None, None, :], axis=-1))[0]

        return grad_cam


# ------------------------------------------------------------------------------------------------
# Folders of images: `btseg predict`


@dataclass(frozen=True)
class InputFile:
    """A file to predict; ``skipped`` holds the reason when it is not processed."""

    path: Path
    skipped: str = ""


def expand_paths(paths: Iterable[str | Path]) -> list[InputFile]:
    """Files to predict, in order: a file as given; a folder's top-level files sorted by name
    (not its subfolders), those without an image extension listed as skipped. Hidden files
    (".DS_Store", "._x.jpg") in folders are left out."""
    entries: list[InputFile] = []
    for item in paths:
        path = Path(item)
        if not path.is_dir():
            entries.append(InputFile(path))
            continue
        for child in sorted(path.iterdir(), key=lambda child: child.name):
            if child.name.startswith("."):
                continue
            if child.is_dir():
                entries.append(
                    InputFile(child, "is a subfolder; folders are not searched recursively")
                )
            elif child.suffix.lower() not in IMAGE_SUFFIXES:
                entries.append(
                    InputFile(
                        child, f"not an image file name (accepted: {', '.join(IMAGE_SUFFIXES)})"
                    )
                )
            else:
                entries.append(InputFile(child))
    return entries


def _output_stems(entries: list[InputFile]) -> list[str]:
    """Unique output stems: the file's stem, then stem-ext, then stem-ext-2 ... on collisions."""
    used: set[str] = set()
    stems = []
    for entry in entries:
        stem = entry.path.stem or entry.path.name or "image"
        candidates = [stem, f"{stem}-{entry.path.suffix.lstrip('.').lower() or 'file'}"]
        chosen = next((name for name in candidates if name.lower() not in used), None)
        number = 2
        while chosen is None:
            candidate = f"{candidates[1]}-{number}"
            chosen = candidate if candidate.lower() not in used else None
            number += 1
        used.add(chosen.lower())
        stems.append(chosen)
    return stems


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_mask_png(path: str | Path, mask: np.ndarray) -> None:
    """Write a (H, W) mask as an 8-bit PNG of 0 and 255, atomically."""
    import cv2

    ok, encoded = cv2.imencode(".png", (np.asarray(mask) > 0).astype(np.uint8) * 255)
    if not ok:
        raise ValueError(f"the mask {np.shape(mask)} cannot be encoded as PNG")
    _atomic_write_bytes(Path(path), encoded.tobytes())


def _lesion_label(probabilities: np.ndarray | None, class_names: Sequence[str]) -> str:
    if probabilities is None:
        return "tumor"
    predicted = class_names[int(np.argmax(probabilities))]
    return predicted if predicted != "normal" else "tumor"


def _decode(entry: InputFile) -> DecodedImage:
    from btseg.data.images import read_image

    try:
        return read_image(entry.path)
    except ImageError:
        raise
    except Exception as error:  # one odd file must not end a batch of thousands
        raise ImageError(
            f"could not be decoded ({type(error).__name__}: {error})",
            where=entry.path.name,
            fix="Convert it to PNG or JPEG",
        ) from None


def _decode_chunk(
    entries: list[InputFile], chunk: list[int]
) -> tuple[dict[int, DecodedImage], dict[int, tuple[str, str]]]:
    """({position: image}, {position: (status, reason)}) for the files of one chunk."""
    decoded: dict[int, DecodedImage] = {}
    problems: dict[int, tuple[str, str]] = {}
    for position in chunk:
        entry = entries[position]
        if entry.skipped:
            problems[position] = ("skipped", entry.skipped)
            continue
        try:
            decoded[position] = _decode(entry)
        except ImageError as error:
            problems[position] = ("error", str(error))
    return decoded, problems


def _write_outputs(
    image: DecodedImage,
    model_map: np.ndarray,
    threshold: float,
    scores: np.ndarray | None,
    class_names: Sequence[str],
    out_dir: Path,
    stem: str,
    image_name: str,
    region_classifier: Classifier | None = None,
) -> dict[str, Any]:
    """Write <stem>_mask.png and <stem>.json for one image; its summary values. A region-mode
    ``region_classifier`` classifies the largest lesion's region (no scores without a lesion)."""
    from btseg.data.labelme import mask_to_lesions, write_annotation

    height, width = image.shape
    probability_map = postprocess(model_map, (height, width))
    mask, lesions = threshold_probability_map(
        probability_map, threshold, pixel_spacing_mm=image.pixel_spacing_mm
    )
    if region_classifier is not None:
        lesion = Classifier.lesion_to_classify(lesions)
        if lesion is not None:
            probabilities = region_classifier.predict(image.pixels, box=lesion.box)
            scores = np.array([probabilities[name] for name in class_names], dtype=np.float32)
    mask_file, annotation_file = f"{stem}_mask.png", f"{stem}.json"
    write_mask_png(out_dir / mask_file, mask)
    outlines = mask_to_lesions(mask, label=_lesion_label(scores, class_names))
    write_annotation(out_dir / annotation_file, outlines, image_name, height, width)
    values: dict[str, Any] = {
        "height": height,
        "width": width,
        "lesions": len(lesions),
        "lesion_area_percent": 100.0 * float(mask.sum(dtype=np.int64)) / mask.size,
        "lesion_area_mm2": (
            None
            if image.pixel_spacing_mm is None
            else float(mask.sum(dtype=np.int64)) * float(np.prod(image.pixel_spacing_mm))
        ),
        "mask_file": mask_file,
        "annotation_file": annotation_file,
    }
    if scores is not None:
        for name, value in zip(class_names, scores, strict=True):
            values[f"prob_{name}"] = float(value)
        values["predicted_class"] = class_names[int(np.argmax(scores))]
    return values


def predict_paths(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    segmenter: Segmenter,
    classifier: Classifier | None,
    threshold: float | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Segment (and classify) images and folders of images; write the results to ``out_dir``.

    For each readable image: ``<stem>_mask.png`` (0/255 at the original resolution) and
    ``<stem>.json`` (LabelMe 5.x, one rectangle + polygon per lesion). Lesions are labelled
    with the predicted class when the classifier predicts "benign" or "malignant", else
    "tumor" (no classifier, or a classifier that calls the image normal). A classifier trained on
    regions classifies the region of the largest lesion; without a lesion its columns stay
    empty. Then ``summary.csv``
    with one row per file, in input order (SUMMARY_COLUMNS; status "ok", "error" or "skipped"
    with the reason in "error"). Unreadable files never stop the batch. Images are decoded,
    preprocessed and sent to each model ``batch_size`` at a time.

    lesion_area_mm2 is filled for DICOM files that give a pixel spacing.

    Args:
        paths: image files (any extension; the content decides) and folders (their top-level
            .jpg/.jpeg/.png/.dcm files, sorted by name; see expand_paths).
        out_dir: output folder (created).
        threshold: mask threshold; default the segmenter's validation threshold.
        progress: called as progress(done, total) after each file.

    Returns:
        the summary as a DataFrame (also written to out_dir/summary.csv).
    """
    threshold = (
        segmenter.threshold if threshold is None else _check_threshold(threshold, "--threshold")
    )
    _check_batch_size(batch_size)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"the output folder cannot be created ({error.strerror or error})",
            where=str(out_dir),
            fix="choose a folder you may write to with --out",
        ) from None
    entries = expand_paths(paths)
    stems = _output_stems(entries)
    total = len(entries)
    chunks = [
        list(range(first, min(total, first + batch_size))) for first in range(0, total, batch_size)
    ]
    class_names = classifier.class_names if classifier is not None else CLASS_NAMES
    rows: list[dict[str, Any]] = []
    # The next chunk is decoded in a thread while the models run (decoders and TensorFlow
    # release the GIL), so decoding overlaps the model calls.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_decode_chunk, entries, chunks[0]) if chunks else None
        for number, chunk in enumerate(chunks):
            decoded, problems = pending.result()
            if number + 1 < len(chunks):
                pending = pool.submit(_decode_chunk, entries, chunks[number + 1])
            good = list(decoded)
            images = [decoded[position].pixels for position in good]
            inputs: dict[int, np.ndarray] = {}  # one preprocessing per input size
            whole_image_classifier = (
                classifier if classifier is not None and not classifier.classifies_regions else None
            )
            for model in (segmenter, whole_image_classifier):
                if model is not None and images and model.input_size not in inputs:
                    inputs[model.input_size] = model._inputs(images)
            maps = (
                segmenter._outputs(inputs[segmenter.input_size], batch_size)[..., 0]
                if images
                else []
            )
            scores = (
                whole_image_classifier._outputs(inputs[classifier.input_size], batch_size)
                if whole_image_classifier is not None and images
                else None
            )
            region_classifier = (
                classifier if classifier is not None and classifier.classifies_regions else None
            )
            for position in chunk:
                entry = entries[position]
                row: dict[str, Any] = dict.fromkeys(_TEXT_COLUMNS, "")
                row.update(file=str(entry.path), status="ok")
                if position in problems:
                    row["status"], row["error"] = problems[position]
                else:
                    index = good.index(position)
                    row.update(
                        _write_outputs(
                            decoded[position], np.clip(maps[index], 0.0, 1.0), threshold,
                            None if scores is None else scores[index], class_names,
                            out_dir, stems[position], entry.path.name, region_classifier,
                        )
                    )  # fmt: skip
                row["threshold"] = threshold
                row["segmentation_run"] = segmenter.name
                row["classifier_run"] = classifier.name if classifier is not None else ""
                rows.append(row)
                if progress is not None:
                    progress(len(rows), total)
    summary = _summary_frame(rows)
    _atomic_write_bytes(out_dir / SUMMARY_FILE, summary.to_csv(index=False).encode("utf-8"))
    return summary


def _summary_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in ("height", "width", "lesions"):
        frame[column] = frame[column].astype("Int64")
    for column in (
        "lesion_area_percent",
        "lesion_area_mm2",
        "prob_normal",
        "prob_benign",
        "prob_malignant",
        "threshold",
    ):
        frame[column] = frame[column].astype("float64")
    for column in _TEXT_COLUMNS:
        frame[column] = frame[column].astype(str)
    return frame


def run_predict(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    models_dir: str | Path,
    model: str = "attention",
    threshold: float | None = None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """`btseg predict`: load the segmenter ("attention" or "basic") and, if trained, the
    classifier from ``models_dir``, then predict_paths.

    Without a usable classifier run a warning is issued (and kept in the result's
    ``attrs["warnings"]``) and the probability columns stay empty.

    Raises:
        RunError: the segmentation run is missing or broken (the message gives the train command).
        ConfigError: unknown model, bad threshold or batch size, no file to predict (empty
            folders), unwritable output folder.
    """
    from btseg.runs import run_name_for

    if model not in ("attention", "basic", "attention_unet", "basic_unet"):
        raise ConfigError(
            f"unknown segmentation model {model!r}",
            where="--model",
            fix="choose attention or basic",
        )
    if threshold is not None:
        _check_threshold(threshold, "--threshold")
    _check_batch_size(batch_size)
    if not expand_paths(paths):
        raise ConfigError(
            "there is no file to predict",
            where=", ".join(str(path) for path in paths) or "PATH",
            fix="pass image files, or folders holding .jpg, .jpeg, .png or .dcm files",
        )
    models_dir = Path(models_dir)
    segmenter = Segmenter.from_run(models_dir / run_name_for(model))
    notes: list[str] = []
    try:
        classifier: Classifier | None = Classifier.from_run(models_dir / run_name_for("classifier"))
    except RunError as error:
        classifier = None
        notes.append(f"no class probabilities: {error}")
        warnings.warn(notes[-1], stacklevel=2)
    summary = predict_paths(
        paths,
        out_dir,
        segmenter,
        classifier,
        threshold=threshold,
        batch_size=batch_size,
        progress=progress,
    )
    summary.attrs["warnings"] = notes
    return summary
