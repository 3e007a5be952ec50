"""Every decision btseg makes, once: thresholds, probability map -> mask -> lesions, the operating
point chosen on validation, and the verdict for a whole X-ray.

    point = OperatingPoint(threshold=0.5, min_lesion_fraction=1e-3)
    mask, lesions = decide(probability_map, point)              # the lesion rule
    point, table = choose_operating_point(truths, maps)         # on validation, normals counted
    verdict_for(lesions, {"normal": .1, "benign": .7, ...})     # normal / benign / malignant

Training (the operating point), `btseg evaluate`, `btseg predict` and the Segment page all call
these functions, so a pixel exactly at the threshold, a lesion just at the minimum size and a
tie between two thresholds are decided the same way everywhere.

The rule:
- a pixel is lesion when ``probability >= threshold``, compared in float64 (``binarize``);
- a lesion is an 8-connected region of such pixels covering at least ``min_area(shape)`` pixels:
  ``max(MIN_LESION_AREA_PX, ceil(min_lesion_fraction * height * width))``; smaller specks are
  removed from the mask;
- an image is flagged when it holds at least one lesion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from btseg.errors import ConfigError
from btseg.metrics import STUDY_THRESHOLDS, binarize, default_thresholds

__all__ = [
    "MIN_LESION_AREA_PX",
    "DEFAULT_MIN_LESION_FRACTION",
    "SLIDER_RANGE",
    "OPERATING_THRESHOLDS",
    "OPERATING_MIN_LESION_FRACTIONS",
    "DEFAULT_MAX_NORMAL_FLAGGED",
    "VERDICT_CLASSES",
    "LesionFinding",
    "OperatingPoint",
    "Verdict",
    "binarize",
    "check_threshold",
    "choose_best_index",
    "choose_operating_point",
    "decide",
    "evaluation_thresholds",
    "findings_from_mask",
    "lesions_of",
    "min_lesion_area",
    "most_probable_lesion",
    "slider_thresholds",
    "sweep_decisions",
    "verdict_for",
]

#: A region smaller than this many pixels is a speck, not a lesion, at any image size ...
MIN_LESION_AREA_PX = 16
#: ... nor, by default, one smaller than this fraction of the image (0.01 %: 720 px of a
#: 3000x2400 X-ray). An operating point chosen on validation sets its own fraction.
DEFAULT_MIN_LESION_FRACTION = 1e-4

#: The Segment page's log-scale threshold slider covers this range.
SLIDER_RANGE = (1e-4, 0.99)

#: Thresholds tried when the operating point is chosen on validation (with the study's 0.5).
OPERATING_THRESHOLDS: tuple[float, ...] = (
    0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
    0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95,
)  # fmt: skip
#: Minimum lesion sizes tried with them, as fractions of the image (0.01 % to 1 %).
OPERATING_MIN_LESION_FRACTIONS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 2e-3, 4e-3, 1e-2)
#: Share of normal validation images the operating point may flag, by default.
DEFAULT_MAX_NORMAL_FLAGGED = 0.10

#: What btseg answers for a whole X-ray.
VERDICT_CLASSES: tuple[str, ...] = ("normal", "benign", "malignant")


# ------------------------------------------------------------------------------------------------
# Thresholds


def check_threshold(threshold: float, where: str = "threshold") -> float:
    """``threshold`` as a float in [0, 1]; ConfigError (naming ``where``) otherwise."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"the threshold {threshold!r} is not a probability between 0 and 1",
            where=where,
            fix="pass a threshold such as 0.5 (0 marks every pixel, 1 only certain ones)",
        )
    return value


def evaluation_thresholds(operating_threshold: float | None = None) -> np.ndarray:
    """(K,) float64 sorted thresholds at which `btseg evaluate` sweeps: 41 log-spaced values from
    1e-4 to 0.99, the study's thresholds, and the operating threshold when given."""
    grid = default_thresholds()
    if operating_threshold is None:
        return grid
    return np.unique(np.r_[grid, float(operating_threshold)])


