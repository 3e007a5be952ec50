"""Training on patches at a working resolution, and whole-image prediction (nnU-Net style).

About half of BTXRD's lesions cover under 1% of the radiograph, so a whole image shrunk to 224
or 96 px leaves them a few pixels. Instead the images are letterboxed once to a working size
where lesions keep their texture (btseg.data.cache), a fully convolutional U-Net is trained on
square patches cut from them, and the whole image is predicted at the working size:

    sampler = PatchSampler(arrays.images, arrays.masks, train_positions, patch_size=128,
                           foreground_share=0.5, boxes=content_boxes_of(...), seed=0)
    dataset = patch_dataset(sampler, batch_size=16, augment=True)          # for model.fit
    maps = predict_whole(model.predict_on_batch, inputs, window=None, mirror=True)

Sampling: a share ``foreground_share`` of the patches is centred on a lesion pixel drawn at
random from a random tumour image (the centre jittered by up to a quarter of the patch); the
others are drawn uniformly over the image content (the letterbox padding left out) of a random
training image, normal images included. Patches are mirrored along both axes at random (what
mirrored test-time augmentation averages over), then rotated, scaled and given a brightness and
contrast change by btseg.pipeline.augment_pair on a context window 1.25 times the patch, whose
centre is kept, so the rotation brings in little padding.

``predict_whole`` is the one inference function: training validation, `btseg evaluate`,
`btseg predict` and the Segment page all call it. NumPy only at import; TensorFlow is imported
inside the functions that build the tf.data input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

#: nnU-Net's share of patches forced to contain foreground.
NNUNET_FOREGROUND_SHARE = 1 / 3
#: The lesion-centred patch centre moves by up to this fraction of the patch side.
CENTRE_JITTER = 0.25
#: Augmented patches are cut from a window this much larger, then centre-cropped.
CONTEXT_FACTOR = 1.25
#: Gaussian blending of sliding windows: sigma = window * this (nnU-Net's 1/8).
GAUSSIAN_SIGMA_SCALE = 1 / 8

#: predict_whole(mirror=True) averages over these flips: (flip rows, flip columns).
MIRRORS: tuple[tuple[bool, bool], ...] = ((False, False), (False, True), (True, False), (True, True))


# ------------------------------------------------------------------------------------------------
# Image content inside the letterbox


def content_box(shape: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) (bottom and right exclusive) of an image of original
    (height, width) ``shape`` inside its ``size`` x ``size`` letterbox (btseg.data.images)."""
    from btseg.data.images import letterbox

    box = letterbox(shape, size)
    return (box.top, box.left, box.top + box.new_height, box.left + box.new_width)


