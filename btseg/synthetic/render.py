"""Rendering one synthetic radiograph from its spec: scene, lesions, projection, exposure,
blur, noise, a border and an L/R marker.

Images are drawn at a work resolution of at most WORK_SIDE px a side and resized to the spec's
size; lesion outlines are returned in the original pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from btseg.synthetic.anatomy import BONE_RADIUS, UNIT_RANGE, build_scene, hidden_bone_anchor
from btseg.synthetic.geometry import Frame, polygon_area
from btseg.synthetic.layers import Layers, smooth_noise
from btseg.synthetic.lesions import lesion_shape, place_lesion
from btseg.synthetic.plan import ImageSpec

# Work resolution (px, longest side), and the rotation about the limb axis of each view.
WORK_SIDE = 720
VIEW_ANGLE = {"frontal": 0.0, "oblique": math.pi / 4, "lateral": math.pi / 2}


def render_radiograph(spec: ImageSpec) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Render one radiograph: (H, W) uint8 and its lesion outlines in original pixels."""
    rng = np.random.default_rng(np.random.SeedSequence(list(spec.image_seed)))
    anat = np.random.default_rng(np.random.SeedSequence(list(spec.patient_seed)))
    full_h, full_w = spec.height, spec.width
    scale = min(1.0, WORK_SIDE / max(full_h, full_w))
    height, width = max(8, round(full_h * scale)), max(8, round(full_w * scale))
    short, long = min(height, width), max(height, width)

    mirror = 1.0 if anat.random() < 0.5 else -1.0
    shapes = [
        lesion_shape(plan.kind, np.random.default_rng(
            np.random.SeedSequence([*spec.patient_seed, 10 + k])))
        for k, plan in enumerate(spec.lesions)
    ]  # fmt: skip
    low, high = UNIT_RANGE[spec.anatomy]
    size_scale = 1.0
    if shapes:
        relative = BONE_RADIUS[spec.anatomy].get(spec.lesions[0].bone, 1.0)
        if shapes[0].kind.placement == "joint":
            relative = 0.8
        wanted = spec.lesion_fraction * height * width
        unit = math.sqrt(wanted / max(shapes[0].area, 1e-3)) / (relative * 1.15)
        clipped = float(np.clip(unit, low * short, high * short))
        size_scale = float(np.clip(unit / clipped, 0.55, 1.6))
        unit = clipped * float(np.exp(rng.normal(0, 0.05)))
    else:
        unit = short * math.exp(rng.uniform(math.log(low), math.log(high)))

    portrait = height >= width
    angle = rng.uniform(-0.2, 0.2)
    axis = np.array([math.sin(angle), math.cos(angle)] if portrait else
                    [math.cos(angle), math.sin(angle)])  # fmt: skip
    if not portrait and rng.random() < 0.5:
        axis = -axis
    across = np.array([-axis[1], axis[0]])
    centre = np.array([width / 2, height / 2]) + across * rng.uniform(-0.08, 0.08) * short
    phi = VIEW_ANGLE[spec.view] + rng.normal(0, 0.08)
    frame = Frame(height, width, axis, across, centre, rng.uniform(-0.18, 0.18) * long,
                  1.5 * math.hypot(height, width), mirror, phi)  # fmt: skip
    scene_seed = np.random.SeedSequence([*spec.patient_seed, 1])
    scene = build_scene(spec.anatomy, frame, unit, np.random.default_rng(scene_seed))
    anchor = hidden_bone_anchor(scene, spec.lesions[0].bone, (height, width)) if shapes else None
    if anchor is not None:
        # The lesion's bone fell outside the frame: recentre the scene on it.
        frame.center = frame.center + (np.array([width / 2, height / 2]) - anchor)
        scene = build_scene(spec.anatomy, frame, unit, np.random.default_rng(scene_seed))

    layers = Layers(height, width, unit)
    for tube in scene.soft:
        layers.add_soft(tube)
    for plate in scene.plates:
        layers.add_plate(plate)
    for tube in scene.bones:
        layers.add_bone(tube)

    outlines: list[tuple[str, np.ndarray]] = []
    taken: list[np.ndarray] = []
    budget = 0.1 * height * width
    for plan, shape in zip(spec.lesions, shapes, strict=True):
        limit = max(budget - sum(polygon_area(p) for p in taken), 0.01 * height * width)
        polygon = place_lesion(layers, scene, frame, plan.bone, shape, size_scale, rng, taken,
                               limit)  # fmt: skip
        taken.append(polygon)
        outlines.append((plan.subtype, polygon))

    # Trabecular texture: band-passed noise, elongated along the limb axis.
    noise = rng.standard_normal((height, width), dtype=np.float32)
    sx, sy = (0.6, 1.3) if portrait else (1.3, 0.6)
    band = cv2.GaussianBlur(noise, (0, 0), sigmaX=sx, sigmaY=sy) - cv2.GaussianBlur(
        noise, (0, 0), 2.2
    )
    band /= band.std() + 1e-6
    texture = 1.0 + 0.4 * np.tanh(1.3 * band) * layers.texture_weight
    layers.soft *= 1.0 + 0.06 * smooth_noise(rng, layers.shape, 6.0)
    attenuation = (layers.soft + layers.muscle + layers.cortex + layers.medulla * texture
                   + layers.extra)  # fmt: skip

    background = rng.uniform(0.02, 0.12)
    gain = rng.uniform(0.5, 0.75)
    image = background + (1 - background) * (1 - np.exp(-gain * attenuation))
    image = np.power(np.clip(image, 0, 1), rng.uniform(0.8, 1.2))
    tilt = np.float32(rng.uniform(-0.08, 0.08))
    if portrait:
        image *= 1 + tilt * (np.arange(height, dtype=np.float32)[:, None] / height - 0.5)
    else:
        image *= 1 + tilt * (np.arange(width, dtype=np.float32)[None, :] / width - 0.5)
    image = cv2.GaussianBlur(
        image.astype(np.float32), (0, 0), max(0.3, rng.uniform(0.5, 1.2) * scale)
    )
    image = cv2.resize(image, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(
        rng.uniform(0.006, 0.02)
    )

    # Lesion outlines back to original pixels (pixel centres map through the resize).
    sx_full, sy_full = full_w / width, full_h / height
    lesions = []
    for label, polygon in outlines:
        full = np.empty_like(polygon, dtype=np.float64)
        full[:, 0] = np.clip((polygon[:, 0] + 0.5) * sx_full - 0.5, 0, full_w - 1)
        full[:, 1] = np.clip((polygon[:, 1] + 0.5) * sy_full - 0.5, 0, full_h - 1)
        lesions.append((label, np.round(full, 2)))

    image = _add_border(image, rng)
    image = _add_marker(image, rng, "L" if mirror > 0 else "R", lesions)
    image *= 255.0
    image += 0.5
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8), lesions


