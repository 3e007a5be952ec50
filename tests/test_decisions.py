"""btseg.decisions: the threshold grids, the lesion rule, the operating point, the verdict."""

import math

import cv2
import numpy as np
import pytest

from btseg.decisions import (
    MIN_LESION_AREA_PX,
    LesionFinding,
    OperatingPoint,
    choose_best_index,
    choose_operating_point,
    decide,
    evaluation_thresholds,
    findings_from_mask,
    lesions_of,
    min_lesion_area,
    most_probable_lesion,
    slider_thresholds,
    sweep_decisions,
    verdict_for,
)
from btseg.errors import ConfigError
from btseg.metrics import STUDY_THRESHOLDS


def test_min_lesion_area_is_16_px_or_a_ten_thousandth_of_the_image():
    assert MIN_LESION_AREA_PX == 16
    assert min_lesion_area((100, 100)) == 16  # 1 px by the fraction
    assert min_lesion_area((3000, 2400)) == 720
    assert min_lesion_area((401, 400)) == 17  # 16.04 rounds up


def two_regions_and_a_speck() -> np.ndarray:
    mask = np.zeros((50, 40), dtype=np.uint8)
    mask[30:40, 5:15] = 1  # 100 px, lower
    mask[2:6, 20:26] = 1  # 24 px, upper
    mask[6, 26] = 1  # touches the upper region diagonally: same 8-connected region (25 px)
    mask[45:47, 35:37] = 1  # 4 px speck
    return mask


def test_findings_from_mask_exact_values():
    lesions = findings_from_mask(two_regions_and_a_speck(), pixel_spacing_mm=(0.5, 0.2))
    assert [lesion.index for lesion in lesions] == [1, 2]
    upper, lower = lesions
    assert upper.area_px == 25 and upper.box == (20, 2, 27, 7)
    assert lower.area_px == 100 and lower.box == (5, 30, 15, 40)
    assert lower.area_percent == pytest.approx(100 * 100 / 2000)
    assert lower.area_mm2 == pytest.approx(100 * 0.5 * 0.2)
    assert upper.area_mm2 == pytest.approx(25 * 0.1)
    assert np.isnan(lower.mean_probability)  # no probability map given


def test_findings_without_spacing_have_no_mm2_and_min_area_is_adjustable():
    mask = two_regions_and_a_speck()
    assert all(lesion.area_mm2 is None for lesion in findings_from_mask(mask))
    assert [lesion.area_px for lesion in findings_from_mask(mask, min_area_px=1)] == [25, 100, 4]
    assert [lesion.area_px for lesion in findings_from_mask(mask, min_area_px=26)] == [100]
    assert findings_from_mask(np.zeros((5, 5))) == []


def test_threshold_probability_map_exact():
    probability = np.zeros((50, 40), dtype=np.float32)
    probability[30:40, 5:15] = 0.8
    probability[30:35, 5:15] = 0.6  # region mean (50 * 0.6 + 50 * 0.8) / 100 = 0.7
    probability[2:6, 20:26] = 0.3
    probability[45:47, 35:37] = 0.9  # a 4 px speck
    mask, lesions = decide(probability, 0.5)
    expected = np.zeros((50, 40), dtype=np.uint8)
    expected[30:40, 5:15] = 1
    assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
    assert len(lesions) == 1 and lesions[0].mean_probability == pytest.approx(0.7)
    mask, lesions = decide(probability, 0.3)  # >= includes 0.3
    assert [lesion.area_px for lesion in lesions] == [24, 100]
    assert lesions[0].mean_probability == pytest.approx(0.3)
    assert mask.sum() == 124
    mask, lesions = decide(probability, 0.95)
    assert mask.sum() == 0 and lesions == []


def test_threshold_probability_map_many_regions_means_and_areas():
    # 60 regions take the whole-image bincount path for the means.
    probability = np.zeros((100, 120), dtype=np.float32)
    for index in range(60):
        row, column = divmod(index, 10)
        probability[row * 15 : row * 15 + 5, column * 12 : column * 12 + 4] = 0.2 + index / 100
    mask, lesions = decide(probability, 0.1)
    assert len(lesions) == 60 and mask.sum() == 60 * 20
    means = sorted(lesion.mean_probability for lesion in lesions)
    assert np.allclose(means, 0.2 + np.arange(60) / 100)


def test_islands_in_holes_and_holes_are_handled():
    mask = np.zeros((30, 30), dtype=np.uint8)
    mask[2:28, 2:28] = 1
    mask[6:24, 6:24] = 0  # a ring of 26 * 26 - 18 * 18 = 352 px around a hole
    mask[10:20, 10:20] = 1  # an island of 100 px inside the hole
    mask[14:16, 14:16] = 0  # with a hole of its own: 96 px
    lesions = findings_from_mask(mask)
    assert [(lesion.area_px, lesion.box) for lesion in lesions] == [
        (352, (2, 2, 28, 28)),
        (96, (10, 10, 20, 20)),
    ]


