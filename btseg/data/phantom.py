"""Synthetic dataset in exactly the BTXRD format: the embedded default.

`generate(out_dir)` writes images/, Annotations/ (LabelMe JSON, tumour images only), dataset.xlsx
with the 37 BTXRD columns, and a SYNTHETIC.txt marker. The set reproduces the real data's
marginals (classes, subtypes, sites, regions, views, gender, centres, ages by class) and its
quirks: mostly ".jpeg" ids with a ".jpg" tail from centre 3, files whose extension on disk
differs from the table, one row with two subtypes, rows whose region contradicts their bone,
multi-hot sites on tumour rows and none on normal rows, consecutive ids showing one patient in
2-3 views, and a few byte-identical duplicate images.

The radiographs are rendered from a simple projection model: tubular bones (cortical shell and
trabecular medulla) inside a soft-tissue envelope, joints, noise, blur, an L/R marker and
sometimes a border. Lesions sit in bone and differ by subtype (outgrowths, lucent cysts with a
sclerotic rim, bubbly eccentric lucencies, ground glass, permeative destruction, mixed
lytic/sclerotic masses with spiculated periosteal reaction); their intensities overlap bone and
soft tissue, so a global threshold does not segment them.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

from btseg.config import is_synthetic
from btseg.errors import ConfigError

COLUMNS: tuple[str, ...] = (
    "image_id", "center", "age", "gender",
    "hand", "ulna", "radius", "humerus", "foot", "tibia", "fibula", "femur", "hip bone",
    "ankle-joint", "knee-joint", "hip-joint", "wrist-joint", "elbow-joint", "shoulder-joint",
    "tumor", "benign", "malignant",
    "osteochondroma", "multiple osteochondromas", "simple bone cyst", "giant cell tumor",
    "osteofibroma", "synovial osteochondroma", "other bt", "osteosarcoma", "other mt",
    "upper limb", "lower limb", "pelvis",
    "frontal", "lateral", "oblique",
)  # fmt: skip

MARKER_NAME = "SYNTHETIC.txt"
MIN_IMAGES = 20

# Published BTXRD counts (3,746 images); the generator draws to these proportions.
_PUBLISHED_IMAGES = 3746
_CLASS_COUNTS = {"normal": 1879, "benign": 1525, "malignant": 342}
_SUBTYPE_COUNTS = {
    "osteochondroma": 754, "multiple osteochondromas": 263, "simple bone cyst": 206,
    "giant cell tumor": 93, "osteofibroma": 44, "synovial osteochondroma": 51, "other bt": 115,
    "osteosarcoma": 297, "other mt": 45,
}  # fmt: skip
_BENIGN = ("osteochondroma", "multiple osteochondromas", "simple bone cyst", "giant cell tumor",
           "osteofibroma", "synovial osteochondroma", "other bt")  # fmt: skip
_MALIGNANT = ("osteosarcoma", "other mt")
_CENTER_COUNTS = {1: 2938, 2: 549, 3: 259}
_JPG_TAIL = 27  # the last rows of the table (centre 3, normal) are named ".jpg"
_DUPLICATES = 21
_REGION_CONFLICTS = 20
# Primary site of tumour images; joints as primary only where the lesion sits in the joint.
_PRIMARY_SITE_COUNTS = {
    "tibia": 560, "femur": 540, "fibula": 190, "humerus": 225, "hand": 97, "foot": 93,
    "radius": 65, "hip bone": 65, "ulna": 55, "knee-joint": 18, "shoulder-joint": 6,
}  # fmt: skip
# Regions of normal images (all images minus the tumour images' regions).
_NORMAL_REGION_WEIGHTS = {"lower limb": 0.53, "upper limb": 0.385, "pelvis": 0.085}
_SITE_REGION = {
    "hand": "upper limb", "ulna": "upper limb", "radius": "upper limb", "humerus": "upper limb",
    "wrist-joint": "upper limb", "elbow-joint": "upper limb", "shoulder-joint": "upper limb",
    "foot": "lower limb", "tibia": "lower limb", "fibula": "lower limb", "femur": "lower limb",
    "ankle-joint": "lower limb", "knee-joint": "lower limb",
    "hip bone": "pelvis", "hip-joint": "pelvis",
}  # fmt: skip
# Which scene shows a primary site, with probabilities.
_SCENES_FOR_SITE = {
    "femur": (("knee", 0.55), ("hip", 0.2), ("femur_shaft", 0.25)),
    "tibia": (("knee", 0.6), ("ankle", 0.25), ("leg_shaft", 0.15)),
    "fibula": (("knee", 0.55), ("ankle", 0.3), ("leg_shaft", 0.15)),
    "humerus": (("shoulder", 0.5), ("elbow", 0.25), ("humerus_shaft", 0.25)),
    "radius": (("wrist", 0.5), ("elbow", 0.3), ("forearm_shaft", 0.2)),
    "ulna": (("wrist", 0.4), ("elbow", 0.4), ("forearm_shaft", 0.2)),
    "hand": (("hand", 1.0),),
    "foot": (("foot", 1.0),),
    "hip bone": (("hip", 1.0),),
    "knee-joint": (("knee", 1.0),),
    "shoulder-joint": (("shoulder", 1.0),),
}
_SCENES_FOR_REGION = {
    "lower limb": (("knee", 0.35), ("ankle", 0.15), ("leg_shaft", 0.1), ("femur_shaft", 0.08),
                   ("foot", 0.22), ("hip", 0.1)),
    "upper limb": (("hand", 0.33), ("wrist", 0.15), ("elbow", 0.15), ("forearm_shaft", 0.1),
                   ("shoulder", 0.15), ("humerus_shaft", 0.12)),
    "pelvis": (("hip", 1.0),),
}  # fmt: skip
# Sites visible in each scene (candidates for the extra sites of multi-hot rows).
_SCENE_SITES = {
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
_BONE_RADIUS = {
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
_UNIT_RANGE = {
    "knee": (0.045, 0.13), "ankle": (0.05, 0.13), "elbow": (0.05, 0.13),
    "shoulder": (0.05, 0.12), "hip": (0.045, 0.1), "wrist": (0.045, 0.1),
    "leg_shaft": (0.045, 0.13), "forearm_shaft": (0.07, 0.16), "femur_shaft": (0.05, 0.14),
    "humerus_shaft": (0.05, 0.14), "hand": (0.028, 0.055), "foot": (0.026, 0.05),
}  # fmt: skip
_SUBTYPE_KIND = {
    "osteochondroma": "outgrowth", "multiple osteochondromas": "outgrowth",
    "simple bone cyst": "cyst", "giant cell tumor": "giant_cell", "osteofibroma": "fibrous",
    "synovial osteochondroma": "loose_bodies", "other bt": "other_benign",
    "osteosarcoma": "osteosarcoma", "other mt": "permeative",
}  # fmt: skip
_VIEW_ANGLE = {"frontal": 0.0, "oblique": math.pi / 4, "lateral": math.pi / 2}

# Attenuation per scene unit of path length, and the work resolution of the renderer.
_MU_CORTEX = 1.35
_MU_MEDULLA = 0.22
_MU_SOFT = 0.085
_MU_MUSCLE = 0.035
_WORK_SIDE = 720
_GOLDEN = 0.6180339887498949


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def generate(
    out_dir: str | Path,
    n: int = 600,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic BTXRD-format dataset of `n` images to `out_dir`; return its path.

    The output is the same, byte for byte (images and JSON), for the same `n` and `seed`.
    Images are rendered by two worker processes. The set is written to a hidden folder beside
    `out_dir` and renamed at the end, so an interrupted run never leaves a complete-looking
    folder. A previous synthetic set (one with the SYNTHETIC.txt marker) at `out_dir` is
    replaced.

    Args:
        out_dir: folder to create.
        n: number of images, at least 20.
        seed: non-negative integer.
        progress: called as progress(done, total) while images are rendered.

    Raises:
        ConfigError: `n` or `seed` is invalid, or `out_dir` holds something other than a
            synthetic dataset.
    """
    out_dir = Path(out_dir).expanduser()
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < MIN_IMAGES:
        raise ConfigError(
            f"the number of images must be an integer of at least {MIN_IMAGES}, got {n!r}",
            where="n",
            fix=f"Ask for {MIN_IMAGES} or more images",
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(
            f"the seed must be a non-negative integer, got {seed!r}",
            where="seed",
            fix="Pass a seed such as 0",
        )
    n, seed = int(n), int(seed)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ConfigError(
                "the output path exists and is a file, not a folder",
                where=str(out_dir),
                fix="Choose a new folder for the synthetic dataset",
            )
        if any(out_dir.iterdir()) and not is_synthetic(out_dir):
            raise ConfigError(
                "the output folder is not empty and is not a synthetic dataset, so it is not "
                "overwritten",
                where=str(out_dir),
                fix="Choose a new or empty folder, or remove this one",
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        _write_dataset(partial, n, seed, progress)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
            partial.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_dir


# --------------------------------------------------------------------------------------------
# Planning: the table, patients and per-image render specifications
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LesionPlan:
    label: str  # subtype written to the annotation
    kind: str  # how it is drawn
    bone: str  # site name of the bone (or joint) it sits in


@dataclass(frozen=True)
class _ImageSpec:
    index: int
    path: str
    height: int
    width: int
    anatomy: str
    view: str
    lesions: tuple[_LesionPlan, ...]
    lesion_fraction: float  # wanted area of the first lesion as a fraction of the image
    patient_seed: tuple[int, ...]
    image_seed: tuple[int, ...]
    rgb: bool
    quality: int


@dataclass
class _Patient:
    label: str
    run: int
    center: int = 1
    subtype: str = ""
    age: int = 40
    gender: str = "M"
    sites: tuple[str, ...] = ()
    region: str = ""
    anatomy: str = ""
    views: tuple[str, ...] = ()
    lesions: tuple[_LesionPlan, ...] = ()
    lesion_fraction: float = 0.0
    seed: tuple[int, ...] = field(default_factory=tuple)


def _quota_draw(rng: np.random.Generator, targets: dict, used: dict, allowed=None):
    """Draw a key with probability proportional to its remaining quota."""
    keys = [key for key in targets if allowed is None or key in allowed]
    remaining = np.array([max(targets[key] - used.get(key, 0), 0.0) for key in keys], float)
    if remaining.sum() <= 0:
        remaining = np.array([targets[key] for key in keys], float) + 1e-9
    return keys[int(rng.choice(len(keys), p=remaining / remaining.sum()))]


def _weighted_choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    weights = np.array([weight for _, weight in options], float)
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def _run_views(rng: np.random.Generator, length: int) -> tuple[str, ...]:
    if length == 1:
        return (_weighted_choice(rng, (("frontal", 0.75), ("lateral", 0.2), ("oblique", 0.05))),)
    if length == 2:
        pairs = ((("frontal", "lateral"), 0.8), (("frontal", "oblique"), 0.1),
                 (("frontal", "frontal"), 0.1))  # fmt: skip
        return pairs[int(rng.choice(3, p=[w for _, w in pairs]))][0]
    if rng.random() < 0.5:
        return ("frontal", "lateral", "oblique")
    return ("frontal", "lateral", "frontal")


def _age(label: str, quantile: float) -> int:
    """Age in years at a quantile of the class's age distribution (BTXRD medians 40/25/18.5)."""
    z = NormalDist().inv_cdf(min(max(quantile, 1e-4), 1 - 1e-4))
    if label == "normal":
        value = 40.0 + 19.0 * z
    elif label == "benign":
        value = math.exp(math.log(25.0) + 0.6 * z)
    else:
        value = math.exp(math.log(18.5) + 0.5 * z)
    return int(np.clip(round(value), 1, 88))


def _primary_site(rng: np.random.Generator, subtype: str, used: dict) -> str:
    if subtype == "osteofibroma":
        return "tibia" if rng.random() < 0.75 else "fibula"
    if subtype == "synovial osteochondroma" and rng.random() < 0.45:
        return "knee-joint"
    return _quota_draw(rng, _PRIMARY_SITE_COUNTS, used)


def _tumour_sites(rng: np.random.Generator, primary: str, anatomy: str) -> tuple[str, ...]:
    count = _weighted_choice(rng, (("1", 0.9), ("2", 0.04), ("3", 0.058), ("4", 0.002)))
    candidates = [site for site in _SCENE_SITES[anatomy] if site != primary]
    extra = min(int(count) - 1, len(candidates))
    if extra <= 0:
        return (primary,)
    # Neighbouring bones are named more often than the joint.
    weights = np.array([1.0 if site.endswith("-joint") else 3.0 for site in candidates])
    chosen = rng.choice(len(candidates), size=extra, replace=False, p=weights / weights.sum())
    return (primary,) + tuple(candidates[int(i)] for i in sorted(chosen))


def _lesion_bone(rng: np.random.Generator, primary: str) -> str:
    """The bone a lesion sits in (a joint named as primary site puts it in a bone beside it)."""
    if primary == "knee-joint":
        return "femur" if rng.random() < 0.5 else "tibia"
    if primary == "shoulder-joint":
        return "humerus"
    return primary


def _plan_lesions(rng: np.random.Generator, patient: _Patient) -> tuple[_LesionPlan, ...]:
    primary = patient.sites[0]
    kind = _SUBTYPE_KIND[patient.subtype]
    if kind == "loose_bodies":
        bone = primary
    else:
        bone = _lesion_bone(rng, primary)
    lesions = [_LesionPlan(patient.subtype, kind, bone)]
    two = 0.5 if patient.subtype == "multiple osteochondromas" else 0.035
    if rng.random() < two:
        others = [s for s in _BONE_RADIUS[patient.anatomy] if s != bone and kind != "loose_bodies"]
        second = others[int(rng.integers(len(others)))] if others and rng.random() < 0.6 else bone
        lesions.append(_LesionPlan(patient.subtype, kind, second))
    return tuple(lesions)


def _lesion_fraction(rng: np.random.Generator, label: str) -> float:
    center = -1.75 if label == "malignant" else -2.05
    return float(10 ** np.clip(rng.normal(center, 0.42), -3.2, -1.0))


def _plan(n: int, seed: int, image_dir: Path):
    """Plan the set: (table rows, render specs, duplicate pairs (source, copy) as row indices,
    file names on disk), all in table order."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    scale = n / _PUBLISHED_IMAGES
    tail = max(1, round(_JPG_TAIL * scale))
    center3 = max(tail, round(_CENTER_COUNTS[3] * scale))
    class_targets = {key: value * scale for key, value in _CLASS_COUNTS.items()}
    class_targets["normal"] -= tail
    center_targets = {1: _CENTER_COUNTS[1] * scale, 2: _CENTER_COUNTS[2] * scale,
                      3: float(center3 - tail)}  # fmt: skip
    subtype_targets = {key: value * scale for key, value in _SUBTYPE_COUNTS.items()}

    # Run lengths first, then attributes by quota so small sets still match the marginals.
    patients: list[_Patient] = []
    body = n - tail
    total = 0
    while total < body:
        length = int(rng.choice([1, 2, 3], p=[0.35, 0.5, 0.15]))
        length = min(length, body - total)
        patients.append(_Patient(label="", run=length))
        total += length
    tail_total = 0
    while tail_total < tail:
        length = min(int(rng.choice([1, 2], p=[0.6, 0.4])), tail - tail_total)
        patients.append(_Patient(label="normal", run=length, center=3))
        tail_total += length
    tail_start = len(patients) - sum(1 for p in patients if p.label == "normal" and p.center == 3)

    class_used: dict = {}
    center_used: dict = {}
    subtype_used: dict = {}
    site_used: dict = {}
    region_used: dict = {}
    gender_used: dict = {}
    age_offsets: dict = {}
    age_counts: dict = {}
    for index, patient in enumerate(patients):
        patient.seed = (seed, 2, index)
        if index < tail_start:
            patient.label = _quota_draw(rng, class_targets, class_used)
            class_used[patient.label] = class_used.get(patient.label, 0) + patient.run
            allowed = (1, 2, 3) if patient.label == "normal" else (1, 2)
            patient.center = _quota_draw(rng, center_targets, center_used, allowed)
            center_used[patient.center] = center_used.get(patient.center, 0) + patient.run
        patient.gender = _quota_draw(rng, {"M": 0.56, "F": 0.44}, gender_used)
        gender_used[patient.gender] = gender_used.get(patient.gender, 0) + patient.run / n
        # A golden-ratio sequence spreads the ages evenly over each class's distribution.
        age_offsets.setdefault(patient.label, float(rng.random()))
        age_counts[patient.label] = age_counts.get(patient.label, 0) + 1
        quantile = (age_offsets[patient.label] + age_counts[patient.label] * _GOLDEN) % 1.0
        patient.age = _age(patient.label, quantile)
        patient.views = _run_views(rng, patient.run)
        if patient.label == "normal":
            normal_images = n * _CLASS_COUNTS["normal"] / _PUBLISHED_IMAGES
            region_targets = {k: v * normal_images for k, v in _NORMAL_REGION_WEIGHTS.items()}
            patient.region = _quota_draw(rng, region_targets, region_used)
            region_used[patient.region] = region_used.get(patient.region, 0) + patient.run
            patient.anatomy = _weighted_choice(rng, _SCENES_FOR_REGION[patient.region])
            continue
        allowed = _BENIGN if patient.label == "benign" else _MALIGNANT
        patient.subtype = _quota_draw(rng, subtype_targets, subtype_used, allowed)
        subtype_used[patient.subtype] = subtype_used.get(patient.subtype, 0) + patient.run
        primary = _primary_site(rng, patient.subtype, site_used)
        site_used[primary] = site_used.get(primary, 0) + patient.run * _PUBLISHED_IMAGES / n
        patient.anatomy = _weighted_choice(rng, _SCENES_FOR_SITE[primary])
        if patient.subtype == "synovial osteochondroma" and patient.anatomy.endswith("shaft"):
            patient.anatomy = "knee" if _SITE_REGION[primary] == "lower limb" else "elbow"
        patient.sites = _tumour_sites(rng, primary, patient.anatomy)
        patient.region = _SITE_REGION[primary]
        patient.lesions = _plan_lesions(rng, patient)
        patient.lesion_fraction = _lesion_fraction(rng, patient.label)

    rows: list[dict] = []
    image_patient: list[int] = []
    image_view: list[str] = []
    for index, patient in enumerate(patients):
        for view in patient.views:
            number = len(rows) + 1
            extension = ".jpg" if index >= tail_start else ".jpeg"
            row = dict.fromkeys(COLUMNS, 0)
            row.update(image_id=f"IMG{number:06d}{extension}", center=patient.center,
                       age=patient.age, gender=patient.gender)  # fmt: skip
            for site in patient.sites:
                row[site] = 1
            if patient.label != "normal":
                row["tumor"] = 1
                row[patient.label] = 1
                row[patient.subtype] = 1
            row[patient.region] = 1
            row[view] = 1
            rows.append(row)
            image_patient.append(index)
            image_view.append(view)

    body_rows = [i for i in range(n) if image_patient[i] < tail_start]
    singles = [i for i in body_rows if patients[image_patient[i]].run == 1]

    # Exact duplicates: a single-image patient's row becomes a copy of another image.
    duplicates: list[tuple[int, int]] = []
    n_duplicates = max(1, round(_DUPLICATES * scale))
    copies = [int(i) for i in rng.permutation(singles)[:n_duplicates]]
    for copy in copies:
        candidates = [i for i in body_rows if abs(i - copy) > 3 and i not in copies
                      and all(i != s for s, _ in duplicates)]  # fmt: skip
        source = int(candidates[int(rng.integers(len(candidates)))])
        duplicates.append((source, copy))
        rows[copy] = dict(rows[source], image_id=rows[copy]["image_id"])
        image_patient[copy] = image_patient[source]
        image_view[copy] = image_view[source]
    duplicated = {i for pair in duplicates for i in pair}

    # One tumour row with two subtypes.
    benign_rows = [i for i in body_rows if rows[i]["benign"] == 1 and i not in duplicated]
    if benign_rows:
        preferred = [i for i in benign_rows if rows[i]["osteochondroma"] == 1] or benign_rows
        row = rows[preferred[int(rng.integers(len(preferred)))]]
        second = "multiple osteochondromas" if row["osteochondroma"] else "osteochondroma"
        row[second] = 1

    # Rows whose region contradicts their bone (data-entry errors kept as in the real table).
    long_bone = [i for i in body_rows if i not in duplicated and rows[i]["tumor"] == 1
                 and any(rows[i][s] for s in ("humerus", "femur", "tibia", "radius"))]  # fmt: skip
    n_conflicts = max(1, round(_REGION_CONFLICTS * scale))
    for i in rng.permutation(long_bone)[:n_conflicts]:
        row = rows[int(i)]
        if row["upper limb"]:
            row["upper limb"], row["lower limb"] = 0, 1
        else:
            row["upper limb"], row["lower limb"], row["pelvis"] = 1, 0, 0

    # Files whose extension on disk differs from the table.
    disk_names = [row["image_id"] for row in rows]
    plain = [i for i in body_rows if i not in duplicated]
    n_mismatch = max(2, round(0.012 * n))
    for k, i in enumerate(rng.permutation(plain)[:n_mismatch]):
        stem = disk_names[int(i)].rsplit(".", 1)[0]
        disk_names[int(i)] = stem + (".jpg" if k % 2 == 0 else ".JPEG")
    body_set = set(body_rows)
    tail_rows = [i for i in range(n) if i not in body_set]
    if len(tail_rows) >= 3:
        i = tail_rows[int(rng.integers(len(tail_rows)))]
        disk_names[i] = disk_names[i].rsplit(".", 1)[0] + ".jpeg"

    copies_set = {copy for _, copy in duplicates}
    specs: list[_ImageSpec] = []
    for i in range(n):
        if i in copies_set:
            continue
        patient = patients[image_patient[i]]
        long_side = math.exp(rng.uniform(math.log(520), math.log(1600)))
        aspect = (
            rng.uniform(0.72, 0.95)
            if patient.anatomy in ("hand", "foot")
            else rng.uniform(0.5, 1.0)
        )
        short_side = max(400, round(long_side * aspect))
        long_side = max(short_side, round(long_side))
        landscape_odds = {"shoulder": 0.45, "hip": 0.45, "hand": 0.0, "foot": 0.0}
        landscape = rng.random() < landscape_odds.get(patient.anatomy, 0.15)
        height, width = (short_side, long_side) if landscape else (long_side, short_side)
        jitter = float(np.exp(rng.normal(0.0, 0.15)))
        specs.append(_ImageSpec(
            index=i,
            path=str(image_dir / disk_names[i]),
            height=int(height),
            width=int(width),
            anatomy=patient.anatomy,
            view=image_view[i],
            lesions=patient.lesions,
            lesion_fraction=min(0.1, patient.lesion_fraction * jitter),
            patient_seed=patient.seed,
            image_seed=(seed, 1, i),
            rgb=bool(rng.random() < 0.12),
            quality=int(rng.choice([90, 90, 90, 95])),
        ))  # fmt: skip
    return rows, specs, duplicates, disk_names


def _write_dataset(folder: Path, n: int, seed: int, progress) -> None:
    import pandas as pd

    from btseg.data.labelme import Lesion, polygon_box, write_annotation

    image_dir = folder / "images"
    annotation_dir = folder / "Annotations"
    image_dir.mkdir(parents=True)
    annotation_dir.mkdir()
    rows, specs, duplicates, disk_names = _plan(n, seed, image_dir)

    results: dict[int, tuple[list, int, int]] = {}

    def record(result: tuple) -> None:
        index, lesions, height, width = result
        results[index] = (lesions, height, width)
        if progress is not None:
            progress(len(results), n)

    # Spawned, not forked: a fork of a process whose OpenCV thread pool has run can deadlock.
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(2, os.cpu_count() or 1))
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_render_to_file, spec) for spec in specs]
            try:
                for future in as_completed(futures):
                    record(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except BrokenProcessPool:
        # Workers cannot start when the caller's main script cannot be re-imported (code piped
        # on stdin, a script without an `if __name__ == "__main__"` guard): render here instead.
        for spec in specs:
            if spec.index not in results:
                record(_render_to_file(spec))
    for source, copy in duplicates:
        shutil.copyfile(image_dir / disk_names[source], image_dir / disk_names[copy])
        results[copy] = results[source]

    for index, row in enumerate(rows):
        if row["tumor"] != 1:
            continue
        lesions, height, width = results[index]
        stem = row["image_id"].rsplit(".", 1)[0]
        write_annotation(
            annotation_dir / f"{stem}.json",
            [Lesion(label, polygon, polygon_box(polygon)) for label, polygon in lesions],
            disk_names[index],
            height,
            width,
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.to_excel(folder / "dataset.xlsx", sheet_name="Sheet1", index=False, engine="openpyxl")
    (folder / MARKER_NAME).write_text(
        f"Synthetic BTXRD-format dataset generated by btseg (seed {seed}, n {n}). "
        "Not real patient data.\n",
        encoding="utf-8",
    )
    if progress is not None:
        progress(n, n)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


@dataclass
class _Tube:
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


class _Layers:
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

    def window(self, tube: _Tube):
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

    def add_bone(self, tube: _Tube) -> None:
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
        self.cortex[box] += (_MU_CORTEX * scale) * (outer_path - inner_path)
        self.medulla[box] += (_MU_MEDULLA * scale) * inner_path
        np.maximum(self.bone[box], (outer_path > 0).astype(np.float32), out=self.bone[box])

    def add_plate(self, plate: _Plate) -> None:
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
        self.cortex[box] += (_MU_CORTEX * scale) * (0.55 * plate.thickness * rim + 0.12 * body)
        self.medulla[box] += (_MU_MEDULLA * scale) * body
        np.maximum(self.bone[box], (canvas > 0).astype(np.float32), out=self.bone[box])

    def add_soft(self, tube: _Tube) -> None:
        """Soft-tissue envelope with a muscle core of 0.72 of its radius."""
        found = self.window(tube)
        if found is None:
            return
        box, u, v = found
        w = tube.profile(u).astype(np.float32)
        v2 = v * v
        path = np.sqrt(np.maximum(w * w - v2, 0.0)) * np.float32(2.0 * _MU_SOFT / self.unit)
        np.maximum(self.soft[box], path, out=self.soft[box])
        w *= np.float32(0.72)
        path = np.sqrt(np.maximum(w * w - v2, 0.0)) * np.float32(2.0 * _MU_MUSCLE / self.unit)
        np.maximum(self.muscle[box], path, out=self.muscle[box])


@dataclass
class _Frame:
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


@dataclass
class _Scene:
    bones: list[_Tube]
    soft: list[_Tube]
    joint: str | None = None
    joint_point: np.ndarray | None = None
    plates: list[_Plate] = field(default_factory=list)


@dataclass
class _Plate:
    """A flat bone (pelvis, scapula) given by its outline and holes, work px."""

    outline: np.ndarray
    thickness: float  # px of bone crossed at the plate's centre
    holes: tuple[np.ndarray, ...] = ()
    density: float = 1.0


def _soft(start, end, radius, flare_start=1.0, flare_end=1.0, caps=(False, False)) -> _Tube:
    return _Tube("soft", start, end, radius, flare_start, flare_end, caps[0], caps[1], 0.0)


def _limb_envelope(f: _Frame, upper: float, lower: float, joint_a: float) -> list[_Tube]:
    meet = min(upper, lower)
    return [
        _soft(f.p(joint_a, 0), f.p(-f.reach, 0), upper, flare_start=meet / upper),
        _soft(f.p(joint_a, 0), f.p(f.reach, 0), lower, flare_start=meet / lower),
    ]


def _scene_knee(f: _Frame, unit: float, anat: np.random.Generator) -> _Scene:
    aj, gap = f.joint, unit * anat.uniform(0.25, 0.42)
    r_femur, fs_femur = unit, anat.uniform(1.55, 1.8)
    r_tibia, fs_tibia = 0.85 * unit, anat.uniform(1.45, 1.65)
    c_tibia = f.lateral(-0.1 * unit, 0.15 * unit)
    c_fibula = f.lateral(1.05 * unit, -0.2 * unit)
    bones = [
        _Tube("femur", f.p(aj - gap / 2 - 0.75 * r_femur * fs_femur, 0), f.p(-f.reach, 0),
              r_femur, fs_femur, 1.0, True, False),
        _Tube("tibia", f.p(aj + gap / 2 + 0.75 * r_tibia * fs_tibia, c_tibia),
              f.p(f.reach, c_tibia), r_tibia, fs_tibia, 1.0, True, False),
        _Tube("fibula", f.p(aj + gap / 2 + 0.9 * unit, c_fibula), f.p(f.reach, c_fibula * 1.1),
              0.33 * unit, 1.55, 1.0, True, False, 0.34, 1.5),
        _Tube("patella", f.p(aj - 1.5 * unit, f.lateral(0.0, -1.9 * unit)),
              f.p(aj - 0.5 * unit, f.lateral(0.0, -2.1 * unit)), 0.55 * unit, 1.0, 1.0,
              True, True, 0.15, 0.8, 1.0),
    ]  # fmt: skip
    size = anat.uniform(2.5, 3.1)
    soft = _limb_envelope(f, size * unit, 0.82 * size * unit, aj)
    return _Scene(bones, soft, "knee-joint", f.p(aj, 0))


def _scene_ankle(f: _Frame, unit: float, anat: np.random.Generator) -> _Scene:
    aj, gap = f.joint, unit * anat.uniform(0.22, 0.35)
    r_tibia, fs_tibia = 0.85 * unit, anat.uniform(1.3, 1.5)
    c_fibula = f.lateral(1.15 * unit, 0.3 * unit)
    bones = [
        _Tube("tibia", f.p(aj - gap / 2 - 0.75 * r_tibia * fs_tibia, 0), f.p(-f.reach, 0),
              r_tibia, fs_tibia, 1.0, True, False),
        _Tube("fibula", f.p(aj + 0.3 * unit, c_fibula), f.p(-f.reach, c_fibula * 0.9),
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
    plates = [_Plate(talus, 1.4 * unit, density=0.9), _Plate(calcaneus, 1.6 * unit, density=0.8)]
    size = anat.uniform(1.9, 2.4)
    soft = _limb_envelope(f, size * unit, 1.35 * size * unit, aj + 1.5 * unit)
    return _Scene(bones, soft, "ankle-joint", f.p(aj, 0), plates)


def _scene_elbow(f: _Frame, unit: float, anat: np.random.Generator) -> _Scene:
    aj, gap = f.joint, unit * anat.uniform(0.2, 0.35)
    r_hum, fs_hum = 0.85 * unit, anat.uniform(1.7, 1.95)
    c_ulna = f.lateral(-0.5 * unit, 0.2 * unit)
    c_radius = f.lateral(0.6 * unit, -0.3 * unit)
    bones = [
        _Tube("humerus", f.p(aj - gap / 2 - 0.75 * r_hum * fs_hum, 0), f.p(-f.reach, 0),
              r_hum, fs_hum, 1.0, True, False),
        _Tube("ulna", f.p(aj + gap / 2 + 0.4 * unit, c_ulna), f.p(f.reach, c_ulna * 0.6),
              0.48 * unit, 1.6, 1.0, True, False, 0.3, 1.35),
        _Tube("radius", f.p(aj + gap / 2 + 0.5 * unit, c_radius), f.p(f.reach, c_radius * 1.3),
              0.42 * unit, 1.35, 1.0, True, False, 0.3, 1.35),
    ]  # fmt: skip
    size = anat.uniform(2.1, 2.6)
    soft = _limb_envelope(f, size * unit, 0.9 * size * unit, aj)
    return _Scene(bones, soft, "elbow-joint", f.p(aj, 0))


def _plate_points(f: _Frame, origin_a: float, origin_c: float, unit: float, points) -> np.ndarray:
    """Outline from (a, c) pairs in units about (origin_a, origin_c), smoothed into a curve."""
    raw = np.array([f.p(origin_a + a * unit, origin_c + c * unit) for a, c in points])
    # Chaikin corner cutting: two rounds turn the polygon into a smooth outline.
    for _ in range(2):
        following = np.roll(raw, -1, axis=0)
        raw = np.stack([0.75 * raw + 0.25 * following, 0.25 * raw + 0.75 * following], axis=1)
        raw = raw.reshape(-1, 2)
    return raw


def _ellipse_points(f: _Frame, a: float, c: float, half_a: float, half_c: float) -> np.ndarray:
    angle = np.linspace(0, 2 * math.pi, 32, endpoint=False)
    return np.array([f.p(a + half_a * math.cos(t), c + half_c * math.sin(t)) for t in angle])


def _scene_shoulder(f: _Frame, unit: float, anat: np.random.Generator) -> _Scene:
    aj, gap = f.joint, unit * anat.uniform(0.2, 0.35)
    fs_head = anat.uniform(1.7, 1.95)
    head_a = aj + 0.75 * unit * fs_head
    glenoid_c = -(fs_head * unit + gap + 0.25 * unit)
    bones = [
        _Tube("humerus", f.p(head_a, 0), f.p(f.reach, 0), unit, fs_head, 1.0, True, False),
        _Tube("clavicle", f.p(aj - 2.7 * unit, 1.4 * unit), f.p(aj - 3.4 * unit, -7.5 * unit),
              0.5 * unit, 1.25, 1.0, True, True, 0.25, 1.1),
        _Tube("acromion", f.p(aj - 2.0 * unit, 1.3 * unit), f.p(aj - 2.4 * unit, -1.3 * unit),
              0.45 * unit, 1.0, 1.0, True, True, 0.2, 0.9, 1.0),
    ]  # fmt: skip
    scapula = _plate_points(f, aj + 0.6 * unit, glenoid_c, unit, [
        (-1.1, 0.0), (-0.2, 0.35), (0.9, 0.2), (1.5, -0.6), (3.5, -2.2), (6.5, -4.2),
        (6.2, -5.2), (-1.6, -6.8), (-2.0, -4.0), (-1.6, -1.0),
    ])  # fmt: skip
    plates = [_Plate(scapula, 0.9 * unit, density=0.75)]
    size = anat.uniform(2.6, 3.2)
    soft = [
        _soft(f.p(aj - 1.5 * unit, 0), f.p(f.reach, 0), size * unit, caps=(True, False)),
        _soft(f.p(aj - 3.5 * unit, -3 * unit), f.p(aj + 3 * unit, -5 * unit), 4.5 * unit,
              caps=(True, True)),
    ]  # fmt: skip
    return _Scene(bones, soft, "shoulder-joint", f.p(aj + 0.6 * unit, glenoid_c / 2), plates)


def _scene_hip(f: _Frame, unit: float, anat: np.random.Generator) -> _Scene:
    aj = f.joint
    neck = anat.uniform(0.9, 1.2)
    head_a, head_c = aj - 0.1 * unit, -1.0 * unit * neck
    head = f.p(head_a, head_c)
    bones = [
        _Tube("femur", f.p(aj + 1.2 * unit, 1.1 * unit), f.p(f.reach, 1.9 * unit), unit,
              1.45, 1.0, True, False),
        _Tube("femur", f.p(aj + 1.7 * unit, 0.9 * unit), head, 0.62 * unit, 1.0, 1.75,
              False, True, 0.25, 1.0, 1.0, fade=0.8 * unit),
        # Hidden host for lesions of the ilium; the pelvis itself is drawn as a plate.
        _Tube("hip bone", f.p(head_a - 2.3 * unit, head_c + 0.3 * unit),
              f.p(head_a - 5.8 * unit, head_c - 0.8 * unit), 1.6 * unit, 1.0, 1.0,
              True, True, 0.1, 0.0, 1.0),
    ]  # fmt: skip
    pelvis = _plate_points(f, head_a, head_c, unit, [
        (-1.1, 1.2), (-3.0, 2.2), (-5.5, 2.7), (-7.5, 1.6), (-8.2, -1.0), (-7.8, -3.5),
        (-5.5, -4.6), (-3.0, -3.8), (-1.5, -2.8), (-1.1, -6.5), (0.3, -7.0), (1.9, -6.6),
        (3.0, -4.4), (3.1, -2.4), (2.2, -1.2), (1.0, -0.6), (0.2, 0.6),
    ])  # fmt: skip
    foramen = _ellipse_points(f, head_a + 1.5 * unit, head_c - 4.3 * unit, 1.0 * unit, 1.4 * unit)
    plates = [_Plate(pelvis, 1.0 * unit, (foramen,), density=0.85)]
    size = anat.uniform(3.8, 4.6)
    soft = [
        _soft(f.p(-f.reach, -1.5 * unit), f.p(f.reach, 0), size * unit),
        _soft(f.p(head_a - 6.0 * unit, head_c - 1.0 * unit), f.p(head_a + 2.0 * unit, head_c - 4.0 * unit),
              size * 1.25 * unit, caps=(True, True)),
    ]  # fmt: skip
    return _Scene(bones, soft, "hip-joint", head, plates)


def _scene_shaft(f: _Frame, unit: float, anat: np.random.Generator, kind: str) -> _Scene:
    top, bottom = -f.reach, f.reach
    bones: list[_Tube] = []
    if kind == "leg_shaft":
        ct, cf = f.lateral(-0.35 * unit, 0.1 * unit), f.lateral(0.95 * unit, -0.3 * unit)
        bones = [
            _Tube("tibia", f.p(top, ct), f.p(bottom, ct), 0.9 * unit, 1.0, 1.0, False, False, 0.34),
            _Tube("fibula", f.p(top, cf), f.p(bottom, cf * 1.15), 0.35 * unit, 1.0, 1.0,
                  False, False, 0.36, 1.5),
        ]  # fmt: skip
        radius = 2.4
    elif kind == "forearm_shaft":
        cr, cu = f.lateral(0.6 * unit, -0.2 * unit), f.lateral(-0.6 * unit, 0.25 * unit)
        bones = [
            _Tube("radius", f.p(top, cr * 0.7), f.p(bottom, cr * 1.2), 0.55 * unit, 1.0, 1.0,
                  False, False, 0.32, 1.3),
            _Tube("ulna", f.p(top, cu), f.p(bottom, cu * 0.8), 0.5 * unit, 1.0, 1.0,
                  False, False, 0.32, 1.3),
        ]  # fmt: skip
        radius = 1.9
    else:
        name = "femur" if kind == "femur_shaft" else "humerus"
        bones = [_Tube(name, f.p(top, 0), f.p(bottom, 0), unit, 1.0, 1.0, False, False, 0.32)]
        radius = 2.8 if name == "femur" else 2.4
    radius *= anat.uniform(0.9, 1.15)
    return _Scene(bones, [_soft(f.p(top, 0), f.p(bottom, 0), radius * unit)])


def _scene_wrist(f: _Frame, unit: float, anat: np.random.Generator) -> _Scene:
    aj, gap = f.joint, unit * anat.uniform(0.2, 0.3)
    c_ulna = f.lateral(-1.45 * unit, -0.3 * unit)
    bones = [
        _Tube("radius", f.p(aj - gap / 2 - 0.75 * unit * 1.5, 0.2 * unit), f.p(-f.reach, 0.5 * unit),
              unit, 1.5, 1.0, True, False),
        _Tube("ulna", f.p(aj - gap - 0.4 * unit, c_ulna), f.p(-f.reach, c_ulna * 0.8),
              0.6 * unit, 1.2, 1.0, True, False, 0.3, 1.2),
    ]  # fmt: skip
    for row, count in ((0.7, 4), (1.6, 4)):
        for k in range(count):
            c = (k - (count - 1) / 2) * 0.85 * unit + anat.normal(0, 0.08) * unit
            a = aj + gap + row * unit
            bones.append(_Tube("carpal", f.p(a - 0.15 * unit, c), f.p(a + 0.15 * unit, c),
                               0.38 * unit, 1.0, 1.0, True, True, 0.15, 0.9, 1.0))  # fmt: skip
    for k in range(4):
        c0 = (k - 1.5) * 0.8 * unit
        bones.append(_Tube("hand", f.p(aj + 2.5 * unit, c0), f.p(f.reach, c0 * 3.0),
                           0.35 * unit, 1.4, 1.0, True, False, 0.3, 1.3))  # fmt: skip
    size = anat.uniform(2.0, 2.4)
    soft = _limb_envelope(f, size * unit, 1.2 * size * unit, aj + 1.5 * unit)
    return _Scene(bones, soft)


def _scene_hand(f: _Frame, unit: float, anat: np.random.Generator, foot: bool) -> _Scene:
    """Hand or foot seen front-on, fingers towards the top of the frame."""
    base = 0.3 * f.joint + (0.22 if not foot else 0.3) * max(f.height, f.width)
    spread = 2.4 * unit * (0.45 + 0.55 * abs(math.cos(f.phi)))
    name = "foot" if foot else "hand"
    bones: list[_Tube] = []
    soft: list[_Tube] = []
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
            bones.append(_Tube(name, end, point, radius * unit * thick, 1.3, 1.35, True, True,
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
            bones.append(_Tube(name, end, point, radius * unit, 1.3, 1.35, True, True, 0.3))
            point = end + heading * 0.9 * radius * unit
        soft.append(_soft(start, point, 1.5 * unit, caps=(True, True)))
    for k in range(7 if not foot else 6):
        a = base + (1.4 + 1.3 * (k // 4)) * unit
        c = ((k % 4) - 1.5) * 1.3 * unit * (1.3 if foot else 1.0) + anat.normal(0, 0.2) * unit
        bones.append(
            _Tube(
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
            _Tube(
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
            _Tube(
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
    return _Scene(bones, soft)


def _build_scene(anatomy: str, f: _Frame, unit: float, anat: np.random.Generator) -> _Scene:
    if anatomy == "knee":
        return _scene_knee(f, unit, anat)
    if anatomy == "ankle":
        return _scene_ankle(f, unit, anat)
    if anatomy == "elbow":
        return _scene_elbow(f, unit, anat)
    if anatomy == "shoulder":
        return _scene_shoulder(f, unit, anat)
    if anatomy == "hip":
        return _scene_hip(f, unit, anat)
    if anatomy == "wrist":
        return _scene_wrist(f, unit, anat)
    if anatomy in ("hand", "foot"):
        return _scene_hand(f, unit, anat, anatomy == "foot")
    return _scene_shaft(f, unit, anat, anatomy)


# --------------------------------------------------------------------------------------------
# Lesions
# --------------------------------------------------------------------------------------------


@dataclass
class _LesionShape:
    """Size and shape of a lesion relative to the local bone half-width w (drawn per patient)."""

    kind: str
    along: float  # half-extent along the bone, in w
    across: float  # half-extent across the bone, in w
    offset: float  # centre offset from the bone axis, in w (signed by the side)
    position: float  # preferred centre, in bone radii from the joint end
    side: float  # angle about the bone axis (radians) on which the lesion sits
    roughness: float
    harmonics: np.ndarray  # (6, 2) amplitude and phase of the outline's harmonics
    points: int
    variant: str = ""
    tilt: float = 0.0

    @property
    def area(self) -> float:
        """Approximate area in w^2."""
        if self.kind == "outgrowth":
            return 2.0 * self.across * (self.along + 0.5) * 0.9
        return math.pi * self.along * self.across


def _lesion_shape(kind: str, rng: np.random.Generator) -> _LesionShape:
    harmonics = np.stack([rng.uniform(0.3, 1.0, 6), rng.uniform(0, 2 * math.pi, 6)], axis=1)
    side = float(rng.uniform(0, 2 * math.pi))
    points = int(rng.integers(24, 56))
    if kind == "other_benign":
        kind_variant = str(rng.choice(["cyst", "giant_cell", "enchondroma"]))
    else:
        kind_variant = kind
    if kind == "outgrowth":
        sessile = rng.random() < 0.35
        return _LesionShape(kind, along=rng.uniform(0.5, 1.1) if sessile else rng.uniform(1.0, 2.3),
                            across=rng.uniform(0.55, 0.9) if sessile else rng.uniform(0.28, 0.5),
                            offset=0.0, position=rng.uniform(1.3, 3.2), side=side,
                            roughness=0.0, harmonics=harmonics, points=points,
                            variant="sessile" if sessile else "pedunculated",
                            tilt=rng.uniform(0.35, 0.9))  # fmt: skip
    if kind_variant == "cyst":
        across = rng.uniform(0.62, 0.82)
        return _LesionShape(
            kind,
            across * rng.uniform(1.3, 2.6),
            across,
            0.0,
            rng.uniform(1.8, 4.5),
            side,
            0.04,
            harmonics,
            points,
            "cyst",
        )
    if kind_variant == "giant_cell":
        across = rng.uniform(0.6, 0.85)
        return _LesionShape(
            kind,
            across * rng.uniform(0.9, 1.4),
            across,
            rng.uniform(0.25, 0.4),
            rng.uniform(0.4, 1.1),
            side,
            0.1,
            harmonics,
            points,
            "giant_cell",
        )
    if kind_variant == "enchondroma":
        across = rng.uniform(0.55, 0.8)
        return _LesionShape(
            kind,
            across * rng.uniform(1.2, 2.0),
            across,
            0.0,
            rng.uniform(1.5, 4.0),
            side,
            0.08,
            harmonics,
            points,
            "enchondroma",
        )
    if kind == "fibrous":
        across = rng.uniform(0.35, 0.55)
        return _LesionShape(
            kind,
            across * rng.uniform(2.0, 4.0),
            across,
            rng.uniform(0.45, 0.6),
            rng.uniform(3.0, 7.0),
            side,
            0.06,
            harmonics,
            points,
            "fibrous",
        )
    if kind == "loose_bodies":
        return _LesionShape(
            kind,
            rng.uniform(0.7, 1.3),
            rng.uniform(0.5, 0.9),
            0.0,
            0.0,
            side,
            0.08,
            harmonics,
            points,
            "loose_bodies",
        )
    if kind == "osteosarcoma":
        return _LesionShape(kind, rng.uniform(1.4, 2.8), rng.uniform(1.1, 1.6),
                            rng.uniform(0.3, 0.5), rng.uniform(1.2, 2.6), side,
                            rng.uniform(0.14, 0.24), harmonics, int(rng.integers(40, 61)),
                            "osteosarcoma")  # fmt: skip
    return _LesionShape(kind, rng.uniform(1.8, 3.6), rng.uniform(1.15, 1.45), rng.uniform(0.05, 0.2),
                        rng.uniform(1.8, 5.0), side, 0.1, harmonics, int(rng.integers(36, 56)),
                        "permeative")  # fmt: skip


def _outline(count: int, roughness: float, harmonics: np.ndarray) -> np.ndarray:
    """Unit closed curve (count, 2) as (cos, sin) scaled by a smooth radial perturbation."""
    angle = np.linspace(0, 2 * math.pi, count, endpoint=False)
    radius = np.ones(count)
    for k in range(2, 8):
        amplitude, phase = harmonics[k - 2]
        radius += roughness * amplitude / (k - 1) * np.cos(k * angle + phase)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def _visible_range(tube: _Tube, shape: tuple[int, int], margin: float) -> tuple[float, float]:
    """(low, high) axial positions of the tube's axis inside the frame; low > high if none."""
    cap_start, cap_end = tube.cap_lengths
    u = np.linspace(-cap_start, tube.length + cap_end, 400)
    points = tube.point(u, np.zeros_like(u))
    inside = ((points[:, 0] >= margin) & (points[:, 0] <= shape[1] - 1 - margin)
              & (points[:, 1] >= margin) & (points[:, 1] <= shape[0] - 1 - margin))  # fmt: skip
    if not inside.any():
        return 0.0, -1.0
    return float(u[inside].min()), float(u[inside].max())


def _mask(shape: tuple[int, int], polygon: np.ndarray, blur: float) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    mask = canvas.astype(np.float32) / 255.0
    if blur > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), blur)
    return mask


