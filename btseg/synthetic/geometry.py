"""Geometry of the synthetic radiographs: tubes, flat plates, the image frame, and outlines.

All coordinates are (x, y) in work pixels, the resolution the renderer draws at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Tube:
    """A tubular bone (or soft-tissue segment) from `start` (the joint end) to `end`, work px."""

    name: str
    start: np.ndarray
    end: np.ndarray
    radius: float
    flare_start: float = 1.0
    flare_end: float = 1.0
    cap_start: bool = True
    cap_end: bool = True
    cortex: float = 0.28
    density: float = 1.0
    cap_ratio: float = 0.75  # cap length over end half-width: 1 gives a round end
    fade: float = 0.0  # px over which the tube fades in from its start (a stalk growing from bone)

    @property
    def length(self) -> float:
        return float(np.hypot(*(self.end - self.start)))

    @property
    def direction(self) -> np.ndarray:
        return (self.end - self.start) / max(self.length, 1e-6)

    @property
    def normal(self) -> np.ndarray:
        d = self.direction
        return np.array([-d[1], d[0]])

    @property
    def cap_lengths(self) -> tuple[float, float]:
        start = self.cap_ratio * self.radius * self.flare_start if self.cap_start else 0.0
        end = self.cap_ratio * self.radius * self.flare_end if self.cap_end else 0.0
        return start, end

    def point(self, u, v) -> np.ndarray:
        u = np.asarray(u, float)[..., None]
        v = np.asarray(v, float)[..., None]
        return self.start + u * self.direction + v * self.normal

    def profile(self, u, with_cortex: bool = False):
        """Half-width (work px) at axial position u (px from start; caps beyond 0 and length),
        and with `with_cortex` the cortical fraction of it."""
        length = self.length
        clipped = np.clip(u, 0.0, length)
        width = np.full_like(clipped, self.radius)
        end_weight = np.zeros_like(clipped) if with_cortex else None
        for flare, distance in ((self.flare_start, clipped), (self.flare_end, length - clipped)):
            if flare == 1.0:
                continue
            near = np.exp(-((distance * (0.5 / self.radius)) ** 2))
            width += (self.radius * (flare - 1.0)) * near
            if with_cortex and flare > 1.05:
                np.maximum(end_weight, near, out=end_weight)
        cap_start, cap_end = self.cap_lengths
        if self.cap_start:
            width = width * np.where(u < 0, np.sqrt(np.clip(1 - (u / cap_start) ** 2, 0, 1)), 1)
        else:
            width = np.where(u < 0, 0.0, width)
        if self.cap_end:
            beyond = (u - length) / cap_end
            width = width * np.where(beyond > 0, np.sqrt(np.clip(1 - beyond**2, 0, 1)), 1)
        else:
            width = np.where(u > length, 0.0, width)
        if with_cortex:
            return width, self.cortex * (1.0 - 0.72 * end_weight)
        return width

    def width(self, u):
        """Half-width (work px) at axial position u."""
        return self.profile(np.asarray(u, dtype=float))

    def outline(self, count: int, begin: float | None = None) -> np.ndarray:
        """Closed outline (count, 2) in work px, following the caps, from `begin` along u."""
        cap_start, cap_end = self.cap_lengths
        side = max(count // 2, 3)
        first = -cap_start * 0.999 if begin is None else begin
        u = np.linspace(first, self.length + cap_end * 0.999, side)
        w = self.width(u)
        one = self.point(u, w)
        two = self.point(u[::-1], -w[::-1])
        return np.concatenate([one, two])

    def bounds(self, margin: float) -> tuple[np.ndarray, np.ndarray]:
        cap_start, cap_end = self.cap_lengths
        reach = self.radius * max(self.flare_start, self.flare_end, 1.0) + margin
        a = self.start - self.direction * cap_start
        b = self.end + self.direction * cap_end
        return np.minimum(a, b) - reach, np.maximum(a, b) + reach


@dataclass
class Plate:
    """A flat bone (pelvis, scapula) given by its outline and holes, work px."""

    outline: np.ndarray
    thickness: float  # px of bone crossed at the plate's centre
    holes: tuple[np.ndarray, ...] = ()
    density: float = 1.0


@dataclass
class Frame:
    """Image frame: the limb axis runs along the long side; `mirror` flips left and right."""

    height: int
    width: int
    axis: np.ndarray
    across: np.ndarray
    center: np.ndarray
    joint: float
    reach: float
    mirror: float
    phi: float

    def p(self, a: float, c: float) -> np.ndarray:
        return self.center + a * self.axis + (c * self.mirror) * self.across

    def lateral(self, frontal: float, side: float) -> float:
        """Offset across the limb for a view rotated by phi about the limb axis."""
        return frontal * math.cos(self.phi) + side * math.sin(self.phi)


def unit_outline(count: int, roughness: float, harmonics: np.ndarray) -> np.ndarray:
    """Unit closed curve (count, 2) as (cos, sin) scaled by a smooth radial perturbation."""
    angle = np.linspace(0, 2 * math.pi, count, endpoint=False)
    radius = np.ones(count)
    for k in range(2, 8):
        amplitude, phase = harmonics[k - 2]
        radius += roughness * amplitude / (k - 1) * np.cos(k * angle + phase)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def visible_range(tube: Tube, shape: tuple[int, int], margin: float) -> tuple[float, float]:
    """(low, high) axial positions of the tube's axis inside the frame; low > high if none."""
    cap_start, cap_end = tube.cap_lengths
    u = np.linspace(-cap_start, tube.length + cap_end, 400)
    points = tube.point(u, np.zeros_like(u))
    inside = ((points[:, 0] >= margin) & (points[:, 0] <= shape[1] - 1 - margin)
              & (points[:, 1] >= margin) & (points[:, 1] <= shape[0] - 1 - margin))  # fmt: skip
    if not inside.any():
        return 0.0, -1.0
    return float(u[inside].min()), float(u[inside].max())


def fit_inside(polygon: np.ndarray, shape: tuple[int, int], margin: float = 2.0) -> np.ndarray:
    """Move the outline's centre into the image if it is outside, and shrink the outline about
    it until it fits."""
    low = np.array([margin, margin])
    high = np.array([shape[1] - 1 - margin, shape[0] - 1 - margin])
    centre = polygon.mean(axis=0)
    inner = np.clip(centre, low + 1.0, high - 1.0)
    polygon = polygon + (inner - centre)
    offsets = polygon - inner
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(offsets > 0, (high - inner) / offsets, (low - inner) / offsets)
    factor = float(np.nanmin(np.where(np.isfinite(room), room, np.inf)))
    return inner + offsets * min(1.0, factor)


def polygon_area(polygon: np.ndarray) -> float:
    """Area (px^2) of a closed outline (N, 2)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def limit_area(polygon: np.ndarray, limit: float) -> np.ndarray:
    """The outline shrunk about its centre to at most `limit` px^2."""
    area = polygon_area(polygon)
    if area <= limit:
        return polygon
    centre = polygon.mean(axis=0)
    return centre + (polygon - centre) * math.sqrt(limit / area)


def is_inside(polygon: np.ndarray, shape: tuple[int, int], margin: float = 2.0) -> bool:
    """True when the outline (N, 2) lies `margin` px or more inside an image of `shape` (H, W)."""
    return bool(polygon.min() >= margin and polygon[:, 0].max() <= shape[1] - 1 - margin
                and polygon[:, 1].max() <= shape[0] - 1 - margin)  # fmt: skip
