"""The trained models, loaded and run: a Segmenter gives probability maps, a Classifier class
probabilities and Grad-CAM heatmaps.

    segmenter = Segmenter.from_run("models/attention_unet")
    probability_map = segmenter.probability_maps([image])[0]   # (H, W) float32 at original pixels
    classifier = Classifier.from_run("models/classifier")
    classifier.predict(image, box=(x0, y0, x1, y1))             # {"normal": p, "benign": p, ...}

What is decided from these outputs (mask, lesions, verdict) is decided in btseg.decisions, and an
image is turned into a prediction in btseg.predict.

Every model input goes through ``btseg.data.images.preprocess`` (the training transform) and every
model-size map comes back through ``postprocess`` (its exact inverse), so masks and heatmaps lie
on the original pixels. A patch-trained segmenter runs on the whole image letterboxed to its
working size (btseg.patches.predict_whole), one image per model call, so that an image's map does
not depend on the batch it came in. TensorFlow is imported only when a model is loaded or called.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from btseg.config import CLASS_NAMES
from btseg.data.images import DecodedImage, postprocess, preprocess
from btseg.data.regions import crop, crop_box
from btseg.decisions import OperatingPoint
from btseg.errors import ConfigError, RunError

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


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(
            f"the batch size {batch_size!r} is not a positive whole number",
            where="--batch-size",
            fix="pass a batch size such as 8",
        )
    return batch_size


def _read_temperature(run_dir: Path) -> float | None:
    """The temperature in run_dir/evaluation/calibration.json, None without a usable one."""
    import json

    from btseg.calibration import CALIBRATION_FILE

    try:
        payload = json.loads((run_dir / "evaluation" / CALIBRATION_FILE).read_text("utf-8"))
        value = float(payload["temperature"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if value > 0 and np.isfinite(value) else None


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
        check_batch_size(batch_size)
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

    Attributes: name (run name), input_size (training input side in px), inference_size (the
    side of the letterboxed image the model runs on), operating_point (threshold and minimum
    lesion size chosen on validation), threshold (its threshold), config (config.json).
    """

    task = "segmentation"

    def __init__(self, run) -> None:
        super().__init__(run)
        self.operating_point: OperatingPoint = run.operating_point or OperatingPoint(0.5)
        self.threshold: float = self.operating_point.threshold
        self.inference_size: int = int(run.inference_size)
        window = self.config.get("inference_window")
        self.inference_window: int | None = int(window) if window else None
        self.tta_mirror: bool = bool(self.config.get("tta_mirror", False))

    @classmethod
    def from_run(cls, path: str | Path) -> Segmenter:
        """Load a run folder. Raises RunError (missing, incomplete, corrupt, not a segmenter)."""
        return cls._load(path)

    def warm_up(self) -> None:
        """Trace the model once (a few seconds) so that the first real image is quick."""
        self.model_probabilities([np.zeros((self.inference_size, self.inference_size), np.uint8)])

    def model_probabilities(self, images: Sequence[DecodedImage | np.ndarray]) -> np.ndarray:
        """(N, S, S) float32 in [0, 1]: the letterboxed maps at the inference size, one image per
        model call."""
        images = list(images)
        size = self.inference_size
        maps = np.zeros((len(images), size, size), dtype=np.float32)
        from btseg.patches import predict_whole

        for index, image in enumerate(images):
            inputs = preprocess(_pixels(image), size)[None]
            maps[index] = predict_whole(
                self._call, inputs, window=self.inference_window, mirror=self.tta_mirror
            )[0]
        return np.clip(maps, 0.0, 1.0)

    def mirrored_maps(self, image: DecodedImage | np.ndarray) -> np.ndarray:
        """(4, S, S) float32: the model's map of the image and of its horizontally, vertically
        and doubly flipped copies, each flipped back (the views mirrored test-time augmentation
        averages)."""
        from btseg.patches import mirrored_predictions

        inputs = preprocess(_pixels(image), self.inference_size)[None]
        views = mirrored_predictions(self._call, inputs, window=self.inference_window)
        return np.clip(views[:, 0], 0.0, 1.0).astype(np.float32)

    def uncertainty_map(self, image: DecodedImage | np.ndarray) -> np.ndarray:
        """(H, W) float32 in [0, 1] at original resolution: where the model is unsure, as the
        spread (standard deviation) of its four mirrored predictions, times 2 so that 1 is the
        largest spread maps in [0, 1] can have. Four model calls."""
        spread = 2.0 * self.mirrored_maps(image).std(axis=0)
        return np.clip(postprocess(spread, _pixels(image).shape[:2]), 0.0, 1.0)

    def probability_maps(self, images: Sequence[DecodedImage | np.ndarray]) -> list[np.ndarray]:
        """(H, W) uint8 grayscale images -> (H, W) float32 maps in [0, 1] at original resolution."""
        images = list(images)
        maps = self.model_probabilities(images)
        return [
            postprocess(small, _pixels(image).shape[:2])
            for small, image in zip(maps, images, strict=True)
        ]


class Classifier(_Model):
    """A classification run (normal / benign / malignant); from_run(path) loads it.

    Attributes: input_mode: "image" (trained on whole radiographs) or "region" (trained on crops
    around lesions: give it the box of ``btseg.decisions.most_probable_lesion(lesions)``; see
    btseg.data.regions). temperature: the temperature fitted on validation by `btseg evaluate`
    (evaluation/calibration.json; None before), with which ``predict`` calibrates.
    """

    task = "classification"

    def __init__(self, run) -> None:
        super().__init__(run)
        self.class_names: tuple[str, ...] = tuple(run.config.get("class_names") or CLASS_NAMES)
        self.input_mode: str = str(run.config.get("input_mode") or "image")
        self.temperature: float | None = _read_temperature(self.path)
        self._grad_cam_function = None

    @property
    def classifies_regions(self) -> bool:
        """True when the model was trained on lesion regions rather than whole images."""
        return self.input_mode == "region"

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
        check_batch_size(batch_size)
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
        calibrated: bool = True,
    ) -> dict[str, float]:
        """{class name: probability} for the image, or for the region of ``box`` (x0, y0, x1,
        y1 in original pixels) widened by BOX_MARGIN on each side; temperature-scaled when the
        run has a fitted temperature and ``calibrated`` (the most probable class is the same)."""
        pixels = _pixels(image)
        if box is not None:
            pixels = crop(pixels, box)
        probabilities = self.predict_batch([pixels])[0]
        if calibrated and self.temperature is not None:
            from btseg.calibration import apply_temperature

            probabilities = apply_temperature(probabilities, self.temperature)
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