def _rim(shape: tuple[int, int], polygon: np.ndarray, thickness: int, blur: float) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.polylines(canvas, [np.round(polygon * 16).astype(np.int32)], True, 255,
                  max(1, thickness), cv2.LINE_AA, shift=4)  # fmt: skip
    rim = canvas.astype(np.float32) / 255.0
    return cv2.GaussianBlur(rim, (0, 0), blur) if blur > 0 else rim


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = rng.standard_normal(shape, dtype=np.float32)
    field = cv2.GaussianBlur(field, (0, 0), max(sigma, 0.3))
    return (field - field.mean()) / (field.std() + 1e-6)


def _fit_inside(polygon: np.ndarray, shape: tuple[int, int], margin: float = 2.0) -> np.ndarray:
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


def _area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _limit_area(polygon: np.ndarray, limit: float) -> np.ndarray:
    area = _area(polygon)
    if area <= limit:
        return polygon
    centre = polygon.mean(axis=0)
    return centre + (polygon - centre) * math.sqrt(limit / area)


def _hidden_bone_anchor(scene: _Scene, bone: str, shape: tuple[int, int]) -> np.ndarray | None:
    """None if a bone of that name shows well in the frame, else its point nearest the centre."""
    named = [tube for tube in scene.bones if tube.name == bone]
    if not named:
        return None
    centre = np.array([shape[1] / 2, shape[0] / 2])
    best = None
    for tube in named:
        low, high = _visible_range(tube, shape, margin=4.0)
        points = tube.point(np.array([low, high]), np.zeros(2))
        inside = all(_is_inside(point[None, :], shape, 4.0) for point in points)
        if inside and high - low >= 3.0 * tube.radius:
            return None
        cap_start, cap_end = tube.cap_lengths
        u = float(np.clip(np.dot(centre - tube.start, tube.direction), -cap_start,
                          tube.length + cap_end))  # fmt: skip
        point = tube.point(u, 0.0)
        if best is None or np.hypot(*(point - centre)) < np.hypot(*(best - centre)):
            best = point
    return best


