"""Image overlays: lesion outlines, predicted masks, probability heatmaps and Grad-CAM.

Helpers take (H, W) or (H, W, 3) uint8 images and return new (H, W, 3) uint8 RGB images. The
Segment page computes masks, maps and metrics at the X-ray's original resolution and draws them
on a display copy of at most DISPLAY_MAX_SIDE pixels: resize_mask and resize_map bring masks and
maps to the display size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from btseg.registry import MODELS
from btseg.viz.style import CLASS_COLORS, MODEL_COLORS, hex_to_rgb

#: Longest side, in pixels, of the images the Segment page draws.
DISPLAY_MAX_SIDE = 1200
#: Outline and tint colours of the Segment page: model prediction, ground truth, a drawn outline.
SEGMENT_COLORS: dict[str, str] = {
    "prediction": "#19B6D8",
    "truth": "#FFD400",
    "drawn": "#FF7F0E",
}
#: Lowest probability the heatmap tells apart (the threshold slider's lower end).
HEATMAP_FLOOR = 1e-4


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 -> new (H, W, 3) uint8 RGB array."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")


def downscale(image: np.ndarray, max_side: int = 384) -> tuple[np.ndarray, float]:
    """Shrink so the longest side is at most `max_side` pixels (never enlarges).

    Returns (image, scale) where scale = new size / original size (1.0 when unchanged).
    """
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def draw_outlines(
    image: np.ndarray,
    lesions: Iterable,
    color: str | Sequence[int] = CLASS_COLORS["malignant"],
    scale: float = 1.0,
    thickness: int | None = None,
    fill_alpha: float = 0.0,
    antialias: bool = True,
) -> np.ndarray:
    """Lesion outlines drawn on a copy of `image`.

    Args:
        image: (H, W) or (H, W, 3) uint8.
        lesions: objects with `.polygon` ((N, 2) x, y pixels, or None) and `.box`
            ((x0, y0, x1, y1) or None), as btseg.data.labelme.Lesion; the polygon is drawn where
            there is one, else the box.
        color: '#RRGGBB' or (r, g, b).
        scale: factor from the lesions' pixel coordinates to `image` (for a downscaled image).
        thickness: line width in pixels (default: about 0.6% of the longest side, at least 1).
        fill_alpha: opacity of a fill inside each outline, 0 for outlines only.
        antialias: smooth edges (False draws exact, hard-edged pixels).

    Returns (H, W, 3) uint8 RGB.
    """
    canvas = to_rgb(image)
    rgb = hex_to_rgb(color)
    if thickness is None:
        thickness = max(1, round(max(canvas.shape[:2]) * 0.006))
    shapes = []
    for lesion in lesions:
        polygon = getattr(lesion, "polygon", None)
        box = getattr(lesion, "box", None)
        if polygon is not None and len(polygon) >= 3:
            points = np.asarray(polygon, dtype=np.float64) * scale
        elif box is not None:
            x0, y0, x1, y1 = (float(value) * scale for value in box)
            points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        else:
            continue
        shapes.append(np.round(points).astype(np.int32).reshape(-1, 1, 2))
    if not shapes:
        return canvas
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    if fill_alpha > 0:
        filled = canvas.copy()
        cv2.fillPoly(filled, shapes, rgb, lineType=line_type)
        canvas = cv2.addWeighted(filled, fill_alpha, canvas, 1.0 - fill_alpha, 0.0)
    cv2.polylines(canvas, shapes, isClosed=True, color=rgb, thickness=thickness, lineType=line_type)
    return canvas


def pad_to_square(image: np.ndarray, side: int, value: int = 0) -> np.ndarray:
    """Centre an image of at most `side` x `side` pixels on a (side, side[, C]) canvas of `value`."""
    height, width = image.shape[:2]
    if height > side or width > side:
        raise ValueError(f"image of {height}x{width} pixels does not fit in {side}x{side}")
    canvas = np.full((side, side, *image.shape[2:]), value, dtype=image.dtype)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = image
    return canvas


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) mask (non-zero = lesion) -> (h, w) uint8 {0, 1} of `shape`.

    A display pixel is lesion when any original pixel under it is (for up to 510 original
    pixels per display pixel), so that a lesion smaller than a display pixel still shows.
    """
    mask = np.asarray(mask)
    height, width = (int(value) for value in shape[:2])
    if mask.shape == (height, width):
        return (mask > 0).astype(np.uint8)
    shrinking = height <= mask.shape[0] and width <= mask.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST
    # 0/255 bytes: the area average of one lesion pixel among n rounds to >= 1 while n <= 510.
    scaled = (mask > 0).astype(np.uint8) * 255
    resized = cv2.resize(scaled, (width, height), interpolation=interpolation)
    return (resized > 0).astype(np.uint8)


