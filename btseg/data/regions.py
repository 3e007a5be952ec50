"""Regions of an X-ray for the classifier: lesion boxes, sampled regions of normal images, crops.

A classifier trained in *region* mode sees a crop around a lesion instead of the whole radiograph:
the box of a lesion widened by ``BOX_MARGIN`` of its size on each side (``crop_box``), letterboxed
to the model size by ``btseg.data.images.preprocess`` like any model input. The same crop serves
training (annotated lesions), evaluation and the dashboard (a box the user draws, or the largest
lesion the segmenter finds), so the classifier answers "what kind of lesion is this region".

Normal images have no lesion, so a region of similar size is sampled on them: its side (relative
to the longest side of the image) is drawn log-uniformly from ``side_range`` (the 10th-90th
percentile of the training lesions' relative box sides), its centre from the brightest 15% of the
image's non-black pixels (bone, where tumours are). Everything random takes a NumPy Generator, and
``image_rng`` derives one per image from a seed and the image id, so a split's regions are the
same on every run.

Boxes are (x0, y0, x1, y1) in pixels, x1 and y1 exclusive (the last pixel + 1).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np

from btseg.errors import ImageError

#: Each side of a box to classify is widened by this fraction of its size (context).
BOX_MARGIN = 0.15
#: Relative box sides (box side / longest image side) used when no lesion sizes are known.
DEFAULT_SIDE_RANGE = (0.05, 0.3)
#: Centres of regions sampled on normal images lie among pixels at or above this quantile of the
#: image's non-black pixels.
BRIGHT_QUANTILE = 0.85
#: Random training variants of a lesion box: its size scaled by a factor in this range ...
JITTER_SCALE = (0.85, 1.3)
#: ... and its centre moved by up to this fraction of its size in x and y.
JITTER_SHIFT = 0.15

Box = tuple[int, int, int, int]


def crop_box(
    shape: tuple[int, int], box: Sequence[float], margin: float = BOX_MARGIN
) -> tuple[int, int, int, int]:
    """The pixel region (x0, y0, x1, y1; x1, y1 exclusive) to classify for a box: each side
    widened by ``margin`` times the box's size, then clipped to the image of ``shape`` (H, W).

    Raises:
        ImageError: the box is not four numbers, has no area or lies outside the image.
    """
    height, width = (int(value) for value in shape[:2])
    try:
        x0, y0, x1, y1 = (float(value) for value in box)
    except (TypeError, ValueError):
        raise ImageError(
            f"the box {box!r} is not four numbers", where="box", fix="pass (x0, y0, x1, y1)"
        ) from None
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    left = top = right = bottom = 0
    if math.isfinite(x0 + x1 + y0 + y1):
        pad_x, pad_y = margin * (x1 - x0), margin * (y1 - y0)
        left = max(0, math.floor(x0 - pad_x))
        top = max(0, math.floor(y0 - pad_y))
        right = min(width, math.ceil(x1 + pad_x))
        bottom = min(height, math.ceil(y1 + pad_y))
    if right - left < 2 or bottom - top < 2:
        raise ImageError(
            f"the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area inside the "
            f"{width}x{height} image",
            where="box",
            fix="draw a box around the region on the image",
        )
    return (left, top, right, bottom)


def crop(pixels: np.ndarray, box: Sequence[float], margin: float = BOX_MARGIN) -> np.ndarray:
    """The pixels of ``crop_box(pixels.shape, box, margin)``: (h, w[, C]), a view of ``pixels``."""
    left, top, right, bottom = crop_box(pixels.shape, box, margin)
    return pixels[top:bottom, left:right]


def lesion_boxes(mask: np.ndarray) -> list[Box]:
    """Boxes of the 8-connected regions of a (H, W) mask, largest region (in pixels) first."""
    import cv2

    binary = (np.asarray(mask) > 0).astype(np.uint8)
    if binary.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {binary.shape}")
    if not binary.any():
        return []
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    order = sorted(range(1, count), key=lambda label: -int(stats[label, cv2.CC_STAT_AREA]))
    boxes = []
    for label in order:
        x, y, w, h = (int(stats[label, k]) for k in range(4))
        boxes.append((x, y, x + w, y + h))
    return boxes


def largest_lesion_box(mask: np.ndarray) -> Box | None:
    """Box of the largest 8-connected region of a mask; None for an empty mask."""
    boxes = lesion_boxes(mask)
    return boxes[0] if boxes else None


def relative_side(box: Sequence[float], shape: tuple[int, int]) -> float:
    """Longest side of a box over the longest side of the image (letterboxing keeps it)."""
    x0, y0, x1, y1 = box
    return max(x1 - x0, y1 - y0) / max(int(shape[0]), int(shape[1]))


def side_range(masks: Sequence[np.ndarray], quantiles=(0.1, 0.9)) -> tuple[float, float]:
    """(low, high) quantiles of the relative side of the largest lesion box of each non-empty
    mask; DEFAULT_SIDE_RANGE when no mask has a lesion."""
    sides = []
    for mask in masks:
        box = largest_lesion_box(mask)
        if box is not None:
            sides.append(relative_side(box, np.asarray(mask).shape))
    if not sides:
        return DEFAULT_SIDE_RANGE
    low, high = (float(value) for value in np.quantile(sides, quantiles))
    return (low, max(high, low))


def image_rng(seed: int, image_id: str) -> np.random.Generator:
    """A Generator determined by a seed and an image id (the same regions on every run)."""
    return np.random.default_rng([int(seed), zlib.crc32(str(image_id).encode("utf-8"))])


def sample_region(
    image: np.ndarray, sides: tuple[float, float], rng: np.random.Generator
) -> Box:
    """A square box on a (H, W[, C]) image with no lesion: relative side drawn log-uniformly from
    ``sides``, centre among the brightest non-black pixels (BRIGHT_QUANTILE)."""
    pixels = np.asarray(image)
    if pixels.ndim == 3:
        pixels = pixels[..., 0]
    height, width = pixels.shape
    low, high = (max(float(value), 1e-3) for value in sides)
    relative = math.exp(rng.uniform(math.log(low), math.log(max(high, low))))
    side = max(2.0, relative * max(height, width))
    content = pixels[pixels > 0]
    if content.size:
        cutoff = np.quantile(content, BRIGHT_QUANTILE)
        rows, columns = np.nonzero(pixels >= max(cutoff, 1))
        pick = int(rng.integers(rows.size))
        centre_y, centre_x = float(rows[pick]) + 0.5, float(columns[pick]) + 0.5
    else:
        centre_y, centre_x = height / 2.0, width / 2.0
    return _box_around(centre_x, centre_y, side, side, (height, width))


def jitter_box(box: Sequence[float], shape: tuple[int, int], rng: np.random.Generator) -> Box:
    """A random variant of a lesion box for training: scaled by JITTER_SCALE, moved by up to
    JITTER_SHIFT of its size, clipped to the image."""
    x0, y0, x1, y1 = (float(value) for value in box)
    width, height = x1 - x0, y1 - y0
    scale = rng.uniform(*JITTER_SCALE)
    shift_x, shift_y = rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, size=2)
    centre_x = (x0 + x1) / 2.0 + shift_x * width
    centre_y = (y0 + y1) / 2.0 + shift_y * height
    return _box_around(centre_x, centre_y, width * scale, height * scale, shape)


def _box_around(
    centre_x: float, centre_y: float, width: float, height: float, shape: tuple[int, int]
) -> Box:
    image_height, image_width = int(shape[0]), int(shape[1])
    x0 = int(np.clip(math.floor(centre_x - width / 2.0), 0, image_width - 1))
    y0 = int(np.clip(math.floor(centre_y - height / 2.0), 0, image_height - 1))
    x1 = int(np.clip(math.ceil(centre_x + width / 2.0), x0 + 1, image_width))
    y1 = int(np.clip(math.ceil(centre_y + height / 2.0), y0 + 1, image_height))
    return (x0, y0, x1, y1)


def region_of(
    image: np.ndarray,
    boxes: Sequence[Box],
    sides: tuple[float, float],
    rng: np.random.Generator,
    jitter: bool = False,
) -> Box:
    """The region to classify of an annotated image whose lesion boxes are ``boxes`` (largest
    first, as ``lesion_boxes`` gives them): the largest lesion's box (with ``jitter``: a random
    lesion's box, randomly varied), or a sampled region when there is no lesion."""
    if not boxes:
        return sample_region(image, sides, rng)
    if not jitter:
        return boxes[0]
    chosen = boxes[int(rng.integers(len(boxes)))]
    return jitter_box(chosen, np.asarray(image).shape[:2], rng)