def _is_inside(polygon: np.ndarray, shape: tuple[int, int], margin: float = 2.0) -> bool:
    return bool(polygon.min() >= margin and polygon[:, 0].max() <= shape[1] - 1 - margin
                and polygon[:, 1].max() <= shape[0] - 1 - margin)  # fmt: skip


def _place_lesion(
    layers: _Layers,
    scene: _Scene,
    frame: _Frame,
    plan: _LesionPlan,
    shape: _LesionShape,
    size_scale: float,
    rng: np.random.Generator,
    taken: list[np.ndarray],
    limit: float,
) -> np.ndarray:
    """Draw one lesion into the layers; return its outline (N, 2) in work px, at most
    `limit` px^2 in area."""
    projected = math.cos(shape.side - frame.phi)
    sign = 1.0 if projected >= 0 else -1.0
    eccentric = sign * max(abs(projected), 0.35)

    if shape.kind == "loose_bodies":
        if scene.joint_point is not None:
            centre = scene.joint_point + frame.across * frame.mirror * sign * 0.6 * layers.unit
        else:
            tube = _lesion_tube(scene, plan.bone, layers.shape, rng)
            centre = tube.point(0.0, tube.width(0.0) * 0.6 * sign)
        unit = layers.unit * size_scale
        curve = _outline(shape.points, shape.roughness, shape.harmonics)
        polygon = (centre + curve[:, :1] * shape.along * unit * frame.axis
                   + curve[:, 1:] * shape.across * unit * 1.3 * frame.across)  # fmt: skip
        polygon = _limit_area(_fit_inside(polygon, layers.shape), limit)
        _draw_loose_bodies(layers, polygon, unit, rng)
        return polygon

    tube = _lesion_tube(scene, plan.bone, layers.shape, rng)
    low, high = _visible_range(tube, layers.shape, margin=4.0)
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

    if shape.kind == "outgrowth":
        for attempt in range(8):
            side = sign if attempt % 2 == 0 else -sign
            factor = 0.7 ** (attempt // 2)
            growth = _outgrowth(tube, position, w_local, shape, size_scale * factor, side,
                                abs(projected))  # fmt: skip
            polygon = growth.outline(shape.points, begin=0.3 * w_local)
            if _is_inside(polygon, layers.shape) and _area(polygon) <= limit:
                break
        layers.add_bone(growth)
        return _fit_inside(polygon, layers.shape)

    offset = shape.offset * w_local * eccentric
    curve = _outline(shape.points, shape.roughness, shape.harmonics)
    polygon = tube.point(position + curve[:, 0] * along, offset + curve[:, 1] * across)
    polygon = _limit_area(_fit_inside(polygon, layers.shape), limit)
    variant = shape.variant
    if variant == "cyst":
        _draw_cyst(layers, polygon, rng)
    elif variant == "giant_cell":
        _draw_giant_cell(layers, polygon, rng)
    elif variant == "enchondroma":
        _draw_enchondroma(layers, polygon, rng)
    elif variant == "fibrous":
        _draw_fibrous(layers, polygon, rng)
    elif variant == "osteosarcoma":
        _draw_osteosarcoma(layers, tube, polygon, position, along, w_local, sign, rng)
    else:
        _draw_permeative(layers, tube, polygon, position, along, w_local, sign, rng)
    return polygon


def _lesion_tube(
    scene: _Scene, bone: str, shape: tuple[int, int], rng: np.random.Generator
) -> _Tube:
    """A bone of that name with a good stretch inside the image (else any such bone)."""
    named = [tube for tube in scene.bones if tube.name == bone]
    if not named:
        named = [tube for tube in scene.bones if tube.cortex > 0.2 and tube.density > 0]
        named = named or scene.bones
    visible = []
    for tube in named:
        low, high = _visible_range(tube, shape, margin=4.0)
        if high - low >= 3.0 * tube.radius:
            visible.append(tube)
    candidates = visible or named
    weights = np.array([tube.radius**2 for tube in candidates])
    return candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]


