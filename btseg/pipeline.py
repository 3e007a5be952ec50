"""tf.data input over the preprocessed cache: model inputs, augmentation, balanced sampling.

The cache holds letterboxed uint8 images at model size, so the model input is
`images.preprocess(cached_image, size)`: the uint8 image divided by 255 as float32 and repeated to
three channels. `model_input` does exactly that in TensorFlow, so training and inference see the
same numbers.

Augmentation draws one affine transform per image (horizontal flip, rotation, shift, zoom) and
applies it to the image and its mask stacked together, so the two stay aligned; the mask is
re-binarised at 0.5 afterwards. Brightness and contrast change the image only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The study's balance ratio: half of the sampled training images hold a tumour.
DEFAULT_TUMOUR_FRACTION = 0.5


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random augmentation. Angles in degrees, shifts as fractions of the side."""

    flip: bool = True
    rotation_degrees: float = 10.0
    shift_fraction: float = 0.05
    zoom_range: float = 0.1          # scale drawn from [1 - zoom_range, 1 + zoom_range]
    brightness: float = 0.1          # added to the [0, 1] image, drawn from [-b, b]
    contrast: float = 0.2            # factor around the image mean, drawn from [1 - c, 1 + c]


def model_input(images):
    """uint8 (..., H, W) or (..., H, W, 1) grayscale -> float32 (..., H, W, 3) in [0, 1].

    The same numbers as btseg.data.images.preprocess on an image already at model size.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    if images.shape.rank is not None and (images.shape.rank == 2 or images.shape[-1] != 1):
        images = images[..., tf.newaxis]
    scaled = tf.cast(images, tf.float32) / tf.constant(255.0, tf.float32)
    return tf.repeat(scaled, 3, axis=-1)


def _affine_parameters(size: int, augmentation: Augmentation):
    """(8,) float32 projective transform mapping output pixels to input pixels, drawn at random."""
    import tensorflow as tf

    angle = tf.random.uniform((), -1.0, 1.0) * augmentation.rotation_degrees * math.pi / 180.0
    scale = 1.0 + tf.random.uniform((), -1.0, 1.0) * augmentation.zoom_range
    shift = tf.random.uniform((2,), -1.0, 1.0) * augmentation.shift_fraction * size
    flip = (
        tf.cast(tf.random.uniform(()) < 0.5, tf.float32) if augmentation.flip else tf.constant(0.0)
    )
    mirror = 1.0 - 2.0 * flip  # -1 mirrors x about the centre
    center = (size - 1) / 2.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Forward: out = c + s R (M (in - c)) + t; the op needs the inverse: in = c + M R^-1 (out - c - t) / s.
    a0, a1 = mirror * cos / scale, mirror * sin / scale
    b0, b1 = -sin / scale, cos / scale
    ox, oy = center + shift[0], center + shift[1]
    a2 = center - a0 * ox - a1 * oy
    b2 = center - b0 * ox - b1 * oy
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def augment_pair(image, mask, augmentation: Augmentation = Augmentation()):
    """Random geometric augmentation of an image and its mask, then brightness/contrast.

    Args:
        image: (S, S, 1) float32 in [0, 1].
        mask: (S, S, 1) float32 {0, 1}, or None for classification.
    Returns:
        (image, mask) with the same shapes; mask values in {0, 1} (None stays None).
    """
    import tensorflow as tf

    size = image.shape[0]
    channels = [image] if mask is None else [image, mask]
    stacked = tf.concat(channels, axis=-1)[tf.newaxis]
    transform = _affine_parameters(size, augmentation)[tf.newaxis]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=stacked,
        transforms=transform,
        output_shape=tf.constant([size, size], tf.int32),
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )[0]
    image = warped[..., :1]
    if mask is not None:
        mask = tf.cast(warped[..., 1:] >= 0.5, tf.float32)
    if augmentation.contrast:
        factor = 1.0 + tf.random.uniform((), -1.0, 1.0) * augmentation.contrast
        mean = tf.reduce_mean(image)
        image = (image - mean) * factor + mean
    if augmentation.brightness:
        image = image + tf.random.uniform((), -1.0, 1.0) * augmentation.brightness
    return tf.clip_by_value(image, 0.0, 1.0), mask


def tumour_positions(masks: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split positions into (with tumour pixels, without any) by their masks (N, S, S)."""
    positions = np.asarray(positions, dtype=np.int64)
    has_tumour = np.array([bool(masks[p].any()) for p in positions], dtype=bool)
    return positions[has_tumour], positions[~has_tumour]