def region_crops(
    images: np.ndarray,
    masks: np.ndarray,
    positions: Sequence[int],
    image_ids: Sequence[str],
    size: int,
    sides: tuple[float, float],
    seed: int,
    variants: int = 1,
    jitter: bool = False,
) -> np.ndarray:
    """Crops of the regions of several images, letterboxed to ``size``: (len(positions) *
    variants, size, size) uint8, the variants of one image together.

    Args:
        images, masks: (N, S, S) uint8 arrays (the preprocessed cache) and their lesion masks.
        positions: rows of ``images`` to crop.
        image_ids: ids of those rows (seed the per-image random regions).
        size: model input side.
        sides: relative side range of regions sampled on normal images (``side_range``).
        seed: seed of the regions; the same seed gives the same crops.
        variants: crops per image (random ones need ``jitter``; normal images get a new sampled
            region per variant).
        jitter: vary lesion boxes at random (training); off, the largest lesion's box.
    """
    from btseg.data.images import letterbox_image

    if len(positions) != len(image_ids):
        raise ValueError(f"{len(positions)} positions but {len(image_ids)} image ids")
    crops = np.zeros((len(positions) * variants, size, size), dtype=np.uint8)
    index = 0
    for position, image_id in zip(positions, image_ids, strict=True):
        image = np.asarray(images[position])
        boxes = lesion_boxes(np.asarray(masks[position]))
        rng = image_rng(seed, image_id)
        for _ in range(variants):
            box = region_of(image, boxes, sides, rng, jitter=jitter)
            crops[index] = letterbox_image(np.ascontiguousarray(crop(image, box)), size)
            index += 1
    return crops