def _draw_cyst(layers: _Layers, polygon: np.ndarray, rng: np.random.Generator) -> None:
    mask = _mask(layers.shape, polygon, 0.8)
    rim = _rim(layers.shape, polygon, 2, 0.7) * layers.bone
    layers.medulla *= 1.0 - 0.9 * mask
    layers.cortex *= 1.0 - 0.35 * mask
    layers.texture_weight *= 1.0 - mask
    septa = np.exp(-((_noise(rng, layers.shape, 3.0) / 0.15) ** 2))
    layers.extra += rim * rng.uniform(0.3, 0.45) + mask * layers.bone * (0.05 + 0.08 * septa)


def _draw_giant_cell(layers: _Layers, polygon: np.ndarray, rng: np.random.Generator) -> None:
    mask = _mask(layers.shape, polygon, 1.2)
    field = _noise(rng, layers.shape, rng.uniform(2.0, 3.5))
    septa = np.exp(-((field / 0.3) ** 2))
    layers.medulla *= 1.0 - 0.85 * mask
    layers.cortex *= 1.0 - 0.6 * mask
    layers.texture_weight *= 1.0 - mask
    layers.extra += mask * (0.42 * septa + 0.04) * layers.bone


def _draw_enchondroma(layers: _Layers, polygon: np.ndarray, rng: np.random.Generator) -> None:
    mask = _mask(layers.shape, polygon, 1.0)
    rim = _rim(layers.shape, polygon, 1, 0.6) * layers.bone
    field = _noise(rng, layers.shape, 0.9)
    dots = np.clip(field - 1.3, 0, None)
    layers.medulla *= 1.0 - 0.8 * mask
    layers.texture_weight *= 1.0 - mask
    layers.extra += mask * (0.7 * dots) + 0.2 * rim