def segmentation_dataset(
    arrays,
    positions: np.ndarray,
    batch_size: int,
    *,
    training: bool,
    augment: bool = False,
    tumour_fraction: float | None = None,
    seed: int = 0,
    augmentation: Augmentation = Augmentation(),
):
    """Batches of (image (B,S,S,3) float32, mask (B,S,S,1) float32) from CachedArrays rows.

    Args:
        arrays: CachedArrays (images and masks at model size).
        positions: rows of `arrays` to use.
        training: shuffle (and augment / balance when asked); otherwise keep order.
        augment: apply augment_pair to each training image and mask.
        tumour_fraction: when set, sample tumour and tumour-free images with these weights
            (tf.data sample_from_datasets over two repeated, shuffled streams); None keeps the
            data's own proportion.
    Returns:
        (dataset, steps): steps batches make one epoch (ceil(len(positions) / batch_size)).
    """
    import tensorflow as tf

    positions = np.asarray(positions, dtype=np.int64)
    if positions.size == 0:
        raise ValueError("no images to build a dataset from")
    steps = math.ceil(positions.size / batch_size)

    def stream(subset: np.ndarray):
        images = np.ascontiguousarray(arrays.images[subset])
        masks = np.ascontiguousarray(arrays.masks[subset])
        return tf.data.Dataset.from_tensor_slices((images, masks))

    def prepare(image, mask):
        image = tf.cast(image, tf.float32)[..., tf.newaxis] / tf.constant(255.0, tf.float32)
        mask = tf.cast(mask, tf.float32)[..., tf.newaxis]
        if training and augment:
            image, mask = augment_pair(image, mask, augmentation)
        return tf.repeat(image, 3, axis=-1), mask

    if not training:
        dataset = stream(positions)
    elif tumour_fraction is None:
        dataset = stream(positions).shuffle(positions.size, seed=seed, reshuffle_each_iteration=True)
    else:
        if not 0.0 < tumour_fraction < 1.0:
            raise ValueError(f"tumour_fraction must be in (0, 1), got {tumour_fraction}")
        with_tumour, without_tumour = tumour_positions(arrays.masks, positions)
        if with_tumour.size == 0 or without_tumour.size == 0:
            dataset = stream(positions).shuffle(positions.size, seed=seed).repeat()
        else:
            parts = [
                stream(part).shuffle(part.size, seed=seed + offset).repeat()
                for offset, part in enumerate((with_tumour, without_tumour))
            ]
            dataset = tf.data.Dataset.sample_from_datasets(
                parts, weights=[tumour_fraction, 1.0 - tumour_fraction], seed=seed
            )
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE), steps


def classification_dataset(
    arrays,
    positions: np.ndarray,
    batch_size: int,
    *,
    training: bool,
    augment: bool = False,
    seed: int = 0,
    augmentation: Augmentation = Augmentation(),
    steps_per_epoch: int | None = None,
):
    """Batches of (image (B,S,S,3) float32, label (B,) int32 index into CLASS_NAMES).

    Args:
        arrays: CachedArrays, or anything with (N, S, S) uint8 `images` and (N,) `labels`
            (btseg.train.ClassifierImages: region crops).
        steps_per_epoch: training only: repeat the shuffled data and call this many batches an
            epoch (region crops hold several variants of each image); None: one pass.
    Returns:
        (dataset, steps) as segmentation_dataset; training data is reshuffled each epoch.
    """
    import tensorflow as tf

    positions = np.asarray(positions, dtype=np.int64)
    if positions.size == 0:
        raise ValueError("no images to build a dataset from")
    steps = math.ceil(positions.size / batch_size)
    images = np.ascontiguousarray(arrays.images[positions])
    labels = np.asarray(arrays.labels[positions], dtype=np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        dataset = dataset.shuffle(positions.size, seed=seed, reshuffle_each_iteration=True)
        if steps_per_epoch is not None:
            dataset, steps = dataset.repeat(), int(steps_per_epoch)

    def prepare(image, label):
        image = tf.cast(image, tf.float32)[..., tf.newaxis] / tf.constant(255.0, tf.float32)
        if training and augment:
            image, _ = augment_pair(image, None, augmentation)
        return tf.repeat(image, 3, axis=-1), label

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE), steps


def image_dataset(arrays, positions: np.ndarray, batch_size: int):
    """Batches of model inputs (B,S,S,3) float32 only, in the order of `positions` (prediction)."""
    import tensorflow as tf

    images = np.ascontiguousarray(arrays.images[np.asarray(positions, dtype=np.int64)])
    dataset = tf.data.Dataset.from_tensor_slices(images).map(
        model_input, num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def class_weights(labels: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """Inverse-frequency class weights (num_classes,) float64, normalised to average 1 per sample.

    w_c = N / (K * n_c) for the K classes present (n_c > 0), so sum_c n_c w_c = N; an absent
    class gets weight 0. Example: labels [0, 0, 0, 1] -> [2/3, 2, 0].
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    if labels.size == 0:
        raise ValueError("class_weights needs at least one label")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = labels.size / (present.sum() * counts[present])
    return weights