@pytest.mark.parametrize("density", [0.05, 0.3, 0.6])
def test_regions_agree_with_opencv_statistics(density):
    """Random masks (few and many regions, specks, holes) against connectedComponentsWithStats."""
    rng = np.random.default_rng(int(density * 100))
    small = rng.random((40, 30)) < density
    mask = cv2.resize(small.astype(np.uint8), (90, 120), interpolation=cv2.INTER_NEAREST)
    mask[rng.random(mask.shape) < 0.01] ^= 1  # specks and pinholes
    probability = rng.random(mask.shape).astype(np.float32)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    expected = sorted(
        (
            int(y),
            int(x),
            int(x + w),
            int(y + h),
            int(area),
            float(probability[labels == label].mean()),
        )
        for label, (x, y, w, h, area) in enumerate(stats)
        if label and area >= 20
    )
    kept_mask = np.isin(labels, [label for label in range(1, count) if stats[label, 4] >= 20])
    output, lesions = lesions_of(mask > 0, 20)
    np.testing.assert_array_equal(output, kept_mask.astype(np.uint8))
    lesions = findings_from_mask(mask, probability_map=probability, min_area_px=20)
    found = sorted(
        (lesion.box[1], lesion.box[0], lesion.box[2], lesion.box[3], lesion.area_px,
         lesion.mean_probability)
        for lesion in lesions
    )  # fmt: skip
    assert [row[:5] for row in found] == [row[:5] for row in expected]
    np.testing.assert_allclose([row[5] for row in found], [row[5] for row in expected], rtol=1e-6)
    assert [lesion.index for lesion in lesions] == list(range(1, len(lesions) + 1))


def test_threshold_is_checked():
    with pytest.raises(ConfigError, match="between 0 and 1"):
        decide(np.zeros((4, 4)), 1.5)
    with pytest.raises(ConfigError):
        decide(np.zeros((4, 4)), float("nan"))


def test_slider_thresholds_span_the_log_range_with_the_study_and_operating_thresholds():
    grid = slider_thresholds(0.2345)
    assert grid[0] == 1e-4 and grid[-1] == 0.99
    assert grid == sorted(set(grid))
    for value in (*STUDY_THRESHOLDS, 0.2345):
        assert value in grid
    ratios = np.array(grid[1:]) / np.array(grid[:-1])
    assert ratios.max() < 1.2  # fine steps everywhere on the log scale
    assert slider_thresholds(1.0)[-1] == 0.99  # an operating threshold outside is clipped


def test_evaluation_thresholds_hold_the_operating_threshold():
    grid = evaluation_thresholds(0.4321)
    assert 0.4321 in grid and set(STUDY_THRESHOLDS) <= set(grid.tolist())
    assert np.all(np.diff(grid) > 0)
    assert len(evaluation_thresholds()) == len(grid) - 1


def test_a_pixel_exactly_at_the_threshold_is_lesion_whatever_the_map_dtype():
    for dtype in (np.float16, np.float32, np.float64):
        probability = np.zeros((20, 20), dtype=dtype)
        probability[5:10, 5:10] = dtype(0.25)  # exactly representable in every dtype
        mask, lesions = decide(probability, OperatingPoint(0.25, 0.0))
        assert mask.sum() == 25 and len(lesions) == 1
        mask, _ = decide(probability, OperatingPoint(np.nextafter(0.25, 1.0), 0.0))
        assert mask.sum() == 0


def test_operating_point_min_area_is_a_fraction_of_the_image_never_below_16_px():
    point = OperatingPoint(0.5, 1e-3)
    assert point.min_area((100, 100)) == 16
    assert point.min_area((1000, 1000)) == 1000
    assert point.min_area((1001, 1000)) == 1001  # 1001.0 exactly, not 1002
    with pytest.raises(ConfigError):
        OperatingPoint(0.5, 1.5)
    with pytest.raises(ConfigError):
        OperatingPoint(2.0)
    again = OperatingPoint.from_json(point.to_json())
    assert again == point
    assert OperatingPoint.from_json({"threshold": 0.3}).min_lesion_fraction == 1e-4
    moved = point.at_threshold(0.2)
    assert moved.threshold == 0.2 and moved.min_lesion_fraction == 1e-3


def test_a_larger_minimum_lesion_removes_small_regions_only():
    probability = np.zeros((100, 100), dtype=np.float32)
    probability[10:20, 10:20] = 0.9  # 100 px = 1% of the image
    probability[50:54, 50:54] = 0.9  # 16 px
    mask, lesions = decide(probability, OperatingPoint(0.5, 1e-3))  # min 16 px
    assert [lesion.area_px for lesion in lesions] == [100, 16]
    mask, lesions = decide(probability, OperatingPoint(0.5, 5e-3))  # min 50 px
    assert [lesion.area_px for lesion in lesions] == [100] and mask.sum() == 100