def _draw_fibrous(layers: _Layers, polygon: np.ndarray, rng: np.random.Generator) -> None:
    mask = _mask(layers.shape, polygon, 1.5)
    rim = _rim(layers.shape, polygon, 3, 1.2) * np.maximum(layers.bone, 0.4)
    layers.medulla *= 1.0 - 0.3 * mask
    layers.cortex *= 1.0 - 0.45 * mask
    layers.texture_weight *= 1.0 - mask
    layers.extra += mask * layers.bone * rng.uniform(0.12, 0.3) + rim * rng.uniform(0.35, 0.5)


def _outgrowth(parent, position, w_local, shape, size_scale, sign, projected) -> _Tube:
    """An osteochondroma: a bony stalk from the cortex, pointing away from the joint."""
    length = shape.along * w_local * size_scale * max(projected, 0.45)
    radius = shape.across * w_local * size_scale
    base = parent.point(position, sign * 0.45 * w_local)
    heading = sign * parent.normal * math.cos(shape.tilt) + parent.direction * math.sin(shape.tilt)
    end = base + heading * (0.55 * w_local + length)
    flare = 1.35 if shape.variant == "pedunculated" else 1.1
    return _Tube(
        "outgrowth", base, end, radius, 1.4, flare, False, True, 0.26, 1.6, fade=0.45 * w_local
    )