def slider_thresholds(operating_threshold: float | None = None, points: int = 81) -> list[float]:
    """Values of the log-scale threshold slider: ``points`` steps over SLIDER_RANGE (two
    significant digits), the study's thresholds, and the operating threshold (clipped)."""
    low, high = SLIDER_RANGE
    values = {float(f"{value:.2g}") for value in np.logspace(np.log10(low), np.log10(high), points)}
    values |= {float(value) for value in STUDY_THRESHOLDS} | {high}
    if operating_threshold is not None and math.isfinite(operating_threshold):
        values.add(float(min(max(operating_threshold, low), high)))
    return sorted(value for value in values if low <= value <= high)


def choose_best_index(values: np.ndarray, thresholds: np.ndarray) -> int | None:
    """Index of the largest of ``values`` (NaN never wins); ties go to the threshold nearest 0.5,
    then to the first. None when every value is NaN."""
    values = np.where(np.isnan(np.asarray(values, dtype=np.float64)), -np.inf, values)
    if not np.isfinite(values).any():
        return None
    best = np.flatnonzero(values == values.max())
    return int(best[np.argmin(np.abs(np.asarray(thresholds, dtype=np.float64)[best] - 0.5))])


# ------------------------------------------------------------------------------------------------
# The operating point


@dataclass(frozen=True)
class OperatingPoint:
    """How a probability map becomes a mask: the threshold and the minimum lesion size.

    Attributes:
        threshold: a pixel is lesion when its probability is >= threshold.
        min_lesion_fraction: smallest lesion as a fraction of the image's pixels (never below
            MIN_LESION_AREA_PX pixels).
        criterion: how the point was chosen, in words ("" for a point set by hand).
    """

    threshold: float
    min_lesion_fraction: float = DEFAULT_MIN_LESION_FRACTION
    criterion: str = ""

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        fraction = float(self.min_lesion_fraction)
        if math.isnan(fraction) or not 0.0 <= fraction < 1.0:
            raise ConfigError(
                f"the minimum lesion fraction {self.min_lesion_fraction!r} is not in [0, 1)",
                where="operating point",
                fix="use a fraction of the image such as 0.001 (0.1 %)",
            )

    def min_area(self, shape: tuple[int, ...]) -> int:
        """Smallest lesion, in pixels, in an image of (height, width)."""
        return min_lesion_area(shape, self.min_lesion_fraction)

    def at_threshold(self, threshold: float) -> OperatingPoint:
        """The same minimum lesion size at another threshold (a slider move)."""
        return OperatingPoint(float(threshold), self.min_lesion_fraction, "set by hand")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> OperatingPoint:
        """From threshold.json; a file without ``min_lesion_fraction`` (older runs) gets the
        default, the rule those runs were evaluated with."""
        return cls(
            threshold=float(payload["threshold"]),
            min_lesion_fraction=float(
                payload.get("min_lesion_fraction", DEFAULT_MIN_LESION_FRACTION)
            ),
            criterion=str(payload.get("criterion", "")),
        )


def min_lesion_area(
    shape: tuple[int, ...], min_lesion_fraction: float = DEFAULT_MIN_LESION_FRACTION
) -> int:
    """Smallest region, in pixels, that counts as a lesion in an image of (height, width):
    ``max(MIN_LESION_AREA_PX, ceil(min_lesion_fraction * height * width))``."""
    height, width = (int(value) for value in shape[:2])
    # Rounded to 9 digits first so that 1e-4 * 160000 is 16, not 16.000000000000004.
    return max(MIN_LESION_AREA_PX, math.ceil(round(min_lesion_fraction * height * width, 9)))


# ------------------------------------------------------------------------------------------------
# Lesions