def random_map(seed: int, shape=(120, 90)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((12, 9)).astype(np.float32)
    return cv2.resize(small, shape[::-1], interpolation=cv2.INTER_CUBIC).clip(0, 1)


def test_sweep_decisions_equals_decide_at_every_threshold():
    truth = (random_map(1) > 0.6).astype(np.uint8)
    probability = random_map(2)
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
    point = OperatingPoint(0.5, 2e-3)
    minimum = point.min_area(probability.shape)
    counts, flagged = sweep_decisions(truth, probability, thresholds, minimum)
    for index, threshold in enumerate(thresholds):
        mask, lesions = decide(probability, point.at_threshold(threshold))
        prediction, true = mask.astype(bool), truth.astype(bool)
        expected = (
            int((prediction & true).sum()),
            int((prediction & ~true).sum()),
            int((~prediction & true).sum()),
            int((~prediction & ~true).sum()),
        )
        assert tuple(counts[index]) == expected
        assert flagged[index] == bool(lesions)


def test_choose_operating_point_counts_normal_images():
    # Tumour images: the lesion scores 0.9; normal images hold a 0.6 blob of 30 px.
    truths, maps, normal = [], [], []
    for _ in range(4):
        truth = np.zeros((50, 50), np.uint8)
        truth[10:30, 10:30] = 1
        probability = np.where(truth > 0, 0.9, 0.05).astype(np.float32)
        truths.append(truth), maps.append(probability), normal.append(False)
    for _ in range(4):
        probability = np.full((50, 50), 0.05, np.float32)
        probability[40:45, 40:46] = 0.6
        truths.append(np.zeros((50, 50), np.uint8)), maps.append(probability), normal.append(True)
    point, rows = choose_operating_point(truths, maps, normal, max_normal_flagged=0.0)
    assert point.threshold > 0.6  # a threshold that flags no normal image
    chosen = next(
        row for row in rows
        if row["threshold"] == point.threshold
        and row["min_lesion_fraction"] == point.min_lesion_fraction
    )  # fmt: skip
    assert chosen["normal_flagged"] == 0.0 and chosen["mean_dice_tumour"] == pytest.approx(1.0)
    assert chosen["tumour_found"] == 1.0 and "normal" in point.criterion
    # Allowing every normal image to be flagged, the tie-break takes the threshold nearest 0.5.
    loose, _ = choose_operating_point(truths, maps, normal, max_normal_flagged=1.0)
    assert loose.threshold == 0.5 and loose.min_lesion_fraction == min(
        row["min_lesion_fraction"] for row in rows
    )
    # A minimum lesion size larger than the normal blob (30 px = 1.2%) also clears them.
    sized, _ = choose_operating_point(
        truths, maps, normal, thresholds=[0.5], min_lesion_fractions=[1e-3, 2e-2],
        max_normal_flagged=0.0,
    )  # fmt: skip
    assert sized.min_lesion_fraction == 2e-2
    with pytest.raises(ValueError, match="no validation image with a tumour"):
        choose_operating_point(truths[4:], maps[4:], normal[4:])


def test_when_no_point_is_allowed_the_fewest_flagged_wins():
    truth = np.zeros((40, 40), np.uint8)
    truth[5:15, 5:15] = 1
    tumour_map = np.where(truth > 0, 0.9, 0.0).astype(np.float32)
    normal_map = np.full((40, 40), 0.99, np.float32)  # flagged at every threshold
    point, _ = choose_operating_point(
        [truth, np.zeros_like(truth)], [tumour_map, normal_map], [False, True],
        thresholds=[0.3, 0.5], min_lesion_fractions=[1e-4], max_normal_flagged=0.1,
    )  # fmt: skip
    assert point.threshold == 0.5 and "no point flags" in point.criterion


def test_choose_best_index_ties_go_to_the_threshold_nearest_one_half():
    thresholds = np.array([0.1, 0.4, 0.55, 0.9])
    assert choose_best_index(np.array([0.2, 0.8, 0.8, 0.1]), thresholds) == 2
    assert choose_best_index(np.array([np.nan, 0.1, np.nan, 0.3]), thresholds) == 3
    assert choose_best_index(np.full(4, np.nan), thresholds) is None


def finding(index: int, area: int, probability: float) -> LesionFinding:
    return LesionFinding(index, area, 0.0, None, (index, index, index + 5, index + 5), probability)


def test_most_probable_lesion_ranks_by_mean_probability_then_area():
    lesions = [finding(1, 300, 0.4), finding(2, 20, 0.9), finding(3, 50, 0.9)]
    assert most_probable_lesion(lesions) is lesions[2]
    assert most_probable_lesion([finding(1, 10, math.nan), finding(2, 5, 0.1)]).index == 2
    assert most_probable_lesion([]) is None


def test_verdict_rule():
    lesion = finding(2, 50, 0.8)
    assert verdict_for([], {"normal": 0.1, "benign": 0.8, "malignant": 0.1}).label == "normal"
    assert verdict_for([lesion], None).label == "tumour"
    benign = verdict_for([lesion], {"normal": 0.1, "benign": 0.6, "malignant": 0.3}, lesion)
    assert benign.label == "benign" and benign.lesion_index == 2 and "lesion 2" in benign.reason
    assert benign.lesion_label == "benign"
    cleared = verdict_for([lesion], {"normal": 0.7, "benign": 0.2, "malignant": 0.1}, lesion)
    assert cleared.label == "normal" and cleared.lesion_label == "tumor"
    assert "calls lesion 2 normal" in cleared.reason