def _draw_loose_bodies(layers, polygon, unit, rng) -> None:
    mask = _mask(layers.shape, polygon, 2.0)
    layers.soft += 0.12 * mask
    canvas = np.zeros(layers.shape, np.float32)
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    count = int(rng.integers(5, 14))
    for _ in range(count):
        for _attempt in range(20):
            point = rng.uniform(low, high)
            x, y = int(round(point[0])), int(round(point[1]))
            if 0 <= x < layers.shape[1] and 0 <= y < layers.shape[0] and mask[y, x] > 0.8:
                break
        body = max(1, int(round(unit * rng.uniform(0.07, 0.18))))
        cv2.circle(canvas, (x, y), body, 0.45, -1, cv2.LINE_AA)
        cv2.circle(canvas, (x, y), body, 0.9, 1, cv2.LINE_AA)
    layers.extra += cv2.GaussianBlur(canvas, (0, 0), 0.8) * mask


def _draw_osteosarcoma(layers, tube, polygon, position, along, w_local, sign, rng) -> None:
    mask = _mask(layers.shape, polygon, 2.5)
    inside = mask * layers.bone
    outside = mask * (1.0 - layers.bone)
    lytic = 1.0 / (
        1.0 + np.exp(-2.2 * (_noise(rng, layers.shape, max(0.7, 0.035 * w_local)) - 0.4))
    )
    cloud = np.clip((_noise(rng, layers.shape, max(1.0, 0.12 * w_local)) + 0.3) / 1.6, 0, 1) ** 1.5
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


