"""Anatomy of the synthetic radiographs: the scene library (knee, ankle, elbow, shoulder, hip,
wrist, hand, foot and shaft views) built from tubes and plates in an image frame.

A scene is sized by its unit (work px, roughly a long bone's radius) and drawn from its own
random generator, so one patient's scene is the same in every view.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from btseg.synthetic.geometry import Frame, Plate, Tube, is_inside, visible_range

# Sites visible in each scene (candidates for the extra sites of multi-hot rows).
SCENE_SITES = {
    "knee": ("femur", "tibia", "fibula", "knee-joint"),
    "ankle": ("tibia", "fibula", "ankle-joint"),
    "elbow": ("humerus", "radius", "ulna", "elbow-joint"),
    "shoulder": ("humerus", "shoulder-joint"),
    "hip": ("femur", "hip bone", "hip-joint"),
    "wrist": ("radius", "ulna", "hand"),
    "leg_shaft": ("tibia", "fibula"),
    "forearm_shaft": ("radius", "ulna"),
    "femur_shaft": ("femur",),
    "humerus_shaft": ("humerus",),
    "hand": ("hand",),
    "foot": ("foot",),
}
# Bone radius relative to the scene unit, used to size the scene from the wanted lesion area.
BONE_RADIUS = {
    "knee": {"femur": 1.0, "tibia": 0.85, "fibula": 0.33},
    "ankle": {"tibia": 0.85, "fibula": 0.33},
    "elbow": {"humerus": 0.85, "radius": 0.42, "ulna": 0.48},
    "shoulder": {"humerus": 1.0},
    "hip": {"femur": 0.75, "hip bone": 2.2},
    "wrist": {"radius": 1.0, "ulna": 0.6, "hand": 0.35},
    "leg_shaft": {"tibia": 0.9, "fibula": 0.35},
    "forearm_shaft": {"radius": 0.55, "ulna": 0.5},
    "femur_shaft": {"femur": 1.0},
    "humerus_shaft": {"humerus": 1.0},
    "hand": {"hand": 1.0},
    "foot": {"foot": 1.0},
}
# Scene unit as a fraction of the image's short side (lowest, highest).
UNIT_RANGE = {
    "knee": (0.045, 0.13), "ankle": (0.05, 0.13), "elbow": (0.05, 0.13),
    "shoulder": (0.05, 0.12), "hip": (0.045, 0.1), "wrist": (0.045, 0.1),
    "leg_shaft": (0.045, 0.13), "forearm_shaft": (0.07, 0.16), "femur_shaft": (0.05, 0.14),
    "humerus_shaft": (0.05, 0.14), "hand": (0.028, 0.055), "foot": (0.026, 0.05),
}  # fmt: skip


@dataclass
class Scene:
    """Bones (tubes and plates) and soft tissue of one view, work px."""

    bones: list[Tube]
    soft: list[Tube]
    joint: str | None = None
    joint_point: np.ndarray | None = None
    plates: list[Plate] = field(default_factory=list)


def _soft(start, end, radius, flare_start=1.0, flare_end=1.0, caps=(False, False)) -> Tube:
    return Tube("soft", start, end, radius, flare_start, flare_end, caps[0], caps[1], 0.0)


def _limb_envelope(f: Frame, upper: float, lower: float, joint_a: float) -> list[Tube]:
    meet = min(upper, lower)
    return [
        _soft(f.p(joint_a, 0), f.p(-f.reach, 0), upper, flare_start=meet / upper),
        _soft(f.p(joint_a, 0), f.p(f.reach, 0), lower, flare_start=meet / lower),
    ]


# The scenes below are alike in shape on purpose (knee, ankle, elbow...): each is its joint's
# table of bones (a long bone above the joint, its partners below), the numbers are the anatomy.
def _scene_knee(f: Frame, unit: float, anat: np.random.Generator) -> Scene:
    aj, gap = f.joint, unit * anat.uniform(0.25, 0.42)
    r_femur, fs_femur = unit, anat.uniform(1.55, 1.8)
    r_tibia, fs_tibia = 0.85 * unit, anat.uniform(1.45, 1.65)
    c_tibia = f.lateral(-0.1 * unit, 0.15 * unit)
    c_fibula = f.lateral(1.05 * unit, -0.2 * unit)
    bones = [
        Tube("femur", f.p(aj - gap / 2 - 0.75 * r_femur * fs_femur, 0), f.p(-f.reach, 0),
              r_femur, fs_femur, 1.0, True, False),
        Tube("tibia", f.p(aj + gap / 2 + 0.75 * r_tibia * fs_tibia, c_tibia),
              f.p(f.reach, c_tibia), r_tibia, fs_tibia, 1.0, True, False),
        Tube("fibula", f.p(aj + gap / 2 + 0.9 * unit, c_fibula), f.p(f.reach, c_fibula * 1.1),
              0.33 * unit, 1.55, 1.0, True, False, 0.34, 1.5),
        Tube("patella", f.p(aj - 1.5 * unit, f.lateral(0.0, -1.9 * unit)),
              f.p(aj - 0.5 * unit, f.lateral(0.0, -2.1 * unit)), 0.55 * unit, 1.0, 1.0,
              True, True, 0.15, 0.8, 1.0),
    ]  # fmt: skip
    size = anat.uniform(2.5, 3.1)
    soft = _limb_envelope(f, size * unit, 0.82 * size * unit, aj)
    return Scene(bones, soft, "knee-joint", f.p(aj, 0))


def _scene_ankle(f: Frame, unit: float, anat: np.random.Generator) -> Scene:
    aj, gap = f.joint, unit * anat.uniform(0.22, 0.35)
    r_tibia, fs_tibia = 0.85 * unit, anat.uniform(1.3, 1.5)
    c_fibula = f.lateral(1.15 * unit, 0.3 * unit)
    bones = [
        Tube("tibia", f.p(aj - gap / 2 - 0.75 * r_tibia * fs_tibia, 0), f.p(-f.reach, 0),
              r_tibia, fs_tibia, 1.0, True, False),
        Tube("fibula", f.p(aj + 0.3 * unit, c_fibula), f.p(-f.reach, c_fibula * 0.9),
              0.33 * unit, 1.6, 1.0, True, False, 0.34, 1.5),
    ]  # fmt: skip
    top = aj + gap / 2
    talus = _plate_points(f, top, 0.0, unit, [
        (0.05, -1.1), (-0.1, -0.5), (-0.15, 0.3), (0.0, 1.0), (0.6, 1.2), (1.3, 0.9),
        (1.7, 0.3), (1.8, -0.6), (1.3, -1.2),
    ])  # fmt: skip
    heel = f.lateral(-0.3, -1.4)
    calcaneus = _plate_points(f, top + 2.4 * unit, heel * unit, unit, [
        (-0.6, -1.4), (-0.9, 0.2), (-0.5, 1.4), (0.6, 1.7), (2.2, 1.2), (2.8, 0.0),
        (2.4, -1.3), (1.0, -1.8),
    ])  # fmt: skip
    plates = [Plate(talus, 1.4 * unit, density=0.9), Plate(calcaneus, 1.6 * unit, density=0.8)]
    size = anat.uniform(1.9, 2.4)
    soft = _limb_envelope(f, size * unit, 1.35 * size * unit, aj + 1.5 * unit)
    return Scene(bones, soft, "ankle-joint", f.p(aj, 0), plates)


def _scene_elbow(f: Frame, unit: float, anat: np.random.Generator) -> Scene:
    aj, gap = f.joint, unit * anat.uniform(0.2, 0.35)
    r_hum, fs_hum = 0.85 * unit, anat.uniform(1.7, 1.95)
    c_ulna = f.lateral(-0.5 * unit, 0.2 * unit)
    c_radius = f.lateral(0.6 * unit, -0.3 * unit)
    bones = [
        Tube("humerus", f.p(aj - gap / 2 - 0.75 * r_hum * fs_hum, 0), f.p(-f.reach, 0),
              r_hum, fs_hum, 1.0, True, False),
        Tube("ulna", f.p(aj + gap / 2 + 0.4 * unit, c_ulna), f.p(f.reach, c_ulna * 0.6),
              0.48 * unit, 1.6, 1.0, True, False, 0.3, 1.35),
        Tube("radius", f.p(aj + gap / 2 + 0.5 * unit, c_radius), f.p(f.reach, c_radius * 1.3),
              0.42 * unit, 1.35, 1.0, True, False, 0.3, 1.35),
    ]  # fmt: skip
    size = anat.uniform(2.1, 2.6)
    soft = _limb_envelope(f, size * unit, 0.9 * size * unit, aj)
    return Scene(bones, soft, "elbow-joint", f.p(aj, 0))


def _plate_points(f: Frame, origin_a: float, origin_c: float, unit: float, points) -> np.ndarray:
    """Outline from (a, c) pairs in units about (origin_a, origin_c), smoothed into a curve."""
    raw = np.array([f.p(origin_a + a * unit, origin_c + c * unit) for a, c in points])
    # Chaikin corner cutting: two rounds turn the polygon into a smooth outline.
    for _ in range(2):
        following = np.roll(raw, -1, axis=0)
        raw = np.stack([0.75 * raw + 0.25 * following, 0.25 * raw + 0.75 * following], axis=1)
        raw = raw.reshape(-1, 2)
    return raw


def _ellipse_points(f: Frame, a: float, c: float, half_a: float, half_c: float) -> np.ndarray:
    angle = np.linspace(0, 2 * math.pi, 32, endpoint=False)
    return np.array([f.p(a + half_a * math.cos(t), c + half_c * math.sin(t)) for t in angle])


def _scene_shoulder(f: Frame, unit: float, anat: np.random.Generator) -> Scene:
    aj, gap = f.joint, unit * anat.uniform(0.2, 0.35)
    fs_head = anat.uniform(1.7, 1.95)
    head_a = aj + 0.75 * unit * fs_head
    glenoid_c = -(fs_head * unit + gap + 0.25 * unit)
    bones = [
        Tube("humerus", f.p(head_a, 0), f.p(f.reach, 0), unit, fs_head, 1.0, True, False),
        Tube("clavicle", f.p(aj - 2.7 * unit, 1.4 * unit), f.p(aj - 3.4 * unit, -7.5 * unit),
              0.5 * unit, 1.25, 1.0, True, True, 0.25, 1.1),
        Tube("acromion", f.p(aj - 2.0 * unit, 1.3 * unit), f.p(aj - 2.4 * unit, -1.3 * unit),
              0.45 * unit, 1.0, 1.0, True, True, 0.2, 0.9, 1.0),
    ]  # fmt: skip
    scapula = _plate_points(f, aj + 0.6 * unit, glenoid_c, unit, [
        (-1.1, 0.0), (-0.2, 0.35), (0.9, 0.2), (1.5, -0.6), (3.5, -2.2), (6.5, -4.2),
        (6.2, -5.2), (-1.6, -6.8), (-2.0, -4.0), (-1.6, -1.0),
    ])  # fmt: skip
    plates = [Plate(scapula, 0.9 * unit, density=0.75)]
    size = anat.uniform(2.6, 3.2)
    soft = [
        _soft(f.p(aj - 1.5 * unit, 0), f.p(f.reach, 0), size * unit, caps=(True, False)),
        _soft(f.p(aj - 3.5 * unit, -3 * unit), f.p(aj + 3 * unit, -5 * unit), 4.5 * unit,
              caps=(True, True)),
    ]  # fmt: skip
    return Scene(bones, soft, "shoulder-joint", f.p(aj + 0.6 * unit, glenoid_c / 2), plates)


def _scene_hip(f: Frame, unit: float, anat: np.random.Generator) -> Scene:
    aj = f.joint
    neck = anat.uniform(0.9, 1.2)
    head_a, head_c = aj - 0.1 * unit, -1.0 * unit * neck
    head = f.p(head_a, head_c)
    bones = [
        Tube("femur", f.p(aj + 1.2 * unit, 1.1 * unit), f.p(f.reach, 1.9 * unit), unit,
              1.45, 1.0, True, False),
        Tube("femur", f.p(aj + 1.7 * unit, 0.9 * unit), head, 0.62 * unit, 1.0, 1.75,
              False, True, 0.25, 1.0, 1.0, fade=0.8 * unit),
        # Hidden host for lesions of the ilium; the pelvis itself is drawn as a plate.
        Tube("hip bone", f.p(head_a - 2.3 * unit, head_c + 0.3 * unit),
              f.p(head_a - 5.8 * unit, head_c - 0.8 * unit), 1.6 * unit, 1.0, 1.0,
              True, True, 0.1, 0.0, 1.0),
    ]  # fmt: skip
    pelvis = _plate_points(f, head_a, head_c, unit, [
        (-1.1, 1.2), (-3.0, 2.2), (-5.5, 2.7), (-7.5, 1.6), (-8.2, -1.0), (-7.8, -3.5),
        (-5.5, -4.6), (-3.0, -3.8), (-1.5, -2.8), (-1.1, -6.5), (0.3, -7.0), (1.9, -6.6),
        (3.0, -4.4), (3.1, -2.4), (2.2, -1.2), (1.0, -0.6), (0.2, 0.6),
    ])  # fmt: skip
    foramen = _ellipse_points(f, head_a + 1.5 * unit, head_c - 4.3 * unit, 1.0 * unit, 1.4 * unit)
    plates = [Plate(pelvis, 1.0 * unit, (foramen,), density=0.85)]
    size = anat.uniform(3.8, 4.6)
    soft = [
        _soft(f.p(-f.reach, -1.5 * unit), f.p(f.reach, 0), size * unit),
        _soft(f.p(head_a - 6.0 * unit, head_c - 1.0 * unit), f.p(head_a + 2.0 * unit, head_c - 4.0 * unit),
              size * 1.25 * unit, caps=(True, True)),
    ]  # fmt: skip
    return Scene(bones, soft, "hip-joint", head, plates)


def _scene_shaft(f: Frame, unit: float, anat: np.random.Generator, kind: str) -> Scene:
    top, bottom = -f.reach, f.reach
    bones: list[Tube] = []
    if kind == "leg_shaft":
        ct, cf = f.lateral(-0.35 * unit, 0.1 * unit), f.lateral(0.95 * unit, -0.3 * unit)
        bones = [
            Tube("tibia", f.p(top, ct), f.p(bottom, ct), 0.9 * unit, 1.0, 1.0, False, False, 0.34),
            Tube("fibula", f.p(top, cf), f.p(bottom, cf * 1.15), 0.35 * unit, 1.0, 1.0,
                  False, False, 0.36, 1.5),
        ]  # fmt: skip
        radius = 2.4
    elif kind == "forearm_shaft":
        cr, cu = f.lateral(0.6 * unit, -0.2 * unit), f.lateral(-0.6 * unit, 0.25 * unit)
        bones = [
            Tube("radius", f.p(top, cr * 0.7), f.p(bottom, cr * 1.2), 0.55 * unit, 1.0, 1.0,
                  False, False, 0.32, 1.3),
            Tube("ulna", f.p(top, cu), f.p(bottom, cu * 0.8), 0.5 * unit, 1.0, 1.0,
                  False, False, 0.32, 1.3),
        ]  # fmt: skip
        radius = 1.9
    else:
        name = "femur" if kind == "femur_shaft" else "humerus"
        bones = [Tube(name, f.p(top, 0), f.p(bottom, 0), unit, 1.0, 1.0, False, False, 0.32)]
        radius = 2.8 if name == "femur" else 2.4
    radius *= anat.uniform(0.9, 1.15)
    return Scene(bones, [_soft(f.p(top, 0), f.p(bottom, 0), radius * unit)])


def _scene_wrist(f: Frame, unit: float, anat: np.random.Generator) -> Scene:
    aj, gap = f.joint, unit * anat.uniform(0.2, 0.3)
    c_ulna = f.lateral(-1.45 * unit, -0.3 * unit)
    bones = [
        Tube("radius", f.p(aj - gap / 2 - 0.75 * unit * 1.5, 0.2 * unit), f.p(-f.reach, 0.5 * unit),
              unit, 1.5, 1.0, True, False),
        Tube("ulna", f.p(aj - gap - 0.4 * unit, c_ulna), f.p(-f.reach, c_ulna * 0.8),
              0.6 * unit, 1.2, 1.0, True, False, 0.3, 1.2),
    ]  # fmt: skip
    for row, count in ((0.7, 4), (1.6, 4)):
        for k in range(count):
            c = (k - (count - 1) / 2) * 0.85 * unit + anat.normal(0, 0.08) * unit
            a = aj + gap + row * unit
            bones.append(Tube("carpal", f.p(a - 0.15 * unit, c), f.p(a + 0.15 * unit, c),
                               0.38 * unit, 1.0, 1.0, True, True, 0.15, 0.9, 1.0))  # fmt: skip
    for k in range(4):
        c0 = (k - 1.5) * 0.8 * unit
        bones.append(Tube("hand", f.p(aj + 2.5 * unit, c0), f.p(f.reach, c0 * 3.0),
                           0.35 * unit, 1.4, 1.0, True, False, 0.3, 1.3))  # fmt: skip
    size = anat.uniform(2.0, 2.4)
    soft = _limb_envelope(f, size * unit, 1.2 * size * unit, aj + 1.5 * unit)
    return Scene(bones, soft)


def _scene_hand(f: Frame, unit: float, anat: np.random.Generator, foot: bool) -> Scene:
    """Hand or foot seen front-on, fingers towards the top of the frame."""
    base = 0.3 * f.joint + (0.22 if not foot else 0.3) * max(f.height, f.width)
    spread = 2.4 * unit * (0.45 + 0.55 * abs(math.cos(f.phi)))
    name = "foot" if foot else "hand"
    bones: list[Tube] = []
    soft: list[Tube] = []
    # Lengths of metacarpal (metatarsal) and phalanges, in units.
    segments = (10.0, 3.6, 2.0, 1.6) if foot else (8.5, 5.2, 3.2, 2.2)
    radii = (0.95, 0.75, 0.6, 0.55) if foot else (1.0, 0.8, 0.7, 0.6)
    rays = 5 if foot else 4
    for k in range(rays):
        offset = (k - (rays - 1) / 2) * spread
        scale = (1.0 - 0.06 * abs(k - 1)) * anat.uniform(0.95, 1.05)
        thick = 1.45 if foot and k == 0 else 1.0
        start = f.p(base, offset * 0.7)
        heading = f.p(base - 10.0 * unit, offset) - start
        heading = heading / np.hypot(*heading)
        point = start
        for index, (length, radius) in enumerate(zip(segments, radii, strict=True)):
            if foot and k == 0 and index == 2:
                continue
            end = point + heading * length * unit * scale
            bones.append(Tube(name, end, point, radius * unit * thick, 1.3, 1.35, True, True,
                               0.3, 1.0))  # fmt: skip
            point = end + heading * (0.9 * radius * unit * thick)
        soft.append(_soft(start + heading * 8.0 * unit * scale, point, 1.35 * unit * thick,
                          caps=(True, True)))  # fmt: skip
    if not foot:
        start = f.p(base + 0.5 * unit, -2.2 * spread)
        heading = f.p(base - 6.0 * unit, -3.6 * spread) - start
        heading = heading / np.hypot(*heading)
        point = start
        for length, radius in ((5.5, 1.0), (3.8, 0.85), (2.6, 0.7)):
            end = point + heading * length * unit
            bones.append(Tube(name, end, point, radius * unit, 1.3, 1.35, True, True, 0.3))
            point = end + heading * 0.9 * radius * unit
        soft.append(_soft(start, point, 1.5 * unit, caps=(True, True)))
    for k in range(7 if not foot else 6):
        a = base + (1.4 + 1.3 * (k // 4)) * unit
        c = ((k % 4) - 1.5) * 1.3 * unit * (1.3 if foot else 1.0) + anat.normal(0, 0.2) * unit
        bones.append(
            Tube(
                "carpal",
                f.p(a - 0.3 * unit, c),
                f.p(a + 0.3 * unit, c),
                (0.9 if not foot else 1.2) * unit,
                1.0,
                1.0,
                True,
                True,
                0.13,
                0.85,
                1.0,
            )
        )
    if not foot:
        bones.append(
            Tube(
                "radius",
                f.p(base + 4.2 * unit, 1.2 * unit),
                f.p(f.reach, 1.3 * unit),
                1.5 * unit,
                1.35,
                1.0,
                True,
                False,
            )
        )
        bones.append(
            Tube(
                "ulna",
                f.p(base + 4.6 * unit, -2.6 * unit),
                f.p(f.reach, -2.4 * unit),
                0.9 * unit,
                1.2,
                1.0,
                True,
                False,
            )
        )
    soft.append(
        _soft(
            f.p(base + 3.0 * unit, 0),
            f.p(base - 8.5 * unit, 0),
            (2.6 if foot else 2.3) * spread,
            caps=(True, True),
        )
    )
    soft.append(_soft(f.p(base + 3.0 * unit, 0), f.p(f.reach, 0), (6.5 if foot else 4.5) * unit))
    return Scene(bones, soft)


SceneBuilder = Callable[[Frame, float, np.random.Generator], Scene]

# Scene builder per anatomy: builder(frame, unit, generator) -> Scene.
SCENE_BUILDERS: dict[str, SceneBuilder] = {
    "knee": _scene_knee,
    "ankle": _scene_ankle,
    "elbow": _scene_elbow,
    "shoulder": _scene_shoulder,
    "hip": _scene_hip,
    "wrist": _scene_wrist,
    "hand": partial(_scene_hand, foot=False),
    "foot": partial(_scene_hand, foot=True),
    "leg_shaft": partial(_scene_shaft, kind="leg_shaft"),
    "forearm_shaft": partial(_scene_shaft, kind="forearm_shaft"),
    "femur_shaft": partial(_scene_shaft, kind="femur_shaft"),
    "humerus_shaft": partial(_scene_shaft, kind="humerus_shaft"),
}


def build_scene(anatomy: str, f: Frame, unit: float, anat: np.random.Generator) -> Scene:
    """The scene of `anatomy` (a key of SCENE_BUILDERS) in frame `f`, scene unit `unit` px."""
    return SCENE_BUILDERS[anatomy](f, unit, anat)


def hidden_bone_anchor(scene: Scene, bone: str, shape: tuple[int, int]) -> np.ndarray | None:
    """None if a bone of that name shows well in the frame, else its point nearest the centre."""
    named = [tube for tube in scene.bones if tube.name == bone]
    if not named:
        return None
    centre = np.array([shape[1] / 2, shape[0] / 2])
    best = None
    for tube in named:
        low, high = visible_range(tube, shape, margin=4.0)
        points = tube.point(np.array([low, high]), np.zeros(2))
        inside = all(is_inside(point[None, :], shape, 4.0) for point in points)
        if inside and high - low >= 3.0 * tube.radius:
            return None
        cap_start, cap_end = tube.cap_lengths
        u = float(np.clip(np.dot(centre - tube.start, tube.direction), -cap_start,
                          tube.length + cap_end))  # fmt: skip
        point = tube.point(u, 0.0)
        if best is None or np.hypot(*(point - centre)) < np.hypot(*(best - centre)):
            best = point
    return best