@dataclass(frozen=True)
class LesionFinding:
    """One predicted lesion.

    Attributes:
        index: 1-based, ordered top to bottom, then left to right (by box corner).
        area_px: pixels of the region at original resolution.
        area_percent: 100 * area_px / (height * width).
        area_mm2: area_px times the pixel area when the DICOM gives a pixel spacing, else None.
        box: (x0, y0, x1, y1) in original pixels, x1 and y1 exclusive.
        mean_probability: mean of the probability map over the region (NaN without a map).
    """

    index: int
    area_px: int
    area_percent: float
    area_mm2: float | None
    box: tuple[int, int, int, int]
    mean_probability: float


#: Up to this many regions, per-region work runs inside each region's box; beyond, whole-image
#: passes (np.bincount, a lookup table) are cheaper.
_FEW_REGIONS = 32


def _region_boxes(mask: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray | None:
    """(count, 4) int64 x0, y0, x1, y1 (exclusive) of each labelled region, from the outer
    contours (one per 8-connected region, islands in holes included); None if one is missing.

    Several times quicker than connectedComponentsWithStats' per-pixel statistics.
    """
    import cv2

    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    boxes = np.full((count, 4), -1, dtype=np.int64)
    for contour, links in zip(contours, hierarchy[0], strict=True):
        if links[3] != -1:  # the border of a hole
            continue
        x, y = contour[0, 0]
        left, top, width, height = cv2.boundingRect(contour)
        boxes[labels[y, x]] = (left, top, left + width, top + height)
    return None if (boxes[1:, 0] < 0).any() else boxes


def lesions_of(
    binary: np.ndarray,
    min_area_px: int,
    probability_map: np.ndarray | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> tuple[np.ndarray, list[LesionFinding]]:
    """The lesion rule on a boolean (H, W) array: (mask (H, W) uint8 {0, 1} without regions
    smaller than ``min_area_px``, one LesionFinding per kept 8-connected region)."""
    import cv2

    height, width = binary.shape
    minimum = int(min_area_px)
    mask = np.asarray(binary).astype(np.uint8)
    count, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
    if count == 1:
        return mask, []
    boxes = _region_boxes(mask, labels, count)
    few = count - 1 <= _FEW_REGIONS and boxes is not None
    if boxes is None:  # not expected; the slower statistics are always right
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        boxes = stats[:, :4].astype(np.int64)
        boxes[:, 2:] += boxes[:, :2]

    def inside(label: int) -> tuple[tuple[slice, slice], np.ndarray]:
        x0, y0, x1, y1 = boxes[label]
        window = (slice(y0, y1), slice(x0, x1))
        return window, labels[window] == label

    areas = np.zeros(count, dtype=np.int64)
    sums = np.zeros(count)
    if few:
        for label in range(1, count):
            window, selected = inside(label)
            areas[label] = np.count_nonzero(selected)
            if probability_map is not None:
                sums[label] = np.sum(probability_map[window], where=selected, dtype=np.float64)
    else:
        flat = labels.ravel()
        areas = np.bincount(flat, minlength=count)
        if probability_map is not None:
            sums = np.bincount(flat, weights=probability_map.ravel(), minlength=count)

    specks = np.flatnonzero(areas[1:] < minimum) + 1
    if specks.size > _FEW_REGIONS:
        keep = np.ones(count, dtype=np.uint8)
        keep[0] = 0
        keep[specks] = 0
        mask = keep[labels]
    else:
        for label in specks:
            window, selected = inside(label)
            mask[window][selected] = 0

    kept = np.flatnonzero(areas[1:] >= minimum) + 1
    pixel_area = None if pixel_spacing_mm is None else float(np.prod(pixel_spacing_mm))
    order = sorted(kept, key=lambda label: (boxes[label, 1], boxes[label, 0]))
    findings = []
    for index, label in enumerate(order, start=1):
        x0, y0, x1, y1 = (int(value) for value in boxes[label])
        area = int(areas[label])
        findings.append(
            LesionFinding(
                index=index,
                area_px=area,
                area_percent=100.0 * area / (height * width),
                area_mm2=None if pixel_area is None else area * pixel_area,
                box=(x0, y0, x1, y1),
                mean_probability=(
                    float("nan") if probability_map is None else float(sums[label] / area)
                ),
            )
        )
    return mask, findings


def findings_from_mask(
    mask: np.ndarray,
    pixel_spacing_mm: tuple[float, float] | None = None,
    probability_map: np.ndarray | None = None,
    min_area_px: int | None = None,
) -> list[LesionFinding]:
    """The lesions of a (H, W) mask (non-zero = lesion): 8-connected regions of at least
    ``min_area_px`` pixels (default ``min_lesion_area(mask.shape)``), areas in px, % and mm²."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    if probability_map is not None and np.shape(probability_map) != mask.shape:
        raise ValueError(
            f"probability_map {np.shape(probability_map)} and mask {mask.shape} differ in shape"
        )
    minimum = min_lesion_area(mask.shape) if min_area_px is None else int(min_area_px)
    return lesions_of(mask != 0, minimum, probability_map, pixel_spacing_mm)[1]


def decide(
    probability_map: np.ndarray,
    point: OperatingPoint | float,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> tuple[np.ndarray, list[LesionFinding]]:
    """Cut a (H, W) probability map at an operating point (or a bare threshold, with the default
    minimum lesion size): (mask (H, W) uint8 {0, 1}, lesions). No model; tens of milliseconds
    for a 3000x2400 map, so a threshold slider can call it on every move."""
    if not isinstance(point, OperatingPoint):
        point = OperatingPoint(check_threshold(point))
    probability_map = np.asarray(probability_map)
    if probability_map.ndim != 2:
        raise ValueError(f"probability_map must be (H, W), got shape {probability_map.shape}")
    binary = binarize(probability_map, point.threshold)
    return lesions_of(
        binary, point.min_area(probability_map.shape), probability_map, pixel_spacing_mm
    )


def most_probable_lesion(lesions: Sequence[LesionFinding]) -> LesionFinding | None:
    """The lesion with the highest mean probability (ties: the larger, then the first), or None.

    It is the lesion a region classifier is given and the one the verdict names."""
    if not lesions:
        return None

    def rank(lesion: LesionFinding) -> tuple[float, int, int]:
        probability = lesion.mean_probability
        return (-1.0 if math.isnan(probability) else probability, lesion.area_px, -lesion.index)

    return max(lesions, key=rank)


# ------------------------------------------------------------------------------------------------
# Choosing the operating point on validation


def _image_table(
    truth: np.ndarray, probability_map: np.ndarray, thresholds: Sequence[float]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per threshold, (areas, true-positive pixels) of each 8-connected region of the cut map."""
    import cv2

    truth = np.asarray(truth) != 0
    table = []
    for threshold in thresholds:
        binary = binarize(probability_map, threshold)
        if not binary.any():
            empty = np.zeros(0, dtype=np.int64)
            table.append((empty, empty))
            continue
        count, labels = cv2.connectedComponents(
            binary.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        areas = np.bincount(labels[binary], minlength=count)[1:]
        hits = np.bincount(labels[binary & truth], minlength=count)[1:]
        table.append((areas, hits))
    return table


def sweep_decisions(
    truth: np.ndarray,
    probability_map: np.ndarray,
    thresholds: Sequence[float],
    min_area_px: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The lesion rule at many thresholds without building masks.

    Args:
        truth: (H, W) {0, 1} true mask. probability_map: (H, W) float map.
        thresholds: T thresholds. min_area_px: the smallest lesion, in pixels.

    Returns:
        ((T, 4) int64 tp, fp, fn, tn of the mask ``decide`` makes at each threshold,
        (T,) bool: that mask holds a lesion).
    """
    if np.shape(truth) != np.shape(probability_map):
        raise ValueError(f"truth {np.shape(truth)} and map {np.shape(probability_map)} differ")
    true_area = int(np.count_nonzero(truth))
    total = int(np.size(truth))
    counts = np.zeros((len(thresholds), 4), dtype=np.int64)
    flagged = np.zeros(len(thresholds), dtype=bool)
    for index, (areas, hits) in enumerate(_image_table(truth, probability_map, thresholds)):
        kept = areas >= int(min_area_px)
        tp = int(hits[kept].sum())
        predicted = int(areas[kept].sum())
        fp, fn = predicted - tp, true_area - tp
        counts[index] = (tp, fp, fn, total - tp - fp - fn)
        flagged[index] = bool(kept.any())
    return counts, flagged


def choose_operating_point(
    truths: Sequence[np.ndarray],
    probability_maps: Sequence[np.ndarray],
    normal: Sequence[bool] | np.ndarray,
    thresholds: Sequence[float] = OPERATING_THRESHOLDS,
    min_lesion_fractions: Sequence[float] = OPERATING_MIN_LESION_FRACTIONS,
    max_normal_flagged: float = DEFAULT_MAX_NORMAL_FLAGGED,
) -> tuple[OperatingPoint, list[dict[str, Any]]]:
    """The operating point chosen on validation images, normal images counted.

    Criterion: the highest mean Dice over the images with a tumour among the points that flag
    at most ``max_normal_flagged`` of the normal images; ties go to the threshold nearest 0.5,
    then to the smaller minimum lesion size. When no point flags few enough normal images, the
    point that flags the fewest (then the highest mean Dice) is taken, and the criterion says so.
    Dice is computed on the mask after the lesion rule, as every user of the point sees it.

    Args:
        truths: (H, W) {0, 1} true masks (any sizes; each matches its map).
        probability_maps: (H, W) float maps in [0, 1].
        normal: per image, True for images labelled normal (tumour images whose mask is empty
            are neither: they count in no criterion).
        thresholds, min_lesion_fractions: the grid searched.
        max_normal_flagged: the share of normal images allowed to hold a lesion, in [0, 1].

    Returns:
        (OperatingPoint, table): one row per (threshold, fraction) with mean_dice_tumour,
        normal_flagged, tumour_found and the counts.

    Raises:
        ValueError: no image with a tumour, or mismatched lengths/shapes.
    """
    if len(truths) != len(probability_maps) or len(truths) != len(normal):
        raise ValueError(
            f"{len(truths)} truths, {len(probability_maps)} maps and {len(normal)} labels differ"
        )
    normal = np.asarray(normal, dtype=bool)
    thresholds = [float(value) for value in thresholds]
    fractions = [float(value) for value in min_lesion_fractions]
    n_tumour = 0
    dice_sum = np.zeros((len(thresholds), len(fractions)))
    found = np.zeros((len(thresholds), len(fractions)))
    flagged = np.zeros((len(thresholds), len(fractions)))
    for truth, probability_map, is_normal in zip(truths, probability_maps, normal, strict=True):
        if np.shape(truth) != np.shape(probability_map):
            raise ValueError(f"truth {np.shape(truth)} and map {np.shape(probability_map)} differ")
        true_area = int(np.count_nonzero(truth))
        if not is_normal and true_area == 0:
            continue
        n_tumour += int(true_area > 0)
        table = _image_table(truth, np.asarray(probability_map), thresholds)
        for f, fraction in enumerate(fractions):
            minimum = min_lesion_area(np.shape(truth), fraction)
            for t, (areas, hits) in enumerate(table):
                kept = areas >= minimum
                any_lesion = bool(kept.any())
                if true_area > 0:
                    predicted = int(areas[kept].sum())
                    dice_sum[t, f] += 2.0 * int(hits[kept].sum()) / (predicted + true_area)
                    found[t, f] += any_lesion and bool(hits[kept].any())
                else:
                    flagged[t, f] += any_lesion
    if n_tumour == 0:
        raise ValueError("no validation image with a tumour to choose an operating point on")
    n_normal = int(normal.sum())
    mean_dice = dice_sum / n_tumour
    normal_rate = flagged / n_normal if n_normal else np.zeros_like(flagged)
    allowed = normal_rate <= max_normal_flagged + 1e-12
    if allowed.any():
        criterion = (
            f"max mean Dice over validation tumour images with at most "
            f"{max_normal_flagged:.0%} of validation normal images flagged"
        )
        score = np.where(allowed, mean_dice, -np.inf)
    else:
        lowest = normal_rate.min()
        criterion = (
            f"no point flags at most {max_normal_flagged:.0%} of validation normal images: "
            f"the fewest flagged ({lowest:.0%}), then max mean Dice over tumour images"
        )
        score = np.where(normal_rate == lowest, mean_dice, -np.inf)
    best = np.argwhere(score == score.max())
    t_best, f_best = min(
        (tuple(cell) for cell in best),
        key=lambda cell: (abs(thresholds[cell[0]] - 0.5), fractions[cell[1]], cell[0]),
    )
    rows = [
        {
            "threshold": thresholds[t],
            "min_lesion_fraction": fractions[f],
            "mean_dice_tumour": float(mean_dice[t, f]),
            "tumour_found": float(found[t, f] / n_tumour),
            "normal_flagged": float(normal_rate[t, f]) if n_normal else None,
            "n_tumour_images": n_tumour,
            "n_normal_images": n_normal,
        }
        for t in range(len(thresholds))
        for f in range(len(fractions))
    ]
    point = OperatingPoint(thresholds[t_best], fractions[f_best], criterion)
    return point, rows


# ------------------------------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True)
class Verdict:
    """What btseg answers for a whole X-ray.

    Attributes:
        label: "normal", "benign", "malignant", "tumour" (a lesion and no classifier) or
            "inconclusive" (the input could not be judged).
        reason: the rule that gave it, in words.
        probabilities: the class probabilities behind it ({} when none).
        lesion_index: the lesion the classifier was given (None without one).
    """

    label: str
    reason: str
    probabilities: dict[str, float] = field(default_factory=dict)
    lesion_index: int | None = None

    @property
    def lesion_label(self) -> str:
        """The label lesions get in a LabelMe file: the verdict when it names a kind of
        tumour, else "tumor"."""
        return self.label if self.label in ("benign", "malignant") else "tumor"


def verdict_for(
    lesions: Sequence[LesionFinding],
    class_probabilities: Mapping[str, float] | None,
    lesion: LesionFinding | None = None,
) -> Verdict:
    """The image-level verdict.

    Rule: no lesion at the operating point -> "normal". Otherwise the classifier's most
    probable class for ``lesion`` (the most probable lesion for a region classifier, or the
    whole image for an image classifier); a region the classifier calls normal makes the image
    normal (the lesion is taken for a false positive). Without a classifier -> "tumour".
    """
    if not lesions:
        return Verdict("normal", "no lesion found at the operating point")
    index = None if lesion is None else lesion.index
    if not class_probabilities:
        return Verdict("tumour", "a lesion was found; no classifier to name its kind", {}, index)
    probabilities = {str(name): float(value) for name, value in class_probabilities.items()}
    label = max(
        probabilities, key=lambda name: (probabilities[name], -list(probabilities).index(name))
    )
    where = "the whole image" if lesion is None else f"lesion {lesion.index}"
    if label == "normal":
        reason = (
            f"{len(lesions)} lesion(s) found, but the classifier calls {where} normal "
            f"({probabilities[label]:.0%})"
        )
    else:
        reason = f"the classifier calls {where} {label} ({probabilities[label]:.0%})"
    return Verdict(label, reason, probabilities, index)
