"""The projection model: attenuation layers that bones, soft tissue and lesions are drawn into,
and the raster primitives lesions are painted with.

Attenuation is in scene units of path length; layers are (H, W) float32 at work resolution.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from btseg.synthetic.geometry import Plate, Tube

# Attenuation per scene unit of path length.
MU_CORTEX = 1.35
MU_MEDULLA = 0.22
MU_SOFT = 0.085
MU_MUSCLE = 0.035


class Layers:
    """Attenuation layers at work resolution, in scene units of path length."""

    def __init__(self, height: int, width: int, unit: float):
        self.shape = (height, width)
        self.unit = unit
        self.soft = np.zeros(self.shape, np.float32)
        self.muscle = np.zeros(self.shape, np.float32)
        self.cortex = np.zeros(self.shape, np.float32)
        self.medulla = np.zeros(self.shape, np.float32)
        self.extra = np.zeros(self.shape, np.float32)
        self.texture_weight = np.ones(self.shape, np.float32)
        self.bone = np.zeros(self.shape, np.float32)

    def window(self, tube: Tube):
        low, high = tube.bounds(2.0)
        x0, y0 = max(int(low[0]), 0), max(int(low[1]), 0)
        x1 = min(int(math.ceil(high[0])) + 1, self.shape[1])
        y1 = min(int(math.ceil(high[1])) + 1, self.shape[0])
        if x1 <= x0 or y1 <= y0:
            return None
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(tube.start[0])
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(tube.start[1])
        d, m = tube.direction.astype(np.float32), tube.normal.astype(np.float32)
        u = xs * d[0] + ys * d[1]
        v = xs * m[0] + ys * m[1]
        return (slice(y0, y1), slice(x0, x1)), u, v

    def add_bone(self, tube: Tube) -> None:
        if tube.density <= 0:
            return  # a hidden host for lesions inside a plate
        found = self.window(tube)
        if found is None:
            return
        box, u, v = found
        w, fraction = tube.profile(u, with_cortex=True)
        w = w.astype(np.float32)
        inner = w * (1.0 - fraction).astype(np.float32)
        outer_path = 2.0 * np.sqrt(np.maximum(w * w - v * v, 0.0))
        inner_path = 2.0 * np.sqrt(np.maximum(inner * inner - v * v, 0.0))
        if tube.fade > 0:
            ramp = np.clip(u / np.float32(tube.fade), 0.0, 1.0)
            outer_path, inner_path = outer_path * ramp, inner_path * ramp
        scale = tube.density / self.unit
        self.cortex[box] += (MU_CORTEX * scale) * (outer_path - inner_path)
        self.medulla[box] += (MU_MEDULLA * scale) * inner_path
        np.maximum(self.bone[box], (outer_path > 0).astype(np.float32), out=self.bone[box])

    def add_plate(self, plate: Plate) -> None:
        """Flat bone: cancellous body with rounded edges and a cortical rim along its outline."""
        points = np.concatenate([plate.outline, *plate.holes])
        x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int) - 2, 0)
        x1 = min(int(np.ceil(points[:, 0].max())) + 3, self.shape[1])
        y1 = min(int(np.ceil(points[:, 1].max())) + 3, self.shape[0])
        if x1 <= x0 or y1 <= y0:
            return
        canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
        offset = np.array([x0, y0])
        cv2.fillPoly(canvas, [np.round((plate.outline - offset) * 16).astype(np.int32)], 255,
                     cv2.LINE_8, shift=4)  # fmt: skip
        for hole in plate.holes:
            cv2.fillPoly(canvas, [np.round((hole - offset) * 16).astype(np.int32)], 0,
                         cv2.LINE_8, shift=4)  # fmt: skip
        distance = cv2.distanceTransform(canvas, cv2.DIST_L2, 3)
        edge = np.float32(0.5 * plate.thickness)
        body = np.sqrt(np.clip(distance / edge, 0.0, 1.0)) * np.float32(plate.thickness)
        rim = np.exp(-distance / np.float32(0.12 * plate.thickness)) * (canvas > 0)
        scale = plate.density / self.unit
        box = (slice(y0, y1), slice(x0, x1))
        self.cortex[box] += (MU_CORTEX * scale) * (0.55 * plate.thickness * rim + 0.12 * body)
        self.medulla[box] += (MU_MEDULLA * scale) * body
        np.maximum(self.bone[box], (canvas > 0).astype(np.float32), out=self.bone[box])

    def add_soft(self, tube: Tube) -> None:
        """Soft-tissue envelope with a muscle core of 0.72 of its radius."""
        found = self.window(tube)
        if found is None:
            return
        box, u, v = found
        w = tube.profile(u).astype(np.float32)
        v2 = v * v
        path = np.sqrt(np.maximum(w * w - v2, 0.0)) * np.float32(2.0 * MU_SOFT / self.unit)
        np.maximum(self.soft[box], path, out=self.soft[box])
        w *= np.float32(0.72)
        path = np.sqrt(np.maximum(w * w - v2, 0.0)) * np.float32(2.0 * MU_MUSCLE / self.unit)
        np.maximum(self.muscle[box], path, out=self.muscle[box])


def fill_mask(shape: tuple[int, int], polygon: np.ndarray, blur: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the filled outline, anti-aliased and blurred by `blur` px."""
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    mask = canvas.astype(np.float32) / 255.0
    if blur > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), blur)
    return mask


def rim_mask(
    shape: tuple[int, int], polygon: np.ndarray, thickness: int, blur: float
) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the outline drawn `thickness` px wide, blurred by `blur` px."""
    canvas = np.zeros(shape, np.uint8)
    cv2.polylines(canvas, [np.round(polygon * 16).astype(np.int32)], True, 255,
                  max(1, thickness), cv2.LINE_AA, shift=4)  # fmt: skip
    rim = canvas.astype(np.float32) / 255.0
    return cv2.GaussianBlur(rim, (0, 0), blur) if blur > 0 else rim


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """(H, W) float32 Gaussian noise blurred by `sigma` px, standardised to mean 0, std 1."""
    field = rng.standard_normal(shape, dtype=np.float32)
    field = cv2.GaussianBlur(field, (0, 0), max(sigma, 0.3))
    return (field - field.mean()) / (field.std() + 1e-6)