def resize_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float map (probabilities, Grad-CAM) -> (h, w) float32 of `shape` (area average
    when shrinking, linear when enlarging)."""
    values = np.asarray(values, dtype=np.float32)
    height, width = (int(value) for value in shape[:2])
    if values.shape == (height, width):
        return values
    shrinking = height <= values.shape[0] and width <= values.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(values, (width, height), interpolation=interpolation)


def _draw_numbered_boxes(
    canvas: np.ndarray, boxes: Sequence[Sequence[float]], color: str, scale: float
) -> np.ndarray:
    """Boxes (x0, y0, x1, y1 in original pixels) drawn on `canvas` with their 1-based number."""
    rgb = hex_to_rgb(color)
    thickness = max(1, round(max(canvas.shape[:2]) * 0.002))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1600)
    for number, box in enumerate(boxes, start=1):
        x0, y0, x1, y1 = (int(round(float(value) * scale)) for value in box)
        cv2.rectangle(canvas, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), rgb, thickness)
        text = str(number)
        (text_width, text_height), baseline = cv2.getTextSize(
            text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
        )
        top = y0 - text_height - baseline - 2
        if top < 0:  # no room above the box: put the number inside its top-left corner
            top = y0
        cv2.rectangle(
            canvas, (x0, top), (x0 + text_width + 4, top + text_height + baseline + 2), rgb, -1
        )
        cv2.putText(canvas, text, (x0 + 2, top + text_height + 1), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return canvas


def segmentation_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.4,
    color: str = SEGMENT_COLORS["prediction"],
    truth: np.ndarray | None = None,
    truth_color: str = SEGMENT_COLORS["truth"],
    boxes: Sequence[Sequence[float]] = (),
    box_scale: float = 1.0,
) -> np.ndarray:
    """A mask tinted over an image and outlined; alpha=0 draws the outline only (contour view).

    Args:
        image: (h, w) or (h, w, 3) uint8, usually the display copy of the X-ray.
        mask: (H, W) mask (non-zero = lesion), resized to the image here (see resize_mask).
        alpha: opacity of the tint inside the mask, 0 to 1.
        truth: optional (H, W) true mask, outlined in `truth_color`.
        boxes: lesion boxes (x0, y0, x1, y1) in the mask's original pixels, drawn numbered.
        box_scale: factor from original pixels to `image` pixels (downscale's scale).

    Returns (h, w, 3) uint8 RGB.
    """
    shape = image.shape[:2]
    shown = resize_mask(mask, shape).astype(np.float32)
    fitted_truth = None if truth is None else resize_mask(truth, shape)
    canvas = prediction_overlay(
        image, shown, 0.5, color=color, alpha=float(alpha), truth=fitted_truth,
        truth_color=truth_color,
    )
    if len(boxes):
        canvas = _draw_numbered_boxes(canvas, boxes, color, box_scale)
    return canvas


def prediction_overlay(
    image_gray: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    color: str | Sequence[int] = MODEL_COLORS[MODELS["attention"].run],
    alpha: float = 0.45,
    truth: np.ndarray | None = None,
    truth_color: str | Sequence[int] = "#FFD400",
) -> np.ndarray:
    """The predicted mask (probability >= threshold) tinted over the image, outlined in full
    colour, with the true lesion outlined in `truth_color` when given.

    Args:
        image_gray: (H, W) uint8 (or (H, W, 3) uint8).
        probability: (H, W) float map in [0, 1] at the image's resolution.
        threshold: pixels with probability >= threshold are the prediction.
        alpha: opacity of the tint inside the predicted mask.
        truth: optional (H, W) {0, 1} true mask.

    Returns (H, W, 3) uint8 RGB. Raises ValueError when the shapes differ.
    """
    canvas = to_rgb(np.asarray(image_gray))
    probability = np.asarray(probability)
    if probability.ndim == 3 and probability.shape[2] == 1:
        probability = probability[..., 0]
    if probability.shape != canvas.shape[:2]:
        raise ValueError(
            f"probability map of shape {probability.shape} does not match the image "
            f"{canvas.shape[:2]}"
        )
    mask = (probability.astype(np.float64) >= float(threshold)).astype(np.uint8)
    rgb = np.array(hex_to_rgb(color), dtype=np.float32)
    thickness = max(1, round(max(canvas.shape[:2]) * 0.004))
    if mask.any():
        tinted = canvas.astype(np.float32)
        inside = mask.astype(bool)
        tinted[inside] = (1.0 - alpha) * tinted[inside] + alpha * rgb
        canvas = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, tuple(int(v) for v in rgb), thickness)
    if truth is not None:
        canvas = outline_mask(canvas, truth, truth_color, thickness)
    return canvas


def outline_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: str | Sequence[int] = "#FFD400",
    thickness: int | None = None,
) -> np.ndarray:
    """The outer outline of a {0, 1} mask drawn on a copy of `image`.

    Args:
        image: (H, W) or (H, W, 3) uint8. mask: (H, W), nonzero inside.
        thickness: line width in pixels (default: about 0.4% of the longest side, at least 1).

    Returns (H, W, 3) uint8 RGB. Raises ValueError when the shapes differ.
    """
    canvas = to_rgb(np.asarray(image))
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    if binary.shape != canvas.shape[:2]:
        raise ValueError(
            f"true mask of shape {binary.shape} does not match the image {canvas.shape[:2]}"
        )
    if thickness is None:
        thickness = max(1, round(max(canvas.shape[:2]) * 0.004))
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(canvas, contours, -1, hex_to_rgb(color), thickness)
    return canvas


def _colormap_blend(image: np.ndarray, values: np.ndarray, alpha: float) -> np.ndarray:
    """Turbo colours of `values` (h, w) in [0, 1] blended over the image with opacity
    alpha * value: high values show strongly, values near 0 leave the X-ray visible."""
    canvas = to_rgb(np.asarray(image))
    values = np.clip(resize_map(values, canvas.shape[:2]), 0.0, 1.0)
    colored = cv2.applyColorMap(np.rint(values * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = (float(alpha) * values)[:, :, None]
    blended = (1.0 - weight) * canvas.astype(np.float32) + weight * colored
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def log_probability_scale(probability: np.ndarray, floor: float = HEATMAP_FLOOR) -> np.ndarray:
    """Probabilities on a log scale from `floor` (0) to 1 (1): (H, W) float32 in [0, 1].
    10**-3 maps to 0.25 with the default floor of 10**-4."""
    low = np.log10(floor)
    logs = np.log10(np.maximum(np.asarray(probability, dtype=np.float32), floor))
    return np.clip((logs - low) / -low, 0.0, 1.0).astype(np.float32)


def probability_heatmap(
    image: np.ndarray,
    probability: np.ndarray,
    alpha: float = 0.7,
    floor: float = HEATMAP_FLOOR,
    *,
    log: bool = False,
) -> np.ndarray:
    """The probability map in Turbo colours over the image, each pixel as opaque as its colour
    is high: on a linear scale from 0 to 1 (the default: a probability of 0.1 stays faint), or
    with `log` on a log scale from `floor` to 1 (as the threshold slider; it shows the small
    probabilities of the background too). The map is brought to the image's size first (area
    average), so a display copy is quick to draw. Returns (h, w, 3) uint8 RGB."""
    fitted = resize_map(probability, image.shape[:2])
    values = log_probability_scale(fitted, floor) if log else np.clip(fitted, 0.0, 1.0)
    return _colormap_blend(image, values, alpha)


def heatmap_legend(
    floor: float = HEATMAP_FLOOR, stops: int = 9, *, log: bool = False
) -> list[tuple[float, str]]:
    """(probability, '#RRGGBB') pairs along probability_heatmap's colour scale (linear, or with
    `log` logarithmic from `floor`), low to high."""
    positions = np.linspace(0.0, 1.0, stops)
    levels = np.rint(positions * 255).astype(np.uint8).reshape(-1, 1)
    colors = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    low = np.log10(floor)
    values = 10 ** (low * (1.0 - positions)) if log else positions
    return [
        (float(value), "#{:02X}{:02X}{:02X}".format(*color[0]))
        for value, color in zip(values, colors, strict=True)
    ]


def gradcam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """A Grad-CAM map ((H, W) in [0, 1], linear) in Turbo colours over the image."""
    return _colormap_blend(image, cam, alpha)
