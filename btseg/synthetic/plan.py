"""Planning the synthetic dataset: the table rows, patients and one render spec per image.

The plan reproduces the published BTXRD marginals by quota (classes, subtypes, sites, regions,
views, gender, centres, ages by class) and its quirks: a ".jpg" tail from centre 3, files whose
extension on disk differs from the table, one row with two subtypes, rows whose region
contradicts their bone, multi-hot sites on tumour rows, consecutive ids showing one patient in
2-3 views, and byte-identical duplicate images. Everything is drawn from one generator seeded
by the dataset seed, in table order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np

from btseg.data.btxrd import COLUMNS as BTXRD_COLUMNS
from btseg.synthetic.anatomy import BONE_RADIUS, SCENE_SITES
from btseg.synthetic.lesions import SUBTYPE_LESIONS, LesionKind

# The 37 columns of BTXRD's dataset.xlsx, in order: the synthetic table has exactly these.
COLUMNS = BTXRD_COLUMNS


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
# Golden-ratio step of the low-discrepancy sequence that spreads ages over a class.
_GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class LesionPlan:
    """One lesion of a patient: its subtype (the annotation label) and the bone it sits in."""

    subtype: str
    bone: str  # site name of the bone (or joint) it sits in

    @property
    def kind(self) -> LesionKind:
        return SUBTYPE_LESIONS[self.subtype]


@dataclass(frozen=True)
class ImageSpec:
    """What the renderer needs for one image; sizes in original pixels."""

    index: int  # row in the table
    path: str  # JPEG file to write
    height: int
    width: int
    anatomy: str  # scene, a key of anatomy.SCENE_BUILDERS
    view: str
    lesions: tuple[LesionPlan, ...]
    lesion_fraction: float  # wanted area of the first lesion as a fraction of the image
    patient_seed: tuple[int, ...]
    image_seed: tuple[int, ...]
    rgb: bool
    quality: int


@dataclass(frozen=True)
class DatasetPlan:
    """The planned set, in table order."""

    rows: list[dict]  # one dict per table row, keyed by COLUMNS
    specs: list[ImageSpec]  # one per image to render (duplicate copies have none)
    duplicates: list[tuple[int, int]]  # (source, copy) row indices of byte-identical images
    disk_names: list[str]  # file name of each row's image on disk


@dataclass
class _Patient:
    """One patient: a run of consecutive images sharing their table data, filled in by quota."""

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
    lesions: tuple[LesionPlan, ...] = ()
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
    candidates = [site for site in SCENE_SITES[anatomy] if site != primary]
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


def _plan_lesions(rng: np.random.Generator, patient: _Patient) -> tuple[LesionPlan, ...]:
    primary = patient.sites[0]
    in_joint = SUBTYPE_LESIONS[patient.subtype].placement == "joint"
    if in_joint:
        bone = primary
    else:
        bone = _lesion_bone(rng, primary)
    lesions = [LesionPlan(patient.subtype, bone)]
    two = 0.5 if patient.subtype == "multiple osteochondromas" else 0.035
    if rng.random() < two:
        others = [s for s in BONE_RADIUS[patient.anatomy] if s != bone and not in_joint]
        second = others[int(rng.integers(len(others)))] if others and rng.random() < 0.6 else bone
        lesions.append(LesionPlan(patient.subtype, second))
    return tuple(lesions)


def _lesion_fraction(rng: np.random.Generator, label: str) -> float:
    center = -1.75 if label == "malignant" else -2.05
    return float(10 ** np.clip(rng.normal(center, 0.42), -3.2, -1.0))


def plan_dataset(n: int, seed: int, image_dir: Path) -> DatasetPlan:
    """Plan a set of `n` images for `seed` whose files will be written to `image_dir`."""
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
    specs: list[ImageSpec] = []
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
        specs.append(ImageSpec(
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
    return DatasetPlan(rows, specs, duplicates, disk_names)