def estimate_content_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a letterboxed (S, S) image from its pixels, when the
    original shape is unknown: the letterbox pads with zeros evenly on both sides of one axis,
    so the padding is the smaller of the all-zero margins on the two sides, mirrored (a black
    border of the radiograph itself on one side is not taken for padding)."""
    image = np.asarray(image)
    size = image.shape[0]
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return (0, 0, size, size)

    def span(indices: np.ndarray) -> tuple[int, int]:
        before, after = int(indices[0]), size - 1 - int(indices[-1])
        pad = min(before, after)
        # The letterbox puts the odd pixel of padding at the end.
        return pad, size - pad - (1 if after == before + 1 else 0)

    top, bottom = span(rows)
    left, right = span(cols)
    return (top, left, bottom, right)


def crop_to_content(array: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """The (H, W, ...) array cut to a (top, left, bottom, right) box."""
    top, left, bottom, right = (int(value) for value in box)
    return array[top:bottom, left:right]


# ------------------------------------------------------------------------------------------------
# Sampling


@dataclass(frozen=True)
class Patches:
    """Patches drawn by PatchSampler.draw.

    Attributes:
        images: (K, P, P) uint8.
        masks: (K, P, P) uint8 {0, 1}.
        positions: (K,) rows of the arrays the patches come from.
        origins: (K, 2) int64 (row, column) of each patch's top-left corner.
        foreground: (K,) bool, True for patches centred on a lesion pixel.
    """

    images: np.ndarray
    masks: np.ndarray
    positions: np.ndarray
    origins: np.ndarray
    foreground: np.ndarray


class PatchSampler:
    """Square patches of letterboxed images and masks, a fixed share centred on a lesion.

    Args:
        images: (N, S, S) uint8 letterboxed images at the working size (CachedArrays.images).
        masks: (N, S, S) uint8 {0, 1} masks, zeros for normal images.
        positions: rows of images/masks to sample from (the training part).
        patch_size: side of the patches in pixels, at most S.
        foreground_share: share of patches centred on a lesion pixel, in [0, 1] (nnU-Net uses
            1/3). With no tumour image among the positions every patch is a random one.
        boxes: (len(positions), 4) content boxes (top, left, bottom, right) of the positions'
            images (see content_box); None estimates them from the pixels.
        seed: seeds the draws: the same seed gives the same patches.
        normal_bone_share: share of patches centred on a bone pixel (brighter than the image's
            Otsu threshold, inside its content) of an image without a lesion: negatives where
            a radiograph's false positives arise, not on air or soft tissue. 0 (the default)
            draws exactly as without it.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        positions: Sequence[int] | np.ndarray,
        patch_size: int,
        foreground_share: float = NNUNET_FOREGROUND_SHARE,
        boxes: np.ndarray | None = None,
        seed: int = 0,
        normal_bone_share: float = 0.0,
    ) -> None:
        self.images, self.masks = images, masks
        self.positions = np.asarray(positions, dtype=np.int64)
        if self.positions.size == 0:
            raise ValueError("no images to sample patches from")
        self.size = int(images.shape[1])
        self.patch_size = int(patch_size)
        if not 1 <= self.patch_size <= self.size:
            raise ValueError(f"patch_size must be in [1, {self.size}], got {patch_size}")
        if not 0.0 <= float(foreground_share) <= 1.0:
            raise ValueError(f"foreground_share must be in [0, 1], got {foreground_share}")
        self.foreground_share = float(foreground_share)
        self.normal_bone_share = float(normal_bone_share)
        if not 0.0 <= self.normal_bone_share <= 1.0 - self.foreground_share:
            raise ValueError(
                f"normal_bone_share must be in [0, 1 - foreground_share], got {normal_bone_share}"
            )
        if boxes is None:
            boxes = np.array([estimate_content_box(images[p]) for p in self.positions])
        self.boxes = np.asarray(boxes, dtype=np.int64).reshape(self.positions.size, 4)
        self.seed = int(seed)
        # Lesion pixels of each tumour image, as flat indices into the S x S image.
        self._lesion_pixels: list[np.ndarray] = []
        self._tumour_slots: list[int] = []
        for slot, position in enumerate(self.positions):
            pixels = np.flatnonzero(np.asarray(masks[position]).ravel())
            if pixels.size:
                self._tumour_slots.append(slot)
                self._lesion_pixels.append(pixels)
        # Bone pixels of the images without a lesion (flat indices), when they are sampled.
        self._bone_slots: list[int] = []
        self._bone_pixels: list[np.ndarray] = []
        if self.normal_bone_share > 0:
            tumour = set(self._tumour_slots)
            for slot, position in enumerate(self.positions):
                if slot not in tumour:
                    pixels = bone_pixels(np.asarray(images[position]), self.boxes[slot])
                    if pixels.size:
                        self._bone_slots.append(slot)
                        self._bone_pixels.append(pixels)

    @property
    def tumour_images(self) -> int:
        return len(self._tumour_slots)

    def _origin_in(self, low: int, high: int, rng: np.random.Generator) -> int:
        """Top-left coordinate of a patch inside [low, high) (the content along one axis); when
        the content is narrower than the patch, the patch is centred on it within the image."""
        size, patch = self.size, self.patch_size
        if high - low >= patch:
            return int(rng.integers(low, high - patch + 1))
        return int(np.clip((low + high - patch) // 2, 0, size - patch))

    def _clip(self, origin: float, low: int, high: int) -> int:
        """``origin`` moved so the patch lies inside [low, high), or centred on a narrower
        content (which then lies wholly inside the patch)."""
        size, patch = self.size, self.patch_size
        if high - low >= patch:
            return int(np.clip(round(origin), low, high - patch))
        return int(np.clip((low + high - patch) // 2, 0, size - patch))

    def sample(self, rng: np.random.Generator) -> tuple[int, int, int, bool]:
        """(position, row, column, foreground) of one patch."""
        if self._bone_slots:
            draw = rng.random()
            foreground = bool(self._tumour_slots) and draw < self.foreground_share
            if not foreground and draw < self.foreground_share + self.normal_bone_share:
                return self._on_bone(rng)
        else:  # exactly the draws of a sampler without bone patches
            foreground = bool(self._tumour_slots) and rng.random() < self.foreground_share
        if foreground:
            pick = int(rng.integers(len(self._tumour_slots)))
            slot = self._tumour_slots[pick]
            origin_row, origin_column = self._around(slot, self._lesion_pixels[pick], rng)
        else:
            slot = int(rng.integers(self.positions.size))
            top, left, bottom, right = self.boxes[slot]
            origin_row = self._origin_in(top, bottom, rng)
            origin_column = self._origin_in(left, right, rng)
        return int(self.positions[slot]), origin_row, origin_column, foreground

    def _around(self, slot: int, pixels: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
        """(row, column) of a patch centred on one of ``pixels`` (flat indices) of the slot's
        image, jittered by up to CENTRE_JITTER of the patch, kept inside the content."""
        patch = self.patch_size
        row, column = divmod(int(pixels[rng.integers(pixels.size)]), self.size)
        jitter = rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2) * patch
        top, left, bottom, right = self.boxes[slot]
        return (
            self._clip(row + jitter[0] - patch / 2, top, bottom),
            self._clip(column + jitter[1] - patch / 2, left, right),
        )

    def _on_bone(self, rng: np.random.Generator) -> tuple[int, int, int, bool]:
        """A patch centred (jittered as a lesion patch) on a bone pixel of a normal image."""
        pick = int(rng.integers(len(self._bone_slots)))
        slot = self._bone_slots[pick]
        origin_row, origin_column = self._around(slot, self._bone_pixels[pick], rng)
        return int(self.positions[slot]), origin_row, origin_column, False

    def cut(self, position: int, row: int, column: int, context: int | None = None):
        """(image, mask) uint8 (C, C) of side ``context`` (default the patch) centred on the
        patch at (row, column); parts outside the image are zeros."""
        side = self.patch_size if context is None else int(context)
        start_row = row - (side - self.patch_size) // 2
        start_column = column - (side - self.patch_size) // 2
        image = np.zeros((side, side), np.uint8)
        mask = np.zeros((side, side), np.uint8)
        r0, c0 = max(0, start_row), max(0, start_column)
        r1, c1 = min(self.size, start_row + side), min(self.size, start_column + side)
        window = (slice(r0 - start_row, r1 - start_row), slice(c0 - start_column, c1 - start_column))
        image[window] = self.images[position, r0:r1, c0:c1]
        mask[window] = self.masks[position, r0:r1, c0:c1]
        return image, mask

    def draw(self, count: int, seed: int | None = None) -> Patches:
        """``count`` patches (no augmentation), reproducible from ``seed`` (default the
        sampler's)."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        patch = self.patch_size
        images = np.zeros((count, patch, patch), np.uint8)
        masks = np.zeros((count, patch, patch), np.uint8)
        positions = np.zeros(count, np.int64)
        origins = np.zeros((count, 2), np.int64)
        foreground = np.zeros(count, bool)
        for index in range(count):
            position, row, column, is_foreground = self.sample(rng)
            images[index], masks[index] = self.cut(position, row, column)
            positions[index], origins[index], foreground[index] = position, (row, column), is_foreground
        return Patches(images, masks, positions, origins, foreground)

    def stream(self, context: int | None = None, mirror: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Endless (image, mask) uint8 (C, C) windows of side ``context`` around random patches,
        mirrored along each axis with probability 1/2 when ``mirror``; seeded by the sampler's
        seed, so two streams of one sampler yield the same windows."""
        rng = np.random.default_rng(self.seed)
        while True:
            position, row, column, _ = self.sample(rng)
            image, mask = self.cut(position, row, column, context)
            if mirror:
                if rng.random() < 0.5:
                    image, mask = image[::-1], mask[::-1]
                if rng.random() < 0.5:
                    image, mask = image[:, ::-1], mask[:, ::-1]
            yield np.ascontiguousarray(image), np.ascontiguousarray(mask)


def bone_pixels(image: np.ndarray, box: Sequence[int], stride: int = 2) -> np.ndarray:
    """Flat indices (into the S x S image) of the pixels inside the content box that are
    brighter than the content's Otsu threshold (bone on a radiograph), every ``stride``-th row
    and column (enough to centre patches on, at a quarter of the memory)."""
    import cv2

    top, left, bottom, right = (int(value) for value in box)
    content = np.ascontiguousarray(image[top:bottom, left:right])
    if content.size == 0 or int(content.max()) == int(content.min()):
        return np.zeros(0, np.int64)
    level, _ = cv2.threshold(content, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    rows, columns = np.nonzero(content[::stride, ::stride] > level)
    return ((rows * stride + top) * image.shape[1] + columns * stride + left).astype(np.int64)


def context_side(patch_size: int) -> int:
    """Side of the window an augmented patch is cut from (even, >= the patch)."""
    side = int(math.ceil(patch_size * CONTEXT_FACTOR))
    return side + (side - patch_size) % 2


def patch_dataset(
    sampler: PatchSampler,
    batch_size: int,
    *,
    augment: bool = True,
    augmentation=None,
):
    """Endless tf.data batches (image (B, P, P, 3) float32 in [0, 1], mask (B, P, P, 1) float32)
    of the sampler's patches for model.fit (pass steps_per_epoch).

    With ``augment``: random mirroring along both axes, then btseg.pipeline.augment_pair's
    rotation, scale, brightness and contrast (its own flip and shift off: mirroring is done here
    and the lesion-centred patches are already jittered) on a context window, centre-cropped
    to the patch.
    """
    import tensorflow as tf

    from btseg.pipeline import Augmentation, augment_pair

    patch = sampler.patch_size
    side = context_side(patch) if augment else patch
    if augmentation is None:
        augmentation = Augmentation()
    augmentation = Augmentation(
        flip=False,
        rotation_degrees=augmentation.rotation_degrees,
        shift_fraction=0.0,
        zoom_range=augmentation.zoom_range,
        brightness=augmentation.brightness,
        contrast=augmentation.contrast,
    )
    signature = (
        tf.TensorSpec((side, side), tf.uint8),
        tf.TensorSpec((side, side), tf.uint8),
    )
    dataset = tf.data.Dataset.from_generator(
        lambda: sampler.stream(side, mirror=augment), output_signature=signature
    )
    offset = (side - patch) // 2

    def prepare(image, mask):
        image = tf.cast(image, tf.float32)[..., tf.newaxis] / tf.constant(255.0, tf.float32)
        mask = tf.cast(mask, tf.float32)[..., tf.newaxis]
        if augment:
            image, mask = augment_pair(image, mask, augmentation)
            image = image[offset : offset + patch, offset : offset + patch]
            mask = mask[offset : offset + patch, offset : offset + patch]
        image = tf.ensure_shape(image, (patch, patch, 1))
        mask = tf.ensure_shape(mask, (patch, patch, 1))
        return tf.repeat(image, 3, axis=-1), mask

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def fixed_patches(sampler: PatchSampler, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` reproducible patches as model inputs: (images (K, P, P, 3) float32 in [0, 1],
    masks (K, P, P, 1) float32) (a cheap validation set for early stopping)."""
    drawn = sampler.draw(count, seed=seed)
    images = np.repeat(drawn.images[..., None].astype(np.float32) / np.float32(255.0), 3, axis=-1)
    return images, drawn.masks[..., None].astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Whole-image prediction


def gaussian_weights(window: int, sigma_scale: float = GAUSSIAN_SIGMA_SCALE) -> np.ndarray:
    """(window, window) float64 Gaussian importance map centred on the window, maximum 1, no
    value below 1e-3 (nnU-Net's blending of overlapping windows)."""
    centre = (window - 1) / 2.0
    sigma = max(window * sigma_scale, 1e-6)
    axis = np.exp(-0.5 * ((np.arange(window) - centre) / sigma) ** 2)
    weights = np.outer(axis, axis)
    weights /= weights.max()
    return np.maximum(weights, 1e-3)


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``window`` px covering [0, size) with at least ``overlap``
    (fraction of the window) between neighbours; the last window ends at ``size``."""
    if window >= size:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    count = math.ceil((size - window) / step) + 1
    return sorted({round(index * (size - window) / (count - 1)) for index in range(count)})


def _mirrors(mirror) -> tuple[tuple[bool, bool], ...]:
    if mirror is True:
        return MIRRORS
    if mirror is False or mirror is None:
        return ((False, False),)
    names = {mirror} if isinstance(mirror, str) else set(mirror)
    unknown = names - {"horizontal", "vertical"}
    if unknown:
        raise ValueError(f"mirror must be a bool or of 'horizontal', 'vertical'; got {mirror!r}")
    rows = (False, True) if "vertical" in names else (False,)
    columns = (False, True) if "horizontal" in names else (False,)
    return tuple((r, c) for r in rows for c in columns)


def _call_batched(call: Callable, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    outputs = []
    for start in range(0, inputs.shape[0], batch_size):
        result = np.asarray(call(inputs[start : start + batch_size]), dtype=np.float32)
        if result.ndim == 4:
            result = result[..., 0]
        outputs.append(result)
    return np.concatenate(outputs) if outputs else np.zeros(inputs.shape[:3], np.float32)


def _flip(array: np.ndarray, flip: tuple[bool, bool]) -> np.ndarray:
    """(N, S, S, ...) images mirrored along rows and/or columns; its own inverse."""
    flip_rows, flip_columns = flip
    array = array[:, ::-1] if flip_rows else array
    return array[:, :, ::-1] if flip_columns else array


def _mirrored_sum(call: Callable, inputs: np.ndarray, flips, batch_size: int) -> np.ndarray:
    """(N, S, S) float64: the sum over `flips` of the model's map of each mirrored view of the
    inputs, mirrored back."""
    total = np.zeros(inputs.shape[:3], np.float64)
    for flip in flips:
        view = np.ascontiguousarray(_flip(inputs, flip))
        total += _flip(_call_batched(call, view, batch_size), flip)
    return total


def mirrored_predictions(
    call: Callable,
    inputs: np.ndarray,
    window: int | None = None,
    overlap: float = 0.5,
    *,
    batch_size: int = 4,
) -> np.ndarray:
    """(len(MIRRORS), N, S, S) float32: the prediction of each mirrored view of the inputs (the
    image, flipped horizontally, vertically and both), each flipped back. Their mean is
    ``predict_whole(..., mirror=True)``; their spread shows where the model is unsure."""
    inputs = np.asarray(inputs, dtype=np.float32)
    views = []
    for flip in MIRRORS:
        view = np.ascontiguousarray(_flip(inputs, flip))
        views.append(_flip(predict_whole(call, view, window, overlap, batch_size=batch_size), flip))
    return np.stack(views)


def predict_whole(
    call: Callable,
    inputs: np.ndarray,
    window: int | None = None,
    overlap: float = 0.5,
    mirror: bool | str | Sequence[str] = False,
    *,
    batch_size: int = 4,
) -> np.ndarray:
    """Probability maps of whole letterboxed images at the working size.

    Args:
        call: batch (B, h, w, 3) float32 -> (B, h, w, 1) probabilities (e.g. a Keras model's
            predict_on_batch). h and w are the image size, or the window.
        inputs: (N, S, S, 3) float32 in [0, 1], letterboxed at the working size.
        window: None runs the fully convolutional model on the whole S x S image; a side in px
            slides overlapping windows and blends them with Gaussian weights (a window of S or
            more is the whole image).
        overlap: fraction of the window shared by neighbouring windows, in [0, 1).
        mirror: test-time augmentation: True averages the prediction of the image and of its
            horizontally, vertically and doubly flipped copies (flipped back); "horizontal" or
            "vertical" (or both in a sequence) average over those flips only; False: none.
        batch_size: images (or windows) per call.

    Returns:
        (N, S, S) float32 maps in [0, 1].
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.ndim != 4 or inputs.shape[1] != inputs.shape[2]:
        raise ValueError(f"inputs must be (N, S, S, C), got shape {inputs.shape}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    count, size = inputs.shape[0], inputs.shape[1]
    flips = _mirrors(mirror)
    if window is None or int(window) >= size:
        total = _mirrored_sum(call, inputs, flips, batch_size)
        return np.clip(total / len(flips), 0.0, 1.0).astype(np.float32)

    window = int(window)
    weights = gaussian_weights(window)
    starts = window_starts(size, window, overlap)
    corners = [(row, column) for row in starts for column in starts]
    total = np.zeros((count, size, size), np.float64)
    for index in range(count):
        crops = np.stack([inputs[index, r : r + window, c : c + window] for r, c in corners])
        summed = np.zeros((size, size), np.float64)
        norm = np.zeros((size, size), np.float64)
        blended = _mirrored_sum(call, crops, flips, batch_size)
        blended /= len(flips)
        for (row, column), prediction in zip(corners, blended, strict=True):
            summed[row : row + window, column : column + window] += prediction * weights
            norm[row : row + window, column : column + window] += weights
        total[index] = summed / norm
    return np.clip(total, 0.0, 1.0).astype(np.float32)
