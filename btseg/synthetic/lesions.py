"""Lesions of the synthetic radiographs, driven by a parameter table per subtype.

`SUBTYPE_LESIONS` maps each BTXRD subtype to a `LesionKind`: where its lesions sit (in a bone,
growing from its surface, or in a joint space) and one or more variants. A `LesionVariant` holds
the ranges a patient's lesion shape is drawn from, in local bone half-widths w, and the painter
that draws it into the attenuation layers: lucent cysts with a sclerotic rim, bubbly eccentric
lucencies, stippled enchondromas, ground-glass fibrous lesions, loose bodies, mixed
lytic/sclerotic masses with spiculated periosteal reaction, and permeative destruction with
onion-skin layers. Osteochondromas are drawn as bony stalks instead of being painted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from btseg.synthetic.anatomy import Scene
from btseg.synthetic.geometry import (
    Frame,
    Tube,
    fit_inside,
    is_inside,
    limit_area,
    polygon_area,
    unit_outline,
    visible_range,
)
from btseg.synthetic.layers import Layers, fill_mask, rim_mask, smooth_noise

Range = float | tuple[float, float]  # a constant, or drawn per patient as uniform(low, high)


@dataclass(frozen=True)
class Site:
    """Where a lesion was placed, as its painter needs it (work px)."""

    polygon: np.ndarray  # (N, 2) outline
    unit: float  # scene unit times the lesion's size scale
    sign: float  # +1 or -1: the side of the host bone the lesion leans to
    tube: Tube | None = None  # host bone; None for a lesion placed at a joint
    position: float = 0.0  # centre along the host bone, px from its start
    along: float = 0.0  # half-extent along the host bone
    w_local: float = 0.0  # host bone half-width at the centre


Painter = Callable[[Layers, Site, np.random.Generator], None]


@dataclass(frozen=True)
class LesionVariant:
    """Shape parameters of one way a lesion looks, in local bone half-widths w.

    Drawn per patient in this order: `across` then `along` = across x `elongation` (when
    `along` is None), or `along` then `across`; then offset, position, roughness, `points`
    (when set, replacing the 24-55 outline points every lesion draws) and tilt.
    """

    name: str
    paint: Painter | None  # None: the lesion is a bony stalk (outgrowth), not painted
    across: Range  # half-extent across the bone
    along: Range | None = None  # half-extent along the bone
    elongation: Range = 1.0  # along over across, when `along` is None
    offset: Range = 0.0  # centre offset from the bone axis (signed by the side)
    position: Range = 0.0  # preferred centre, in bone radii from the joint end
    roughness: Range = 0.0  # amplitude of the outline's radial harmonics
    points: tuple[int, int] | None = None  # outline points, integers(low, high)
    tilt: Range = 0.0  # radians from the bone's normal, for outgrowths
    stalk_flare: float = 1.0  # flare of an outgrowth's cap


@dataclass(frozen=True)
class LesionKind:
    """How a subtype's lesions are drawn: where they sit and their variants.

    With several variants, a patient's variant is the first with odds `first_odds`
    (else the second), or one of them with equal odds when `first_odds` is None.
    """

    name: str
    placement: Literal["bone", "surface", "joint"]
    variants: tuple[LesionVariant, ...]
    first_odds: float | None = None


@dataclass
class LesionShape:
    """Size and shape of a lesion relative to the local bone half-width w (drawn per patient)."""

    kind: LesionKind
    variant: LesionVariant
    along: float  # half-extent along the bone, in w
    across: float  # half-extent across the bone, in w
    offset: float  # centre offset from the bone axis, in w (signed by the side)
    position: float  # preferred centre, in bone radii from the joint end
    side: float  # angle about the bone axis (radians) on which the lesion sits
    roughness: float
    harmonics: np.ndarray  # (6, 2) amplitude and phase of the outline's harmonics
    points: int
    tilt: float = 0.0

    @property
    def area(self) -> float:
        """Approximate area in w^2."""
        if self.kind.placement == "surface":
            return 2.0 * self.across * (self.along + 0.5) * 0.9
        return math.pi * self.along * self.across


# --------------------------------------------------------------------------------------------
# Painters: each draws a placed lesion into the attenuation layers
# --------------------------------------------------------------------------------------------


def _paint_cyst(layers: Layers, site: Site, rng: np.random.Generator) -> None:
    mask = fill_mask(layers.shape, site.polygon, 0.8)
    rim = rim_mask(layers.shape, site.polygon, 2, 0.7) * layers.bone
    layers.medulla *= 1.0 - 0.9 * mask
    layers.cortex *= 1.0 - 0.35 * mask
    layers.texture_weight *= 1.0 - mask
    septa = np.exp(-((smooth_noise(rng, layers.shape, 3.0) / 0.15) ** 2))
    layers.extra += rim * rng.uniform(0.3, 0.45) + mask * layers.bone * (0.05 + 0.08 * septa)


def _paint_giant_cell(layers: Layers, site: Site, rng: np.random.Generator) -> None:
    mask = fill_mask(layers.shape, site.polygon, 1.2)
    field = smooth_noise(rng, layers.shape, rng.uniform(2.0, 3.5))
    septa = np.exp(-((field / 0.3) ** 2))
    layers.medulla *= 1.0 - 0.85 * mask
    layers.cortex *= 1.0 - 0.6 * mask
    layers.texture_weight *= 1.0 - mask
    layers.extra += mask * (0.42 * septa + 0.04) * layers.bone


def _paint_enchondroma(layers: Layers, site: Site, rng: np.random.Generator) -> None:
    mask = fill_mask(layers.shape, site.polygon, 1.0)
    rim = rim_mask(layers.shape, site.polygon, 1, 0.6) * layers.bone
    field = smooth_noise(rng, layers.shape, 0.9)
    dots = np.clip(field - 1.3, 0, None)
    layers.medulla *= 1.0 - 0.8 * mask
    layers.texture_weight *= 1.0 - mask
    layers.extra += mask * (0.7 * dots) + 0.2 * rim


def _paint_fibrous(layers: Layers, site: Site, rng: np.random.Generator) -> None:
    mask = fill_mask(layers.shape, site.polygon, 1.5)
    rim = rim_mask(layers.shape, site.polygon, 3, 1.2) * np.maximum(layers.bone, 0.4)
    layers.medulla *= 1.0 - 0.3 * mask
    layers.cortex *= 1.0 - 0.45 * mask
    layers.texture_weight *= 1.0 - mask
    layers.extra += mask * layers.bone * rng.uniform(0.12, 0.3) + rim * rng.uniform(0.35, 0.5)


def _paint_loose_bodies(layers: Layers, site: Site, rng: np.random.Generator) -> None:
    mask = fill_mask(layers.shape, site.polygon, 2.0)
    layers.soft += 0.12 * mask
    canvas = np.zeros(layers.shape, np.float32)
    low, high = site.polygon.min(axis=0), site.polygon.max(axis=0)
    count = int(rng.integers(5, 14))
    for _ in range(count):
        for _attempt in range(20):
            point = rng.uniform(low, high)
            x, y = int(round(point[0])), int(round(point[1]))
            if 0 <= x < layers.shape[1] and 0 <= y < layers.shape[0] and mask[y, x] > 0.8:
                break
        body = max(1, int(round(site.unit * rng.uniform(0.07, 0.18))))
        cv2.circle(canvas, (x, y), body, 0.45, -1, cv2.LINE_AA)
        cv2.circle(canvas, (x, y), body, 0.9, 1, cv2.LINE_AA)
    layers.extra += cv2.GaussianBlur(canvas, (0, 0), 0.8) * mask


def _paint_osteosarcoma(layers: Layers, site: Site, rng: np.random.Generator) -> None:
    tube, position, along, w_local, sign = (site.tube, site.position, site.along, site.w_local,
                                            site.sign)  # fmt: skip
    mask = fill_mask(layers.shape, site.polygon, 2.5)
    inside = mask * layers.bone
    outside = mask * (1.0 - layers.bone)
    lytic = 1.0 / (
        1.0 + np.exp(-2.2 * (smooth_noise(rng, layers.shape, max(0.7, 0.035 * w_local)) - 0.4))
    )
    cloud = (
        np.clip((smooth_noise(rng, layers.shape, max(1.0, 0.12 * w_local)) + 0.3) / 1.6, 0, 1)
        ** 1.5
    )
    layers.medulla *= 1.0 - 0.8 * lytic * mask
    layers.cortex *= 1.0 - 0.75 * mask * np.clip(lytic + 0.4, 0, 1)
    layers.texture_weight *= 1.0 - 0.6 * mask
    layers.extra += cloud * (0.55 * inside + 0.3 * outside)
    layers.soft += 0.45 * outside
    # Sunburst spicules perpendicular to the cortex.
    spicules = np.zeros(layers.shape, np.float32)
    for u in np.linspace(position - 0.8 * along, position + 0.8 * along, int(rng.integers(18, 40))):
        w = float(tube.width(u))
        start = tube.point(u, sign * w * 0.9)
        fan = (u - position) / max(along, 1e-6) * 0.5
        heading = sign * tube.normal * math.cos(fan) + tube.direction * math.sin(fan)
        end = start + heading * w * rng.uniform(0.3, 1.5)
        cv2.line(spicules, tuple(int(v) for v in np.round(start)),
                 tuple(int(v) for v in np.round(end)), float(rng.uniform(0.5, 1.1)), 1,
                 cv2.LINE_AA)  # fmt: skip
    layers.extra += cv2.GaussianBlur(spicules, (0, 0), 0.7) * outside


def _paint_permeative(layers: Layers, site: Site, rng: np.random.Generator) -> None:
    tube, position, along, sign = site.tube, site.position, site.along, site.sign
    mask = fill_mask(layers.shape, site.polygon, 3.0)
    holes = np.clip((smooth_noise(rng, layers.shape, 0.9) - 0.3) / 0.8, 0, 1)
    layers.medulla *= 1.0 - 0.8 * holes * mask
    layers.cortex *= 1.0 - 0.65 * holes * mask
    layers.texture_weight *= 1.0 - 0.5 * mask
    layers.soft += 0.1 * mask * (1.0 - layers.bone)
    # Onion-skin periosteal reaction: thin layers parallel to the cortex.
    lines = np.zeros(layers.shape, np.float32)
    u = np.linspace(position - 0.8 * along, position + 0.8 * along, 24)
    for layer in (1.06, 1.14, 1.22):
        for side in (sign, -sign * 0.6):
            points = tube.point(u, side * tube.width(u) * layer)
            cv2.polylines(lines, [np.round(points * 16).astype(np.int32)], False, 0.45, 1,
                          cv2.LINE_AA, shift=4)  # fmt: skip
    layers.extra += cv2.GaussianBlur(lines, (0, 0), 0.7) * mask


# --------------------------------------------------------------------------------------------
# The parameter table
# --------------------------------------------------------------------------------------------

_SESSILE = LesionVariant("sessile", None, along=(0.5, 1.1), across=(0.55, 0.9),
                         position=(1.3, 3.2), tilt=(0.35, 0.9), stalk_flare=1.1)  # fmt: skip
_PEDUNCULATED = LesionVariant("pedunculated", None, along=(1.0, 2.3), across=(0.28, 0.5),
                              position=(1.3, 3.2), tilt=(0.35, 0.9), stalk_flare=1.35)  # fmt: skip
_CYST = LesionVariant("cyst", _paint_cyst, across=(0.62, 0.82), elongation=(1.3, 2.6),
                      position=(1.8, 4.5), roughness=0.04)  # fmt: skip
_GIANT_CELL = LesionVariant("giant_cell", _paint_giant_cell, across=(0.6, 0.85),
                            elongation=(0.9, 1.4), offset=(0.25, 0.4), position=(0.4, 1.1),
                            roughness=0.1)  # fmt: skip
_ENCHONDROMA = LesionVariant("enchondroma", _paint_enchondroma, across=(0.55, 0.8),
                             elongation=(1.2, 2.0), position=(1.5, 4.0), roughness=0.08)  # fmt: skip
_FIBROUS = LesionVariant("fibrous", _paint_fibrous, across=(0.35, 0.55), elongation=(2.0, 4.0),
                         offset=(0.45, 0.6), position=(3.0, 7.0), roughness=0.06)  # fmt: skip
_LOOSE_BODIES = LesionVariant("loose_bodies", _paint_loose_bodies, along=(0.7, 1.3),
                              across=(0.5, 0.9), roughness=0.08)  # fmt: skip
_OSTEOSARCOMA = LesionVariant("osteosarcoma", _paint_osteosarcoma, along=(1.4, 2.8),
                              across=(1.1, 1.6), offset=(0.3, 0.5), position=(1.2, 2.6),
                              roughness=(0.14, 0.24), points=(40, 61))  # fmt: skip
_PERMEATIVE = LesionVariant("permeative", _paint_permeative, along=(1.8, 3.6),
                            across=(1.15, 1.45), offset=(0.05, 0.2), position=(1.8, 5.0),
                            roughness=0.1, points=(36, 56))  # fmt: skip

_OUTGROWTH = LesionKind("outgrowth", "surface", (_SESSILE, _PEDUNCULATED), first_odds=0.35)

# The lesions of each BTXRD subtype.
SUBTYPE_LESIONS: dict[str, LesionKind] = {
    "osteochondroma": _OUTGROWTH,
    "multiple osteochondromas": _OUTGROWTH,
    "simple bone cyst": LesionKind("cyst", "bone", (_CYST,)),
    "giant cell tumor": LesionKind("giant_cell", "bone", (_GIANT_CELL,)),
    "osteofibroma": LesionKind("fibrous", "bone", (_FIBROUS,)),
    "synovial osteochondroma": LesionKind("loose_bodies", "joint", (_LOOSE_BODIES,)),
    "other bt": LesionKind("other_benign", "bone", (_CYST, _GIANT_CELL, _ENCHONDROMA)),
    "osteosarcoma": LesionKind("osteosarcoma", "bone", (_OSTEOSARCOMA,)),
    "other mt": LesionKind("permeative", "bone", (_PERMEATIVE,)),
}


# --------------------------------------------------------------------------------------------
# Drawing a patient's lesion shape and placing it in the scene
# --------------------------------------------------------------------------------------------


def _draw(rng: np.random.Generator, value: Range) -> float:
    """A constant as is, or uniform(low, high) for a (low, high) range."""
    if isinstance(value, tuple):
        return rng.uniform(*value)
    return value


def _pick_variant(kind: LesionKind, rng: np.random.Generator) -> LesionVariant:
    if len(kind.variants) == 1:
        return kind.variants[0]
    if kind.first_odds is not None:
        return kind.variants[0] if rng.random() < kind.first_odds else kind.variants[1]
    names = [variant.name for variant in kind.variants]
    return kind.variants[names.index(str(rng.choice(names)))]


def lesion_shape(kind: LesionKind, rng: np.random.Generator) -> LesionShape:
    """Draw a patient's lesion shape of `kind` (a value of SUBTYPE_LESIONS)."""
    harmonics = np.stack([rng.uniform(0.3, 1.0, 6), rng.uniform(0, 2 * math.pi, 6)], axis=1)
    side = float(rng.uniform(0, 2 * math.pi))
    points = int(rng.integers(24, 56))
    variant = _pick_variant(kind, rng)
    if variant.along is None:
        across = _draw(rng, variant.across)
        along = across * _draw(rng, variant.elongation)
    else:
        along = _draw(rng, variant.along)
        across = _draw(rng, variant.across)
    offset = _draw(rng, variant.offset)
    position = _draw(rng, variant.position)
    roughness = _draw(rng, variant.roughness)
    if variant.points is not None:
        points = int(rng.integers(*variant.points))
    tilt = _draw(rng, variant.tilt)
    return LesionShape(kind=kind, variant=variant, along=along, across=across, offset=offset,
                       position=position, side=side, roughness=roughness, harmonics=harmonics,
                       points=points, tilt=tilt)  # fmt: skip