def _draw_permeative(layers, tube, polygon, position, along, w_local, sign, rng) -> None:
    mask = _mask(layers.shape, polygon, 3.0)
    holes = np.clip((_noise(rng, layers.shape, 0.9) - 0.3) / 0.8, 0, 1)
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
# Image assembly
# --------------------------------------------------------------------------------------------


def _render(spec: _ImageSpec) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Render one radiograph: (H, W) uint8 and its lesion outlines in original pixels."""
    rng = np.random.default_rng(np.random.SeedSequence(list(spec.image_seed)))
    anat = np.random.default_rng(np.random.SeedSequence(list(spec.patient_seed)))
    full_h, full_w = spec.height, spec.width
    scale = min(1.0, _WORK_SIDE / max(full_h, full_w))
    height, width = max(8, round(full_h * scale)), max(8, round(full_w * scale))
    short, long = min(height, width), max(height, width)

    mirror = 1.0 if anat.random() < 0.5 else -1.0
    shapes = [
        _lesion_shape(plan.kind, np.random.default_rng(
            np.random.SeedSequence([*spec.patient_seed, 10 + k])))
        for k, plan in enumerate(spec.lesions)
    ]  # fmt: skip
    low, high = _UNIT_RANGE[spec.anatomy]
    size_scale = 1.0
    if shapes:
        relative = _BONE_RADIUS[spec.anatomy].get(spec.lesions[0].bone, 1.0)
        if shapes[0].kind == "loose_bodies":
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
    phi = _VIEW_ANGLE[spec.view] + rng.normal(0, 0.08)
    frame = _Frame(height, width, axis, across, centre, rng.uniform(-0.18, 0.18) * long,
                   1.5 * math.hypot(height, width), mirror, phi)  # fmt: skip
    scene_seed = np.random.SeedSequence([*spec.patient_seed, 1])
    scene = _build_scene(spec.anatomy, frame, unit, np.random.default_rng(scene_seed))
    anchor = _hidden_bone_anchor(scene, spec.lesions[0].bone, (height, width)) if shapes else None
    if anchor is not None:
        # The lesion's bone fell outside the frame: recentre the scene on it.
        frame.center = frame.center + (np.array([width / 2, height / 2]) - anchor)
        scene = _build_scene(spec.anatomy, frame, unit, np.random.default_rng(scene_seed))

    layers = _Layers(height, width, unit)
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
        limit = max(budget - sum(_area(p) for p in taken), 0.01 * height * width)
        polygon = _place_lesion(layers, scene, frame, plan, shape, size_scale, rng, taken, limit)
        taken.append(polygon)
        outlines.append((plan.label, polygon))

    # Trabecular texture: band-passed noise, elongated along the limb axis.
    noise = rng.standard_normal((height, width), dtype=np.float32)
    sx, sy = (0.6, 1.3) if portrait else (1.3, 0.6)
    band = cv2.GaussianBlur(noise, (0, 0), sigmaX=sx, sigmaY=sy) - cv2.GaussianBlur(
        noise, (0, 0), 2.2
    )
    band /= band.std() + 1e-6
    texture = 1.0 + 0.4 * np.tanh(1.3 * band) * layers.texture_weight
    layers.soft *= 1.0 + 0.06 * _noise(rng, layers.shape, 6.0)
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


def _render_to_file(spec: _ImageSpec) -> tuple[int, list[tuple[str, np.ndarray]], int, int]:
    """Worker: render one image, write it as JPEG to spec.path; return its lesions and size."""
    cv2.setNumThreads(1)
    pixels, lesions = _render(spec)
    if spec.rgb:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, spec.quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {spec.path}")
    Path(spec.path).write_bytes(encoded.tobytes())
    return spec.index, lesions, spec.height, spec.width