def _add_border(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sometimes collimation margins, or a black or white band around the image (in [0, 1])."""
    height, width = image.shape
    kind = rng.random()
    if kind < 0.18:
        # Collimation: the shuttered margins read brighter and flat.
        level = rng.uniform(0.55, 0.85)
        top, bottom = (int(rng.uniform(0, 0.06) * height) for _ in range(2))
        left, right = (int(rng.uniform(0, 0.06) * width) for _ in range(2))
        keep = np.zeros_like(image, bool)
        keep[top : height - bottom, left : width - right] = True
        image = np.where(keep, image, level + 0.1 * (image - image.mean()))
    elif kind < 0.28:
        band = int(rng.integers(4, 24))
        image[:band], image[-band:], image[:, :band], image[:, -band:] = 0, 0, 0, 0
    elif kind < 0.33:
        band = int(rng.integers(2, 6))
        image[:band], image[-band:], image[:, :band], image[:, -band:] = 1, 1, 1, 1
    return image


def _add_marker(image: np.ndarray, rng: np.random.Generator, letter: str, lesions) -> np.ndarray:
    """Burn an L/R marker into a corner clear of the lesions (image in [0, 1])."""
    height, width = image.shape
    short = min(height, width)
    scale = short / 420 * rng.uniform(0.8, 1.5)
    thickness = max(1, int(round(scale * 2)))
    (text_w, text_h), _ = cv2.getTextSize(letter, cv2.FONT_HERSHEY_DUPLEX, scale, thickness)
    margin = int(0.04 * short)
    corners = [(margin, margin + text_h), (width - margin - text_w, margin + text_h),
               (margin, height - margin), (width - margin - text_w, height - margin)]  # fmt: skip
    order = rng.permutation(4)
    chosen = corners[int(order[0])]
    for index in order:
        x, y = corners[int(index)]
        box = (x - 6, y - text_h - 6, x + text_w + 6, y + 6)
        clear = all(
            polygon[:, 0].max() < box[0] or polygon[:, 0].min() > box[2]
            or polygon[:, 1].max() < box[1] or polygon[:, 1].min() > box[3]
            for _, polygon in lesions
        )  # fmt: skip
        if clear:
            chosen = (x, y)
            break
    x, y = chosen
    if rng.random() < 0.3:
        image[max(y - text_h - 6, 0) : y + 6, max(x - 6, 0) : x + text_w + 6] = 0.05
    top, left = max(y - text_h - 8, 0), max(x - 8, 0)
    bottom, right = min(y + 8 + thickness, height), min(x + text_w + 8, width)
    text = np.zeros((bottom - top, right - left), np.uint8)
    cv2.putText(text, letter, (x - left, y - top), cv2.FONT_HERSHEY_DUPLEX, scale, 255, thickness,
                cv2.LINE_AA)  # fmt: skip
    level = np.float32(rng.uniform(0.9, 1.0) / 255)
    region = image[top:bottom, left:right]
    np.maximum(region, text.astype(np.float32) * level, out=region)
    return image