def lesion_tube(scene: Scene, bone: str, shape: tuple[int, int], rng: np.random.Generator) -> Tube:
    """A bone of that name with a good stretch inside the image (else any such bone)."""
    named = [tube for tube in scene.bones if tube.name == bone]
    if not named:
        named = [tube for tube in scene.bones if tube.cortex > 0.2 and tube.density > 0]
        named = named or scene.bones
    visible = []
    for tube in named:
        low, high = visible_range(tube, shape, margin=4.0)
        if high - low >= 3.0 * tube.radius:
            visible.append(tube)
    candidates = visible or named
    weights = np.array([tube.radius**2 for tube in candidates])
    return candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]


def place_lesion(
    layers: Layers,
    scene: Scene,
    frame: Frame,
    bone: str,
    shape: LesionShape,
    size_scale: float,
    rng: np.random.Generator,
    taken: list[np.ndarray],
    limit: float,
) -> np.ndarray:
    """Draw one lesion in `bone` into the layers; return its outline (N, 2) in work px, at most
    `limit` px^2 in area."""
    projected = math.cos(shape.side - frame.phi)
    sign = 1.0 if projected >= 0 else -1.0
    eccentric = sign * max(abs(projected), 0.35)

    if shape.kind.placement == "joint":
        if scene.joint_point is not None:
            centre = scene.joint_point + frame.across * frame.mirror * sign * 0.6 * layers.unit
        else:
            tube = lesion_tube(scene, bone, layers.shape, rng)
            centre = tube.point(0.0, tube.width(0.0) * 0.6 * sign)
        unit = layers.unit * size_scale
        curve = unit_outline(shape.points, shape.roughness, shape.harmonics)
        polygon = (centre + curve[:, :1] * shape.along * unit * frame.axis
                   + curve[:, 1:] * shape.across * unit * 1.3 * frame.across)  # fmt: skip
        polygon = limit_area(fit_inside(polygon, layers.shape), limit)
        shape.variant.paint(layers, Site(polygon, unit, sign), rng)
        return polygon

    tube = lesion_tube(scene, bone, layers.shape, rng)
    low, high = visible_range(tube, layers.shape, margin=4.0)
    if low > high:
        low, high = 0.0, tube.length
    radius = tube.radius
    if tube.cap_start and low <= 0:
        position = shape.position * radius
    else:
        position = low + (high - low) * rng.uniform(0.25, 0.75)
    for previous in taken:
        centre = tube.point(position, 0.0)
        if np.hypot(*(centre - previous.mean(axis=0))) < 2.5 * radius:
            position = position + 3.5 * radius * (1 if position < (low + high) / 2 else -1)
    cap_start, cap_end = tube.cap_lengths
    low = max(low, -0.3 * cap_start)
    high = min(high, tube.length + 0.3 * cap_end)
    position = float(np.clip(position, low, max(high, low)))
    w_local = max(float(tube.width(position)), 0.5 * radius)
    along = min(shape.along * w_local * size_scale, 0.45 * max(high - low, radius))
    across = shape.across * w_local * size_scale
    position = float(np.clip(position, low + along, max(high - along, low + along)))
    w_local = max(float(tube.width(position)), 0.5 * radius)

    if shape.kind.placement == "surface":
        for attempt in range(8):
            side = sign if attempt % 2 == 0 else -sign
            factor = 0.7 ** (attempt // 2)
            growth = _outgrowth(tube, position, w_local, shape, size_scale * factor, side,
                                abs(projected))  # fmt: skip
            polygon = growth.outline(shape.points, begin=0.3 * w_local)
            if is_inside(polygon, layers.shape) and polygon_area(polygon) <= limit:
                break
        layers.add_bone(growth)
        return fit_inside(polygon, layers.shape)

    offset = shape.offset * w_local * eccentric
    curve = unit_outline(shape.points, shape.roughness, shape.harmonics)
    polygon = tube.point(position + curve[:, 0] * along, offset + curve[:, 1] * across)
    polygon = limit_area(fit_inside(polygon, layers.shape), limit)
    site = Site(polygon, layers.unit * size_scale, sign, tube, position, along, w_local)
    shape.variant.paint(layers, site, rng)
    return polygon


def _outgrowth(parent, position, w_local, shape, size_scale, sign, projected) -> Tube:
    """An osteochondroma: a bony stalk from the cortex, pointing away from the joint."""
    length = shape.along * w_local * size_scale * max(projected, 0.45)
    radius = shape.across * w_local * size_scale
    base = parent.point(position, sign * 0.45 * w_local)
    heading = sign * parent.normal * math.cos(shape.tilt) + parent.direction * math.sin(shape.tilt)
    end = base + heading * (0.55 * w_local + length)
    return Tube(
        "outgrowth", base, end, radius, 1.4, shape.variant.stalk_flare, False, True, 0.26, 1.6,
        fade=0.45 * w_local,
    )  # fmt: skip
